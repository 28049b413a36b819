// IPA version 2 (timestamp, status, error class), outcome counting, and
// placing records by their timestamp.
import IPAPipeline
import XCTest
@testable import Agent

/// A version 2 record copied out of the datagram.
struct ParsedV2: Equatable {
    var ts: Int64, method: String, host: String, path: String, status: Int32, ms: Double, errorClass: String
}

func parseV2(_ text: String) -> ([ParsedV2], IPADropCounters) {
    var drops = IPADropCounters()
    var out: [ParsedV2] = []
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buf in
        IPAParser.parse(UnsafeRawBufferPointer(buf), drops: &drops) { r in
            out.append(ParsedV2(ts: r.timestampMs, method: r.methodString, host: r.hostString, path: r.pathString,
                                status: r.status, ms: r.durationMs, errorClass: r.errorClassString))
        }
    }
    return (out, drops)
}

final class IPAVersion2Tests: XCTestCase {
    func testVersionTwoFields() {
        let text = [
            "2\t1700000000123\tGET\thttps://api.example.com/v1/users?x=1\t200\t12.5",
            "2\t1700000000124\tPOST\thttp://api.example.com:8080/v1/orders\t0\t3000\ttimeout",
            "2 1700000000125 DELETE http://h.example/a 503 7 upstream.reset",   // spaces, no TAB
        ].joined(separator: "\n")
        let (r, d) = parseV2(text)
        XCTAssertEqual(d.total, 0)
        XCTAssertEqual(r, [
            ParsedV2(ts: 1_700_000_000_123, method: "GET", host: "api.example.com", path: "/v1/users", status: 200, ms: 12.5, errorClass: ""),
            ParsedV2(ts: 1_700_000_000_124, method: "POST", host: "api.example.com", path: "/v1/orders", status: 0, ms: 3000,
                     errorClass: "timeout"),
            ParsedV2(ts: 1_700_000_000_125, method: "DELETE", host: "h.example", path: "/a", status: 503, ms: 7,
                     errorClass: "upstream.reset"),
        ])
    }

    func testOlderVersionsCarryNoStatusOrTime() {
        let (r, d) = parseV2("0\tGET\th\t/p\t1\n1\tGET\thttp://h/p\t2")
        XCTAssertEqual(d.total, 0)
        XCTAssertEqual(r.map(\.status), [-1, -1])
        XCTAssertEqual(r.map(\.ts), [0, 0])
    }

    func testEveryVersionTwoDropCauseIsCounted() {
        let text = [
            "2\t1700000000000\tGET\thttp://h/p\t200",                  // field count (no duration)
            "2\t1700000000000\tGET\thttp://h/p\t200\t1\tx\ty",         // field count (8 fields)
            "2\t1700000000000\t\thttp://h/p\t200\t1",                  // field count (empty method)
            "2\tnow\tGET\thttp://h/p\t200\t1",                         // timestamp
            "2\t0\tGET\thttp://h/p\t200\t1",                           // timestamp (zero)
            "2\t9999999999999999\tGET\thttp://h/p\t200\t1",            // timestamp (past year 9999)
            "2\t1700000000000\tGET\thttp://h/p\t199\t1",               // status (1xx)
            "2\t1700000000000\tGET\thttp://h/p\t600\t1",               // status
            "2\t1700000000000\tGET\thttp://h/p\tOK\t1",                // status
            "2\t1700000000000\tGET\thttp://h/p\t200\t-3",              // duration
            "2\t1700000000000\tGET\thttp://h/p\t0\t1\tno spaces!",     // error class (TAB line: one field with a space)
            "2\t1700000000000\tGET\thttp://h/p\t0\t1\t" + String(repeating: "e", count: 65),   // error class (too long)
            "2\t1700000000000\tGET\tnot-a-url\t200\t1",                // bad url
        ].joined(separator: "\n")
        let (r, d) = parseV2(text)
        XCTAssertEqual(r.count, 0)
        XCTAssertEqual(d[.fieldCount], 3)
        XCTAssertEqual(d[.timestamp], 3)
        XCTAssertEqual(d[.status], 3)
        XCTAssertEqual(d[.duration], 1)
        XCTAssertEqual(d[.errorClass], 2)
        XCTAssertEqual(d[.badURL], 1)
        XCTAssertEqual(d.total, 13)
        XCTAssertEqual(d.parseTotal, 13)
    }

    func testOutcomeClasses() {
        XCTAssertEqual([0, 200, 299, 301, 404, 500, 599].map { Outcome(status: Int32($0)).name },
                       ["error", "2xx", "2xx", "3xx", "4xx", "5xx", "5xx"])
    }

    let rules = PatternSet(rules: [FilterRule(method: "*", host: "*", path: "/*", monitor: "m", check: "c")], version: 1)

    func testAggregatesCountOutcomesAndLeaveStatuslessRecordsOut() {
        let p = IngestPipeline(patterns: rules, aggregationIntervalMs: 10_000)
        let lines = [
            "2\t1700000000000\tGET\thttp://h/a\t200\t1",
            "2\t1700000000000\tGET\thttp://h/a\t204\t1",
            "2\t1700000000000\tGET\thttp://h/a\t302\t1",
            "2\t1700000000000\tGET\thttp://h/a\t404\t1",
            "2\t1700000000000\tGET\thttp://h/a\t500\t1",
            "2\t1700000000000\tGET\thttp://h/a\t0\t1\trefused",
            "1\tGET\thttp://h/a\t1",                                   // no status: in no class
        ]
        lines.joined(separator: "\n").utf8CString.withUnsafeBytes { p.ingest(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        let out = p.aggregator.flush(windowStartMs: 0)
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(out[0].count, 7)
        XCTAssertEqual(out[0].outcomes, OutcomeCounts(s2xx: 2, s3xx: 1, s4xx: 1, s5xx: 1, error: 1))
        XCTAssertEqual(out[0].outcomes.failures, 2)
    }

    func testLivePlacementIgnoresTimestamps() {
        let p = IngestPipeline(patterns: rules, aggregationIntervalMs: 10_000)
        feed(p, "2\t1000\tGET\thttp://h/a\t200\t1")
        XCTAssertEqual(p.aggregator.flush(windowStartMs: 50_000).map(\.windowStartMs), [50_000])
    }

    func testReplayPlacesRecordsInTheWindowsOfTheirTime() {
        let now: Int64 = 1_700_000_100_000
        let p = IngestPipeline(patterns: rules, aggregationIntervalMs: 10_000)
        var closed: [LatencyAggregate] = []
        p.placeByTimestamp(TimePlacement(maxAgeMs: 3_600_000, maxFutureMs: 60_000, nowMs: { now }, offsetMs: { 5 })) {
            closed += $0
        }
        feed(p, [
            "2\t1700000000001\tGET\thttp://h/a\t200\t1",     // window 1_700_000_000_000 (+5 ms offset)
            "2\t1700000009990\tGET\thttp://h/a\t500\t2",     // +5 → …009_995: same window
            "2\t1700000009996\tGET\thttp://h/a\t200\t3",     // +5 → …010_001: the next window
            "2\t1600000000000\tGET\thttp://h/a\t200\t4",     // too old
            "2\t1700000200000\tGET\thttp://h/a\t200\t5",     // ahead by more than a minute: future
            "1\tGET\thttp://h/a\t6",                         // no timestamp: the open window
        ].joined(separator: "\n"))
        XCTAssertEqual(p.counters.parseDrops[.tooOld], 1)
        XCTAssertEqual(p.counters.parseDrops[.future], 1)
        XCTAssertEqual(p.counters.records, 4, "records outside the accepted range are drops, not records")
        XCTAssertEqual(closed, [], "timed windows stay open until closed")
        XCTAssertEqual(p.aggregator.flush(windowStartMs: 1_700_000_100_000).map(\.count), [1])
        p.closeTimedWindows()
        XCTAssertEqual(closed.map(\.windowStartMs), [1_700_000_000_000, 1_700_000_010_000])
        XCTAssertEqual(closed.map(\.count), [2, 1])
        XCTAssertEqual(closed[0].outcomes, OutcomeCounts(s2xx: 1, s3xx: 0, s4xx: 0, s5xx: 1, error: 0))
        XCTAssertEqual(p.aggregator.timedWindowCount, 0)
    }

    func testTimedWindowsAreBoundedOldestClosedFirst() {
        let agg = Aggregator(intervalMs: 1000, maxTimedWindows: 2)
        agg.install(rules)
        var closed: [Int64] = []
        XCTAssertFalse(agg.record(rule: 0, durationMs: 1, outcome: nil, at: 5_000), "no sink: refused")
        agg.timedSink = { closed += $0.map(\.windowStartMs) }
        for t: Int64 in [5_000, 1_000, 3_000, 1_500, 9_000] { XCTAssertTrue(agg.record(rule: 0, durationMs: 1, outcome: nil, at: t)) }
        // 1_500 reopens window 1_000 after it closed: out of order, a window
        // may close more than once (its counts add up).
        XCTAssertEqual(closed, [1_000, 3_000, 1_000], "the oldest held window closes when a third one opens")
        XCTAssertEqual(agg.timedEvictions, 3)
        XCTAssertEqual(agg.timedWindowCount, 2)
        // Rules change: held timed data survives under its key.
        agg.install(PatternSet(rules: [], version: 2))
        agg.closeTimedWindows()
        XCTAssertEqual(closed, [1_000, 3_000, 1_000, 5_000, 9_000])
    }

    private func feed(_ p: IngestPipeline, _ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { p.ingest(UnsafeRawBufferPointer($0)) }
    }
}
