// Synthetic monitors end to end on loopback: definitions PUT to a real
// collector reach a real agent as its schedule; the agent runs a tcp
// monitor (against a listener this test opens) and an http monitor (the
// collector's own /healthz); the results come back as `synthetic`
// measurements and as runs of each monitor, and the agent trims the pages
// libcurl's loading touched after the first http run. An invalid definition
// is a 422 naming the field.
import Foundation
import Glibc
import XCTest
@testable import Agent
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class MonitorsEndToEndTests: XCTestCase {
    let project = "synth"

    /// A listening TCP socket on 127.0.0.1 (the kernel completes connects
    /// from its backlog; nothing needs to accept). Returns (fd, port).
    private func tcpListener() throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("socket: errno \(errno)") }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        sa.sin_port = 0
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(bound, 0, "bind: errno \(errno)")
        XCTAssertEqual(listen(fd, 128), 0, "listen: errno \(errno)")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, UInt16(bigEndian: sa.sin_port))
    }

    func testTCPAndHTTPMonitorsReportThroughTheCollector() throws {
        let (listener, port) = try tcpListener()
        defer { close(listener) }
        let collector = try RealCollector()
        let key = try collector.createKey(project: project)
        try collector.start()

        // Invalid: the field is named in the 422.
        let bad = collector.api("PUT", "/projects/\(project)/monitors",
                                body: #"{"monitors":[{"id":"x","name":"x","kind":"tcp","interval_secs":1,"timeout_secs":5,"spec":{"host":"127.0.0.1","port":1}}]}"#)
        XCTAssertEqual(bad.status, 422, bad.body)
        XCTAssertNotNil((bad.object["detail"] as? [String: Any])?["monitors[0].timeout_secs"], bad.body)

        let body = """
        {"monitors":[
          {"id":"port","name":"listener","kind":"tcp","interval_secs":1,"timeout_secs":1,
           "spec":{"host":"127.0.0.1","port":\(port)}},
          {"id":"health","name":"collector health","kind":"http","interval_secs":2,"timeout_secs":2,
           "spec":{"method":"GET","url":"http://127.0.0.1:\(collector.httpPort)/healthz"}},
          {"id":"elsewhere","name":"other group","kind":"tcp","interval_secs":1,"timeout_secs":1,"groups":["eu"],
           "spec":{"host":"127.0.0.1","port":\(port)}}
        ]}
        """
        let put = collector.api("PUT", "/projects/\(project)/monitors", body: body)
        XCTAssertEqual(put.status, 200, put.body)

        let name = "synth-\(UInt32.random(in: 0...UInt32.max))"
        let agentID = HostInfo.agentID(name: name)
        let config = writeConfig([
            "server_host": collector.host, "server_port": "\(collector.sessionPort)", "access_key": key.text,
            "agent_name": name, "ipa_port": "\(freeUDPPort())", "aggregation_interval_ms": "500",
            "status_interval_ms": "200", "schedule_sync_interval_ms": "500", "reconnect_interval_min": "100",
            "reconnect_interval_max": "200", "log_level": "info",
        ])
        defer { unlink(config) }
        let agent = try AgentProcess(["run", "--config", config])
        defer { if agent.isRunning { agent.signal(SIGKILL) } }

        // Both monitors of the agent's group produce synthetic measurements.
        func synthetic() -> [[String: Any]] {
            collector.api("GET", "/measurements?project=\(project)&source=synthetic&limit=1000")
                .object["measurements"] as? [[String: Any]] ?? []
        }
        XCTAssertTrue(eventually(timeout: 30) {
            let monitors = Set(synthetic().compactMap { $0["monitor"] as? String })
            return monitors.contains("port") && monitors.contains("health")
        }, "no synthetic measurements: \(synthetic())\n\(agent.stderr)")
        let rows = synthetic()
        XCTAssertFalse(rows.contains { $0["monitor"] as? String == "elsewhere" }, "a monitor of another group ran")
        XCTAssertTrue(rows.allSatisfy { $0["check"] as? String == "request" && $0["source"] as? String == "synthetic" })

        // Runs, newest first, ok, from this agent.
        for id in ["port", "health"] {
            var runs: [[String: Any]] = []
            XCTAssertTrue(eventually(timeout: 20) {
                runs = collector.api("GET", "/projects/\(self.project)/monitors/\(id)/runs?limit=5")
                    .object["runs"] as? [[String: Any]] ?? []
                return !runs.isEmpty
            }, "no runs of \(id)\n\(agent.stderr)")
            XCTAssertEqual(runs.first?["agent"] as? String, agentID)
            XCTAssertEqual(runs.first?["ok"] as? Bool, true, "\(runs)")
            let ts = runs.compactMap { $0["ts"] as? Int }
            XCTAssertEqual(ts, ts.sorted(by: >), "newest first")
        }
        // An HTTP run carries the response's status code and body size (/healthz answers "ok" and a newline).
        let health = collector.api("GET", "/projects/\(project)/monitors/health/runs?limit=1").object["runs"] as? [[String: Any]]
        let detail = health?.first?["detail"] as? [String: Any]
        XCTAssertEqual(detail?["http_status"] as? Int, 200, "\(String(describing: detail))")
        XCTAssertEqual(detail?["body_bytes"] as? Int, 3, "\(String(describing: detail))")
        let tcpRuns = collector.api("GET", "/projects/\(project)/monitors/port/runs?limit=1").object["runs"] as? [[String: Any]]
        XCTAssertNil((tcpRuns?.first?["detail"] as? [String: Any])?["http_status"], "a tcp run has no HTTP status")
        let state = collector.api("GET", "/projects/\(project)/monitors").object["state"] as? [String: [String: Any]]
        XCTAssertEqual(state?["port"]?["stale"] as? Bool, false)
        XCTAssertNotNil(state?["port"]?["last_run_ms"] as? Int)

        // After the first http run the agent gave back the pages libcurl's
        // loading and first request touched (MappedPageTrim), and kept running.
        XCTAssertTrue(eventually(timeout: 10) { agent.stderr.contains("mapped pages trimmed after=first-http-run") }, agent.stderr)
        let trimLine = agent.stderr.split(separator: "\n").first { $0.contains("after=first-http-run") } ?? ""
        XCTAssertTrue(trimLine.contains("failures=0"), String(trimLine))
        XCTAssertFalse(agent.stderr.contains("after=first-https-run"), "no https monitor here")

        // The agent's status carries the engine's counters.
        XCTAssertTrue(eventually { (collector.counter(agent: agentID, "monitors_runs_completed") ?? 0) > 0 },
                      "\(collector.agent(agentID))")
        XCTAssertEqual(collector.counter(agent: agentID, "monitors"), 2)

        agent.signal(SIGTERM)
        XCTAssertTrue(eventually(timeout: 10) { !agent.isRunning }, agent.stderr)
        XCTAssertEqual(agent.exitCode, 0, agent.stderr)
    }
}
