// Trust between real processes on loopback (docs/SECURITY.md): a relay
// that records an agent's first handshake message and replays it cannot
// disturb the agent; two agents with one id do not take turns — the second
// is refused and backs off; an agent pinned to one collector's key talks to
// no other collector.
import Foundation
import XCTest
import Wire
@testable import Agent
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// A TCP relay on loopback: every byte the agent sends goes to `target`
/// and back, and the first `record` bytes the first client sent are kept.
/// Blocking sockets on threads of its own; the test stops it by closing.
final class RecordingRelay {
    let port: UInt16
    private let listenFD: Int32
    private let target: UInt16
    private let record: Int
    private let lock = NSLock()
    private var _recorded: [UInt8] = []
    private var fds: [Int32] = []

    var recorded: [UInt8] { lock.lock(); defer { lock.unlock() }; return _recorded }

    init(target: UInt16, record: Int) {
        self.target = target
        self.record = record
        port = freeTCPPort()
        listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listenFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = RecordingRelay.address(port)
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(listenFD, 8)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    static func address(_ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        return sa
    }

    static func connectTo(_ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = address(port)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return rc == 0 ? fd : -1
    }

    private func acceptLoop() {
        var first = true
        while true {
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { return }
            let upstream = RecordingRelay.connectTo(target)
            lock.lock(); fds += [client, upstream]; lock.unlock()
            let recording = first
            first = false
            Thread.detachNewThread { [self] in pipe(client, upstream, recording: recording) }
            Thread.detachNewThread { [self] in pipe(upstream, client, recording: false) }
        }
    }

    private func pipe(_ from: Int32, _ to: Int32, recording: Bool) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(from, &buf, buf.count)
            if n <= 0 { shutdown(to, Int32(SHUT_WR)); return }
            if recording {
                lock.lock()
                if _recorded.count < record { _recorded += buf[0..<min(n, record - _recorded.count)] }
                lock.unlock()
            }
            var off = 0
            while off < n {
                let w = buf[off..<n].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { return }
                off += w
            }
        }
    }

    func close() {
        shutdown(listenFD, Int32(SHUT_RDWR))
        Glibc.close(listenFD)
        lock.lock(); let all = fds; fds = []; lock.unlock()
        for fd in all { shutdown(fd, Int32(SHUT_RDWR)) }
    }
}

final class TrustEndToEndTests: XCTestCase {
    func config(_ c: RealCollector, key: AccessKey, name: String, port: UInt16? = nil, stateDir: String? = nil) -> String {
        var lines = [
            "server_host": c.host, "server_port": "\(port ?? c.sessionPort)", "access_key": key.text,
            "agent_name": name, "ipa_port": "\(freeUDPPort())", "status_interval_ms": "200",
            "reconnect_interval_min": "300", "reconnect_interval_max": "400", "log_level": "info",
        ]
        if let stateDir { lines["state_dir"] = stateDir }
        return writeConfig(lines)
    }

    func stateRows(_ c: RealCollector, _ id: String) -> Int {
        (c.api("GET", "/agents/\(id)/states?limit=1000").object["states"] as? [Any])?.count ?? -1
    }

    func testAReplayedFirstMessageLeavesTheRealAgentAlone() throws {
        let c = try RealCollector()
        let key = try c.createKey(project: "acme")
        try c.start()
        // Preamble (5 + 4 bytes for "acme") and message 1 (2 + 48 bytes).
        let relay = RecordingRelay(target: c.sessionPort, record: 9 + 50)
        defer { relay.close() }
        let name = "replayed-\(UInt32.random(in: 0...UInt32.max))"
        let id = HostInfo.agentID(name: name)
        let path = config(c, key: key, name: name, port: relay.port)
        defer { unlink(path) }
        let agent = try AgentProcess(["run", "--config", path])
        defer { agent.signal(SIGKILL) }
        XCTAssertTrue(eventually { c.state(agent: id) == "capturing" }, agent.stderr)
        XCTAssertTrue(eventually { relay.recorded.count == 59 })
        let first = relay.recorded
        XCTAssertEqual(Array(first[0..<5]), [0x56, 0x47, 0x4C, 0x02, 0x04], "a version-2 preamble")
        usleep(300_000)
        let rowsBefore = stateRows(c, id)

        // Ten replays of message 1, each read until the collector answers
        // (message 2: 2 + 48 bytes) or closes, then dropped.
        for _ in 0..<10 {
            let fd = RecordingRelay.connectTo(c.sessionPort)
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = first.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var buf = [UInt8](repeating: 0, count: 256)
            let n = read(fd, &buf, buf.count)
            XCTAssertEqual(n, 50, "the collector answers a replay with a message 2 only the real agent could use")
            close(fd)
        }
        usleep(500_000)
        // The real agent's session is untouched: still connected, no state
        // change, no new row, and the agent never reconnected.
        let agentRecord = c.agent(id)
        XCTAssertEqual(agentRecord["connected"] as? Bool, true)
        XCTAssertEqual(agentRecord["state"] as? String, "capturing")
        XCTAssertEqual(stateRows(c, id), rowsBefore)
        XCTAssertEqual(agent.stderr.components(separatedBy: "uplink established").count - 1, 1, agent.stderr)
        XCTAssertFalse(c.log.contains("agent enrolled agent=\(id)") && c.log.components(separatedBy: "agent enrolled").count > 2, c.log)
    }

    func testTwoAgentsWithOneIDDoNotTakeTurns() throws {
        let c = try RealCollector()
        let key = try c.createKey(project: "acme")
        try c.start()
        // Two hosts cloned with the same name (same machine id here): one
        // agent id, two state directories, so two static keys.
        let name = "clone-\(UInt32.random(in: 0...UInt32.max))"
        let id = HostInfo.agentID(name: name)
        let dirs = (0..<2).map { "/tmp/vigil-clone-\(getpid())-\($0)-\(UInt32.random(in: 0...UInt32.max))" }
        defer { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }
        let paths = dirs.map { config(c, key: key, name: name, stateDir: $0) }
        defer { for p in paths { unlink(p) } }
        let first = try AgentProcess(["run", "--config", paths[0]])
        defer { first.signal(SIGKILL) }
        XCTAssertTrue(eventually { c.state(agent: id) == "capturing" }, first.stderr)
        usleep(300_000)
        let rowsBefore = stateRows(c, id)

        let second = try AgentProcess(["run", "--config", paths[1]])
        defer { second.signal(SIGKILL) }
        XCTAssertTrue(eventually { second.stderr.contains("identity_mismatch") }, second.stderr)
        XCTAssertTrue(second.stderr.contains("enrolled with another static key"), second.stderr)
        // It backs off (reconnect_interval 300–400 ms, growing after three
        // rounds): a handful of attempts in three seconds, not hundreds.
        sleep(3)
        let refusals = second.stderr.components(separatedBy: "identity_mismatch").count - 1
        XCTAssertGreaterThanOrEqual(refusals, 2, second.stderr)
        XCTAssertLessThanOrEqual(refusals, 12, second.stderr)
        XCTAssertTrue(second.stderr.contains("waiting"), second.stderr)
        // The first keeps its session; the agent's state rows do not flap.
        XCTAssertEqual(first.stderr.components(separatedBy: "uplink established").count - 1, 1, first.stderr)
        XCTAssertEqual(c.agent(id)["connected"] as? Bool, true)
        XCTAssertEqual(stateRows(c, id), rowsBefore)
    }

    func testAnAgentPinnedToAnotherCollectorsKeyRefusesToTalk() throws {
        let real = try RealCollector()
        let key = try real.createKey(project: "acme")
        // Another installation: its own data directory, so its own static
        // key; it even holds the same project secret (a copied database
        // without the key file).
        let other = try RealCollector()
        try FileManager.default.copyItem(atPath: real.directory + "/data/vigil.db", toPath: other.directory + "/data/vigil.db")
        try other.start()
        let name = "pinned-\(UInt32.random(in: 0...UInt32.max))"
        let path = config(other, key: key, name: name)
        defer { unlink(path) }
        let agent = try AgentProcess(["run", "--config", path])
        defer { agent.signal(SIGKILL) }
        // The other collector cannot read message 1 (it lacks the pinned
        // key's secret), so it closes; the agent never sent message 3 — its
        // key and Hello — and backs off. (An impostor that answers anyway is
        // caught at message 2: MalformedSessionTests.)
        XCTAssertTrue(eventually { other.log.contains("handshake failed reason=wrong_key") }, other.log)
        XCTAssertTrue(eventually { agent.stderr.contains("a collector of another installation") }, agent.stderr)
        XCTAssertTrue(agent.stderr.contains("no collector reachable; waiting"), agent.stderr)
        XCTAssertFalse(agent.stderr.contains("uplink established"), agent.stderr)
        XCTAssertEqual(other.api("GET", "/agents/\(HostInfo.agentID(name: name))").status, 404, "the other collector learned nothing")
        XCTAssertFalse(other.log.contains("agent enrolled"), other.log)
    }
}
