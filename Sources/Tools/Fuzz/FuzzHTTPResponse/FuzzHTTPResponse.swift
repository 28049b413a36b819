// fuzz-http-response: libFuzzer target for the remote-write sender's HTTP
// response parser — the bytes a receiver (or anything listening at
// remote_write_url) sends back.
//
// The input is fed twice: whole, and cut into pieces at sizes taken from
// its first byte, as TCP may deliver it. Invariants (a violation traps):
// both feedings end the same way (same response, or both an error, or both
// still waiting); `consumed` never exceeds what was fed; a response has a
// status in 100...999, not 1xx (interim answers are skipped), and keeps at
// most `keptBodyBytes` of its body.
//
// Thread: the fuzzer's (or the replay's) one thread.
//
// Built with -D FUZZING (scripts/fuzz.sh http-response) it hands its body
// to libFuzzer; a normal build replays files: `fuzz-http-response FILE...`.
import FuzzSupport
import RemoteWrite

enum Outcome: Equatable {
    case response(HTTPResponse)
    case error(HTTPParseError)
    case waiting
    case eof(HTTPResponse)
}

func run(_ data: [UInt8], piece: Int) -> Outcome {
    var p = HTTPResponseParser()
    var i = 0
    while i < data.count {
        let end = min(data.count, i + piece)
        do {
            let (used, response) = try data[i..<end].withUnsafeBytes { try p.feed($0) }
            precondition(used <= end - i, "consumed more than fed")
            i += used
            if let response {
                precondition(response.status >= 200 || response.status == 101, "interim status \(response.status) returned")
                precondition(response.status <= 999)
                precondition(response.body.count <= HTTPResponseParser.keptBodyBytes)
                return .response(response)
            }
            if used == 0 && end > i { preconditionFailure("no progress") }
        } catch let e as HTTPParseError {
            _ = e.description
            return .error(e)
        } catch {
            preconditionFailure("an error of another type: \(error)")
        }
    }
    if let r = try? p.endOfInput() { return .eof(r) }
    return .waiting
}

func fuzzHTTPResponse(_ data: UnsafeRawBufferPointer) {
    let bytes = Array(data)
    let whole = run(bytes, piece: max(1, bytes.count))
    let cut = run(bytes, piece: 1 + Int(bytes.first ?? 0) % 17)
    switch (whole, cut) {
    case (.error, .error): break
    default: precondition(whole == cut, "whole \(whole) vs pieces \(cut)")
    }
}

#if FUZZING
@_cdecl("fuzz_http_response_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzHTTPResponse) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzHTTPResponse) } }
#endif
