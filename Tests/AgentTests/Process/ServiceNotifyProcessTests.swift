// Both programs under a stand-in service manager: NOTIFY_SOCKET names a
// Unix datagram socket this test binds, WATCHDOG_USEC asks for pings.
// READY=1 must come only once the program's sockets are bound (checked in
// /proc/net), pings must follow, SIGHUP must give RELOADING=1 then READY=1,
// SIGTERM STOPPING=1 and a clean exit.
import Foundation
import XCTest
import Reactor
import Wire
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// The service manager's end of NOTIFY_SOCKET: every datagram, in order.
final class NotifyListener {
    let path: String
    let fd: Int32
    private(set) var messages: [String] = []
    private var cursor = 0

    init() throws {
        path = "/tmp/vigil-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | CSYS_SOCK_CLOEXEC, 0)
        var (addr, len) = try ServiceNotify.address(path)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard r == 0 else { throw SyscallError(call: "bind(\(path))", errno: errno) }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    func environment(watchdogUsec: Int) -> [String: String] {
        ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "\(watchdogUsec)"]
    }

    /// The next message (after the last one returned) that `matches`,
    /// waiting up to `timeout` seconds; nil if none came.
    func next(timeout: Double = 20, _ matches: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            while cursor < messages.count {
                let m = messages[cursor]
                cursor += 1
                if matches(m) { return m }
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(min(left, 1) * 1000) + 1) > 0 else { continue }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { messages.append(String(decoding: buf[0..<n], as: UTF8.self)) }
        }
    }
}

/// Whether 127.0.0.1:port is bound: a TCP listener (state 0A) in
/// /proc/net/tcp, or a UDP socket in /proc/net/udp.
///
/// The kernel writes /proc/net/tcp a page at a time, so a read while other
/// sockets come and go (other tests, other processes) can skip a line: a
/// socket bound the whole time is looked for in up to ten reads.
func loopbackPortBound(_ port: UInt16, tcp: Bool) -> Bool {
    let local = "0100007F:" + String(format: "%04X", port)
    for attempt in 0..<10 {
        if attempt > 0 { usleep(20_000) }
        let table = (try? String(contentsOfFile: tcp ? "/proc/net/tcp" : "/proc/net/udp", encoding: .utf8)) ?? ""
        let found = table.split(separator: "\n").contains { line in
            let f = line.split(separator: " ")
            return f.count > 3 && f[1] == local && (!tcp || f[3] == "0A")
        }
        if found { return true }
    }
    return false
}

final class ServiceNotifyProcessTests: XCTestCase {
    /// The checks both programs share once started.
    private func checkLifecycle(_ n: NotifyListener, _ p: AgentProcess, file: StaticString = #filePath, line: UInt = #line) {
        var pings = 0
        while pings < 2, n.next({ $0.hasPrefix("WATCHDOG=1") }) != nil { pings += 1 }
        XCTAssertEqual(pings, 2, "watchdog pings: \(n.messages)\n\(p.stderr)", file: file, line: line)
        p.signal(SIGHUP)
        let reloading = n.next { $0.hasPrefix("RELOADING=1") }
        XCTAssertNotNil(reloading, "\(n.messages)", file: file, line: line)
        XCTAssertTrue(reloading?.contains("\nMONOTONIC_USEC=") ?? false, reloading ?? "", file: file, line: line)
        XCTAssertNotNil(n.next { $0.hasPrefix("READY=1") }, "READY=1 after the reload: \(n.messages)", file: file, line: line)
        p.signal(SIGTERM)
        XCTAssertNotNil(n.next { $0.hasPrefix("STOPPING=1") }, "\(n.messages)", file: file, line: line)
        p.process.waitUntilExit()
        XCTAssertEqual(p.exitCode, 0, p.stderr, file: file, line: line)
        _ = n.next(timeout: 0.5) { _ in false }  // whatever else the process sent before it exited
        let stopping = n.messages.firstIndex { $0.hasPrefix("STOPPING=1") } ?? 0
        XCTAssertEqual(n.messages[(stopping + 1)...].filter { $0.hasPrefix("WATCHDOG=1") }, [],
                       "no pings after STOPPING=1", file: file, line: line)
    }

    func testCollectorSpeaksTheNotifyProtocol() throws {
        let n = try NotifyListener()
        let dir = "/tmp/vigil-notify-collector-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conf = dir + "/collector.conf"
        try "listen = 127.0.0.1:0\nhttp_listen = 127.0.0.1:0\ndata_dir = \(dir)/data\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let p = try AgentProcess(["run", "--config", conf], environment: n.environment(watchdogUsec: 400_000), binary: "vigil-collector")
        let ready = n.next { $0.hasPrefix("READY=1") }
        XCTAssertEqual(ready, "READY=1\nSTATUS=0 sessions, 0 agents, 0 capturing", p.stderr)
        // The log lines come before READY=1: both ports are bound by then.
        let log = p.stderr
        for marker in ["listening on 127.0.0.1:", "http on 127.0.0.1:"] {
            let port = log.range(of: marker).flatMap { UInt16(log[$0.upperBound...].prefix { $0.isNumber }) }
            XCTAssertNotNil(port, log)
            XCTAssertTrue(loopbackPortBound(port ?? 0, tcp: true), "\(marker) \(port ?? 0) bound at READY=1")
        }
        checkLifecycle(n, p)
    }

    func testAgentSpeaksTheNotifyProtocol() throws {
        let n = try NotifyListener()
        let h = try AgentHarness(startCollector: false)  // ports and a key; no collector: the uplink keeps retrying
        var lines = h.lines
        lines["log_level"] = "info"
        let conf = writeConfig(lines)
        defer { unlink(conf) }
        let p = try AgentProcess(["run", "--config", conf], environment: n.environment(watchdogUsec: 400_000))
        let ready = n.next { $0.hasPrefix("READY=1") }
        XCTAssertNotNil(ready, p.stderr)
        XCTAssertTrue(ready?.hasPrefix("READY=1\nSTATUS=capture on, uplink ") ?? false, ready ?? "")
        XCTAssertTrue(loopbackPortBound(h.ipaPort, tcp: false), "ipa_port \(h.ipaPort) bound at READY=1")
        checkLifecycle(n, p)
    }

    func testWithoutNotifySocketNothingChanges() throws {
        // WATCHDOG_USEC alone (no NOTIFY_SOCKET) is ignored: the agent runs and stops as always.
        let h = try AgentHarness(startCollector: false)
        let conf = writeConfig(h.lines)
        defer { unlink(conf) }
        let p = try AgentProcess(["run", "--config", conf], environment: ["WATCHDOG_USEC": "1000"])
        XCTAssertTrue(eventually(timeout: 20) { loopbackPortBound(h.ipaPort, tcp: false) }, p.stderr)
        p.signal(SIGTERM)
        p.process.waitUntilExit()
        XCTAssertEqual(p.exitCode, 0, p.stderr)
    }
}
