// The evaluator against a real SQLite store on a test loop: conditions
// computed from stored rows (pure functions, then through the store),
// states and transitions written once per change, a second collector with
// the same database standing by while the lease is held and taking over
// once it expired, rules evaluated in bounded slices.
//
// Loop thread (the test's).
import XCTest
import Glibc
import JSON
import Reactor
@testable import Alerts
@testable import CollectorStore

final class AlertEvaluatorTests: XCTestCase {
    // MARK: conditions from rows

    private func row(_ ts: Int64, count: Int64 = 10, errors: Int64 = 0, p95Ms: Int64) -> MeasurementRow {
        MeasurementRow(ts: ts, windowMs: 10_000, monitor: "shop", check: "pay", source: "ipa", count: count, errors: errors,
                       sumUs: 1, minUs: 1, maxUs: p95Ms * 1000, p50Us: p95Ms * 500, p95Us: p95Ms * 1000, p99Us: p95Ms * 1100)
    }

    func testMeasurementStatisticsAndHysteresis() {
        let rows = [row(1, p95Ms: 700), row(2, errors: 3, p95Ms: 820)]
        var o = AlertConditions.measurement(rows, statistic: "p95", above: true, threshold: 800, resolve: 600, label: "shop/pay")
        XCTAssertEqual(o.value, 820)
        XCTAssertTrue(o.breaching)
        XCTAssertEqual(o.detail, "shop/pay p95 820 ms > 800 ms")
        o = AlertConditions.measurement([row(1, p95Ms: 700)], statistic: "p95", above: true, threshold: 800, resolve: 600, label: "x")
        XCTAssertFalse(o.breaching); XCTAssertFalse(o.recovered, "between the thresholds")
        o = AlertConditions.measurement(rows, statistic: "error_rate", above: true, threshold: 0.1, resolve: 0.1, label: "x")
        XCTAssertEqual(o.value, 0.15); XCTAssertTrue(o.breaching)
        o = AlertConditions.measurement(rows, statistic: "count", above: false, threshold: 5, resolve: 5, label: "x")
        XCTAssertEqual(o.value, 20); XCTAssertFalse(o.breaching); XCTAssertTrue(o.recovered)
        XCTAssertNil(AlertConditions.measurement([], statistic: "p99", above: true, threshold: 1, resolve: 1, label: "x").value)
        XCTAssertEqual(AlertConditions.measurement([], statistic: "count", above: false, threshold: 1, resolve: 1, label: "x").breaching, true,
                       "no calls at all is a count of 0")
    }

    func testMonitorFailingAgentDropsAndHealth() {
        func run(_ ok: Bool, _ check: String = "") -> MonitorRun { MonitorRun(ts: 1, monitor: "1", check: check, ok: ok, durationUs: 1) }
        // Newest first; step rows do not count.
        XCTAssertTrue(AlertConditions.monitorFailing([run(false), run(true, "step"), run(false), run(true)], runs: 2, monitor: "m").breaching)
        let mixed = AlertConditions.monitorFailing([run(false), run(true)], runs: 2, monitor: "m")
        XCTAssertFalse(mixed.breaching); XCTAssertFalse(mixed.recovered)
        XCTAssertTrue(AlertConditions.monitorFailing([run(true), run(false)], runs: 2, monitor: "m").recovered)
        XCTAssertFalse(AlertConditions.monitorFailing([run(false)], runs: 2, monitor: "m").breaching, "fewer runs than asked")

        func status(_ ts: Int64, _ kernel: Int, _ queue: Int) -> StatusRecord {
            StatusRecord(ts: ts, json: #"{"counters":{"drops_kernel":\#(kernel),"drops_queue1":\#(queue / 2),"spool_dropped_full":\#(queue - queue / 2),"drops_parse":1000}}"#)
        }
        let drops = AlertConditions.agentDrops([("a1", [status(11_000, 100, 10), status(1_000, 0, 0)]), ("a2", [status(5_000, 1, 0)])],
                                               perSecond: 10)
        XCTAssertEqual(drops.value, 11, "110 drops in 10 s; parse drops are not the kernel's or a queue's")
        XCTAssertTrue(drops.breaching)
        XCTAssertEqual(AlertConditions.agentDrops([("a1", [status(11_000, 5, 0), status(1_000, 100, 0)])], perSecond: 1).value, 0.5,
                       "a restarted agent counts from zero")

        var sample = CollectorSample(ts: 0, intervalMs: 1000)
        sample.lagMaxUs = 75_000
        sample.storeFailures = 2
        XCTAssertTrue(AlertConditions.collectorHealth([sample], metric: "loop_lag_ms", threshold: 50, resolve: 20).breaching)
        XCTAssertEqual(AlertConditions.collectorHealth([sample, sample], metric: "store_failures", threshold: 10, resolve: 10).value, 4)
    }

    // MARK: through a store

    final class Sink: AlertTransitionSink {
        var seen: [String] = []
        func alertChanged(rule: AlertRuleRecord, document: AlertRule, transition: AlertTransition) {
            seen.append("\(rule.name):\(transition.from)>\(transition.to)")
        }
    }

    private func open(_ dir: TempDirectory, _ loop: EventLoop) throws -> SQLiteStore {
        try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))
    }

    private func wait<T>(_ loop: EventLoop, _ op: (@escaping StoreCompletion<T>) -> Void) throws -> T {
        var result: Result<T, StoreError>?
        op { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 20))
        return try result!.get()
    }

    private func rule(_ json: String) -> String {
        try! AlertRuleDocument.validate(JSON.parse(Array(json.utf8))).get().json.serialized
    }

    private func round(_ e: AlertEvaluator, _ loop: EventLoop) {
        let before = e.stats.rounds
        e.round()
        XCTAssertTrue(loop.run(until: { e.stats.rounds > before }, timeout: 20))
    }

    func testAgentStateRuleFiresAndResolvesOnceUnderTheLease() throws {
        let dir = TempDirectory()
        let loop = EventLoop()
        let store = try open(dir, loop)
        defer { close(store, loop) }
        _ = try wait(loop) { store.createKey(project: "p", secret: "s", at: 1, completion: $0) }
        let pid = try wait(loop) { store.activeKeys(project: "p", completion: $0) }.projectId
        _ = try wait(loop) { store.agentConnected(AgentHello(id: "a1", projectId: pid, name: "a1", hostname: "h", version: "1", bootId: "b", at: 1),
                                                  completion: $0) }
        _ = try wait(loop) { store.setAgentState(agent: "a1", state: .stopped, messages: [], at: Clock.wallMillis(), completion: $0) }
        let rec = try wait(loop) {
            store.createAlertRule(project: "p", name: "dark",
                                  body: rule(#"{"name":"dark","condition":{"kind":"agent_state","state":"not_visible","longer_than_s":0}}"#),
                                  at: 1, completion: $0)
        }
        let sink = Sink()
        let e = AlertEvaluator(loop: loop, store: store, settings: AlertEvaluatorSettings(interval: 60, slice: 10, holder: "c1"))
        e.sink = sink
        round(e, loop)
        XCTAssertTrue(e.holdsLease)
        XCTAssertEqual(sink.seen, [])
        XCTAssertEqual(try wait(loop) { store.alertStates(project: "p", completion: $0) }.first?.state, "ok")

        _ = try wait(loop) { store.setAgentState(agent: "a1", state: .notVisible, messages: [], at: Clock.wallMillis() - 5, completion: $0) }
        round(e, loop)
        round(e, loop)
        XCTAssertEqual(sink.seen, ["dark:ok>firing"], "one transition, notified once")
        let state = try wait(loop) { store.alertStates(project: "p", completion: $0) }.first
        XCTAssertEqual(state?.state, "firing")
        XCTAssertEqual(state?.detail.hasSuffix("a1"), true, state?.detail ?? "")

        // Another collector on the same database stands by while c1 holds the lease.
        let other = AlertEvaluator(loop: loop, store: store, settings: AlertEvaluatorSettings(interval: 60, slice: 10, holder: "c2"))
        let otherSink = Sink()
        other.sink = otherSink
        _ = try wait(loop) { store.setAgentState(agent: "a1", state: .stopped, messages: [], at: Clock.wallMillis(), completion: $0) }
        round(other, loop)
        XCTAssertFalse(other.holdsLease)
        XCTAssertEqual(other.stats.standby, 1)
        XCTAssertEqual(otherSink.seen, [])
        round(e, loop)
        XCTAssertEqual(sink.seen, ["dark:ok>firing", "dark:firing>resolved"])
        let history = try wait(loop) { store.alertHistory(ruleId: rec.id, limit: 10, completion: $0) }
        XCTAssertEqual(history.map { $0.to }, ["resolved", "firing"])
    }

    func testALostLeaseStopsTheRoundAndTheSuccessorNotifies() throws {
        let dir = TempDirectory()
        let loop = EventLoop()
        let store = try open(dir, loop)
        defer { close(store, loop) }
        _ = try wait(loop) { store.createKey(project: "p", secret: "s", at: 1, completion: $0) }
        for i in 0..<7 {
            _ = try wait(loop) {
                store.createAlertRule(project: "p", name: "r\(i)",
                                      body: rule(#"{"name":"r\#(i)","condition":{"kind":"collector_health","metric":"store_failures","threshold":-1}}"#),
                                      at: 1, completion: $0)
            }
        }
        var sample = CollectorSample(ts: Clock.wallMillis() - 1000, intervalMs: 1000)
        sample.storeFailures = 1
        _ = try wait(loop) { store.appendCollectorSample(sample, completion: $0) }
        // c1 held the lease once, with a short ttl; c2 takes it over after it expired.
        let c1 = AlertEvaluator(loop: loop, store: store, settings: AlertEvaluatorSettings(interval: 0.01, slice: 3, holder: "c1"))
        let s1 = Sink()
        c1.sink = s1
        _ = try wait(loop) { store.acquireAlertLease(name: "alerts", holder: "c2", ttlMs: 1, at: 0, completion: $0) }
        round(c1, loop)
        XCTAssertEqual(s1.seen.count, 7, "all seven rules in slices of three")
        XCTAssertEqual(c1.stats.evaluations, 7)
        usleep(150_000)
        let c2 = AlertEvaluator(loop: loop, store: store, settings: AlertEvaluatorSettings(interval: 60, slice: 3, holder: "c2"))
        let s2 = Sink()
        c2.sink = s2
        round(c2, loop)
        XCTAssertTrue(c2.holdsLease, "c1's lease (100 ms) expired")
        XCTAssertEqual(s2.seen, [], "the rules fire already: nothing new to notify")
        round(c1, loop)
        XCTAssertFalse(c1.holdsLease)
        XCTAssertEqual(s1.seen.count, 7, "c1 notifies nothing more")
    }

    private func close(_ store: SQLiteStore, _ loop: EventLoop) {
        var done = false
        store.close { done = true }
        _ = loop.run(until: { done }, timeout: 20)
    }
}

/// A fresh directory under /tmp, removed with its database files.
final class TempDirectory {
    let path: String
    init() {
        var template = Array("/tmp/vigil-alerts-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(cString: p!)
    }
    deinit {
        for name in ["vigil.db", "vigil.db-wal", "vigil.db-shm"] { unlink(path + "/" + name) }
        rmdir(path)
    }
}
