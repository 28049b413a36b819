// Rule documents: what validates, every faulty field named at once, the
// normalised form, redaction of secrets and keeping them across an edit;
// and the state machine with its hysteresis and `for` duration.
import XCTest
import JSON
@testable import Alerts

final class AlertRuleTests: XCTestCase {
    private func parse(_ text: String) -> JSON { try! JSON.parse(Array(text.utf8)) }

    func testAMeasurementRuleValidatesWithDefaultsMadeExplicit() throws {
        let doc = parse(#"{"name":"checkout slow","condition":{"kind":"measurement","monitor":"stripe","check":"create_charge","statistic":"p95","threshold":800,"resolve_threshold":600},"for_s":300,"labels":{"team":"payments"}}"#)
        let rule = try AlertRuleDocument.validate(doc).get()
        XCTAssertEqual(rule.condition, .measurement(monitor: "stripe", check: "create_charge", source: nil, agent: nil, statistic: "p95",
                                                    windowSecs: 300, above: true, threshold: 800, resolveThreshold: 600))
        XCTAssertEqual(rule.forSecs, 300)
        XCTAssertEqual(rule.label("team"), "payments")
        XCTAssertEqual(rule.maxPerHour, 20)
        // The stored form validates back to the same rule.
        XCTAssertEqual(AlertRuleDocument.decode(rule.json.serialized), rule)
    }

    func testEveryFaultyFieldIsNamed() {
        let doc = parse(#"{"name":"","bogus":1,"for_s":-1,"condition":{"kind":"measurement","monitor":"m","statistic":"p42","threshold":"x","op":">="},"receivers":[{"type":"webhook","url":"ftp://x"},{"type":"email","url":"smtp://h","to":["nobody"]}]}"#)
        guard case .failure(let failure) = AlertRuleDocument.validate(doc) else { return XCTFail("validated") }
        let errors = failure.errors
        let fields = Set(errors.map(\.field))
        for f in ["name", "bogus", "for_s", "condition.statistic", "condition.threshold", "condition.op", "receivers[0].url",
                  "receivers[1].from", "receivers[1].to[0]"] {
            XCTAssertTrue(fields.contains(f), "\(f) not named in \(errors)")
        }
    }

    func testResolveThresholdMustLieOnTheGoodSide() {
        let doc = parse(#"{"name":"x","condition":{"kind":"measurement","monitor":"m","statistic":"p99","threshold":100,"resolve_threshold":200}}"#)
        guard case .failure(let failure) = AlertRuleDocument.validate(doc) else { return XCTFail("validated") }
        let errors = failure.errors
        XCTAssertEqual(errors.map(\.field), ["condition.resolve_threshold"])
        let rate = parse(#"{"name":"x","condition":{"kind":"measurement","monitor":"m","statistic":"error_rate","threshold":5}}"#)
        guard case .failure(let f2) = AlertRuleDocument.validate(rate) else { return XCTFail("validated") }
        let e2 = f2.errors
        XCTAssertEqual(e2.map(\.field), ["condition.threshold"])
    }

    func testOtherConditionKinds() throws {
        for (text, want) in [
            (#"{"kind":"monitor_failing","monitor":"health","runs":3}"#, AlertCondition.monitorFailing(monitor: "health", runs: 3)),
            (#"{"kind":"agent_state","state":"not_visible","longer_than_s":5}"#, .agentState(agent: nil, state: "not_visible", longerThanSecs: 5)),
            (#"{"kind":"agent_drops","agent":"a1","per_second":10}"#, .agentDrops(agent: "a1", perSecond: 10, windowSecs: 60)),
            (#"{"kind":"collector_health","metric":"loop_lag_ms","threshold":50,"resolve_threshold":20}"#,
             .collectorHealth(metric: "loop_lag_ms", windowSecs: 60, threshold: 50, resolveThreshold: 20)),
        ] {
            let rule = try AlertRuleDocument.validate(parse(#"{"name":"r","condition":"# + text + "}")).get()
            XCTAssertEqual(rule.condition, want)
            XCTAssertEqual(AlertRuleDocument.decode(rule.json.serialized), rule)
        }
        guard case .failure(let e) = AlertRuleDocument.validate(parse(#"{"name":"r","condition":{"kind":"agent_state","state":"stopped","monitor":"x"}}"#))
        else { return XCTFail("validated") }
        XCTAssertEqual(Set(e.errors.map(\.field)), ["condition.state", "condition.monitor"])
    }

    func testSecretsAreRedactedAndKeptAcrossAnEdit() throws {
        let doc = parse(#"{"name":"r","condition":{"kind":"monitor_failing","monitor":"m"},"receivers":[{"type":"webhook","url":"https://hooks.example/services/T0/B0/SECRET?token=abc","format":"slack"},{"type":"email","url":"smtp://user:pw@mail.example:25","from":"vigil@example.org","to":["ops@example.org"],"username":"u","password":"hunter2"}]}"#)
        let rule = try AlertRuleDocument.validate(doc).get()
        let shown = rule.redactedJSON.serialized
        XCTAssertFalse(shown.contains("SECRET"), shown)
        XCTAssertFalse(shown.contains("token=abc"), shown)
        XCTAssertFalse(shown.contains("hunter2"), shown)
        XCTAssertFalse(shown.contains("pw@"), shown)
        XCTAssertTrue(shown.contains("https://hooks.example/[redacted]"), shown)
        XCTAssertEqual(rule.receivers[0].redacted, "webhook https://hooks.example/[redacted]")
        // The redacted document sent back keeps the stored secrets.
        let edited = try AlertRuleDocument.validate(rule.redactedJSON).get().keepingSecrets(of: rule)
        XCTAssertEqual(edited.receivers, rule.receivers)
        // A new URL replaces the old one.
        var other = try AlertRuleDocument.validate(rule.redactedJSON).get()
        other.receivers[0].url = "http://127.0.0.1:9/hook"
        XCTAssertEqual(other.keepingSecrets(of: rule).receivers[0].url, "http://127.0.0.1:9/hook")
    }

    // MARK: state machine

    private func obs(_ breaching: Bool, recovered: Bool? = nil, value: Double? = 1) -> AlertObservation {
        AlertObservation(breaching: breaching, recovered: recovered ?? !breaching, value: value, detail: "")
    }

    func testForDurationThenFiringThenResolvedWithHysteresis() {
        var (s, since) = (AlertStateName.ok, Int64(0))
        (s, since) = AlertStateMachine.next(state: s, since: since, observation: obs(true), forMs: 10_000, now: 1_000)
        XCTAssertEqual(s, .pending); XCTAssertEqual(since, 1_000)
        (s, since) = AlertStateMachine.next(state: s, since: since, observation: obs(true), forMs: 10_000, now: 5_000)
        XCTAssertEqual(s, .pending); XCTAssertEqual(since, 1_000)
        (s, since) = AlertStateMachine.next(state: s, since: since, observation: obs(true), forMs: 10_000, now: 11_000)
        XCTAssertEqual(s, .firing); XCTAssertEqual(since, 11_000)
        // Between the thresholds: neither breaching nor recovered — still firing.
        (s, since) = AlertStateMachine.next(state: s, since: since, observation: obs(false, recovered: false), forMs: 10_000, now: 12_000)
        XCTAssertEqual(s, .firing)
        (s, since) = AlertStateMachine.next(state: s, since: since, observation: obs(false), forMs: 10_000, now: 13_000)
        XCTAssertEqual(s, .resolved); XCTAssertEqual(since, 13_000)
        // Breaching again with for 0 fires at once.
        (s, since) = AlertStateMachine.next(state: s, since: since, observation: obs(true), forMs: 0, now: 14_000)
        XCTAssertEqual(s, .firing)
    }

    func testPendingThatStopsBreachingGoesBackToOkButNotOnNoData() {
        var r = AlertStateMachine.next(state: .pending, since: 1, observation: .noData("none"), forMs: 10, now: 5)
        XCTAssertEqual(r.0, .pending)
        r = AlertStateMachine.next(state: .pending, since: 1, observation: obs(false), forMs: 10, now: 5)
        XCTAssertEqual(r.0, .ok)
        r = AlertStateMachine.next(state: .firing, since: 1, observation: .noData("none"), forMs: 10, now: 5)
        XCTAssertEqual(r.0, .firing, "no data never resolves")
    }
}
