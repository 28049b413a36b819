// fuzz-records: libFuzzer target for the record decoder.
//
// Byte 0 picks default or tight limits; the rest is a decrypted payload.
// Invariant: whatever decodes re-encodes, and the re-encoding decodes to
// the same records (fields a newer sender appended are the only bytes a
// round trip may drop; unknown records keep their type, not their body).
//
// Built with -D FUZZING it hands its body to libFuzzer; a normal build
// replays files: `fuzz-records FILE...`.
import FuzzSupport
import Wire
#if canImport(Glibc)
import Glibc
#endif

let tight = WireLimits(maxRecordLength: 512, maxBatchItems: 8, maxStringLength: 32, maxListCount: 8,
                       maxStringID: 64, maxStringTableBytes: 256)

func normalized(_ r: Record) -> Record {
    if case .unknown(let t, _) = r { return .unknown(type: t, length: 0) }
    return r
}

func fuzzRecords(_ data: UnsafeRawBufferPointer) {
    guard data.count >= 1 else { return }
    let limits = data[0] & 1 == 0 ? WireLimits.default : tight
    let payload = UnsafeRawBufferPointer(rebasing: data[1...])
    var reader = WireReader(payload)
    var decoded: [Record] = []
    while !reader.isAtEnd {
        let before = reader.offset
        guard let r = try? Record.decode(from: &reader, limits: limits) else { break }
        precondition(reader.offset > before && reader.offset <= payload.count, "decode must advance within bounds")
        decoded.append(r)
    }
    var w = WireWriter()
    for r in decoded { r.encode(into: &w) }
    precondition(!w.overflowed)
    guard let again = try? Record.decodeAll(w.bytes, limits: limits) else {
        preconditionFailure("re-encoded records failed to decode")
    }
    precondition(again.map(normalized) == decoded.map(normalized), "round trip changed the records")
}

#if FUZZING
@_cdecl("fuzz_records_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzRecords) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzRecords) } }
#endif
