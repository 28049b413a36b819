// The alerting calls of the MeasurementStore contract, run against every
// backend (ConformanceBackends.all): rules per project with unique names
// and versions, states with their transitions written only under the
// current lease (holder and epoch — the fencing that keeps a collector that
// lost its lease from overwriting its successor), the lease taken over only
// once expired, silences with an end time, and notification records —
// written as an outbox with their transition, claimed under the lease and
// found pending by a successor.
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

    func testNotificationOutboxIsWrittenWithTheTransitionClaimedUnderTheLeaseAndFoundBySuccessors() throws {
        try forEachBackend { f in
            let rule = try f.wait { f.store.createAlertRule(project: "demo", name: "r", body: "{\"x\":1}", at: 1, completion: $0) }
            let l1 = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 1_000, at: 0, completion: $0) }
            func record(_ state: String, at: Int64, _ receivers: [String]) throws -> AlertTransition? {
                try f.wait {
                    f.store.recordAlertState(AlertStateRecord(ruleId: rule.id, state: state, since: at, evaluated: at, value: 1, detail: state),
                                             lease: l1, receivers: receivers, completion: $0)
                }
            }
            XCTAssertEqual(try record("pending", at: 10, ["webhook http://a/[redacted]", "email smtp://b"])?.notificationIds, [],
                           "pending is not notified")
            let firing = try XCTUnwrap(try record("firing", at: 20, ["webhook http://a/[redacted]", "email \"smtp://b\\x\""]))
            XCTAssertEqual(firing.notificationIds.count, 2)
            XCTAssertLessThan(firing.notificationIds[0], firing.notificationIds[1], "in the receivers' order")
            let pending = try f.wait { f.store.pendingAlertNotifications(dueBy: 100, limit: 10, completion: $0) }
            XCTAssertEqual(pending.map(\.notification.id), firing.notificationIds)
            XCTAssertEqual(pending.map(\.notification.receiverIndex), [0, 1])
            XCTAssertEqual(pending.map(\.notification.receiver), ["webhook http://a/[redacted]", "email \"smtp://b\\x\""])
            XCTAssertEqual(pending.first?.transition.to, "firing")
            XCTAssertEqual(pending.first?.transition.from, "pending")
            XCTAssertEqual(pending.first?.ruleBody, "{\"x\":1}")
            XCTAssertEqual(pending.first?.notification.project, "demo")

            // A claim counts an attempt; a retry's due time hides the row until then.
            let a = firing.notificationIds[0], b = firing.notificationIds[1]
            XCTAssertEqual(try f.wait { f.store.claimAlertNotifications(ids: [a], lease: l1, at: 30, completion: $0) }, [a: 1])
            XCTAssertEqual(try f.wait { f.store.finishAlertNotifications(ids: [a], result: "pending", detail: "HTTP 503", at: 31, due: 5_000, completion: $0) }, 1)
            XCTAssertEqual(try f.wait { f.store.pendingAlertNotifications(dueBy: 100, limit: 10, completion: $0) }.map(\.notification.id), [b])
            let later = try f.wait { f.store.pendingAlertNotifications(dueBy: 5_000, limit: 10, completion: $0) }
            XCTAssertEqual(later.map { "\($0.notification.id):\($0.notification.attempts):\($0.notification.detail)" }, ["\(a):1:HTTP 503", "\(b):0:"])

            // c2 takes the lease over: c1 can claim nothing, c2 goes on with the attempts counted so far.
            let l2 = try f.wait { f.store.acquireAlertLease(name: "alerts", holder: "c2", ttlMs: 1_000, at: 6_000, completion: $0) }
            guard case .failure(.invalid(let why)) = try f.waitResult({ f.store.claimAlertNotifications(ids: [b], lease: l1, at: 6_001, completion: $0) }),
                  why.hasPrefix("lease lost") else { return XCTFail("a claim under a lost lease") }
            XCTAssertEqual(try f.wait { f.store.claimAlertNotifications(ids: [a, b], lease: l2, at: 6_002, completion: $0) }, [a: 2, b: 1])
            XCTAssertEqual(try f.wait { f.store.finishAlertNotifications(ids: [a, b], result: "sent", detail: "HTTP 200", at: 6_003, due: 0, completion: $0) }, 2)
            // Finished rows are neither pending, claimable nor finished again.
            XCTAssertEqual(try f.wait { f.store.pendingAlertNotifications(dueBy: Int64.max, limit: 10, completion: $0) }, [])
            XCTAssertEqual(try f.wait { f.store.claimAlertNotifications(ids: [a], lease: l2, at: 6_004, completion: $0) }, [:])
            XCTAssertEqual(try f.wait { f.store.finishAlertNotifications(ids: [a], result: "failed", detail: "x", at: 6_005, due: 0, completion: $0) }, 0)
            let records = try f.wait { f.store.alertNotifications(project: "demo", ruleId: rule.id, limit: 10, completion: $0) }
            XCTAssertEqual(records.map { "\($0.result):\($0.attempts):\($0.event):\($0.transitionId)" },
                           ["sent:1:firing:\(firing.id)", "sent:2:firing:\(firing.id)"])
            try f.reopen()
            XCTAssertEqual(try f.wait { f.store.alertNotifications(project: "demo", ruleId: rule.id, limit: 10, completion: $0) }.count, 2)
        }
    }
}
