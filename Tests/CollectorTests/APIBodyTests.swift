// Request and answer bodies of the HTTP API, against a real collector and a
// Wire client playing the agent: filter rules that exclude, unknown fields
// in a rule, an empty configuration update, the capture interface checked
// against what the agent reported; and run ids written as integers.
import Foundation
import XCTest
import CollectorStore
import JSON
import Wire
@testable import Collector

final class APIBodyTests: CollectorAPITestCase {
    /// A connected agent that reported `eth0` and `lo`.
    private func agent(_ id: String) throws -> WireTestClient {
        try stoppedAgent(id, sending: [.interfaces(Interfaces([NetworkInterface(name: "eth0", flags: 1, addresses: ["10.0.0.5/24"]),
                                                              NetworkInterface(name: "lo", flags: 3, addresses: [])]))])
    }

    func testExcludeRulesNeedNoMonitorAndKeepTheField() throws {
        let client = try agent("pat-1")
        client.clearEvents()
        let body = #"{"patterns":[{"host":"*","path":"/health","exclude":true},"# +
                   #"{"host":"*","path":"*","monitor":"shop","check":"all","exclude":false}]}"#
        let r = c.api("PUT", "/projects/acme/patterns", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        let rules = r.object["patterns"] as? [[String: Any]] ?? []
        XCTAssertEqual(rules.map { $0["exclude"] as? Bool }, [true, false], r.body)
        XCTAssertEqual(rules.first?["monitor"] as? String, "")
        let read = c.api("GET", "/projects/acme/patterns").object["patterns"] as? [[String: Any]] ?? []
        XCTAssertEqual(read.map { $0["exclude"] as? Bool }, [true, false], "stored, not dropped")
        let pushed = client.waitForRecord { if case .patterns = $0 { return true }; return false }
        guard case .patterns(let p)? = pushed else { return XCTFail("no push") }
        XCTAssertEqual(p.rules.map(\.exclude), [true, false], "the agent gets the field")
    }

    func testMetricRulesAreStoredAnsweredAndPushedAsMetricRules() throws {
        let client = try agent("pat-2")
        client.clearEvents()
        let body = #"{"patterns":[{"metric":"app.debug.*","exclude":true},{"metric":"app.*"},"# +
                   #"{"host":"*","path":"*","monitor":"shop","check":"all"}]}"#
        let r = c.api("PUT", "/projects/acme/patterns", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        let read = c.api("GET", "/projects/acme/patterns").object["patterns"] as? [[String: Any]] ?? []
        XCTAssertEqual(read.map { $0.keys.sorted() }, [["exclude", "metric"], ["exclude", "metric"],
                                                      ["check", "exclude", "host", "method", "monitor", "path"]])
        XCTAssertEqual(read.map { $0["metric"] as? String }, ["app.debug.*", "app.*", nil])
        let pushed = client.waitForRecord { if case .patterns = $0 { return true }; return false }
        guard case .patterns(let p)? = pushed else { return XCTFail("no push") }
        XCTAssertEqual(p.rules.map(\.metricGlob), ["app.debug.*", "app.*", nil])
        XCTAssertEqual(p.rules.map(\.exclude), [true, false, false])
    }

    func testRuleProblemsAreNamed() {
        let cases: [(String, String)] = [
            (#"{"host":"*","path":"*","monitor":"m","check":"c","exlude":true}"#, "patterns[0].exlude"),
            (#"{"host":"*","path":"*","monitor":"m","check":"c","exclude":"yes"}"#, "patterns[0].exclude"),
            (#"{"host":"*","path":"*","check":"c"}"#, "patterns[0].monitor"),
            (#"{"host":"*","path":"*","monitor":"m","check":"","exclude":false}"#, "patterns[0].check"),
            (#"{"metric":""}"#, "patterns[0].metric"),
            (#"{"metric":7}"#, "patterns[0].metric"),
            (#"{"metric":"app.*","monitor":"m"}"#, "patterns[0].monitor"),
            (#"{"method":"@statsd","host":"*","path":"*","monitor":"m","check":"c"}"#, "patterns[0].method"),
        ]
        for (rule, field) in cases {
            let r = c.api("PUT", "/projects/acme/patterns", body: #"{"patterns":["# + rule + "]}")
            XCTAssertEqual(r.status, 422, "\(rule): \(r.body)")
            XCTAssertEqual(r.object["error"] as? String, "invalid patterns", r.body)
            XCTAssertEqual((r.object["detail"] as? [String: Any])?.keys.sorted(), [field], r.body)
        }
        XCTAssertEqual(c.api("GET", "/projects/acme/patterns").object["version"] as? Int, 0, "nothing stored")
    }

    func testEmptyConfigUpdateSaysNoKeysToChange() throws {
        _ = try agent("cfg-1")
        let r = c.api("PUT", "/agents/cfg-1/config", body: "{}")
        XCTAssertEqual(r.status, 400, r.body)
        XCTAssertEqual(r.object["error"] as? String, "no keys to change", r.body)
    }

    func testCaptureInterfaceMustBeOneTheAgentReported() throws {
        let client = try agent("cap-1")
        XCTAssertTrue(c.eventually {
            let status = self.c.api("GET", "/agents/cap-1").object["status"] as? [String: Any]
            return (status?["interfaces"] as? [[String: Any]])?.count == 2
        })
        var r = c.api("POST", "/agents/cap-1/capture", body: #"{"action":"start","interface":5}"#)
        XCTAssertEqual(r.status, 422, r.body)
        XCTAssertNotNil((r.object["detail"] as? [String: Any])?["interface"], r.body)
        r = c.api("POST", "/agents/cap-1/capture", body: #"{"action":"start","interface":"eth9"}"#)
        XCTAssertEqual(r.status, 422, r.body)
        let detail = r.object["detail"] as? [String: Any] ?? [:]
        XCTAssertEqual(detail["interface"] as? String, "the agent reported no interface eth9", r.body)
        XCTAssertEqual(detail["reported"] as? [String], ["eth0", "lo"], r.body)
        XCTAssertNil(client.records.first { if case .controlRequest = $0 { return true }; return false }, "nothing sent")

        let pending = PendingHTTP(c, "POST", "/agents/cap-1/capture", body: #"{"action":"start","interface":"eth0"}"#)
        guard case .controlRequest(let req)? = client.waitForRecord(timeout: 10, { if case .controlRequest = $0 { return true }; return false }) else {
            return XCTFail("not forwarded")
        }
        XCTAssertEqual(req.values, [KeyValue("interface", "eth0")])
        client.send([.controlResponse(ControlResponse(requestID: req.requestID, ok: true, errors: [], message: "capturing"))])
        XCTAssertEqual(pending.wait()?.status, 200)
    }

    /// A run id is an integer on the wire and stays one in the stored detail
    /// the API answers (never `1796488341078002.0`).
    func testRunIDIsWrittenAsAnInteger() throws {
        var strings = StringTable(maxID: 10, maxBytes: 100)
        try strings.define(1, "run")
        let batch = DataBatch(sequence: 1, items: [
            .monitorResult(MonitorResult(monitorID: 7, runID: 1_796_488_341_078_002, timestampMs: 1_700_000_001_000, step: 1,
                                         status: .ok, durationUs: 10, phases: [])),
        ])
        guard case .success(let t) = BatchTranslator.translate(batch, projectId: 1, agentID: "a1", dedupBoot: "boot",
                                                               strings: strings, receivedAt: 5) else {
            return XCTFail("refused")
        }
        XCTAssertEqual(t.batch.monitorRuns.first?.detail, #"{"run_id":1796488341078002,"status":"ok"}"#)
    }
}
