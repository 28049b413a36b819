// Project-level configuration and the runs of a removed monitor, against a
// real collector and Wire clients playing agents: the project's overrides
// are validated like an agent's, stored, audited, shown with origin
// `project` and pushed to the connected agents that do not override the
// key; a monitor taken out of the document keeps its stored runs readable.
import Foundation
import Glibc
import XCTest
import MonitorModel
import Wire
@testable import Collector

final class APIProjectConfigTests: CollectorAPITestCase {
    private func entry(_ r: HTTPResult, _ key: String) -> [String: Any]? {
        (r.object["config"] as? [[String: Any]] ?? []).first { $0["key"] as? String == key }
    }

    func testProjectConfigurationIsValidatedStoredAndPushed() throws {
        var r = c.api("GET", "/projects/acme/config")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(entry(r, "capture")?["origin"] as? String, "default")
        XCTAssertEqual(c.api("GET", "/projects/nope/config").status, 404)
        XCTAssertEqual(c.api("PUT", "/projects/nope/config", body: #"{"capture":false}"#).status, 404)

        let plain = try stoppedAgent("p-1"), own = try stoppedAgent("p-2")
        // p-2 overrides status_interval_ms itself.
        var pending = PendingHTTP(c, "PUT", "/agents/p-2/config", body: #"{"status_interval_ms": 7000}"#)
        XCTAssertNotNil(answerControl(own))
        XCTAssertEqual(try XCTUnwrap(pending.wait()).status, 200)
        plain.clearEvents(); own.clearEvents()

        // Refused like an agent's update, key by key; nothing stored or sent.
        for (body, key) in [(#"{"access_key":"x.y"}"#, "access_key"), (#"{"server_port":7000}"#, "server_port"),
                            (#"{"nope":1}"#, "nope"), (#"{"status_interval_ms":"soon"}"#, "status_interval_ms"),
                            (#"{"capture":[1]}"#, "capture"), (#"{"nope":null}"#, "nope")] {
            r = c.api("PUT", "/projects/acme/config", body: body)
            XCTAssertEqual(r.status, 422, body)
            let detail = r.object["detail"] as? [String: Any]
            XCTAssertNotNil((detail?["keys"] as? [String: Any])?[key], r.body)
            XCTAssertEqual(detail?["by"] as? String, "collector")
        }
        r = c.api("PUT", "/projects/acme/config", body: "{}")
        XCTAssertEqual(r.status, 400, r.body)
        XCTAssertEqual(r.object["error"] as? String, "no keys to change")
        XCTAssertTrue(plain.records.isEmpty && own.records.isEmpty, "nothing sent for an invalid update")

        pending = PendingHTTP(c, "PUT", "/projects/acme/config", body: #"{"capture": false, "status_interval_ms": 5000}"#)
        let toPlain = try XCTUnwrap(answerControl(plain))
        XCTAssertEqual(toPlain.kind, .configUpdate)
        XCTAssertEqual(toPlain.values, [KeyValue("capture", "off"), KeyValue("status_interval_ms", "5000")])
        let toOwn = try XCTUnwrap(answerControl(own))
        XCTAssertEqual(toOwn.values, [KeyValue("capture", "off")], "the agent's own override is kept")
        r = try XCTUnwrap(pending.wait())
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.object["pushed_to"] as? [String], ["p-1", "p-2"])
        XCTAssertEqual(r.object["applied"] as? [String], ["capture", "status_interval_ms"])

        r = c.api("GET", "/projects/acme/config")
        XCTAssertEqual(entry(r, "capture")?["value"] as? String, "off")
        XCTAssertEqual(entry(r, "capture")?["origin"] as? String, "project")
        let agentView = c.api("GET", "/agents/p-2/config")
        XCTAssertEqual(entry(agentView, "capture")?["origin"] as? String, "project")
        XCTAssertEqual(entry(agentView, "status_interval_ms")?["origin"] as? String, "agent")

        // null removes the project's override: agents without their own get the default.
        pending = PendingHTTP(c, "PUT", "/projects/acme/config", body: #"{"capture": null}"#)
        XCTAssertEqual(try XCTUnwrap(answerControl(plain)).values, [KeyValue("capture", "on")])
        XCTAssertEqual(try XCTUnwrap(pending.wait()).status, 200)
        XCTAssertEqual(entry(c.api("GET", "/projects/acme/config"), "capture")?["origin"] as? String, "default")

        let audit = c.api("GET", "/audit?target=acme&action=config.project").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.map { $0["result"] as? String }, ["ok", "ok"])
        XCTAssertEqual(audit.last?["detail"] as? String, "capture,status_interval_ms")
    }

    func testAnOfflineAgentsConfigurationIsStagedAndAppliedWhenItConnects() throws {
        var client: WireTestClient? = try stoppedAgent("s-1")
        client = nil   // the session closes
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/s-1").object["connected"] as? Bool) == false })

        // Checked as for a connected agent: nothing staged when a key is wrong.
        var r = c.api("PUT", "/agents/s-1/config", body: #"{"status_interval_ms":"soon"}"#)
        XCTAssertEqual(r.status, 422, r.body)
        XCTAssertEqual(c.api("PUT", "/agents/nobody/config", body: #"{"capture":false}"#).status, 404)

        r = c.api("PUT", "/agents/s-1/config", body: #"{"status_interval_ms": 6000}"#)
        XCTAssertEqual(r.status, 202, r.body)
        XCTAssertEqual(r.object["result"] as? String, "staged")
        XCTAssertEqual(r.object["staged"] as? [String], ["status_interval_ms"])
        XCTAssertEqual(entry(r, "status_interval_ms")?["value"] as? String, "6000")
        XCTAssertEqual(entry(r, "status_interval_ms")?["origin"] as? String, "agent")
        let audit = c.api("GET", "/audit?target=s-1&action=config.stage").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.first?["result"] as? String, "ok")
        XCTAssertEqual(audit.first?["detail"] as? String, "status_interval_ms")

        // The agent connects: the staged value reaches it as the converge update.
        let again = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("s-1"))
        XCTAssertNotNil(again.handshake())
        let converge = try XCTUnwrap(answerControl(again))
        XCTAssertEqual(converge.kind, .configUpdate)
        XCTAssertEqual(converge.values, [KeyValue("status_interval_ms", "6000")])
        _ = client
    }

    func testRunsOfARemovedMonitorStayReadable() throws {
        let doc = #"{"monitors":[{"id":"db","name":"db","kind":"tcp","interval_secs":10,"timeout_secs":3,"spec":{"host":"db","port":5432}}]}"#
        XCTAssertEqual(c.api("PUT", "/projects/acme/monitors", body: doc).status, 200)
        let client = try stoppedAgent("m-1")
        let step = try client.session.stringRef("run")
        client.send([.dataBatch(DataBatch(sequence: 1, items: [
            .monitorResult(MonitorResult(monitorID: MonitorID.numeric("db"), runID: 1, timestampMs: 1_700_000_001_000, step: step,
                                         status: .ok, durationUs: 2_000, phases: [])),
        ]))])
        XCTAssertNotNil(client.waitForRecord { $0 == .ack(Ack(sequence: 1)) })
        XCTAssertEqual((c.api("GET", "/projects/acme/monitors/db/runs").object["runs"] as? [Any])?.count, 1)

        XCTAssertEqual(c.api("PUT", "/projects/acme/monitors", body: #"{"monitors":[]}"#).status, 200)
        var r = c.api("GET", "/projects/acme/monitors/db/runs")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual((r.object["runs"] as? [[String: Any]])?.first?["agent"] as? String, "m-1")
        XCTAssertEqual((r.object["state"] as? [String: Any])?["removed"] as? Bool, true)
        r = c.api("GET", "/projects/acme/monitors/db/runs?since=1800000000000")
        XCTAssertEqual(r.status, 200, "it has runs, just none in range: \(r.body)")
        XCTAssertEqual((r.object["runs"] as? [Any])?.count, 0)
        XCTAssertEqual(c.api("GET", "/projects/acme/monitors/never/runs").status, 404)
    }
}
