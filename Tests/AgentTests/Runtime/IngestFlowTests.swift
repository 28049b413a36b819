// Datagrams through the running agent to the (test) collector: every
// accepted IPA variant counted under the right (monitor, check), malformed
// and unmatched records counted by cause and never forwarded, raw events
// redacted, windows aligned to the collector's clock.
import XCTest
import Reactor
import Wire
@testable import Agent

final class IngestFlowTests: XCTestCase {
    let rules = [
        rule("GET", "api.example.com", "/v1/users/*", "users", "get-user"),
        rule("", "*.example.com", "/v1/*", "api", "any-v1"),
        rule("", "*", "/health", "", "", exclude: true),
        rule("POST", "pay.example.net", "/charge", "pay", "charge"),
    ]

    func testEveryAcceptedVariantArrivesAsTheRightAggregate() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(rules, version: 7)
        h.send([
            "0\tGET\tapi.example.com\t/v1/users/1\t10",                     // TAB, integer
            "0  GET   api.example.com   /v1/users/2   20\n",                 // spaces, LF
            "0\tGET\thttps://api.example.com\t/v1/users/3?token=x\t30\r\n",  // scheme, query, CRLF
            "0\tGET\tapi.example.com:8443\t/v1/users/4\t40.5",               // port, fraction
            "1\tGET\thttps://api.example.com/v1/users/5?q=1\t50",            // version 1 URL
            "1 PUT http://x.example.com:8080/v1/orders 5\n0\tPOST\tpay.example.net\t/charge\t7", // two records, mixed
            "0\tGET\tAPI.EXAMPLE.COM\t/v1/users/6\t60",                      // host case
        ])
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 8 }), "got \(h.collector.aggregates)")
        XCTAssertEqual(h.collector.count("users", "get-user"), 6)
        XCTAssertEqual(h.collector.count("api", "any-v1"), 1)
        XCTAssertEqual(h.collector.count("pay", "charge"), 1)
        let users = h.collector.aggregates.first { $0.check == "get-user" }!
        XCTAssertEqual(users.minUs, 10_000)
        XCTAssertEqual(users.maxUs, 60_000, accuracy: 600)
        XCTAssertEqual(users.sumUs, 10_000 + 20_000 + 30_000 + 40_500 + 50_000 + 60_000, accuracy: 2000)
        XCTAssertEqual(users.p50Us, 30_000, accuracy: 300, "p50 of 6 samples: the 3rd, within 1 %")
        XCTAssertEqual(users.source, "ipa")
        XCTAssertEqual(users.windowLengthMs, 3_600_000)
        XCTAssertEqual(h.collector.events, [], "raw events are off by default")
    }

    func testMalformedAndUnmatchedAreCountedNotForwarded() throws {
        let h = try AgentHarness(["forward_raw_events": "on"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(rules, version: 1)
        h.send([
            "3\tGET\th\t/p\t1",                       // bad version
            "0\tGET\th\t/p",                          // field count
            "0\tGET\th\t/p\tslow",                    // duration
            "1\tGET\tnot-a-url\t1",                   // bad url
            "0\tGET\th\t/" + String(repeating: "a", count: 9000) + "\t1",   // oversize line
            "0\tGET\tother.org\t/v1/x\t1",            // unmatched host
            "0\tDELETE\tapi.example.com\t/v2/users\t1",  // unmatched path
            "0\tGET\tapi.example.com\t/health\t1",    // excluded
            "0\tGET\tapi.example.com\t/v1/users/9\t1", // the one that counts
        ])
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 1 && h.collector.events.count == 1 }))
        let c = h.runtime.pipeline.counters
        XCTAssertEqual(c.parseDrops[.badVersion], 1)
        XCTAssertEqual(c.parseDrops[.fieldCount], 1)
        XCTAssertEqual(c.parseDrops[.duration], 1)
        XCTAssertEqual(c.parseDrops[.badURL], 1)
        XCTAssertEqual(c.parseDrops[.oversize], 1)
        XCTAssertEqual(c.unmatched, 2)
        XCTAssertEqual(c.excluded, 1)
        XCTAssertEqual(c.matched, 1)
        XCTAssertEqual(h.collector.events.map(\.path), ["/v1/users/:id"], "only the matched record, redacted")
        // The status carries the same counts.
        let statuses = h.collector.statuses.count
        XCTAssertTrue(h.run(until: { h.collector.statuses.count > statuses }))
        XCTAssertEqual(h.collector.counter("drops_parse"), 5)
        XCTAssertEqual(h.collector.counter("drops_unmatched"), 2)
        XCTAssertEqual(h.collector.counter("drops_excluded"), 1)
        XCTAssertEqual(h.collector.counter("records_matched"), 1)
    }

    func testRawEventsAreRedactedAndCarryTheirRule() throws {
        let h = try AgentHarness(["forward_raw_events": "on"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(rules, version: 1)
        h.send(["1\tGET\thttps://api.example.com/v1/users/12345/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301?secret=1\t2.5"])
        XCTAssertTrue(h.run(until: { h.collector.events.count == 1 }))
        XCTAssertEqual(h.collector.events[0], ReceivedEvent(method: "GET", host: "api.example.com",
                                                            path: "/v1/users/:id/orders/:id", durationUs: 2500,
                                                            monitor: "users", check: "get-user"))
    }

    func testWindowsAreAlignedToTheCollectorClock() throws {
        let h = try AgentHarness(["aggregation_interval_ms": "1000"])
        // The collector's clock runs 1 h 0 min 0.4 s ahead of ours.
        h.collector.clockSkewMs = 3_600_400
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(rules, version: 1)
        XCTAssertEqual(Double(h.runtime.uplink.clockOffsetMs), 3_600_400, accuracy: 200)
        h.send(["0\tGET\tapi.example.com\t/v1/users/1\t1"])
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 1 }, timeout: 5))
        let a = h.collector.aggregates[0]
        XCTAssertEqual(a.windowStartMs % 1000, 0, "window boundaries on the collector's second grid")
        let collectorNow = UInt64(Clock.wallMillis() + 3_600_400)
        XCTAssertLessThanOrEqual(a.windowStartMs, collectorNow)
        XCTAssertGreaterThan(a.windowStartMs + 5_000, collectorNow, "in collector time, not ours")
    }

    func testNewRulesApplyAtOnce() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.send(["0\tGET\tapi.example.com\t/v1/users/1\t1"])
        XCTAssertEqual(h.runtime.pipeline.counters.unmatched, 1, "no rules yet: unmatched")
        h.install([rule("", "*", "*", "all", "all")], version: 2)
        h.send(["0\tGET\tapi.example.com\t/v1/users/1\t1"])
        XCTAssertEqual(h.runtime.pipeline.counters.matched, 1)
    }

    func testRulesAreFetchedWithinOneSyncInterval() throws {
        let h = try AgentHarness(["schedule_sync_interval_ms": "300"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        // Changed on the collector without a push: the next sync picks it up.
        let requests = h.collector.patternsRequests
        h.collector.patterns = Patterns(version: 9, rules: [rule("", "*", "*", "m", "c")])
        XCTAssertTrue(h.run(until: { h.runtime.pipeline.patterns.version == 9 }, timeout: 2))
        XCTAssertGreaterThan(h.collector.patternsRequests, requests)
    }
}
