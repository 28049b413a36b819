// fuzz-multipart: libFuzzer target for MultipartReader, the streaming
// reader of browser uploads (multipart/form-data).
//
// The input's first byte picks how the rest (the body, boundary `XyZ`) is
// cut into pieces. Invariants (a violation traps): the reader never traps;
// the body read in one piece and read in pieces gives the same answer —
// the same error or none, and the same content of the `file` part; the
// content is never longer than the body.
//
// Thread: the fuzzer's (or the replay's) one thread.
//
// Built with -D FUZZING (scripts/fuzz.sh multipart) it hands its body to
// libFuzzer; a normal build replays files: `fuzz-multipart FILE...`.
import FuzzSupport
import HTTPServer

func read(_ body: UnsafeRawBufferPointer, pieces: Int) -> (content: [UInt8], error: Bool) {
    var reader = MultipartReader(contentType: "multipart/form-data; boundary=XyZ")!
    var out: [UInt8] = []
    var at = 0
    do {
        while at < body.count {
            let n = min(pieces, body.count - at)
            try reader.feed(UnsafeRawBufferPointer(rebasing: body[at..<at + n])) { out.append(contentsOf: $0) }
            at += n
        }
        try reader.finish()
    } catch {
        _ = error.description
        return (out, true)
    }
    return (out, false)
}

func fuzzMultipart(_ data: UnsafeRawBufferPointer) {
    guard let first = data.first else { return }
    let body = UnsafeRawBufferPointer(rebasing: data[1...])
    let whole = read(body, pieces: max(1, body.count))
    let split = read(body, pieces: Int(first % 17) + 1)
    precondition(whole.error == split.error, "one piece and pieces disagree on an error")
    if !whole.error { precondition(whole.content == split.content, "one piece and pieces give different content") }
    precondition(whole.content.count <= body.count && split.content.count <= body.count, "more content than body")
}

#if FUZZING
@_cdecl("fuzz_multipart_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzMultipart) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzMultipart) } }
#endif
