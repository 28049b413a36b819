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

    private func transition(_ id: Int64, rule: Int64, to: String = "firing") -> AlertTransition {
        AlertTransition(id: id, ruleId: rule, ts: 1, from: to == "firing" ? "pending" : "firing", to: to, value: 1, detail: "d")
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
        let delivery = ScriptedDelivery(loop: loop)
        var settings = AlertNotifierSettings()
        settings.groupWait = 0.05
        settings.retryBase = 0.01
        let n = AlertNotifier(loop: loop, store: store, delivery: delivery, settings: settings)
        func records() throws -> [String] {
            try wait(loop) { store.alertNotifications(project: "p", ruleId: nil, limit: 100, completion: $0) }.map { "\($0.ruleId):\($0.result):\($0.attempts)" }
        }

        // Two rules firing together: one message with both; a 503 then sent.
        delivery.results = [.failed("HTTP 503", retry: true), .sent("HTTP 200")]
        n.alertChanged(rule: ra, document: a, transition: transition(1, rule: ra.id))
        n.alertChanged(rule: rb, document: b, transition: transition(2, rule: rb.id))
        n.alertChanged(rule: rb, document: b, transition: AlertTransition(id: 3, ruleId: rb.id, ts: 1, from: "ok", to: "pending", value: 1, detail: ""))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 2 }, timeout: 10))
        XCTAssertEqual(delivery.delivered.count, 2, "one try and one retry")
        XCTAssertEqual(delivery.delivered[0].items.map(\.rule), ["a", "b"], "grouped; pending is not notified")
        XCTAssertEqual(Set(try records()), ["\(ra.id):sent:2", "\(rb.id):sent:2"])
        XCTAssertEqual(n.retries, 1)

        // Rule a may send once an hour: its next alert is rate limited.
        n.alertChanged(rule: ra, document: a, transition: transition(4, rule: ra.id, to: "resolved"))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 3 }, timeout: 10))
        XCTAssertEqual(try records().first, "\(ra.id):rate_limited:0")

        // A silence by label holds b back; a failure that will not pass is not retried.
        _ = try wait(loop) {
            store.createAlertSilence(AlertSilence(project: "p", ruleId: nil, matchers: ["team": "ops"], starts: 0, ends: Clock.wallMillis() + 60_000,
                                                  comment: "", createdBy: "t"), completion: $0)
        }
        n.alertChanged(rule: rb, document: b, transition: transition(5, rule: rb.id, to: "resolved"))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 4 }, timeout: 10))
        XCTAssertEqual(try records().first, "\(rb.id):silenced:0")
        let c = doc("c")
        let rc = try wait(loop) { store.createAlertRule(project: "p", name: "c", body: c.json.serialized, at: 1, completion: $0) }
        delivery.results = [.failed("HTTP 404", retry: false)]
        let before = delivery.delivered.count
        n.alertChanged(rule: rc, document: c, transition: transition(6, rule: rc.id))
        XCTAssertTrue(loop.run(until: { (try? records().count) == 5 }, timeout: 10))
        XCTAssertEqual(try records().first, "\(rc.id):failed:1")
        XCTAssertEqual(delivery.delivered.count, before + 1)
        XCTAssertEqual(n.outcomes, ["sent": 2, "rate_limited": 1, "silenced": 1, "failed": 1])
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
