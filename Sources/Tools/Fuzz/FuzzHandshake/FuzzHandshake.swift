// fuzz-handshake: libFuzzer target for the responder (ServerSession).
//
// Byte 0's low two bits pick a mode, its high six bits how the keys are
// answered; byte 1 is the read size for what follows:
//   mode 0  raw bytes from the first byte of the connection (preamble parser,
//           frame decoder, decryption failures)
//   mode 1  a valid preamble, then raw bytes (handshake framing and message 1)
//   mode 2  the input is message 1's *plaintext* payload, encrypted with the
//           right key (payload rules: probe, Hello, unknown records)
//   mode 3  a real handshake, then the input split into transport messages
//           (2-byte length + plaintext each) sealed with the right key
//           (record dispatch, placement, string table, limits)
//   keys (byte 0 >> 2): bit 0 a synchronous KeyLookup instead of `.needKeys`;
//           bits 1–2 wrong keys tried before the right one (0–3); bit 3 the
//           right key left out; bit 4 answered "unknown project"; bit 5 the
//           answer given as soon as asked rather than once message 1 is in.
// Invariants: no trap; at most one `.needKeys` and one `.closed`, nothing
// after `.closed`; `feed` takes every byte except while message 1 waits for
// keys; the Hello comes with the right key's index; the outbound buffer
// stays within its limit.
//
// Built with -D FUZZING it hands its body to libFuzzer; a normal build
// replays files: `fuzz-handshake FILE...`.
import FuzzSupport
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

let psk = Key32(bytes: [UInt8](repeating: 0x5A, count: 32))!
let wrongKeys = (1...3).map { Key32(bytes: [UInt8](repeating: UInt8($0), count: 32))! }
let preamble = Preamble(projectID: "fuzz")!
let limits = SessionLimits(wire: WireLimits(maxRecordLength: 4096, maxBatchItems: 64, maxStringLength: 256,
                                            maxListCount: 64, maxStringID: 128, maxStringTableBytes: 2048),
                           maxHandshakeLength: 2048, maxOutboundBytes: 1 << 17)

func frame(_ body: [UInt8]) -> [UInt8] { [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body }

/// How the owner answers `.needKeys` (byte 0's high bits).
struct KeyPlan {
    let synchronous: Bool
    let wrong: Int
    let omitRight: Bool
    let unknown: Bool
    let early: Bool

    init(_ bits: UInt8) {
        synchronous = bits & 1 != 0
        wrong = Int(bits >> 1 & 3)
        omitRight = bits & 8 != 0
        unknown = bits & 16 != 0
        early = bits & 32 != 0
    }

    var candidates: [Key32] { Array(wrongKeys.prefix(wrong)) + (omitRight ? [] : [psk]) }
    /// Where the right key is among what the session was given.
    var rightIndex: Int { synchronous ? 0 : wrong }

    func makeServer() -> ServerSession {
        guard synchronous else { return ServerSession(limits: limits) }
        let unknown = self.unknown, omitRight = self.omitRight
        return ServerSession(limits: limits) { project in
            project == "fuzz" && !unknown ? (omitRight ? wrongKeys[0] : psk) : nil
        }
    }
}

final class Checker {
    var closed = false
    var hello = false
    var needKeys = false
    func handle(_ e: SessionEvent) {
        precondition(!closed, "event after .closed")
        switch e {
        case .closed: closed = true
        case .hello: hello = true
        case .welcome: preconditionFailure("server reported a welcome")
        case .needKeys:
            precondition(!needKeys, "keys asked for twice")
            needKeys = true
        case .record: break
        }
    }
}

func answerKeys(_ server: ServerSession, _ plan: KeyPlan, _ checker: Checker) {
    guard server.isWaitingForKeys, plan.early || server.hasMessage1 else { return }
    precondition(checker.needKeys)
    if plan.unknown {
        server.unknownProject(checker.handle)
        precondition(server.closeReason == .unknownProject)
    } else {
        server.provideKeys(plan.candidates, checker.handle)
    }
    precondition(!server.isWaitingForKeys)
}

func acceptHello(_ server: ServerSession, _ plan: KeyPlan, _ checker: Checker) {
    guard checker.hello && server.state == .awaitingAccept else { return }
    precondition(server.keyIndex == plan.rightIndex, "Hello under the wrong key")
    try? server.accept(Welcome(sessionID: 1, collectorTimeMs: 2))
}

func feed(_ server: ServerSession, _ bytes: [UInt8], chunk: Int, _ plan: KeyPlan, _ checker: Checker) {
    var i = 0
    while i < bytes.count {
        let n = min(chunk, bytes.count - i)
        let taken = bytes.withUnsafeBytes { server.feed(UnsafeRawBufferPointer(rebasing: $0[i..<i + n]), checker.handle) }
        precondition(taken >= 0 && taken <= n)
        precondition(taken == n || server.hasMessage1, "bytes left over without a message 1 waiting for keys")
        acceptHello(server, plan, checker)
        answerKeys(server, plan, checker)
        acceptHello(server, plan, checker)
        precondition(server.outbound.readableBytes <= limits.maxOutboundBytes)
        i += taken
        if taken == 0 && server.hasMessage1 { break }   // keys never given
    }
}

func fuzzHandshake(_ data: UnsafeRawBufferPointer) {
    guard data.count >= 2 else { return }
    let mode = data[0] & 3
    let plan = KeyPlan(data[0] >> 2)
    let chunk = Int(data[1]) + 1
    let input = Array(data[2...])
    let server = plan.makeServer()
    let checker = Checker()
    switch mode {
    case 0:
        feed(server, input, chunk: chunk, plan, checker)
    case 1:
        feed(server, preamble.bytes + input, chunk: chunk, plan, checker)
    default:
        var initiator = NoiseHandshake(role: .initiator, prologue: preamble.bytes, psk: psk)
        let hello = mode == 2 ? input : Record.hello(Hello(agentID: "fuzz")).encoded
        guard let m1 = try? initiator.writeMessage(payload: hello) else { return }
        feed(server, preamble.bytes + frame(m1), chunk: chunk, plan, checker)
        guard mode == 3, server.state == .established else { return }
        let out = server.outbound.readableArray
        server.outbound.consume(out.count)
        guard out.count > 2, (try? initiator.readMessage(Array(out[2...]))) != nil,
              var (send, _) = try? initiator.split() else { preconditionFailure("valid message 2 refused") }
        // Input: [u16 length][plaintext] ... each sealed as one message.
        var i = 0
        var stream: [UInt8] = []
        while i + 2 <= input.count {
            let n = min(Int(input[i]) << 8 | Int(input[i + 1]), input.count - i - 2, 65519)
            guard let ct = try? send.encrypt(Array(input[(i + 2)..<(i + 2 + n)])) else { break }
            stream += frame(ct)
            i += 2 + n
        }
        feed(server, stream, chunk: chunk, plan, checker)
    }
    if checker.closed { precondition(server.closeReason != nil) }
    if plan.synchronous { precondition(!checker.needKeys, "a KeyLookup session asked for keys") }
}

#if FUZZING
@_cdecl("fuzz_handshake_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzHandshake) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzHandshake) } }
#endif
