// Alert evaluation in a real collector: an agent whose session ends goes
// not_visible, and a rule on that fires only after `longer_than_s`, then
// resolves when the agent is back; the state and its history are stored
// (they survive a restart) and shown by the API; the evaluator's figures
// are on /metrics.
import Foundation
import XCTest
import Wire

final class AlertEvaluationTests: XCTestCase {
    func testAgentGoneDarkFiresAfterItsTimeAndResolvesWhenBack() throws {
        let config = ["alert_eval_interval_ms = 200"]
        let c = try CollectorProcess(config: config)
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let r = c.api("POST", "/projects/acme/alerts",
                      body: #"{"name":"dark","condition":{"kind":"agent_state","agent":"edge-1","state":"not_visible","longer_than_s":2}}"#)
        XCTAssertEqual(r.status, 201, r.body)
        let id = try XCTUnwrap(r.object["id"] as? Int)
        func state() -> String? {
            (c.api("GET", "/projects/acme/alerts/\(id)").object["state"] as? [String: Any])?["state"] as? String
        }

        var client: WireTestClient? = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("edge-1"))
        XCTAssertNotNil(client?.handshake())
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/edge-1").object["connected"] as? Bool) == true })
        XCTAssertTrue(c.eventually { (c.metric("vigil_alert_evaluations_total{result=\"ok\"}") ?? 0) >= 2 }, c.log)
        XCTAssertEqual(state(), "ok")

        client = nil   // the session ends: the agent is not_visible from now on
        let gone = Date()
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/edge-1").object["state"] as? String) == "not_visible" })
        XCTAssertTrue(c.eventually(timeout: 15) { state() == "firing" }, c.log)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(gone), 2, "fired only after longer_than_s")
        let detail = (c.api("GET", "/projects/acme/alerts/\(id)").object["state"] as? [String: Any])?["detail"] as? String ?? ""
        XCTAssertTrue(detail.contains("edge-1"), detail)
        XCTAssertEqual(c.metric("vigil_alert_lease_held"), 1)

        // A restart keeps state and history; the agent comes back and the rule resolves.
        c.stop()
        let again = try CollectorProcess.restart(c, config: config)
        defer { again.stop() }
        XCTAssertEqual((again.api("GET", "/projects/acme/alerts/\(id)").object["state"] as? [String: Any])?["state"] as? String, "firing")
        client = try WireTestClient(port: again.sessionPort, key: key, hello: WireTestClient.hello("edge-1"))
        XCTAssertNotNil(client?.handshake())
        XCTAssertTrue(again.eventually(timeout: 15) {
            (again.api("GET", "/projects/acme/alerts/\(id)").object["state"] as? [String: Any])?["state"] as? String == "resolved"
        }, again.log)
        let history = again.api("GET", "/projects/acme/alerts/\(id)?limit=10").object["history"] as? [[String: Any]] ?? []
        XCTAssertEqual(history.compactMap { $0["to"] as? String }, ["resolved", "firing"], "\(history)")
        XCTAssertTrue(again.log.contains("alert resolved"), again.log)
        _ = client
    }
}
