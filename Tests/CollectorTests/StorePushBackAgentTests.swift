// Push-back as real agents see it, black-box: `vigil-agent` processes
// with a short silence timeout (`tcp_so_timeout`) fed IPA datagrams,
// connected to a real collector whose SQLite store is write-locked by
// another process and bounded by a small `store_max_pending_rows`. The
// collector stops reading the agents' sessions for several of their
// silence timeouts; its Pings — the first one as soon as reading stops —
// keep each agent on its one session (no reconnect), and once the lock is
// gone every record is stored exactly once.
import Foundation
import Glibc
import XCTest
import Wire
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class StorePushBackAgentTests: XCTestCase {
    func testPausedAgentsKeepTheirOneSessionPastTheirSilenceTimeoutAndEveryRecordIsStoredOnce() throws {
        // The agents ping after 2 s of silence and give up 1 s later; a
        // paused session is sent a Ping every 2 s (a quarter of the 8 s idle
        // timeout). The collector's check due when reading stops may be up
        // to 4 s away, in a phase set by when the session began: eight
        // agents started half a second apart cover those 4 s, so without a
        // Ping as reading stops some agent waits past its 3 s.
        let c = try CollectorProcess(config: ["store_max_pending_rows = 1000", "session_idle_timeout_ms = 8000"])
        defer { c.stop(); c.removeDirectory() }
        let project = "acme"
        let key = c.createKey(project: project)
        // 100 series an agent, 500 ms windows: 1,600 rows a second in all.
        let series = 100, agentCount = 8
        let rules = (0..<series).map { "{\"host\":\"*\",\"path\":\"/p\($0)\",\"monitor\":\"m\",\"check\":\"c\($0)\"}" }
        let put = c.api("PUT", "/projects/\(project)/patterns", body: "{\"patterns\":[\(rules.joined(separator: ","))]}")
        XCTAssertEqual(put.status, 200, put.body)

        var agents: [RealAgent] = []
        defer { for a in agents { a.stop() } }
        for i in 0..<agentCount {
            agents.append(try RealAgent(config: [
                "server_host": "127.0.0.1", "server_port": "\(c.sessionPort)", "access_key": key.text,
                "agent_name": "paused-\(i)", "aggregation_interval_ms": "500", "status_interval_ms": "1000",
                "schedule_sync_interval_ms": "3600000", "reconnect_interval_min": "100", "reconnect_interval_max": "200",
                "tcp_so_timeout": "2000", "log_level": "info",
            ]))
            usleep(500_000)
        }
        var ids: [String] = []
        XCTAssertTrue(c.eventually(timeout: 20) {
            let list = c.api("GET", "/agents?project=\(project)").object["agents"] as? [[String: Any]] ?? []
            ids = list.compactMap { $0["id"] as? String }
            return ids.count == agentCount && ids.allSatisfy { counter(c, $0, "rules") == series }
        }, "agents have their rules: \(agents.map(\.log))")

        // The write lock held elsewhere: nothing commits, pending rows grow.
        let lock = try SQLiteWriteLock(path: c.dataDir + "/vigil.db")

        // 8,000 records a second for 3 s: a record a series every 100 ms.
        let senders = agents.map { UDPSender(port: $0.ipaPort) }
        var sent = 0
        for _ in 0..<30 {
            for udp in senders {
                for i in 0..<series { udp.send("0\tGET\th\t/p\(i)\t3"); sent += 1 }
            }
            usleep(100_000)
        }
        XCTAssertTrue(c.eventually(timeout: 20) { c.metric("vigil_sessions_pushed_back") == Double(agentCount) }, c.log)

        // Five of the agents' silence timeouts with their sessions not read.
        usleep(10_000_000)
        XCTAssertEqual(c.metric("vigil_sessions_pushed_back"), Double(agentCount), "still paused while the lock is held: \(c.log)")
        XCTAssertEqual(c.metric("vigil_handshakes_total"), Double(agentCount), "one session each, no reconnect")

        try lock.release()   // the lock is gone; the store drains
        XCTAssertTrue(c.eventually(timeout: 60) { measuredCount(c, project) >= sent },
                      "measured \(measuredCount(c, project)) of \(sent): \(c.log)")
        // A status with items acknowledged is one from after the drain.
        XCTAssertTrue(c.eventually(timeout: 20) {
            ids.allSatisfy { id in
                (counter(c, id, "items_acked") ?? 0) > 0 && counter(c, id, "inflight_batches") == 0 && counter(c, id, "queue2_depth") == 0
            }
        }, "the agents delivered everything")
        XCTAssertEqual(measuredCount(c, project), sent, "every record exactly once")
        for id in ids {
            XCTAssertEqual(counter(c, id, "drops_kernel"), 0, id)
            XCTAssertEqual(counter(c, id, "reconnects"), 0, id)
        }
        for a in agents {
            XCTAssertTrue(a.isRunning)
            XCTAssertEqual(a.log.components(separatedBy: "uplink established").count - 1, 1, a.log)
        }
        XCTAssertEqual(c.metric("vigil_handshakes_total"), Double(agentCount))
        XCTAssertGreaterThanOrEqual(c.metric("vigil_store_pushbacks_total") ?? 0, Double(agentCount))
        XCTAssertGreaterThan(c.metric("vigil_batches_resubmitted_total") ?? 0, 0)
        XCTAssertEqual(c.metric("vigil_batches_total{outcome=\"duplicate\"}"), 0)
        XCTAssertTrue(c.eventually { c.metric("vigil_sessions_pushed_back") == 0 }, c.log)
        XCTAssertEqual(c.metric("vigil_sessions{phase=\"established\"}"), Double(agentCount))
        XCTAssertTrue(c.eventually { c.log.contains("store drained: push-back over") }, c.log)
    }
}

/// A counter from the agent's latest status as the collector stored it.
private func counter(_ c: CollectorProcess, _ agent: String, _ name: String) -> Int? {
    let status = c.api("GET", "/agents/\(agent)").object["status"] as? [String: Any]
    return (status?["counters"] as? [String: Any])?[name] as? Int
}

/// Sum of `count` over the project's stored measurements.
private func measuredCount(_ c: CollectorProcess, _ project: String) -> Int {
    let rows = c.api("GET", "/measurements?project=\(project)&limit=10000").object["measurements"] as? [[String: Any]] ?? []
    return rows.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
}

/// The built `vigil-agent` (next to `vigil-collector`) as a child process
/// with its own state directory and UDP port; its log collected.
private final class RealAgent {
    let process = Process()
    let ipaPort: UInt16
    let directory: String
    private let lock = NSLock()
    private var _log = ""

    var log: String { lock.lock(); defer { lock.unlock() }; return _log }
    var isRunning: Bool { process.isRunning }

    init(config: [String: String]) throws {
        directory = NSTemporaryDirectory() + "vigil-agent-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        ipaPort = freeUDPPort()
        let lines = config.merging(["ipa_port": "\(ipaPort)"]) { $1 }
        let path = directory + "/agent.conf"
        try (lines.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: CollectorBinary.path).deletingLastPathComponent().appendingPathComponent("vigil-agent")
        process.arguments = ["run", "--config", path]
        process.environment = ["PATH": "/usr/bin:/bin", "VIGIL_STATE_DIR": directory + "/state"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        err.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self, !d.isEmpty else { return }
            self.lock.lock()
            self._log += String(decoding: d, as: UTF8.self)
            self.lock.unlock()
        }
        try process.run()
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// A UDP port that was free a moment ago.
private func freeUDPPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: a.sin_port)
}

/// Sends datagrams to 127.0.0.1:port.
private final class UDPSender {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var address = sockaddr_in()

    init(port: UInt16) {
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
    }

    deinit { close(fd) }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeMutableBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }
}
