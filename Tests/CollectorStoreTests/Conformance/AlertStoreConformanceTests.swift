// The alerting calls of the MeasurementStore contract, run against every
// backend (ConformanceBackends.all): rules per project with unique names
// and versions, states with their transitions written only under the
// current lease (holder and epoch — the fencing that keeps a collector that
// lost its lease from overwriting its successor), the lease taken over only
// once expired, silences with an end time, and notification records.
//
// Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class AlertStoreConformanceTests: XCTestCase {
    func testRulesCreateUpdateDeletePerProject() throws {
        try forEachBackend { f in
            let a = try f.wait { f.store.createAlertRule(project: "demo", name: "slow", body: "{\"a\":1}", at: 10, completion: $0) }
            XCTAssertEqual(a.version, 1)
            XCTAssertEqual(a.project, "demo")
            let b = try f.wait { f.store.createAlertRule(project: "demo", name: "dark", body: "{}", at: 11, completion: $0) }
            guard case .failure(.invalid) = try f.waitResult({ f.store.createAlertRule(project: "demo", name: "slow", body: "{}", at: 12, completion: $0) })
            else { return XCTFail("a second rule of one name") }
            guard case .failure(.notFound) = try f.waitResult({ f.store.createAlertRule(project: "nope", name: "x", body: "{}", at: 12, completion: $0) })
            else { return XCTFail("unknown project") }
            let a2 = try f.wait { f.store.updateAlertRule(project: "demo", id: a.id, name: "slower", body: "{\"a\":2}", at: 20, completion: $0) }
            XCTAssertEqual(a2, AlertRuleRecord(id: a.id, project: "demo", name: "slower", body: "{\"a\":2}", version: 2, created: 10, updated: 20))
            guard case .failure(.invalid) = try f.waitResult({ f.store.updateAlertRule(project: "demo", id: b.id, name: "slower", body: "{}", at: 21, completion: $0) })
            else { return XCTFail("renamed onto another rule's name") }
            XCTAssertEqual(try f.wait { f.store.alertRules(project: "demo", completion: $0) }.map(\.name), ["slower", "dark"])
            XCTAssertEqual(try f.wait { f.store.alertRules(project: nil, completion: $0) }.count, 2)
            _ = try f.wait { f.store.deleteAlertRule(project: "demo", id: b.id, completion: $0) }
            guard case .failure(.notFound) = try f.waitResult({ f.store.deleteAlertRule(project: "demo", id: b.id, completion: $0) })
            else { return XCTFail("deleted twice") }
            guard case .failure(.notFound) = try f.waitResult({ f.store.updateAlertRule(project: "demo", id: 999, name: "x", body: "{}", at: 1, completion: $0) })
            else { return XCTFail("unknown rule") }
            try f.reopen()
            XCTAssertEqual(try f.wait { f.store.alertRules(project: "demo", completion: $0) }, [a2])
        }
    }

    func testLeaseIsHeldUntilItExpiresThenTakenOverWithANewEpoch() throws {
        try forEachBackend { f in
            let l1 = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 1_000, at: 100, completion: $0) }
            XCTAssertEqual(l1, AlertLease(name: "alerts", holder: "c1", epoch: 1, expires: 1_100))
            // Another collector sees it held.
            let seen = try f.withSecondStore { other, loop in
                try self.wait(loop) { other.acquireAlertLease(name: "alerts", holder: "c2", ttlMs: 1_000, at: 500, completion: $0) }
            }
            XCTAssertEqual(seen, l1)
            // Renewal keeps the epoch.
            let renewed = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 1_000, at: 900, completion: $0) }
            XCTAssertEqual(renewed, AlertLease(name: "alerts", holder: "c1", epoch: 1, expires: 1_900))
            // Expired: c2 takes over with a new epoch.
            let taken = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c2", ttlMs: 1_000, at: 2_000, completion: $0) }
            XCTAssertEqual(taken, AlertLease(name: "alerts", holder: "c2", epoch: 2, expires: 3_000))
            guard case .failure(.invalid) = try f.waitResult({ f.store.acquireAlertLease(name: "", holder: "c", ttlMs: 1, at: 1, completion: $0) })
            else { return XCTFail("a lease without a name") }
        }
    }

    func testStatesAndTransitionsAreWrittenOnlyUnderTheCurrentLease() throws {
        try forEachBackend { f in
            let rule = try f.wait { f.store.createAlertRule(project: "demo", name: "r", body: "{}", at: 1, completion: $0) }
            let lease = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 1_000, at: 0, completion: $0) }
            func record(_ state: String, at: Int64, _ l: AlertLease) throws -> Result<AlertTransition?, StoreError> {
                try f.waitResult {
                    f.store.recordAlertState(AlertStateRecord(ruleId: rule.id, state: state, since: at, evaluated: at, value: 2.5, detail: "d \(at)"),
                                             lease: l, completion: $0)
                }
            }
            let t1 = try record("pending", at: 10, lease).get()
            XCTAssertEqual(t1?.from, "ok")
            XCTAssertEqual(t1?.to, "pending")
            XCTAssertNil(try record("pending", at: 20, lease).get(), "the same state writes no transition")
            XCTAssertNotNil(try record("firing", at: 30, lease).get())
            let states = try f.wait { f.store.alertStates(project: "demo", completion: $0) }
            XCTAssertEqual(states, [AlertStateRecord(ruleId: rule.id, state: "firing", since: 30, evaluated: 30, value: 2.5, detail: "d 30")])
            // c2 takes the expired lease: c1's write is refused, nothing changes.
            let l2 = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c2", ttlMs: 1_000, at: 5_000, completion: $0) }
            guard case .failure(.invalid) = try record("resolved", at: 40, lease) else { return XCTFail("a write under a lost lease") }
            XCTAssertEqual(try f.wait { f.store.alertStates(project: nil, completion: $0) }.first?.state, "firing")
            XCTAssertNotNil(try record("resolved", at: 50, l2).get())
            let history = try f.wait { f.store.alertHistory(ruleId: rule.id, limit: 10, completion: $0) }
            XCTAssertEqual(history.map { "\($0.from)>\($0.to)@\($0.ts)" }, ["firing>resolved@50", "pending>firing@30", "ok>pending@10"])
            XCTAssertEqual(try f.wait { f.store.alertHistory(ruleId: rule.id, limit: 1, completion: $0) }.count, 1)
            // Deleting the rule takes its state and history.
            _ = try f.wait { f.store.deleteAlertRule(project: "demo", id: rule.id, completion: $0) }
            XCTAssertEqual(try f.wait { f.store.alertStates(project: "demo", completion: $0) }, [])
            XCTAssertEqual(try f.wait { f.store.alertHistory(ruleId: rule.id, limit: 10, completion: $0) }, [])
        }
    }

    func testSilencesEndAndNotificationsAreRecorded() throws {
        try forEachBackend { f in
            let rule = try f.wait { f.store.createAlertRule(project: "demo", name: "r", body: "{}", at: 1, completion: $0) }
            let s = try f.wait {
                f.store.createAlertSilence(AlertSilence(project: "demo", ruleId: rule.id, matchers: ["team": "ops", "env": "prod"], starts: 100,
                                                        ends: 1_000, comment: "deploy", createdBy: "api"), completion: $0)
            }
            XCTAssertGreaterThan(s.id, 0)
            let all = try f.wait { f.store.alertSilences(project: "demo", endingAfter: 500, completion: $0) }
            XCTAssertEqual(all, [s])
            XCTAssertEqual(try f.wait { f.store.alertSilences(project: "demo", endingAfter: 1_000, completion: $0) }, [], "ended")
            let ended = try f.wait { f.store.endAlertSilence(project: "demo", id: s.id, at: 600, completion: $0) }
            XCTAssertEqual(ended.ends, 600)
            XCTAssertEqual(try f.wait { f.store.endAlertSilence(project: "demo", id: s.id, at: 900, completion: $0) }.ends, 600, "ends once")
            guard case .failure(.notFound) = try f.waitResult({ f.store.endAlertSilence(project: "demo", id: 999, at: 1, completion: $0) })
            else { return XCTFail("unknown silence") }

            for (i, result) in ["sent", "failed", "silenced"].enumerated() {
                _ = try f.wait {
                    f.store.appendAlertNotification(AlertNotification(project: "demo", ruleId: rule.id, transitionId: 7, ts: Int64(i), event: "firing",
                                                                      receiver: "webhook http://h", result: result, attempts: 1, detail: ""),
                                                    completion: $0)
                }
            }
            let records = try f.wait { f.store.alertNotifications(project: "demo", ruleId: nil, limit: 10, completion: $0) }
            XCTAssertEqual(records.map(\.result), ["silenced", "failed", "sent"], "newest first")
            XCTAssertEqual(try f.wait { f.store.alertNotifications(project: "demo", ruleId: rule.id, limit: 2, completion: $0) }.count, 2)
            XCTAssertEqual(try f.wait { f.store.alertNotifications(project: "demo", ruleId: rule.id + 1, limit: 10, completion: $0) }, [])
        }
    }
}
