// fuzz-ipa: libFuzzer target for the agent's ingest path — IPAParser on
// arbitrary datagrams, then the pattern match and the redactor on whatever
// it accepts, then the whole IngestPipeline on the same bytes.
//
// Invariants (a violation traps, which is what the fuzzer looks for):
// every non-empty line is either one record or one counted drop; a record's
// fields lie inside the datagram (or are the shared "/" for an empty path),
// its host is non-empty without spaces or controls, its path carries no
// query string or fragment, its duration is a finite 0...maxDurationMs, its
// status -1 (none), 0 or 200...599, its timestamp 0 (none) or
// 1...maxTimestampMs, its error class a short token inside the datagram; the
// redacted path has as many segments as the path; the pipeline's counters
// agree with the parser's; the aggregates count every matched record, and
// their integer microseconds keep min <= p50 <= p95 <= p99 <= max <= sum,
// and their outcomes never exceed their count. Placed by timestamp, every
// record is counted once: in a timed window, the open one, or a drop.
//
// Thread: the fuzzer's (or the replay's) one thread.
//
// Built with -D FUZZING (scripts/fuzz.sh ipa) it hands its
// body to libFuzzer; a normal build replays files: `fuzz-ipa FILE...`.
import FuzzSupport
import IPAPipeline
#if canImport(Glibc)
import Glibc
#endif

let rules = PatternSet(rules: [
    FilterRule(method: "GET", host: "api.example.com", path: "/v1/users/*", monitor: "users", check: "get"),
    FilterRule(method: "*", host: "*.example.com", path: "/v1/*", monitor: "api", check: "v1"),
    FilterRule(method: "", host: "*", path: "/health", monitor: "", check: "", exclude: true),
    FilterRule(method: "", host: "h?st*", path: "*a*b*c*", monitor: "glob", check: "abc"),
], version: 1)

func fuzzIPA(_ data: UnsafeRawBufferPointer) {
    let lo = UInt(bitPattern: data.baseAddress), hi = lo + UInt(data.count)
    func inside(_ f: UnsafeRawBufferPointer) -> Bool {
        f.count == 0 || (UInt(bitPattern: f.baseAddress) >= lo && UInt(bitPattern: f.baseAddress) + UInt(f.count) <= hi)
    }
    var drops = IPADropCounters()
    var records = 0
    IPAParser.parse(data, drops: &drops) { r in
        records += 1
        precondition(inside(r.method) && inside(r.host), "record field outside the datagram")
        precondition(inside(r.path) || (r.path.count == 1 && r.path[0] == UInt8(ascii: "/")), "path outside the datagram")
        precondition(r.host.count > 0 && !r.host.contains { $0 <= 0x20 || $0 == 0x7F }, "bad host")
        precondition(r.method.count > 0, "empty method")
        precondition(r.path.count > 0 && !r.path.contains(UInt8(ascii: "?")) && !r.path.contains(UInt8(ascii: "#")), "query left in path")
        precondition(r.durationMs.isFinite && r.durationMs >= 0 && r.durationMs <= IPAParser.maxDurationMs, "bad duration")
        precondition(r.status == -1 || r.status == 0 || (200...599).contains(r.status), "bad status")
        precondition(r.timestampMs >= 0 && r.timestampMs <= IPAParser.maxTimestampMs, "bad timestamp")
        precondition((r.status == -1) == (r.timestampMs == 0), "status and timestamp come together (version 2)")
        precondition(inside(r.errorClass) && r.errorClass.count <= IPAParser.maxErrorClassBytes, "bad error class")
        if let i = rules.match(method: r.method, host: r.host, path: r.path) {
            precondition(i >= 0 && i < rules.rules.count)
        }
        let redacted = Redactor.redactPath(r.path)
        let segments = r.path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).count
        precondition(redacted.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).count == segments,
                     "redaction changed the path's shape")
    }
    // Lines: LF-separated, a trailing CR dropped, empty ones ignored.
    var lines = 0
    var start = 0
    while start < data.count {
        var end = start
        while end < data.count && data[end] != 0x0A { end += 1 }
        var e = end
        if e > start && data[e - 1] == 0x0D { e -= 1 }
        if e > start { lines += 1 }
        start = end + 1
    }
    precondition(records + Int(drops.total) == lines, "a line neither parsed nor counted")

    let pipeline = IngestPipeline(patterns: rules, aggregationIntervalMs: 1000)
    pipeline.ingest(data)
    let c = pipeline.counters
    precondition(c.records == UInt64(records) && c.parseDrops == drops, "pipeline and parser disagree")
    precondition(c.matched + c.unmatched + c.excluded == c.records, "a record neither matched, unmatched nor excluded")
    let out = pipeline.aggregator.flush(windowStartMs: 0)
    precondition(out.reduce(0) { $0 + $1.count } == c.matched, "aggregates do not add up")
    for a in out {
        precondition(a.minUs <= a.p50Us && a.p50Us <= a.p95Us && a.p95Us <= a.p99Us && a.p99Us <= a.maxUs,
                     "quantiles outside min...max or out of order")
        precondition(a.sumUs >= a.minUs && a.sumUs >= a.maxUs, "sum below a sample")
        precondition(a.outcomes.total <= a.count, "more outcomes than records")
    }

    // Placed by timestamp: a fixed clock, a small window cap.
    let timed = IngestPipeline(patterns: rules, aggregationIntervalMs: 1000)
    var closed: UInt64 = 0
    timed.placeByTimestamp(TimePlacement(maxAgeMs: 86_400_000, maxFutureMs: 60_000, nowMs: { 1_700_000_000_000 })) {
        closed += $0.reduce(0) { $0 + $1.count }
    }
    timed.ingest(data)
    let t = timed.counters
    precondition(t.records + t.parseDrops[.tooOld] + t.parseDrops[.future] == UInt64(records), "a placed record lost")
    let open = timed.aggregator.flush(windowStartMs: 0).reduce(0) { $0 + $1.count }
    timed.closeTimedWindows()
    precondition(open + closed == t.matched, "timed aggregates do not add up")
}

#if FUZZING
@_cdecl("fuzz_ipa_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzIPA) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzIPA) } }
#endif
