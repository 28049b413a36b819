import XCTest
import Reactor
@testable import CollectorStore

final class StoreQueryTests: XCTestCase {
    /// Two projects; agents a1, a2 in demo and b1 in other; monitors and
    /// sources mixed; timestamps 1000...
    private func populated() throws -> (StoreFixture, Int64) {
        let f = try StoreFixture(self)
        _ = try wait(f.loop) { f.store.createKey(project: "other", secret: "secret-2", at: 1_000, completion: $0) }
        let other = try wait(f.loop) { f.store.activeKeys(project: "other", completion: $0) }.projectId
        try f.connect(self, agent: "a2", boot: "x")
        try f.connect(self, agent: "b1", boot: "y", project: other)
        _ = try wait(f.loop) {
            f.store.submitBatch(f.batch(seq: 0, measurements: [
                measurement(1_000, monitor: "shop", check: "checkout"),
                measurement(2_000, monitor: "shop", check: "login"),
                measurement(3_000, monitor: "blog", check: "home", source: "synthetic"),
            ]), completion: $0)
        }
        _ = try wait(f.loop) {
            f.store.submitBatch(f.batch(agent: "a2", boot: "x", seq: 0, measurements: [measurement(4_000, monitor: "shop", check: "checkout")]),
                                completion: $0)
        }
        _ = try wait(f.loop) {
            f.store.submitBatch(f.batch(agent: "b1", boot: "y", seq: 0, project: other,
                                        measurements: [measurement(5_000, monitor: "shop", check: "checkout")]), completion: $0)
        }
        return (f, other)
    }

    private func ts(_ f: StoreFixture, _ q: MeasurementQuery) throws -> [Int64] {
        try wait(f.loop) { f.store.measurements(q, completion: $0) }.map(\.measurement.ts)
    }

    func testMeasurementFilters() throws {
        let (f, _) = try populated()
        XCTAssertEqual(try ts(f, MeasurementQuery()), [5_000, 4_000, 3_000, 2_000, 1_000], "newest first")
        XCTAssertEqual(try ts(f, MeasurementQuery(project: "demo")), [4_000, 3_000, 2_000, 1_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(project: "other")), [5_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(project: "nope")), [])
        XCTAssertEqual(try ts(f, MeasurementQuery(agent: "a1")), [3_000, 2_000, 1_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(monitor: "shop")), [5_000, 4_000, 2_000, 1_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(monitor: "shop", check: "checkout")), [5_000, 4_000, 1_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(source: "synthetic")), [3_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(since: 2_000)), [5_000, 4_000, 3_000, 2_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(project: "demo", agent: "a1", monitor: "shop", since: 1_500)), [2_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(limit: 2)), [5_000, 4_000])
        XCTAssertEqual(try ts(f, MeasurementQuery(limit: 0)), [5_000], "limit is clamped to at least 1")

        let r = try wait(f.loop) { f.store.measurements(MeasurementQuery(agent: "a2"), completion: $0) }
        XCTAssertEqual(r, [MeasurementRecord(project: "demo", agent: "a2", measurement: measurement(4_000))])
        close(f.store)
    }

    func testEventsAndMonitorRuns() throws {
        let f = try StoreFixture(self)
        func ev(_ ts: Int64, _ check: String) -> RawEvent {
            RawEvent(ts: ts, monitor: "shop", check: check, method: "GET", host: "api.example", path: "/p/:id", durationMs: 2.5, meta: "{}")
        }
        var b = f.batch(seq: 0, events: [ev(1, "a"), ev(3, "b"), ev(2, "a")])
        b.monitorRuns = [MonitorRun(ts: 9, monitor: "ping", check: "dns", ok: false, durationMs: 30, detail: "timeout"),
                         MonitorRun(ts: 8, monitor: "ping", check: "dns", ok: true, durationMs: 3)]
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(b, completion: $0) }, .stored(rows: 5))
        let all = try wait(f.loop) { f.store.events(EventQuery(), completion: $0) }
        XCTAssertEqual(all.map(\.event.ts), [3, 2, 1])
        XCTAssertEqual(all.first?.project, "demo")
        XCTAssertEqual(all.first?.agent, "a1")
        XCTAssertEqual(all.last?.event, ev(1, "a"))
        XCTAssertEqual(try wait(f.loop) { f.store.events(EventQuery(check: "a"), completion: $0) }.map(\.event.ts), [2, 1])
        XCTAssertEqual(try wait(f.loop) { f.store.events(EventQuery(project: "demo", agent: "a1", since: 2, limit: 1), completion: $0) }.map(\.event.ts), [3])
        XCTAssertEqual(try wait(f.loop) { f.store.events(EventQuery(agent: "zz"), completion: $0) }, [])

        let runs = try wait(f.loop) { f.store.monitorRuns(MonitorRunQuery(project: "demo", monitor: "ping"), completion: $0) }
        XCTAssertEqual(runs.map(\.run.ok), [false, true])
        XCTAssertEqual(runs.first?.run.detail, "timeout")
        close(f.store)
    }

    func testAgentsStatusAndStateHistory() throws {
        let (f, _) = try populated()
        _ = try wait(f.loop) {
            f.store.submitBatch(f.batch(seq: 1, statuses: [StatusSnapshot(ts: 10_000, json: "{\"n\":1}"),
                                                           StatusSnapshot(ts: 20_000, json: "{\"n\":2}")]), completion: $0)
        }
        // An older snapshot arriving late does not replace the latest.
        _ = try wait(f.loop) { f.store.submitBatch(f.batch(seq: 2, statuses: [StatusSnapshot(ts: 15_000, json: "{\"n\":3}")]), completion: $0) }
        let history = try wait(f.loop) { f.store.statusHistory(agent: "a1", since: nil, limit: 10, completion: $0) }
        XCTAssertEqual(history.map(\.ts), [20_000, 15_000, 10_000])
        XCTAssertEqual(try wait(f.loop) { f.store.statusHistory(agent: "a1", since: 12_000, limit: 1, completion: $0) }.map(\.json), ["{\"n\":2}"])

        XCTAssertTrue(try wait(f.loop) { f.store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 30_000, completion: $0) })
        XCTAssertFalse(try wait(f.loop) { f.store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 31_000, completion: $0) },
                       "no change, no history row")
        XCTAssertTrue(try wait(f.loop) {
            f.store.setAgentState(agent: "a1", state: .wrongConfiguration, messages: ["key 'x': bad\nvalue", "second"], at: 32_000, completion: $0)
        })
        let states = try wait(f.loop) { f.store.stateHistory(agent: "a1", since: nil, limit: 10, completion: $0) }
        XCTAssertEqual(states.map(\.state), [.wrongConfiguration, .capturing, .connecting])
        XCTAssertEqual(states.first?.messages, ["key 'x': bad value", "second"])
        guard case .failure(.notFound) = try waitResult(f.loop, { f.store.setAgentState(agent: "nope", state: .stopped, messages: [], at: 1, completion: $0) }) else {
            return XCTFail()
        }

        let a1 = try wait(f.loop) { f.store.agent(id: "a1", completion: $0) }
        XCTAssertEqual(a1.project, "demo")
        XCTAssertEqual(a1.name, "a1-name")
        XCTAssertEqual(a1.hostname, "host-a1")
        XCTAssertEqual(a1.bootId, "boot-1")
        XCTAssertEqual(a1.state, .wrongConfiguration)
        XCTAssertEqual(a1.stateSince, 32_000)
        XCTAssertEqual(a1.status, "{\"n\":2}")
        XCTAssertEqual(a1.statusTs, 20_000)
        XCTAssertEqual(a1.lastSeen, 5_002, "the latest batch's receive time")
        XCTAssertEqual(try wait(f.loop) { f.store.agents(project: nil, completion: $0) }.map(\.id), ["a1", "a2", "b1"])
        XCTAssertEqual(try wait(f.loop) { f.store.agents(project: "other", completion: $0) }.map(\.id), ["b1"])
        guard case .failure(.notFound("agent 'zz'")) = try waitResult(f.loop, { f.store.agent(id: "zz", completion: $0) }) else { return XCTFail() }

        XCTAssertEqual(try wait(f.loop) { f.store.markAllAgentsNotVisible(at: 40_000, completion: $0) }, 3)
        XCTAssertEqual(try wait(f.loop) { f.store.markAllAgentsNotVisible(at: 41_000, completion: $0) }, 0)
        XCTAssertEqual(try wait(f.loop) { f.store.agent(id: "a1", completion: $0) }.state, .notVisible)
        XCTAssertEqual(try wait(f.loop) { f.store.stateHistory(agent: "a1", since: 40_000, limit: 10, completion: $0) }.map(\.state), [.notVisible])

        // Reconnecting updates identity and goes back to connecting.
        try f.connect(self, agent: "a1", boot: "boot-2", at: 50_000)
        let again = try wait(f.loop) { f.store.agent(id: "a1", completion: $0) }
        XCTAssertEqual(again.bootId, "boot-2")
        XCTAssertEqual(again.state, .connecting)
        XCTAssertEqual(again.firstSeen, 2_000)
        XCTAssertEqual(again.lastSeen, 50_000)
        close(f.store)
    }

    func testAgentOfUnknownProjectIsRefused() throws {
        let f = try StoreFixture(self)
        let r = try waitResult(f.loop) {
            f.store.agentConnected(AgentHello(id: "x", projectId: 999, name: "", hostname: "", version: "", bootId: "", at: 1), completion: $0)
        }
        XCTAssertEqual(r.map(\.id), .failure(.notFound("project 999")))
        close(f.store)
    }

    func testAudit() throws {
        let f = try StoreFixture(self)
        for (i, action) in ["capture.stop", "config.update", "capture.start"].enumerated() {
            _ = try wait(f.loop) {
                f.store.appendAudit(AuditEntry(ts: Int64(100 + i), actor: "api", action: action, target: i == 1 ? "a2" : "a1",
                                               detail: "{}", result: i == 1 ? "rejected" : "ok"), completion: $0)
            }
        }
        let all = try wait(f.loop) { f.store.audit(AuditQuery(), completion: $0) }
        XCTAssertEqual(all.map(\.entry.action), ["capture.start", "config.update", "capture.stop"])
        XCTAssertEqual(all[1].entry.result, "rejected")
        XCTAssertEqual(try wait(f.loop) { f.store.audit(AuditQuery(target: "a1"), completion: $0) }.count, 2)
        XCTAssertEqual(try wait(f.loop) { f.store.audit(AuditQuery(action: "config.update"), completion: $0) }.map(\.entry.target), ["a2"])
        XCTAssertEqual(try wait(f.loop) { f.store.audit(AuditQuery(since: 101, limit: 1), completion: $0) }.map(\.entry.ts), [102])
        close(f.store)
    }
}
