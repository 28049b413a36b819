// Agent-local policy end to end: a real collector and real agents on
// loopback. What the admin token holder can PUT through the collector's API
// is bounded by each agent's own configuration: exec monitors do not run on
// a default agent (and are reported refused in the API), run only from the
// directories `exec_monitors` names (judged by real path), `${env:VIGIL_*}`
// never reaches a server, and a remote `ipa_bind = 0.0.0.0` or `groups`
// change is refused per key while the socket stays on loopback.
import Foundation
import Glibc
import XCTest
@testable import Agent
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class PolicyEndToEndTests: XCTestCase {
    let project = "policy"

    /// A fresh directory under /tmp, removed after the test.
    func temporaryDirectory() -> String {
        var template = Array("/tmp/vigil-policy-XXXXXX".utf8CString)
        precondition(mkdtemp(&template) != nil)
        let dir = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// An exec monitor script that creates `marker` when started, then
    /// speaks the exec protocol for one step.
    func writeMonitor(_ path: String, marker: String) {
        let text = """
        #!/bin/sh
        touch '\(marker)'
        read -r hello; echo "VIGIL-MONITOR 1"; read -r config
        read -r run; echo ok
        read -r exit_line
        """
        FileManager.default.createFile(atPath: path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: 0o755])
    }

    func execMonitor(_ id: String, _ command: String) -> String {
        #"{"id":"\#(id)","name":"\#(id)","kind":"exec","interval_secs":1,"timeout_secs":1,"#
            + #""spec":{"command":"\#(command)","steps":[{"name":"only","timeout_secs":1}],"config":{}}}"#
    }

    func startAgent(_ collector: RealCollector, key: String, name: String, extra: [String: String] = [:],
                    environment: [String: String] = [:], keyInFile: Bool = true) throws -> (AgentProcess, String, UInt16) {
        let ipaPort = freeUDPPort()
        var lines = [
            "server_host": collector.host, "server_port": "\(collector.sessionPort)",
            "agent_name": name, "ipa_port": "\(ipaPort)", "aggregation_interval_ms": "500",
            "status_interval_ms": "200", "schedule_sync_interval_ms": "300", "reconnect_interval_min": "100",
            "reconnect_interval_max": "200", "log_level": "info",
        ]
        if keyInFile { lines["access_key"] = key }
        for (k, v) in extra { lines[k] = v }
        let config = writeConfig(lines)
        addTeardownBlock { unlink(config) }
        let agent = try AgentProcess(["run", "--config", config], environment: environment)
        let id = HostInfo.agentID(name: name)
        XCTAssertTrue(eventually(timeout: 20) { collector.state(agent: id) != nil && collector.counter(agent: id, "monitors") != nil },
                      "agent did not connect\n\(agent.stderr)")
        return (agent, id, ipaPort)
    }

    func runs(_ collector: RealCollector, _ monitor: String) -> [[String: Any]] {
        collector.api("GET", "/projects/\(project)/monitors/\(monitor)/runs?limit=20").object["runs"] as? [[String: Any]] ?? []
    }

    func detail(_ run: [String: Any]?) -> [String: Any] { run?["detail"] as? [String: Any] ?? [:] }

    /// The local addresses (hex, as /proc shows them) of UDP sockets on `port`.
    func udpAddresses(port: UInt16) -> [String] {
        let hexPort = String(format: "%04X", port)
        var out: [String] = []
        for file in ["/proc/net/udp", "/proc/net/udp6"] {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 1 else { continue }
                let local = fields[1].split(separator: ":")
                if local.count == 2 && local[1] == hexPort { out.append(String(local[0])) }
            }
        }
        return out
    }

    func testDefaultAgentRefusesExecAndRemotePolicyChanges() throws {
        let collector = try RealCollector()
        let key = try collector.createKey(project: project)
        try collector.start()
        let dir = temporaryDirectory()
        let marker = dir + "/ran"
        writeMonitor(dir + "/monitor.sh", marker: marker)
        let put = collector.api("PUT", "/projects/\(project)/monitors",
                                body: #"{"monitors":[\#(execMonitor("shell", dir + "/monitor.sh"))]}"#)
        XCTAssertEqual(put.status, 200, put.body)

        let (agent, id, ipaPort) = try startAgent(collector, key: key.text, name: "policy-\(UInt32.random(in: 0...UInt32.max))")
        defer { if agent.isRunning { agent.signal(SIGKILL) } }

        // Reported refused, with the reason, through the API; never started.
        var list: [[String: Any]] = []
        XCTAssertTrue(eventually(timeout: 20) { list = self.runs(collector, "shell"); return list.count >= 2 },
                      "no runs: \(list)\n\(agent.stderr)")
        XCTAssertEqual(list.first?["agent"] as? String, id)
        XCTAssertEqual(list.first?["ok"] as? Bool, false)
        XCTAssertEqual(detail(list.first)["status"] as? String, "refused", "\(list)")
        XCTAssertEqual(detail(list.first)["message"] as? String, "exec monitors are disabled on this agent (exec_monitors)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the exec monitor ran")
        XCTAssertTrue(eventually { (collector.counter(agent: id, "monitors_refused") ?? 0) >= 2 }, "\(collector.agent(id))")
        XCTAssertEqual(collector.counter(agent: id, "monitors_exec_spawned"), 0)

        // ipa_bind to every address: refused per key by the agent; the socket stays on loopback.
        XCTAssertEqual(udpAddresses(port: ipaPort), ["0100007F"])
        let bind = collector.api("PUT", "/agents/\(id)/config", body: #"{"ipa_bind":"0.0.0.0"}"#)
        XCTAssertEqual(bind.status, 422, bind.body)
        let bindKeys = (bind.object["detail"] as? [String: Any])?["keys"] as? [String: String]
        XCTAssertTrue(bindKeys?["ipa_bind"]?.contains("only loopback addresses") == true, bind.body)
        XCTAssertEqual((bind.object["detail"] as? [String: Any])?["by"] as? String, "agent", bind.body)
        XCTAssertEqual(udpAddresses(port: ipaPort), ["0100007F"], "still on loopback only")

        // groups: not the collector's to change by default.
        let groups = collector.api("PUT", "/agents/\(id)/config", body: #"{"groups":"default, eu"}"#)
        XCTAssertEqual(groups.status, 422, groups.body)
        let groupKeys = (groups.object["detail"] as? [String: Any])?["keys"] as? [String: String]
        XCTAssertTrue(groupKeys?["groups"]?.contains("remote_config") == true, groups.body)

        // The policy keys: refused before they are sent.
        let exec = collector.api("PUT", "/agents/\(id)/config", body: #"{"exec_monitors":"/"}"#)
        XCTAssertEqual(exec.status, 422, exec.body)
        XCTAssertTrue(exec.body.contains("never remotely"), exec.body)

        // What the agent runs: unchanged, and its policy keys shown with a local origin.
        let config = collector.api("GET", "/agents/\(id)/config").object["config"] as? [[String: Any]] ?? []
        func row(_ k: String) -> [String: Any]? { config.first { $0["key"] as? String == k } }
        XCTAssertEqual(row("ipa_bind")?["value"] as? String, "127.0.0.1")
        XCTAssertEqual(row("groups")?["value"] as? String, "default")
        XCTAssertEqual(row("exec_monitors")?["value"] as? String, "off")
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the exec monitor ran")

        // A permitted change still goes through.
        let ok = collector.api("PUT", "/agents/\(id)/config", body: #"{"log_level":"debug"}"#)
        XCTAssertEqual(ok.status, 200, ok.body)
    }

    func testStoredOverridesTheAgentsPolicyRefusesDoNotBlockTheOthers() throws {
        let collector = try RealCollector()
        let key = try collector.createKey(project: project)
        try collector.start()
        // Project defaults stored before the agent connects: one key its
        // default remote_config refuses (groups), one it allows.
        let put = collector.api("PUT", "/projects/\(project)/config",
                                body: #"{"groups":"default, eu","status_interval_ms":"300"}"#)
        XCTAssertTrue([200, 202].contains(put.status), put.body)
        let (agent, id, _) = try startAgent(collector, key: key.text, name: "converge-\(UInt32.random(in: 0...UInt32.max))")
        defer { if agent.isRunning { agent.signal(SIGKILL) } }
        func row(_ k: String) -> [String: Any]? {
            let config = collector.api("GET", "/agents/\(id)/config").object["config"] as? [[String: Any]] ?? []
            return config.first { $0["key"] as? String == k }
        }
        XCTAssertTrue(eventually(timeout: 20) { row("status_interval_ms")?["value"] as? String == "300" },
                      "the allowed default did not converge: \(String(describing: row("status_interval_ms")))\n\(agent.stderr)")
        XCTAssertEqual(row("status_interval_ms")?["origin"] as? String, "project")
        XCTAssertEqual(row("groups")?["value"] as? String, "default", "the refused default is not applied")
        XCTAssertEqual(collector.state(agent: id), "capturing", "a refused stored key does not make the agent wrong_configuration")
        XCTAssertTrue(collector.log.contains("stored overrides not sent"), collector.log)
    }

    func testExecMonitorsRunOnlyInsideTheListedDirectoriesByRealPath() throws {
        let collector = try RealCollector()
        let key = try collector.createKey(project: project)
        try collector.start()
        let allowed = temporaryDirectory(), elsewhere = temporaryDirectory(), markers = temporaryDirectory()
        writeMonitor(allowed + "/inside.sh", marker: markers + "/inside")
        writeMonitor(elsewhere + "/outside.sh", marker: markers + "/outside")
        writeMonitor(elsewhere + "/target.sh", marker: markers + "/link")
        XCTAssertEqual(symlink(elsewhere + "/target.sh", allowed + "/link.sh"), 0)
        let put = collector.api("PUT", "/projects/\(project)/monitors", body: """
            {"monitors":[\(execMonitor("inside", allowed + "/inside.sh")),\(execMonitor("outside", elsewhere + "/outside.sh")),\
            \(execMonitor("link", allowed + "/link.sh"))]}
            """)
        XCTAssertEqual(put.status, 200, put.body)

        let (agent, _, _) = try startAgent(collector, key: key.text, name: "exec-\(UInt32.random(in: 0...UInt32.max))",
                                           extra: ["exec_monitors": allowed])
        defer { if agent.isRunning { agent.signal(SIGKILL) } }

        XCTAssertTrue(eventually(timeout: 20) { FileManager.default.fileExists(atPath: markers + "/inside") },
                      "the script inside the directory did not run\n\(agent.stderr)")
        var ok: [[String: Any]] = []
        XCTAssertTrue(eventually(timeout: 20) { ok = self.runs(collector, "inside"); return ok.contains { $0["step"] as? String == "" } })
        XCTAssertEqual(ok.first { $0["step"] as? String == "" }?["ok"] as? Bool, true, "\(ok)")
        for id in ["outside", "link"] {
            var list: [[String: Any]] = []
            XCTAssertTrue(eventually(timeout: 20) { list = self.runs(collector, id); return !list.isEmpty }, "no runs of \(id)")
            XCTAssertEqual(detail(list.first)["status"] as? String, "refused", "\(id): \(list)")
            XCTAssertTrue((detail(list.first)["message"] as? String ?? "").contains("is outside the allowed directories"), "\(list)")
        }
        XCTAssertTrue((detail(runs(collector, "link").first)["message"] as? String ?? "").contains("(really \(elsewhere)/target.sh)"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: markers + "/outside"), "the script outside ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: markers + "/link"), "the link's target outside ran")
    }

    func testTheAccessKeyNeverReachesAMonitoredServer() throws {
        let server = try RecordingHTTPServer()
        let collector = try RealCollector()
        let key = try collector.createKey(project: project)
        try collector.start()
        let base = "http://127.0.0.1:\(server.port)"
        let put = collector.api("PUT", "/projects/\(project)/monitors", body: """
            {"monitors":[
              {"id":"leak","name":"leak","kind":"http","interval_secs":1,"timeout_secs":1,
               "spec":{"url":"\(base)/leak?k=${env:VIGIL_ACCESS_KEY}","headers":{"X-Key":"${env:VIGIL_ACCESS_KEY}"}}},
              {"id":"header","name":"header","kind":"http","interval_secs":1,"timeout_secs":1,
               "spec":{"url":"\(base)/header","headers":{"X-Key":"${env:VIGIL_ACCESS_KEY}"}}},
              {"id":"listed","name":"listed","kind":"http","interval_secs":1,"timeout_secs":1,
               "spec":{"url":"\(base)/listed?t=${env:PROBE_TOKEN}"}}
            ]}
            """)
        XCTAssertEqual(put.status, 200, put.body)
        // The key comes from the environment, as VIGIL_ACCESS_KEY.
        let (agent, _, _) = try startAgent(collector, key: key.text, name: "env-\(UInt32.random(in: 0...UInt32.max))",
                                           extra: ["monitor_env": "PROBE_TOKEN"],
                                           environment: ["VIGIL_ACCESS_KEY": key.text, "PROBE_TOKEN": "probe-value-1"],
                                           keyInFile: false)
        defer { if agent.isRunning { agent.signal(SIGKILL) } }

        // A listed variable does reach the server (the server works)…
        XCTAssertTrue(eventually(timeout: 20) { server.requests.contains { $0.contains("/listed?t=probe-value-1") } },
                      "no request with the listed variable: \(server.requests)\n\(agent.stderr)")
        for id in ["leak", "header"] {
            var list: [[String: Any]] = []
            XCTAssertTrue(eventually(timeout: 20) { list = self.runs(collector, id); return !list.isEmpty }, "no runs of \(id)")
            XCTAssertEqual(detail(list.first)["status"] as? String, "refused", "\(id): \(list)")
            XCTAssertTrue((detail(list.first)["message"] as? String ?? "").contains("VIGIL_ACCESS_KEY"), "\(list)")
        }
        // …and nothing the server received carries the key, or asked for the refused monitors.
        let secret = String(key.text.split(separator: ".").last!)
        XCTAssertFalse(server.requests.contains { $0.contains(secret) }, "the access key left the agent")
        XCTAssertFalse(server.requests.contains { $0.contains("/leak") || $0.contains("/header") }, "\(server.requests)")
    }
}

/// A minimal HTTP server on 127.0.0.1 in a thread of its own: records each
/// request's head and body as text and answers 200.
final class RecordingHTTPServer {
    let fd: Int32
    let port: UInt16
    private let lock = NSLock()
    private var received: [String] = []
    private var stopped = false
    private var thread: Thread?

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { throw XCTSkip("bind/listen: errno \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: sa.sin_port)
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    deinit {
        lock.lock(); stopped = true; lock.unlock()
        shutdown(fd, Int32(SHUT_RDWR))
        usleep(150_000)  // the accept loop polls every 100 ms
        close(fd)
    }

    var requests: [String] {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    private func serve() {
        while true {
            lock.lock(); let stop = stopped; lock.unlock()
            if stop { return }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            var tv = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var data = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 8192)
            // Headers end with an empty line; these requests have no body.
            while !data.ends(with: Array("\r\n\r\n".utf8)) && data.count < 65536 {
                let n = recv(c, &buf, buf.count, 0)
                if n <= 0 { break }
                data += buf[0..<n]
            }
            lock.lock(); received.append(String(decoding: data, as: UTF8.self)); lock.unlock()
            let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)
            _ = answer.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(c)
        }
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
