// The uplink under failure, against the test collector on loopback:
// failover between hosts, kill and restart with batches in flight (nothing
// acknowledged lost, nothing stored twice), queue overflow counted exactly,
// silence → Ping → reconnect, burst budget, rejected key, backoff state.
import XCTest
import Reactor
import Wire
@testable import Agent

final class UplinkResilienceTests: XCTestCase {
    /// One check per key: /k/0 → k0, …, /k/9 → k9; anything else under /k → k.
    let all = (0..<10).map { rule("", "*", "/k/\($0)", "m", "k\($0)") } + [rule("", "*", "/k/*", "m", "k")]

    /// `n` single-record datagrams over `keys` distinct checks.
    func records(_ n: Int, keys: Int = 1, from: Int = 0) -> [String] {
        (from..<from + n).map { "0\tGET\th\t/k/\($0 % keys)\t\($0 % 50 + 1)" }
    }

    func testFailoverToTheSecondHostAndBack() throws {
        // Same port on two loopback addresses; only the second answers.
        let port = freeTCPPort()
        let h = try AgentHarness(["server_host": "127.0.0.1, 127.0.0.2"], startCollector: false, collectorPort: port)
        let second = TestCollector(loop: h.loop, key: h.collector.key)
        try second.start(port: port, host: "127.0.0.2")
        try h.start()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isEstablished }))
        XCTAssertEqual(h.runtime.uplink.currentHost, "127.0.0.2")
        XCTAssertEqual(second.hellos.count, 1)
        XCTAssertGreaterThanOrEqual(h.runtime.uplink.counters.connectFailures, 1)
        second.push(Patterns(version: 1, rules: all))
        XCTAssertTrue(h.run(until: { h.runtime.pipeline.patterns.version == 1 }))
        h.send(records(3))
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { second.totalCount == 3 && h.runtime.uplink.isDrained }))

        // The first comes up, the second dies: the agent moves at once.
        try h.collector.start(port: port, host: "127.0.0.1")
        h.collector.patterns = Patterns(version: 1, rules: all)
        second.stop()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isEstablished && h.runtime.uplink.currentHost == "127.0.0.1" }))
        XCTAssertEqual(h.runtime.uplink.counters.reconnects, 1)
        h.send(records(2))
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 2 }))
        XCTAssertEqual(second.totalCount, 3)
    }

    func testKillAndRestartLosesNothingAcknowledgedAndStoresNothingTwice() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        var sent = 0
        // Phase 1: stored and acknowledged.
        h.send(records(10, keys: 2)); sent += 10
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isDrained }))
        // Phase 2: stored, but the collector dies before acknowledging.
        h.collector.acknowledge = false
        h.send(records(20, keys: 4, from: 10)); sent += 20
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 30 }))
        XCTAssertEqual(h.runtime.uplink.window.count, 1, "one batch unacknowledged")
        h.collector.stop()
        // Phase 3: data while it is down.
        h.send(records(7, keys: 3, from: 30)); sent += 7
        h.runtime.flushOpenWindow()
        h.spin(0.3)
        XCTAssertFalse(h.runtime.uplink.isEstablished)
        // Restart on the same port with the same store.
        h.collector.acknowledge = true
        try h.collector.start()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isDrained && h.collector.totalCount >= 37 }))
        XCTAssertEqual(h.collector.totalCount, UInt64(sent), "every record counted exactly once")
        XCTAssertEqual(h.collector.duplicates, 1, "the unacknowledged batch was re-sent and de-duplicated")
        XCTAssertEqual(h.runtime.uplink.counters.batchesResent, 1)
        // A further reconnect re-sends nothing: all is acknowledged.
        h.collector.stop()
        try h.collector.start()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isEstablished }))
        h.spin(0.2)
        XCTAssertEqual(h.collector.duplicates, 1)
        XCTAssertEqual(h.runtime.uplink.counters.batchesResent, 1)
    }

    func testWelcomeAckedSequenceSettlesWithoutResending() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        h.collector.acknowledge = false
        h.send(records(4, keys: 2))
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 4 }))
        // Durable, but the Ack was lost with the connection: the Welcome says so.
        h.collector.stop()
        h.collector.acknowledge = true
        h.collector.markDurable()
        try h.collector.start()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isDrained }))
        XCTAssertEqual(h.collector.duplicates, 0)
        XCTAssertEqual(h.runtime.uplink.counters.batchesResent, 0)
    }

    func testQueueOverflowIsCountedExactly() throws {
        let h = try AgentHarness(["net_send_queue1_size": "3", "net_send_queue2_size": "4", "forward_raw_events": "on"],
                                 startCollector: false, collectorPort: freeTCPPort())
        h.collector.patterns = Patterns(version: 1, rules: all)
        try h.start()
        // No collector and no rules yet: install them locally as a sync would.
        h.runtime.install(Patterns(version: 1, rules: all))
        h.send(records(10, keys: 5))          // 10 raw events: 4 queued, 6 dropped
        h.runtime.flushOpenWindow()           // 5 aggregates: 3 queued, 2 dropped
        h.send(records(5, keys: 5, from: 10)) // 5 more events dropped
        h.runtime.flushOpenWindow()           // 5 more aggregates dropped
        XCTAssertEqual(h.runtime.uplink.queues.dropped1, 7)
        XCTAssertEqual(h.runtime.uplink.queues.dropped2, 11)
        XCTAssertEqual(h.runtime.uplink.queues.queue1.count, 3)
        XCTAssertEqual(h.runtime.uplink.queues.queue2.count, 4)
        // The collector comes: exactly what was kept arrives, and the status says what was not.
        try h.collector.start(port: UInt16(h.lines["server_port"]!)!)
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isDrained && h.collector.events.count == 4 }))
        XCTAssertEqual(h.collector.aggregates.count, 3)
        XCTAssertEqual(h.collector.totalCount, 6, "3 aggregates of 2 records each")
        let n = h.collector.statuses.count
        XCTAssertTrue(h.run(until: { h.collector.statuses.count > n }))
        XCTAssertEqual(h.collector.counter("drops_queue1"), 7)
        XCTAssertEqual(h.collector.counter("drops_queue2"), 11)
    }

    func testSilenceLeadsToAPingThenANewSession() throws {
        let h = try AgentHarness(["tcp_so_timeout": "1000"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        let pings = h.runtime.uplink.counters.pingsSent
        h.collector.silent = true
        h.collector.acknowledge = false
        XCTAssertTrue(h.run(until: { h.runtime.uplink.counters.pingsSent > pings }, timeout: 5), "a Ping after 1 s of silence")
        XCTAssertTrue(h.run(until: { h.runtime.uplink.counters.reconnects == 1 }, timeout: 5), "given up after the grace")
        XCTAssertTrue(h.runtime.uplink.lastError?.contains("no answer to a Ping") ?? false, h.runtime.uplink.lastError ?? "")
        h.collector.silent = false
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isEstablished }, timeout: 5))
        XCTAssertGreaterThanOrEqual(h.collector.connections, 2)
    }

    func testAnsweredPingKeepsTheSession() throws {
        // The test collector answers Pings (inside ServerSession): no reconnect.
        let h = try AgentHarness(["tcp_so_timeout": "1000", "schedule_sync_interval_ms": "1h", "status_interval_ms": "1h"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.spin(3.5)
        XCTAssertGreaterThanOrEqual(h.runtime.uplink.counters.pingsSent, 2)
        XCTAssertEqual(h.runtime.uplink.counters.reconnects, 0)
    }

    func testBurstBudgetYieldsAndEverythingArrives() throws {
        let h = try AgentHarness(["net_send_max_bytes": "4096", "forward_raw_events": "on", "net_send_queue2_size": "2000"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        // ~600 events of ~150 bytes: about 90 KB, i.e. 20+ bursts of 4 KB.
        let long = String(repeating: "x", count: 100)
        for chunk in 0..<6 {
            h.send((0..<100).map { "0\tGET\th\t/k/\(long)\(chunk * 100 + $0)\t1" })
        }
        XCTAssertTrue(h.run(until: { h.collector.events.count == 600 && h.runtime.uplink.isDrained }))
        XCTAssertGreaterThanOrEqual(h.runtime.uplink.counters.burstsYielded, 10)
    }

    func testTricklingRawEventsShareBatches() throws {
        let h = try AgentHarness(["forward_raw_events": "on"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        let before = h.runtime.uplink.counters.batchesSent
        for i in 0..<10 {
            h.send(["0\tGET\th\t/k/\(i)\t1"])
            h.spin(0.004)
        }
        XCTAssertTrue(h.run(until: { h.collector.events.count == 10 }))
        let batches = h.runtime.uplink.counters.batchesSent - before
        XCTAssertLessThanOrEqual(batches, 4, "events 4 ms apart linger \(Uplink.linger) s and travel together")
    }

    func testRejectedKeyIsReportedAndRetried() throws {
        let h = try AgentHarness()
        h.collector.reject = ErrorRecord(code: .rejected, message: "unknown key")
        try h.start()
        XCTAssertTrue(h.run(until: { h.runtime.uplink.counters.connectFailures >= 2 }))
        XCTAssertTrue(h.runtime.uplink.lastError?.contains("rejected by the collector") ?? false, h.runtime.uplink.lastError ?? "")
        if case .waiting(let until) = h.runtime.uplink.state {
            XCTAssertGreaterThan(until, Clock.wallMillis() - 1000)
        }
        h.collector.reject = nil
        XCTAssertTrue(h.run(until: { h.runtime.uplink.isEstablished }))
    }

    func testUnreachableCollectorBacksOffWithNextAttemptTime() throws {
        let h = try AgentHarness(startCollector: false, collectorPort: freeTCPPort())
        try h.start()
        XCTAssertTrue(h.run(until: { if case .waiting = h.runtime.uplink.state { return true }; return false }))
        guard case .waiting(let until) = h.runtime.uplink.state else { return XCTFail() }
        let wait = Double(until - Clock.wallMillis()) / 1000
        XCTAssertLessThanOrEqual(wait, 0.25)
        XCTAssertTrue(h.runtime.uplink.lastError?.contains("refused") ?? false)
        // When a collector appears, the first status reports the outage.
        h.spin(0.3)
        try h.collector.start(port: UInt16(h.lines["server_port"]!)!)
        XCTAssertTrue(h.run(until: { !h.collector.statuses.isEmpty }))
        let status = h.collector.statuses[0].counters
        XCTAssertGreaterThanOrEqual(status.first { $0.name == "last_outage_attempts" }!.value, 2)
        XCTAssertGreaterThanOrEqual(status.first { $0.name == "last_outage_ms" }!.value, 300)
        XCTAssertGreaterThan(status.first { $0.name == "session_start_ms" }!.value, 0)
    }

    func testACollectorThatClosesEverySessionIsRetriedOnceAtOnceThenWithBackoff() throws {
        // Waits of 2–3 s after the first retry; without backoff this
        // collector would see a new session every few milliseconds.
        let h = try AgentHarness(["reconnect_interval_min": "2000", "reconnect_interval_max": "3000"])
        h.collector.closeAfterWelcome = true
        let t0 = Clock.monotonic()
        try h.start()
        XCTAssertTrue(h.run(until: { h.collector.connections >= 2 }, timeout: 5))
        XCTAssertLessThan(Clock.monotonic() - t0, 1.5, "the first retry after a lost session is immediate")
        XCTAssertTrue(h.run(until: { if case .waiting = h.runtime.uplink.state { return true }; return false }, timeout: 2),
                      "the second loss in a row waits: \(h.runtime.uplink.state)")
        h.spin(max(0, 3.5 - (Clock.monotonic() - t0)))
        // 1 at 0 s, 2 at once, 3 after 2–3 s, the 4th not before 4 s.
        XCTAssertEqual(h.collector.connections, 3, "connection attempts in 3.5 s")
        XCTAssertEqual(h.collector.hellos.count, 3, "each was a completed session")
        XCTAssertEqual(h.runtime.uplink.counters.reconnects, 3)
    }
}
