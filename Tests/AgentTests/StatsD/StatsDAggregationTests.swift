// StatsD lines through the pipeline into window aggregates: each type's
// mapping onto a measurement, tags folded into the check in one order,
// `metric` rules narrowing what is kept, and the series and set budgets.
import XCTest
import Wire
@testable import Agent
#if canImport(IPAPipeline)  // where the IPA parse/filter/aggregate code is its own module
import IPAPipeline
#endif

final class StatsDAggregationTests: XCTestCase {
    func feed(_ p: StatsDPipeline, _ datagrams: [String]) {
        for d in datagrams {
            var t = d
            t.withUTF8 { p.ingest(UnsafeRawBufferPointer($0)) }
        }
    }

    func byKey(_ out: [LatencyAggregate]) -> [String: LatencyAggregate] {
        Dictionary(uniqueKeysWithValues: out.map { ($0.monitor + " " + $0.check, $0) })
    }

    func testEachTypeBecomesItsMeasurement() {
        let p = StatsDPipeline(aggregationIntervalMs: 10_000)
        feed(p, [
            "hits:1|c\nhits:2|c|@0.5\nhits:3|c",            // 1 + 4 + 3
            "temp:20|g\ntemp:+5|g\ntemp:-10|g\ntemp:12|g",     // 20, 25, 15, 12
            "db.query:10|ms\ndb.query:20|ms\ndb.query:30|ms|@0.5",
            "size:100:200|h\nlat:5|d",
            "users:alice|s\nusers:bob|s\nusers:alice|s\nusers:carol:bob|s",
        ])
        let out = byKey(p.aggregator.flush(windowStartMs: 50_000))
        XCTAssertEqual(out.count, 6)
        let hits = out["hits counter"]!
        XCTAssertEqual(hits.count, 8)
        XCTAssertEqual(hits.sumUs, 8000)
        XCTAssertEqual(hits.source, "statsd")
        XCTAssertEqual(hits.windowStartMs, 50_000)
        let temp = out["temp gauge"]!
        XCTAssertEqual(temp.count, 4)
        XCTAssertEqual(temp.p50Us, 12_000, "the last value")
        XCTAssertEqual(temp.minUs, 12_000)
        XCTAssertEqual(temp.maxUs, 25_000)
        XCTAssertEqual(temp.sumUs, 72_000)
        let q = out["db.query timer"]!
        XCTAssertEqual(q.count, 4, "the sampled value counts twice")
        XCTAssertEqual(q.minUs, 10_000)
        XCTAssertEqual(q.maxUs, 30_000, accuracy: 300)
        XCTAssertEqual(q.sumUs, 90_000, accuracy: 900)
        XCTAssertEqual(out["size histogram"]!.count, 2)
        XCTAssertEqual(out["lat distribution"]!.count, 1)
        XCTAssertEqual(out["users set"]!.count, 3, "distinct members")
        XCTAssertEqual(p.counters.lines, 16)
        XCTAssertEqual(p.counters.values, 18)
        // A new window starts empty; a relative gauge continues from the last value.
        feed(p, ["temp:+1|g"])
        let next = byKey(p.aggregator.flush(windowStartMs: 60_000))
        XCTAssertEqual(next.keys.sorted(), ["temp gauge"])
        XCTAssertEqual(next["temp gauge"]!.p50Us, 13_000)
    }

    func testTagsAreFoldedIntoTheCheckInOneOrder() {
        let p = StatsDPipeline(aggregationIntervalMs: 10_000)
        feed(p, ["req:1|c|#env:prod,region:eu", "req:1|c|#region:eu,env:prod", "req:1|c", "req:5|ms|#env:prod"])
        let out = byKey(p.aggregator.flush(windowStartMs: 0))
        XCTAssertEqual(out.keys.sorted(), ["req counter", "req counter,env:prod,region:eu", "req timer,env:prod"])
        XCTAssertEqual(out["req counter,env:prod,region:eu"]!.count, 2)
    }

    func testMetricRulesNarrowWhatIsKept() {
        let p = StatsDPipeline(aggregationIntervalMs: 10_000)
        // Traffic rules alone leave every metric in.
        p.install(PatternSet(rules: [FilterRule(method: "", host: "*", path: "/x", monitor: "m", check: "c")], version: 1))
        feed(p, ["app.a:1|c", "other:1|c"])
        XCTAssertEqual(p.aggregator.flush(windowStartMs: 0).count, 2)
        p.install(PatternSet(rules: [
            FilterRule(method: "", host: "*", path: "*", monitor: "m", check: "c"),
            FilterRule(metric: "app.debug.*", exclude: true),
            FilterRule(metric: "app.*"),
        ], version: 2))
        feed(p, ["app.a:1|c\napp.debug.x:1|c\nother:1|c\napp.b:2|g"])
        let out = byKey(p.aggregator.flush(windowStartMs: 0))
        XCTAssertEqual(out.keys.sorted(), ["app.a counter", "app.b gauge"])
        XCTAssertEqual(p.counters.excluded, 1)
        XCTAssertEqual(p.counters.unmatched, 1)
        // A traffic record never matches a metric rule.
        XCTAssertEqual(PatternSet(rules: [FilterRule(metric: "*")], version: 1).match(method: "GET", host: "h", path: "/"), nil)
    }

    func testMetricRuleTravelsAsAPatternRule() {
        let wire = Wire.PatternRule(metricGlob: "app.*", exclude: true)
        XCTAssertEqual(wire.metricGlob, "app.*")
        XCTAssertEqual(FilterRule(wire: wire), FilterRule(metric: "app.*", exclude: true))
        XCTAssertNil(Wire.PatternRule(method: "GET", hostGlob: "*", pathGlob: "/").metricGlob)
    }

    func testSeriesBudgetOverflowsIntoOneSeriesPerType() {
        let p = StatsDPipeline(aggregationIntervalMs: 10_000, limits: .init(maxSeries: 3, maxSetMembers: 2))
        feed(p, ["a:1|c\nb:1|c\nc:1|c\nd:1|c\ne:2|c\nf:1|ms\na:1|c"])
        feed(p, ["s:x|s\ns:y|s\ns:z|s"])
        let out = byKey(p.aggregator.flush(windowStartMs: 0))
        XCTAssertEqual(out.keys.sorted(), ["a counter", "b counter", "c counter", "statsd.overflow counter",
                                           "statsd.overflow set", "statsd.overflow timer"])
        XCTAssertEqual(out["statsd.overflow counter"]!.count, 3)
        XCTAssertEqual(out["a counter"]!.count, 2, "a known series keeps counting")
        XCTAssertEqual(out["statsd.overflow set"]!.count, 2, "two members kept, the third refused")
        XCTAssertEqual(p.counters.overflow, 6)
        XCTAssertEqual(p.counters.setMembersRefused, 1)
        // Series live while they report: a, b and c still hold the budget
        // for one more window, then idle ones are forgotten and make room.
        feed(p, ["d:1|c"])
        XCTAssertEqual(p.aggregator.flush(windowStartMs: 10_000).map(\.monitor), ["statsd.overflow"])
        feed(p, ["d:1|c"])
        XCTAssertEqual(p.aggregator.flush(windowStartMs: 20_000).map(\.monitor), ["d"])
    }

    func testNegativeSumsAreStoredAsZeroAndCounted() {
        let p = StatsDPipeline(aggregationIntervalMs: 10_000)
        feed(p, ["c:-3|c", "g:-2|g"])
        let out = byKey(p.aggregator.flush(windowStartMs: 0))
        XCTAssertEqual(out["c counter"]!.count, 0)
        XCTAssertEqual(out["g gauge"]!.p50Us, 0)
        XCTAssertEqual(p.counters.clampedNegative, 2)
    }
}
