// The notifier with a scripted delivery and a real SQLite store: grouping
// of alerts for one receiver, the per-rule rate limit, retries with
// backoff only for failures that may pass, silences by label, records of
// each outcome; and the webhook bodies chat tools take as they are.
//
// Loop thread (the test's).
import XCTest
import JSON
import Reactor
@testable import Alerts
@testable import CollectorStore

final class AlertNotifierTests: XCTestCase {
    final class ScriptedDelivery: AlertDelivery {
        var results: [DeliveryResult] = []
        var delivered: [AlertMessage] = []
        let loop: EventLoop
        init(loop: EventLoop) { self.loop = loop }
        func deliver(_ message: AlertMessage, to receiver: AlertReceiver, completion: @escaping (DeliveryResult) -> Void) {
            delivered.append(message)
            let r = results.isEmpty ? .sent("ok") : results.removeFirst()
            loop.defer { completion(r) }
        }
    }

    private func wait<T>(_ loop: EventLoop, _ op: (@escaping StoreCompletion<T>) -> Void) throws -> T {
        var result: Result<T, StoreError>?
        op { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 20))
        return try result!.get()
    }

    private func doc(_ name: String, maxPerHour: Int = 20, labels: String = "{}") -> AlertRule {
        try! AlertRuleDocument.validate(JSON.parse(Array(#"{"name":"\#(name)","labels":\#(labels),"max_per_hour":\#(maxPerHour),"condition":{"kind":"monitor_failing","monitor":"m"},"receivers":[{"type":"webhook","url":"http://127.0.0.1:9/h"}]}"#.utf8))).get()
    }

    /// Stores the rule's state `to` under `lease` (with its receivers'
    /// outbox rows) and returns the transition written.
    private func store(_ store: SQLiteStore, _ loop: EventLoop, _ rule: AlertRuleRecord, _ doc: AlertRule, _ to: String,
                       lease: AlertLease) throws -> AlertTransition {
        let now = Clock.wallMillis()
        return try XCTUnwrap(try wait(loop) {
            store.recordAlertState(AlertStateRecord(ruleId: rule.id, state: to, since: now, evaluated: now, value: 1, detail: "d"),
                                   lease: lease, receivers: doc.receivers.map(\.redacted), completion: $0)
        })
    }

    func testGroupingRateLimitRetriesSilencesAndRecords() throws {
        let dir = TempDirectory()
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))
        defer { var done = false; store.close { done = true }; _ = loop.run(until: { done }, timeout: 20) }
        _ = try wait(loop) { store.createKey(project: "p", secret: "s", at: 1, completion: $0) }
        let a = doc("a", maxPerHour: 1), b = doc("b", labels: #"{"team":"ops"}"#)
        let ra = try wait(loop) { store.createAlertRule(project: "p", name: "a", body: a.json.serialized, at: 1, completion: $0) }
        let rb = try wait(loop) { store.createAlertRule(project: "p", name: "b", body: b.json.serialized, at: 1, completion: $0) }
        let lease = try wait(loop) { store.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 600_000, at: Clock.wallMillis(), completion: $0) }
        let delivery = ScriptedDelivery(loop: loop)
        var settings = AlertNotifierSettings()
        settings.groupWait = 0.05
        settings.retryBase = 0.01
        let n = AlertNotifier(loop: loop, store: store, delivery: delivery, settings: settings)
        n.alertLease(lease)
        func records() throws -> [String] {
            try wait(loop) { store.alertNotifications(project: "p", ruleId: nil, limit: 100, completion: $0) }
                .filter { $0.result != "pending" }.map { "\($0.ruleId):\($0.result):\($0.attempts)" }
        }

        // Two rules firing together: one message with both; a 503 then sent.
        delivery.results = [.failed("HTTP 503", retry: true), .sent("HTTP 200")]
        let ta = try self.store(store, loop, ra, a, "firing", lease: lease)
        let tb = try self.store(store, loop, rb, b, "firing", lease: lease)
        XCTAssertEqual(ta.notificationIds.count, 1, "one outbox row per receiver")
        n.alertChanged(rule: ra, document: a, transition: ta)
        n.alertChanged(rule: rb, document: b, transition: tb)
        n.alertChanged(rule: rb, document: b, transition: AlertTransition(id: 3, ruleId: rb.id, ts: 1, from: "ok", to: "pending", value: 1, detail: ""))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 2 }, timeout: 10))
        XCTAssertEqual(delivery.delivered.count, 2, "one try and one retry")
        XCTAssertEqual(delivery.delivered[0].items.map(\.rule), ["a", "b"], "grouped; pending is not notified")
        XCTAssertEqual(delivery.delivered[0].items.map(\.notificationId), ta.notificationIds + tb.notificationIds)
        XCTAssertEqual(delivery.delivered[1].notificationIdHeader, "\(ta.notificationIds[0]), \(tb.notificationIds[0])", "the retry keeps the ids")
        XCTAssertEqual(Set(try records()), ["\(ra.id):sent:2", "\(rb.id):sent:2"])
        XCTAssertEqual(n.retries, 1)

        // Rule a may send once an hour: its next alert is rate limited.
        n.alertChanged(rule: ra, document: a, transition: try self.store(store, loop, ra, a, "resolved", lease: lease))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 3 }, timeout: 10))
        XCTAssertEqual(try records().first, "\(ra.id):rate_limited:0")

        // A silence by label holds b back; a failure that will not pass is not retried.
        _ = try wait(loop) {
            store.createAlertSilence(AlertSilence(project: "p", ruleId: nil, matchers: ["team": "ops"], starts: 0, ends: Clock.wallMillis() + 60_000,
                                                  comment: "", createdBy: "t"), completion: $0)
        }
        n.alertChanged(rule: rb, document: b, transition: try self.store(store, loop, rb, b, "resolved", lease: lease))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 4 }, timeout: 10))
        XCTAssertEqual(try records().first, "\(rb.id):silenced:0")
        let c = doc("c")
        let rc = try wait(loop) { store.createAlertRule(project: "p", name: "c", body: c.json.serialized, at: 1, completion: $0) }
        delivery.results = [.failed("HTTP 404", retry: false)]
        let before = delivery.delivered.count
        n.alertChanged(rule: rc, document: c, transition: try self.store(store, loop, rc, c, "firing", lease: lease))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 5 }, timeout: 10))
        XCTAssertEqual(try records().first, "\(rc.id):failed:1")
        XCTAssertEqual(delivery.delivered.count, before + 1)
        XCTAssertEqual(n.outcomes, ["sent": 2, "rate_limited": 1, "silenced": 1, "failed": 1])
    }

    /// The outbox across a takeover: what the first holder stored but did
    /// not deliver is delivered once by the next holder, with its attempts
    /// so far and the same id; the first, having lost the lease, starts no
    /// attempt, and a row already sent is not sent again.
    func testANewLeaseHolderDeliversWhatThePreviousLeftPendingOnce() throws {
        let dir = TempDirectory()
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))
        defer { var done = false; store.close { done = true }; _ = loop.run(until: { done }, timeout: 20) }
        _ = try wait(loop) { store.createKey(project: "p", secret: "s", at: 1, completion: $0) }
        let a = doc("a"), b = doc("b")
        let ra = try wait(loop) { store.createAlertRule(project: "p", name: "a", body: a.json.serialized, at: 1, completion: $0) }
        let rb = try wait(loop) { store.createAlertRule(project: "p", name: "b", body: b.json.serialized, at: 1, completion: $0) }
        let now = Clock.wallMillis()
        let l1 = try wait(loop) { store.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 1_000, at: now - 10_000, completion: $0) }
        var settings = AlertNotifierSettings()
        settings.groupWait = 0.01
        // The first holder delivers rule a's firing; rule b's is stored, then the holder is gone before delivering it.
        let d1 = ScriptedDelivery(loop: loop)
        let first = AlertNotifier(loop: loop, store: store, delivery: d1, settings: settings)
        first.alertLease(l1)
        let ta = try self.store(store, loop, ra, a, "firing", lease: l1)
        first.alertChanged(rule: ra, document: a, transition: ta)
        XCTAssertTrue(loop.run(until: { first.outcomes["sent"] == 1 }, timeout: 10))
        let tb = try self.store(store, loop, rb, b, "firing", lease: l1)
        // The lease expired long ago; c2 takes it over and finds b's row pending.
        let l2 = try wait(loop) { store.acquireAlertLease(name: "alerts", holder: "c2", ttlMs: 600_000, at: now, completion: $0) }
        XCTAssertEqual(l2.epoch, l1.epoch + 1)
        // The old holder, told of b's transition only now, starts no attempt: its claim is fenced.
        first.alertChanged(rule: rb, document: b, transition: tb)
        _ = loop.run(until: { false }, timeout: 0.3)
        XCTAssertEqual(d1.delivered.count, 1, "no delivery without the lease")
        let d2 = ScriptedDelivery(loop: loop)
        let second = AlertNotifier(loop: loop, store: store, delivery: d2, settings: settings)
        second.alertLease(l2)
        XCTAssertTrue(loop.run(until: { second.outcomes["sent"] == 1 }, timeout: 10))
        XCTAssertEqual(d2.delivered.flatMap(\.items).map(\.notificationId), tb.notificationIds, "b's firing, once, under its id")
        XCTAssertEqual(d2.delivered.first?.items.first?.rule, "b")
        XCTAssertEqual(second.adopted, 1)
        // Later rounds find nothing pending: nothing is sent twice.
        second.alertLease(l2)
        second.alertLease(l2)
        _ = loop.run(until: { false }, timeout: 0.3)
        XCTAssertEqual(d2.delivered.count, 1)
        let records = try wait(loop) { store.alertNotifications(project: "p", ruleId: nil, limit: 10, completion: $0) }
        XCTAssertEqual(records.map { "\($0.id):\($0.result):\($0.attempts)" },
                       ["\(tb.notificationIds[0]):sent:1", "\(ta.notificationIds[0]):sent:1"])
    }

    func testWebhookBodiesForChatTools() throws {
        let item = AlertItem(project: "acme", ruleId: 1, rule: "checkout slow", transitionId: 7, event: "firing", from: "pending", ts: 5,
                             value: 812, detail: "p95 812 ms > 800 ms", labels: [("team", "payments")])
        let m = AlertMessage(items: [item])
        XCTAssertEqual(m.text, "[FIRING] checkout slow (acme): p95 812 ms > 800 ms")
        let json = m.body(format: "json")
        XCTAssertEqual(json["status"], .string("firing"))
        XCTAssertEqual(json["text"], .string(m.text))
        XCTAssertEqual(json["alerts"]?.arrayValue?.first?["labels"]?["team"], .string("payments"))
        // Slack and Mattermost: `text`, plus attachments with fields.
        let slack = m.body(format: "slack")
        XCTAssertEqual(slack["text"], .string(m.text))
        XCTAssertEqual(slack["attachments"]?.arrayValue?.first?["color"], .string("danger"))
        // Teams: a MessageCard with text and facts.
        let teams = m.body(format: "teams")
        XCTAssertEqual(teams["@type"], .string("MessageCard"))
        XCTAssertEqual(teams["text"], .string(m.text))
        XCTAssertEqual(teams["sections"]?.arrayValue?.first?["facts"]?.arrayValue?.count, 2)
        let resolved = AlertMessage(items: [item, AlertItem(project: "acme", ruleId: 2, rule: "r2", transitionId: 8, event: "resolved",
                                                            from: "firing", ts: 6, value: nil, detail: "ok", labels: [])])
        XCTAssertEqual(resolved.subject, "2 alerts: 1 firing, 1 resolved")
    }
}
