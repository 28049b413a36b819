// fuzz-spool: libFuzzer target for the bytes the agent reads back from its
// own disk — spool segment files (SegmentReader, SpoolBatch) and the saved
// filter rules (RuleFile). Disks flip bits and processes die mid-write, so
// these are parsers of outside bytes like any other.
//
// Input: one flag byte, then the file. Flag bit 0 set: a valid segment
// header is put in front (so the fuzzer spends its time on records); bit 1
// set: the bytes are also read as a rules file.
//
// Invariants (a violation traps): the reader ends; every step moves
// forward and stays inside the file; a verified batch encodes back to a
// record that reads as the same batch (sequence, time, item count); a
// rules file either decodes or is refused, and what decodes encodes back
// to a file that decodes to the same rules.
//
// Thread: the fuzzer's (or the replay's) one thread.
//
// Built with -D FUZZING (scripts/fuzz.sh spool) it hands its body to
// libFuzzer; a normal build replays files: `fuzz-spool FILE...`.
import FuzzSupport
import Agent

func fuzzSpool(_ data: UnsafeRawBufferPointer) {
    guard let flag = data.first else { return }
    var bytes = Array(data.dropFirst())
    if flag & 1 != 0 { bytes = SegmentFormat.header(instance: 0x1234) + bytes }
    var reader = SegmentReader(MemorySegment(bytes))
    var last = reader.offset
    var steps = 0
    loop: while true {
        let step = reader.next()
        steps += 1
        precondition(steps <= bytes.count + 1, "the reader does not end")
        switch step {
        case .batch(let b, let at, let next):
            precondition(at >= last && next > at && next <= bytes.count, "batch outside the file or backwards")
            last = next
            let again = SegmentFormat.record(b)
            var r2 = SegmentReader(MemorySegment(SegmentFormat.header(instance: 1) + again))
            guard case .batch(let c, _, _) = r2.next() else { preconditionFailure("a verified batch does not read back") }
            precondition(c.sequence == b.sequence && c.writtenMs == b.writtenMs && c.items.count == b.items.count,
                         "a batch changed in a round trip")
        case .corrupt(let at, let next):
            precondition(at >= last && next > at && next <= bytes.count, "corrupt record outside the file or backwards")
            last = next
        case .tornTail(let at):
            precondition(at >= last && at <= bytes.count, "torn tail outside the file")
            guard case .end = reader.next() else { preconditionFailure("steps after a torn tail") }
            break loop
        case .end:
            break loop
        }
    }
    if flag & 2 != 0, case .success(let p) = RuleFile.decode(bytes) {
        guard case .success(let q) = RuleFile.decode(RuleFile.encode(p)) else { preconditionFailure("saved rules do not read back") }
        precondition(q.version == p.version && q.rules == p.rules, "rules changed in a round trip")
    }
}

#if FUZZING
@_cdecl("fuzz_spool_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzSpool) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzSpool) } }
#endif
