// Alerts end to end with real processes on loopback: a real agent runs an
// http monitor against a local server (Python's http.server) whose answer
// this test switches between 200 and 500; a rule on the monitor fires when
// the server starts answering 500 and resolves when it recovers, and a
// local webhook receiver gets exactly one notification for each. Then the
// agent is killed (SIGKILL): it goes not_visible and a rule on that fires
// only after its `longer_than_s`.
import Foundation
import Glibc
import XCTest
@testable import Agent

final class AlertsEndToEndTests: XCTestCase {
    /// Answers GET with the status written in <dir>/status; POSTs (the
    /// webhook) append their body as one line to <dir>/hooks.jsonl. Writes
    /// <dir>/ready once listening.
    static let serverScript = #"""
    import http.server, os, sys
    port, directory = int(sys.argv[1]), sys.argv[2]
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            try: code = int(open(os.path.join(directory, "status")).read().strip())
            except Exception: code = 200
            self.send_response(code); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with open(os.path.join(directory, "hooks.jsonl"), "ab") as f:
                f.write(body.replace(b"\n", b" ") + b"\n")
            self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *a): pass
    s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    open(os.path.join(directory, "ready"), "w").close()
    s.serve_forever()
    """#

    private func hooks(_ dir: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: dir + "/hooks.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    private func events(_ dir: String, rule: String) -> [String] {
        hooks(dir).flatMap { ($0["alerts"] as? [[String: Any]]) ?? [] }.filter { $0["rule"] as? String == rule }.compactMap { $0["event"] as? String }
    }

    func testMonitorRuleFiresAndResolvesOnceEachAndAKilledAgentFiresAfterItsTime() throws {
        let collector = try RealCollector()
        let dir = collector.directory
        let key = try collector.createKey(project: "alerting")
        try "alert_eval_interval_ms = 200\nalert_group_wait_ms = 100\n".appendLine(to: collector.configPath)
        try collector.start()

        let port = freeTCPPort()
        try "200".write(toFile: dir + "/status", atomically: true, encoding: .utf8)
        try Self.serverScript.write(toFile: dir + "/server.py", atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = [dir + "/server.py", "\(port)", dir]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        XCTAssertTrue(eventually { FileManager.default.fileExists(atPath: dir + "/ready") })

        let monitors = """
        {"monitors":[{"id":"shop-api","name":"shop api","kind":"http","interval_secs":1,"timeout_secs":1,
          "spec":{"method":"GET","url":"http://127.0.0.1:\(port)/health"}}]}
        """
        XCTAssertEqual(collector.api("PUT", "/projects/alerting/monitors", body: monitors).status, 200)
        let hook = "http://127.0.0.1:\(port)/hook"
        let r1 = collector.api("POST", "/projects/alerting/alerts", body: """
            {"name":"shop api down","condition":{"kind":"monitor_failing","monitor":"shop-api","runs":2},
             "receivers":[{"type":"webhook","url":"\(hook)"}]}
            """)
        XCTAssertEqual(r1.status, 201, r1.body)

        let name = "alerting-\(UInt32.random(in: 0...UInt32.max))"
        let agentID = HostInfo.agentID(name: name)
        let r2 = collector.api("POST", "/projects/alerting/alerts", body: """
            {"name":"agent dark","condition":{"kind":"agent_state","agent":"\(agentID)","state":"not_visible","longer_than_s":3},
             "receivers":[{"type":"webhook","url":"\(hook)"}]}
            """)
        XCTAssertEqual(r2.status, 201, r2.body)
        let config = writeConfig([
            "server_host": collector.host, "server_port": "\(collector.sessionPort)", "access_key": key.text,
            "agent_name": name, "ipa_port": "\(freeUDPPort())", "aggregation_interval_ms": "500",
            "status_interval_ms": "200", "schedule_sync_interval_ms": "500", "reconnect_interval_min": "100",
            "reconnect_interval_max": "200", "log_level": "info",
        ])
        defer { unlink(config) }
        let agent = try AgentProcess(["run", "--config", config])
        defer { if agent.isRunning { agent.signal(SIGKILL) } }

        func runs() -> [[String: Any]] {
            collector.api("GET", "/projects/alerting/monitors/shop-api/runs?limit=3").object["runs"] as? [[String: Any]] ?? []
        }
        XCTAssertTrue(eventually(timeout: 30) { runs().filter { $0["step"] as? String == "" && $0["ok"] as? Bool == true }.count >= 2 },
                      "no successful runs\n\(agent.stderr)")
        XCTAssertEqual(events(dir, rule: "shop api down"), [], "nothing fired while the server answered 200")

        // The server answers 500: the rule fires, once.
        try "500".write(toFile: dir + "/status", atomically: true, encoding: .utf8)
        XCTAssertTrue(eventually(timeout: 30) { self.events(dir, rule: "shop api down") == ["firing"] }, collector.log)
        // It recovers: the rule resolves, once.
        try "200".write(toFile: dir + "/status", atomically: true, encoding: .utf8)
        XCTAssertTrue(eventually(timeout: 30) { self.events(dir, rule: "shop api down") == ["firing", "resolved"] }, collector.log)
        sleep(2)
        XCTAssertEqual(events(dir, rule: "shop api down"), ["firing", "resolved"], "exactly one notification each")
        XCTAssertEqual(events(dir, rule: "agent dark"), [])

        // The agent is killed: not_visible at once, the rule fires after 3 s.
        agent.signal(SIGKILL)
        let killed = Date()
        XCTAssertTrue(eventually { collector.state(agent: agentID) == "not_visible" }, collector.log)
        XCTAssertTrue(eventually(timeout: 20) { self.events(dir, rule: "agent dark") == ["firing"] }, collector.log)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(killed), 3, "fired only after longer_than_s")
        let detail = hooks(dir).last.flatMap { ($0["alerts"] as? [[String: Any]])?.first?["detail"] as? String } ?? ""
        XCTAssertTrue(detail.contains(agentID), detail)
    }
}

private extension String {
    func appendLine(to path: String) throws {
        let old = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        try (old + self).write(toFile: path, atomically: true, encoding: .utf8)
    }
}
