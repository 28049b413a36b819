// fuzz-statsd: libFuzzer target for the agent's StatsD ingest path —
// StatsDParser on arbitrary datagrams, then the whole StatsDPipeline
// (filter and aggregator, with small series and set budgets) on the same
// bytes.
//
// Invariants (a violation traps, which is what the fuzzer looks for): every
// non-empty line is one metric line, one event, one service check or one
// counted drop; a line's name, values and tags lie inside the datagram, its
// name is 1...maxNameBytes without control bytes, its sample rate in
// (0, 1], every value of a numeric type a finite number (never negative
// for timers, histograms, distributions); the pipeline's counters agree
// with the parser's; kept + unmatched + excluded = lines; the aggregates'
// quantiles keep min <= p50 <= p95 <= p99 <= max for the histogram types,
// and the series budget holds.
//
// Thread: the fuzzer's (or the replay's) one thread.
//
// Built with -D FUZZING (scripts/fuzz.sh statsd) it hands its body to
// libFuzzer; a normal build replays files: `fuzz-statsd FILE...`.
import FuzzSupport
import Agent
#if canImport(IPAPipeline)  // where the IPA parse/filter/aggregate code is its own module
import IPAPipeline
#endif

let rules = PatternSet(rules: [
    FilterRule(metric: "app.debug.*", exclude: true),
    FilterRule(metric: "app.*"),
    FilterRule(metric: "?*"),
    FilterRule(method: "GET", host: "*", path: "/", monitor: "m", check: "c"),
], version: 1)

func fuzzStatsD(_ data: UnsafeRawBufferPointer) {
    let lo = UInt(bitPattern: data.baseAddress), hi = lo + UInt(data.count)
    func inside(_ f: UnsafeRawBufferPointer) -> Bool {
        f.count == 0 || (UInt(bitPattern: f.baseAddress) >= lo && UInt(bitPattern: f.baseAddress) + UInt(f.count) <= hi)
    }
    var drops = StatsDDropCounters()
    var extras = StatsDParser.Extras()
    var lines = 0
    StatsDParser.parse(data, drops: &drops, extras: &extras) { m in
        lines += 1
        precondition(inside(m.name) && inside(m.values) && inside(m.tags), "line field outside the datagram")
        precondition(m.name.count > 0 && m.name.count <= StatsDParser.maxNameBytes, "bad name length")
        precondition(!m.name.contains { $0 < 0x20 || $0 == 0x7F }, "control byte in a name")
        precondition(m.tags.count <= StatsDParser.maxTagBytes, "tags too long")
        precondition(m.sampleRate > 0 && m.sampleRate <= 1, "bad sample rate")
        if m.type == .set {
            var members = 0
            StatsDParser.forEachMember(m.values) { precondition($0.count > 0); members += 1 }
            precondition(members > 0, "a set line without members")
        } else {
            var values = 0
            StatsDParser.forEachNumber(m.values) { v, _ in
                precondition(v.isFinite, "non-finite value")
                if m.type == .timer || m.type == .histogram || m.type == .distribution { precondition(v >= 0, "negative sample") }
                values += 1
            }
            precondition(values > 0, "a metric line without values")
        }
    }
    var nonEmpty = 0
    var start = 0
    while start < data.count {
        var end = start
        while end < data.count && data[end] != 0x0A { end += 1 }
        var e = end
        if e > start && data[e - 1] == 0x0D { e -= 1 }
        if e > start { nonEmpty += 1 }
        start = end + 1
    }
    precondition(UInt64(lines) + extras.events + extras.serviceChecks + drops.total == UInt64(nonEmpty),
                 "a line neither parsed nor counted")

    let pipeline = StatsDPipeline(patterns: rules, aggregationIntervalMs: 1000, limits: .init(maxSeries: 4, maxSetMembers: 8))
    pipeline.ingest(data)
    pipeline.ingest(data)
    let c = pipeline.counters
    precondition(c.lines == 2 * UInt64(lines) && c.drops.total == 2 * drops.total, "pipeline and parser disagree")
    precondition(c.unmatched + c.excluded <= c.lines, "more filtered than parsed")
    precondition(pipeline.aggregator.seriesCount <= 4 + StatsDType.allCases.count, "series budget broken")
    for a in pipeline.aggregator.flush(windowStartMs: 0) {
        precondition(a.source == "statsd")
        if a.check.hasPrefix("timer") || a.check.hasPrefix("histogram") || a.check.hasPrefix("distribution") {
            precondition(a.minUs <= a.p50Us && a.p50Us <= a.p95Us && a.p95Us <= a.p99Us && a.p99Us <= a.maxUs,
                         "quantiles outside min...max or out of order")
        }
        if a.check.hasPrefix("set") { precondition(a.count <= 8, "set members beyond the budget") }
    }
}

#if FUZZING
@_cdecl("fuzz_statsd_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzStatsD) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzStatsD) } }
#endif
