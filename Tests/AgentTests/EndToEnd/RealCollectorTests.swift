// The real system on loopback: vigil-agent processes against vigil-collector
// processes, observed only through the collector's HTTP API — every accepted
// IPA variant as the right aggregates; unmatched and malformed counted, not
// forwarded; kill -9 and restart of the collector losing nothing
// acknowledged and storing nothing twice; failover to the second host;
// queue overflow counted exactly; remote capture stop/start and config
// updates (valid and invalid) through the API; SIGHUP with a broken file
// keeping the old configuration.
import Foundation
import XCTest
import Wire
@testable import Agent
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class RealCollectorTests: XCTestCase {
    let project = "e2e"

    /// A collector with a key and rules, and an agent process for it.
    final class System {
        let collector: RealCollector
        let key: AccessKey
        let agentName = "e2e-\(UInt32.random(in: 0...UInt32.max))"
        let ipaPort = freeUDPPort()
        var agentID: String { HostInfo.agentID(name: agentName) }
        var agent: AgentProcess?
        var configPath = ""
        lazy var udp = UDPClient(port: ipaPort)

        init(project: String) throws {
            collector = try RealCollector()
            key = try collector.createKey(project: project)
            try collector.start()
        }

        func lines(_ extra: [String: String] = [:]) -> [String: String] {
            [
                "server_host": collector.host, "server_port": "\(collector.sessionPort)", "access_key": key.text,
                "agent_name": agentName, "ipa_port": "\(ipaPort)", "aggregation_interval_ms": "500",
                "status_interval_ms": "200", "schedule_sync_interval_ms": "500", "reconnect_interval_min": "100",
                "reconnect_interval_max": "200", "log_level": "info",
            ].merging(extra) { $1 }
        }

        /// Starts the agent and waits until the collector lists it as capturing.
        func startAgent(_ extra: [String: String] = [:], arguments: [String] = [], environment: [String: String] = [:]) throws {
            configPath = writeConfig(lines(extra))
            agent = try AgentProcess(["run", "--config", configPath] + arguments, environment: environment)
            XCTAssertTrue(eventually { self.collector.state(agent: self.agentID) == "capturing" },
                          "agent not capturing: \(collector.agent(agentID))\n\(agent!.stderr)")
        }

        /// Waits until the agent's status shows `rules` rules installed.
        func waitForRules(_ n: Int) {
            XCTAssertTrue(eventually { self.collector.counter(agent: self.agentID, "rules") == n }, agent?.stderr ?? "")
        }

        func stopAgent() {
            guard let agent, agent.isRunning else { return }
            agent.signal(SIGTERM)
            XCTAssertTrue(eventually(timeout: 10) { !agent.isRunning }, agent.stderr)
            XCTAssertEqual(agent.exitCode, 0, agent.stderr)
        }

        deinit {
            if let agent, agent.isRunning { agent.signal(SIGKILL) }
            unlink(configPath)
        }
    }

    func testEveryAcceptedVariantArrivesAsTheRightAggregatesAndNothingElse() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [
            ("GET", "api.example.com", "/v1/users/*", "users", "get-user"),
            ("", "*.example.com", "/v1/*", "api", "any-v1"),
            ("POST", "pay.example.net", "/charge", "pay", "charge"),
        ])
        try s.startAgent(["forward_raw_events": "on"])
        s.waitForRules(3)
        let variants = [
            "0\tGET\tapi.example.com\t/v1/users/1\t10",
            "0  GET   api.example.com   /v1/users/2   20\n",
            "0\tGET\thttps://api.example.com\t/v1/users/3?token=secret\t30\r\n",
            "0\tGET\tapi.example.com:8443\t/v1/users/4\t40.5",
            "1\tGET\thttps://api.example.com/v1/users/5?q=1\t50",
            "1 PUT http://x.example.com:8080/v1/orders 5\n0\tPOST\tpay.example.net\t/charge\t7",
            "0\tGET\tAPI.EXAMPLE.COM\t/v1/users/6\t.5",
        ]
        let junk = ["3\tGET\th\t/p\t1", "0\tGET\th\t/p", "0\tGET\th\t/p\tslow", "1\tGET\tnot-a-url\t1",
                    "0\tGET\tother.org\t/v1/x\t1", "0\tDELETE\tapi.example.com\t/v2/users\t1"]
        for d in variants + junk { s.udp.send(d) }
        XCTAssertTrue(eventually { s.collector.measuredCount(project: self.project) == 8 },
                      "\(s.collector.measurements(project: project))")
        XCTAssertEqual(s.collector.measuredCount(project: project, monitor: "users", check: "get-user"), 6)
        XCTAssertEqual(s.collector.measuredCount(project: project, monitor: "api", check: "any-v1"), 1)
        XCTAssertEqual(s.collector.measuredCount(project: project, monitor: "pay", check: "charge"), 1)
        let users = s.collector.measurements(project: project).filter { $0["check"] as? String == "get-user" }
        XCTAssertEqual(users.compactMap { $0["min_ms"] as? Double }.min() ?? -1, 0.5, accuracy: 0.01)
        XCTAssertEqual(users.compactMap { $0["max_ms"] as? Double }.max() ?? -1, 50, accuracy: 0.5)
        XCTAssertEqual(users.compactMap { $0["sum_ms"] as? Double }.reduce(0, +), 150.5 + 0.5, accuracy: 1)
        XCTAssertTrue(users.allSatisfy { $0["source"] as? String == "ipa" && $0["agent"] as? String == s.agentID })
        // Malformed and unmatched: counted by the agent, never forwarded.
        XCTAssertTrue(eventually {
            s.collector.counter(agent: s.agentID, "drops_parse") == 4 && s.collector.counter(agent: s.agentID, "drops_unmatched") == 2
        }, "\(s.collector.agent(s.agentID))")
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "drops_parse_bad_version"), 1)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "drops_parse_field_count"), 1)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "drops_parse_duration"), 1)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "drops_parse_bad_url"), 1)
        // Raw events: the 8 matched records only, redacted, with their rule.
        XCTAssertTrue(eventually { s.collector.events(project: self.project).count == 8 })
        let events = s.collector.events(project: project)
        let paths = Set(events.compactMap { $0["path"] as? String })
        XCTAssertEqual(paths, ["/v1/users/:id", "/v1/orders", "/charge"])
        XCTAssertFalse(events.contains { ($0["path"] as? String ?? "").contains("?") || ($0["host"] as? String) == "other.org" })
        XCTAssertEqual(events.filter { $0["check"] as? String == "get-user" }.count, 6)
        s.stopAgent()
    }

    /// The collector's configuration view shows what the agent runs, with
    /// where each value came from, and follows a change; the access key
    /// never leaves the agent.
    func testTheConfigurationViewShowsTheAgentsOwnValuesAndTheirOrigins() throws {
        let s = try System(project: project)
        try s.startAgent(arguments: ["--set", "aggregation_interval_ms=5000"],
                         environment: ["VIGIL_NET_SEND_QUEUE2_SIZE": "777"])
        let id = s.agentID
        func entry(_ key: String) -> [String: Any]? {
            (s.collector.api("GET", "/agents/\(id)/config").object["config"] as? [[String: Any]])?
                .first { $0["key"] as? String == key }
        }
        XCTAssertTrue(eventually { entry("aggregation_interval_ms")?["origin"] as? String == "command_line" },
                      "\(String(describing: entry("aggregation_interval_ms")))")
        XCTAssertEqual(entry("aggregation_interval_ms")?["value"] as? String, "5000")
        XCTAssertEqual(entry("net_send_queue2_size")?["value"] as? String, "777")
        XCTAssertEqual(entry("net_send_queue2_size")?["origin"] as? String, "environment")
        XCTAssertEqual(entry("net_send_queue2_size")?["source"] as? String, "VIGIL_NET_SEND_QUEUE2_SIZE")
        let line = s.lines().keys.sorted().firstIndex(of: "ipa_port")! + 1
        XCTAssertEqual(entry("ipa_port")?["value"] as? String, "\(s.ipaPort)")
        XCTAssertEqual(entry("ipa_port")?["origin"] as? String, "file")
        XCTAssertEqual(entry("ipa_port")?["source"] as? String, "\(s.configPath):\(line)")
        XCTAssertEqual(entry("net_send_queue1_size")?["origin"] as? String, "default")
        let access = try XCTUnwrap(entry("access_key"))
        XCTAssertTrue(access["value"] is NSNull, "\(access)")
        XCTAssertFalse(s.collector.api("GET", "/agents/\(id)/config").body.contains(s.key.text.split(separator: ".").last!))
        // A change through the collector: the agent runs it and the view says so.
        let r = s.collector.api("PUT", "/agents/\(id)/config", body: #"{"aggregation_interval_ms": 2000}"#)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertTrue(eventually { entry("aggregation_interval_ms")?["origin"] as? String == "agent" })
        XCTAssertEqual(entry("aggregation_interval_ms")?["value"] as? String, "2000")
        s.stopAgent()
    }

    func testKill9AndRestartOfTheCollectorLosesNothingAndStoresNothingTwice() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, (0..<5).map { ("", "*", "/k/\($0)", "m", "k\($0)") })
        try s.startAgent(["aggregation_interval_ms": "200"])
        s.waitForRules(5)
        var sent = 0
        func blast(_ n: Int) {
            for i in 0..<n { s.udp.send("0\tGET\th\t/k/\(i % 5)\t\(i % 30 + 1)") }
            sent += n
            usleep(2_000)
        }
        // Traffic runs while the collector is killed: batches are in flight.
        for _ in 0..<10 { blast(200) }
        s.collector.kill9()
        for _ in 0..<10 { blast(200) }
        usleep(300_000)
        try s.collector.start()
        for _ in 0..<10 { blast(200) }
        XCTAssertTrue(eventually(timeout: 30) { s.collector.measuredCount(project: self.project) >= sent },
                      "measured \(s.collector.measuredCount(project: project)) of \(sent)\n\(s.agent!.stderr)")
        // Settle: nothing more arrives later (a duplicate would show up here).
        s.stopAgent()
        XCTAssertEqual(s.collector.measuredCount(project: project), sent, "exactly once")
        XCTAssertTrue(s.agent!.stderr.contains("uplink: session lost"), s.agent!.stderr)
    }

    func testFailoverToTheSecondCollector() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "*", "*", "m", "all")])
        // A second collector of the fleet: same port on 127.0.0.2, same keys and rules.
        s.collector.kill9()
        let second = try RealCollector(host: "127.0.0.2", sessionPort: s.collector.sessionPort, copying: s.collector)
        try s.collector.start()
        try second.start()
        try s.startAgent(["server_host": "127.0.0.1, 127.0.0.2"])
        s.waitForRules(1)
        for i in 0..<50 { s.udp.send("0\tGET\th\t/a\t\(i + 1)") }
        XCTAssertTrue(eventually { s.collector.measuredCount(project: self.project) == 50 })
        // Everything acknowledged before the first goes away.
        XCTAssertTrue(eventually {
            s.collector.counter(agent: s.agentID, "inflight_batches") == 0 && s.collector.counter(agent: s.agentID, "queue1_depth") == 0
        })
        s.collector.kill9()
        XCTAssertTrue(eventually { second.agent(s.agentID)["connected"] as? Bool == true }, s.agent!.stderr)
        for i in 0..<30 { s.udp.send("0\tGET\th\t/a\t\(i + 1)") }
        XCTAssertTrue(eventually { second.measuredCount(project: self.project) == 30 }, "\(second.measurements(project: project))")
        XCTAssertEqual(second.counter(agent: s.agentID, "collector_index"), 2)
        XCTAssertGreaterThanOrEqual(second.counter(agent: s.agentID, "reconnects") ?? 0, 1)
        s.stopAgent()
        second.kill9()
    }

    func testQueueOverflowIsCountedExactly() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "*", "*", "m", "all")])
        // Memory only (no spool): what the queue cannot hold is dropped, counted.
        try s.startAgent(["forward_raw_events": "on", "net_send_queue2_size": "40", "aggregation_interval_ms": "1h",
                          "spool_max_bytes": "0"])
        s.waitForRules(1)
        s.collector.kill9()
        XCTAssertTrue(eventually { s.agent!.stderr.contains("uplink: session lost") })
        // 100 matched records while the collector is down: 40 raw events fit queue 2, 60 are dropped.
        for i in 0..<100 { s.udp.send("0\tGET\th\t/item/\(i)\t1") }
        usleep(300_000)
        try s.collector.start()
        XCTAssertTrue(eventually { s.collector.counter(agent: s.agentID, "drops_queue2") == 60 }, "\(s.collector.agent(s.agentID))")
        XCTAssertTrue(eventually { s.collector.events(project: self.project).count == 40 })
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "drops_queue1"), 0)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "records_matched"), 100)
        // The aggregate still counts all 100 (it lives in queue 1): SIGTERM closes the window.
        s.stopAgent()
        XCTAssertEqual(s.collector.measuredCount(project: project), 100)
        XCTAssertEqual(s.collector.events(project: project).count, 40, "nothing beyond what the queue held")
    }

    func testQueueOverflowGoesToTheSpoolInstead() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "*", "*", "m", "all")])
        try s.startAgent(["forward_raw_events": "on", "net_send_queue2_size": "40", "aggregation_interval_ms": "1h"])
        s.waitForRules(1)
        s.collector.kill9()
        XCTAssertTrue(eventually { s.agent!.stderr.contains("uplink: session lost") })
        // 100 matched records while the collector is down: the queue holds 40, the spool the rest.
        for i in 0..<100 { s.udp.send("0\tGET\th\t/item/\(i)\t1") }
        usleep(300_000)
        try s.collector.start()
        XCTAssertTrue(eventually(timeout: 30) { s.collector.events(project: self.project).count == 100 },
                      "\(s.collector.events(project: project).count)\n\(s.agent!.stderr)")
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "drops_queue2"), 0)
        s.stopAgent()
        XCTAssertEqual(s.collector.measuredCount(project: project), 100)
        XCTAssertEqual(s.collector.events(project: project).count, 100, "each once")
    }

    func testRemoteCaptureStopStartAndConfigUpdatesThroughTheAPI() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "*", "*", "m", "all")])
        try s.startAgent()
        s.waitForRules(1)
        let id = s.agentID

        // Capture stop: the agent stops receiving, and says so.
        var r = s.collector.api("POST", "/agents/\(id)/capture", body: "{\"action\":\"stop\"}")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertTrue(eventually { s.collector.state(agent: id) == "stopped" })
        let before = s.collector.counter(agent: id, "datagrams") ?? -1
        s.udp.send("0\tGET\th\t/a\t1")
        usleep(400_000)
        XCTAssertEqual(s.collector.counter(agent: id, "datagrams"), before, "not received while stopped")
        r = s.collector.api("POST", "/agents/\(id)/capture", body: "{\"action\":\"start\"}")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertTrue(eventually { s.collector.state(agent: id) == "capturing" })

        // A valid update: the UDP port moves, the old one closes.
        let newPort = freeUDPPort()
        r = s.collector.api("PUT", "/agents/\(id)/config", body: "{\"ipa_port\": \(newPort), \"status_interval_ms\": \"300\"}")
        XCTAssertEqual(r.status, 200, r.body)
        UDPClient(port: newPort).send("0\tGET\th\t/a\t1")
        XCTAssertTrue(eventually { (s.collector.counter(agent: id, "records") ?? 0) == 1 }, "\(s.collector.agent(id))")
        s.udp.send("0\tGET\th\t/a\t1")
        usleep(400_000)
        XCTAssertEqual(s.collector.counter(agent: id, "records"), 1, "the old port is closed")

        // Invalid at the collector: refused there, per key, never sent.
        r = s.collector.api("PUT", "/agents/\(id)/config", body: "{\"ipa_port\": 70000, \"access_key\": \"x.y\"}")
        XCTAssertEqual(r.status, 422, r.body)
        let keys = (r.object["detail"] as? [String: Any])?["keys"] as? [String: Any] ?? [:]
        XCTAssertEqual(Set(keys.keys), ["ipa_port", "access_key"], r.body)

        // Invalid at the agent (the port is taken): refused per key, state wrong_configuration.
        let busy = try UDPSocketHolder()
        r = s.collector.api("PUT", "/agents/\(id)/config", body: "{\"ipa_port\": \(busy.port)}")
        XCTAssertEqual(r.status, 422, r.body)
        XCTAssertTrue(r.body.contains("EADDRINUSE"), r.body)
        XCTAssertTrue(r.body.contains("\"by\":\"agent\""), r.body)
        XCTAssertTrue(eventually { s.collector.state(agent: id) == "wrong_configuration" })
        let messages = s.collector.agent(id)["state_messages"] as? [String] ?? []
        XCTAssertTrue(messages.contains { $0.contains("ipa_port") }, "\(messages)")
        // The running configuration stays: still receiving on the new port.
        UDPClient(port: newPort).send("0\tGET\th\t/a\t1")
        XCTAssertTrue(eventually { (s.collector.counter(agent: id, "records") ?? 0) == 2 })
        XCTAssertFalse(s.collector.agent(id).description.contains(s.key.text.suffix(43)), "the secret never comes back")
        s.stopAgent()
    }

    func testSIGHUPWithABrokenFileKeepsTheOldConfig() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "*", "*", "m", "all")])
        try s.startAgent()
        s.waitForRules(1)
        let original = try String(contentsOfFile: s.configPath, encoding: .utf8)
        try (original + "ipa_port = 99999\n").write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.agent!.signal(SIGHUP)
        XCTAssertTrue(eventually { s.collector.state(agent: s.agentID) == "wrong_configuration" }, s.agent!.stderr)
        let messages = s.collector.agent(s.agentID)["state_messages"] as? [String] ?? []
        XCTAssertTrue(messages.contains { $0.contains(s.configPath) && $0.contains("ipa_port") }, "\(messages)")
        // Still capturing on the old port.
        s.udp.send("0\tGET\th\t/a\t1")
        XCTAssertTrue(eventually { s.collector.counter(agent: s.agentID, "records") == 1 })
        XCTAssertTrue(s.agent!.isRunning)
        // Restore the file: back to capturing.
        try original.write(toFile: s.configPath, atomically: true, encoding: .utf8)
        s.agent!.signal(SIGHUP)
        XCTAssertTrue(eventually { s.collector.state(agent: s.agentID) == "capturing" })
        s.stopAgent()
    }
}

/// A UDP port held open by the test (to make a bind fail).
final class UDPSocketHolder {
    let fd: Int32
    let port: UInt16
    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var out = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &out) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: out.sin_port)
    }
    deinit { close(fd) }
}
