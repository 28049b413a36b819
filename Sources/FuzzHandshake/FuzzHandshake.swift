// fuzz-handshake: libFuzzer target for the responder (ServerSession).
//
// Byte 0 picks a mode and byte 1 the read size for what follows:
//   0  raw bytes from the first byte of the connection (preamble parser,
//      frame decoder, decryption failures)
//   1  a valid preamble, then raw bytes (handshake framing and message 1)
//   2  the input is message 1's *plaintext* payload, encrypted with the
//      right key (payload rules: probe, Hello, unknown records)
//   3  a real handshake, then the input split into transport messages
//      (2-byte length + plaintext each) sealed with the right key
//      (record dispatch, placement, string table, limits)
// Invariants: no trap; at most one `.closed`, and nothing after it; the
// outbound buffer stays within its limit.
//
// Built with -D FUZZING it exports LLVMFuzzerTestOneInput; a normal build
// replays files: `fuzz-handshake FILE...`.
import FuzzSupport
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

let psk = Key32(bytes: [UInt8](repeating: 0x5A, count: 32))!
let preamble = Preamble(projectID: "fuzz")!
let limits = SessionLimits(wire: WireLimits(maxRecordLength: 4096, maxBatchItems: 64, maxStringLength: 256,
                                            maxListCount: 64, maxStringID: 128, maxStringTableBytes: 2048),
                           maxHandshakeLength: 2048, maxOutboundBytes: 1 << 17)

func frame(_ body: [UInt8]) -> [UInt8] { [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body }

final class Checker {
    var closed = false
    var hello = false
    func handle(_ e: SessionEvent) {
        precondition(!closed, "event after .closed")
        switch e {
        case .closed: closed = true
        case .hello: hello = true
        case .welcome: preconditionFailure("server reported a welcome")
        case .record: break
        }
    }
}

func feed(_ server: ServerSession, _ bytes: [UInt8], chunk: Int, _ checker: Checker) {
    var i = 0
    while i < bytes.count {
        let n = min(chunk, bytes.count - i)
        bytes.withUnsafeBytes { server.feed(UnsafeRawBufferPointer(rebasing: $0[i..<i + n]), checker.handle) }
        if checker.hello && server.state == .awaitingAccept {
            try? server.accept(Welcome(sessionID: 1, collectorTimeMs: 2))
        }
        precondition(server.outbound.readableBytes <= limits.maxOutboundBytes)
        i += n
    }
}

func fuzzHandshake(_ data: UnsafeRawBufferPointer) {
    guard data.count >= 2 else { return }
    let mode = data[0] & 3
    let chunk = Int(data[1]) + 1
    let input = Array(data[2...])
    let server = ServerSession(limits: limits) { $0 == "fuzz" ? psk : nil }
    let checker = Checker()
    switch mode {
    case 0:
        feed(server, input, chunk: chunk, checker)
    case 1:
        feed(server, preamble.bytes + input, chunk: chunk, checker)
    default:
        var initiator = NoiseHandshake(role: .initiator, prologue: preamble.bytes, psk: psk)
        let hello = mode == 2 ? input : Record.hello(Hello(agentID: "fuzz")).encoded
        guard let m1 = try? initiator.writeMessage(payload: hello) else { return }
        feed(server, preamble.bytes + frame(m1), chunk: chunk, checker)
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
        feed(server, stream, chunk: chunk, checker)
    }
    if checker.closed { precondition(server.closeReason != nil) }
}

#if FUZZING
@_cdecl("fuzz_handshake_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzerTestOneInput)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzHandshake(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
enum Replay {
    static func main() { replayFuzzInputs(CommandLine.arguments.dropFirst(), fuzzHandshake) }
}
#endif
