// fuzz-handshake: libFuzzer target for both sides of the handshake — the
// responder (ServerSession) and the initiator (ClientSession).
//
// Byte 0's low three bits pick a mode, its high five bits how the keys are
// answered; byte 1's low seven bits are the read size minus one for what
// follows, its top bit says the keys are answered as soon as asked:
//   mode 0  raw bytes from the first byte of the connection (preamble parser,
//           frame decoder, decryption failures)
//   mode 1  a valid preamble, then raw bytes (handshake framing, message 1)
//   mode 2  the input is message 3's *plaintext* payload, written with the
//           right key (payload rules: probe, Hello, unknown records)
//   mode 3  a real handshake, then the input split into transport messages
//           (2-byte length + plaintext each) sealed with the right key
//           (record dispatch, placement, string table, limits)
//   mode 4  a valid preamble and a real message 1, then raw bytes
//           (message 3's framing, static key and PSK trials)
//   mode 5  a version-1 preamble and an NNpsk0 message 1 whose payload is
//           the input (the upgrade refusal)
//   mode 6  the initiator: raw bytes after its message 1 (message 2 and
//           the collector's answer, from a peer that may be anyone)
//   mode 7  the initiator against a real responder: the input is the
//           plaintext of the collector's first transport message (the
//           Welcome / Error answer rules), then more transport messages
//   keys (byte 0 >> 3): bit 0 a synchronous KeyLookup instead of `.needKeys`;
//           bits 1–2 wrong keys tried before the right one (0–3); bit 3 the
//           right key left out; bit 4 answered "unknown project".
// Invariants: no trap; at most one `.needKeys` and one `.closed`, nothing
// after `.closed`; `feed` takes every byte except while message 1 waits for
// keys; the Hello comes with the right key's index and the initiator's
// static key; the outbound buffer stays within its limit; the initiator
// reports at most one Welcome and never a Hello.
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
let collectorKey = StaticKeyPair(secret: Key32(bytes: [UInt8](repeating: 0x33, count: 32))!)
let agentKey = StaticKeyPair(secret: Key32(bytes: [UInt8](repeating: 0x44, count: 32))!)
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

    init(_ bits: UInt8, early: Bool) {
        synchronous = bits & 1 != 0
        wrong = Int(bits >> 1 & 3)
        omitRight = bits & 8 != 0
        unknown = bits & 16 != 0
        self.early = early
    }

    var candidates: [Key32] { Array(wrongKeys.prefix(wrong)) + (omitRight ? [] : [psk]) }
    /// Where the right key is among what the session was given.
    var rightIndex: Int { synchronous ? 0 : wrong }

    func makeServer() -> ServerSession {
        guard synchronous else { return ServerSession(staticKey: collectorKey, limits: limits) }
        let unknown = self.unknown, omitRight = self.omitRight
        return ServerSession(staticKey: collectorKey, limits: limits) { project in
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
    precondition(server.peerStaticKey == agentKey.publicKey, "Hello with another static key")
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

func newClient(hello: Hello?) -> ClientSession {
    ClientSession(preamble: preamble, psk: psk, collectorKey: collectorKey.publicKey, identity: agentKey, hello: hello, limits: limits)
}

/// Feeds the initiator in chunks, checking its events.
func feedClient(_ client: ClientSession, _ bytes: [UInt8], chunk: Int) {
    var closed = false, welcomed = false
    var i = 0
    while i < bytes.count {
        let n = min(chunk, bytes.count - i)
        bytes.withUnsafeBytes {
            client.feed(UnsafeRawBufferPointer(rebasing: $0[i..<i + n])) { e in
                precondition(!closed, "initiator event after .closed")
                switch e {
                case .closed: closed = true
                case .welcome:
                    precondition(!welcomed, "two Welcomes")
                    welcomed = true
                case .hello, .needKeys: preconditionFailure("initiator reported a responder event")
                case .record: precondition(welcomed, "a record before the Welcome")
                }
            }
        }
        precondition(client.outbound.readableBytes <= limits.maxOutboundBytes)
        i += n
    }
    if closed { precondition(client.closeReason != nil) }
}

/// Seals `input` as transport messages: [u16 length][plaintext] each.
func sealAll(_ input: ArraySlice<UInt8>, _ send: inout CipherState) -> [UInt8] {
    var i = input.startIndex
    var stream: [UInt8] = []
    while i + 2 <= input.endIndex {
        let n = min(Int(input[i]) << 8 | Int(input[i + 1]), input.endIndex - i - 2, 65519)
        guard let ct = try? send.encrypt(Array(input[(i + 2)..<(i + 2 + n)])) else { break }
        stream += frame(ct)
        i += 2 + n
    }
    return stream
}

func fuzzHandshake(_ data: UnsafeRawBufferPointer) {
    guard data.count >= 2 else { return }
    let mode = data[0] & 7
    let plan = KeyPlan(data[0] >> 3, early: data[1] & 0x80 != 0)
    let chunk = Int(data[1] & 0x7F) + 1
    let input = Array(data[2...])
    if mode >= 6 { return fuzzInitiator(mode, input, chunk: chunk) }
    let server = plan.makeServer()
    let checker = Checker()
    switch mode {
    case 0:
        feed(server, input, chunk: chunk, plan, checker)
    case 1:
        feed(server, preamble.bytes + input, chunk: chunk, plan, checker)
    case 4:
        let client = newClient(hello: Hello(agentID: "fuzz"))
        guard (try? client.start()) != nil else { return }
        feed(server, client.outbound.readableArray + input, chunk: chunk, plan, checker)
    case 5:
        let old = Preamble(projectID: "fuzz", version: Preamble.legacyVersion)!
        var initiator = NNpsk0Handshake(role: .initiator, prologue: old.bytes, psk: psk)
        guard let m1 = try? initiator.writeMessage(payload: input) else { return }
        feed(server, old.bytes + frame(m1), chunk: chunk, plan, checker)
        precondition(!checker.hello, "a version-1 agent was admitted")
        if server.closeReason == .outdatedProtocol {
            let out = server.outbound.readableArray
            guard out.count > 2, let payload = try? initiator.readMessage(Array(out[2...])),
                  case .error = (try? Record.decodeAll(payload))?.first else { preconditionFailure("upgrade refusal unreadable") }
        }
    default:
        // A real initiator up to message 3; mode 2 writes the input as its payload.
        var initiator = NoiseHandshake(initiatorPrologue: preamble.bytes, psk: psk, staticKey: agentKey, collectorKey: collectorKey.publicKey)
        guard let m1 = try? initiator.writeMessage(payload: []) else { return }
        feed(server, preamble.bytes + frame(m1), chunk: chunk, plan, checker)
        // Keys answered "unknown", left out, or not yet: nothing more to do.
        answerKeys(server, plan, checker)
        let m2 = server.outbound.readableArray
        server.outbound.consume(m2.count)
        guard m2.count > 2, (try? initiator.readMessage(Array(m2[2...]))) != nil else { return }
        let hello = mode == 2 ? input : Record.hello(Hello(agentID: "fuzz")).encoded
        guard let m3 = try? initiator.writeMessage(payload: hello) else { return }
        feed(server, frame(m3), chunk: chunk, plan, checker)
        guard mode == 3, server.state == .established else { return }
        let out = server.outbound.readableArray
        server.outbound.consume(out.count)
        guard var (send, receive) = try? initiator.split(), out.count > 2,
              (try? receive.decrypt(Array(out[2...]))) != nil else { preconditionFailure("valid Welcome refused") }
        feed(server, sealAll(input[...], &send), chunk: chunk, plan, checker)
    }
    if checker.closed { precondition(server.closeReason != nil) }
    if plan.synchronous { precondition(!checker.needKeys, "a KeyLookup session asked for keys") }
}

/// The agent's side against a collector that may be anyone.
func fuzzInitiator(_ mode: UInt8, _ input: [UInt8], chunk: Int) {
    let client = newClient(hello: Hello(agentID: "fuzz"))
    guard (try? client.start()) != nil else { return }
    let first = client.outbound.readableArray
    client.outbound.consume(first.count)
    guard mode == 7 else { return feedClient(client, input, chunk: chunk) }
    // A real responder: message 2, then the input as its transport messages.
    var responder = NoiseHandshake(responderPrologue: preamble.bytes, staticKey: collectorKey)
    guard (try? responder.readMessage(Array(first[(preamble.bytes.count + 2)...]))) != nil,
          let m2 = try? responder.writeMessage(payload: []) else { preconditionFailure("real message 1 refused") }
    feedClient(client, frame(m2), chunk: chunk)
    let m3 = client.outbound.readableArray
    client.outbound.consume(m3.count)
    guard m3.count > 2, let (_, hello) = try? responder.readMessage3(Array(m3[2...]), psks: [psk]),
          case .hello = (try? Record.decodeAll(hello))?.first,
          var (send, _) = try? responder.split() else { preconditionFailure("real message 3 refused") }
    feedClient(client, sealAll(input[...], &send), chunk: chunk)
}

#if FUZZING
@_cdecl("fuzz_handshake_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzHandshake) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzHandshake) } }
#endif
