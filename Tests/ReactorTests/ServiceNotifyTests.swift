// ServiceNotify: the notify protocol's message formats, the environment's
// reading (watchdog period, WATCHDOG_PID), socket addresses (path and
// abstract), and datagrams arriving at a bound Unix socket from the loop's
// watchdog timer. The programs' use of it is tested black-box in
// AgentTests (ServiceNotifyProcessTests).
import XCTest
@testable import Reactor
#if canImport(Glibc)
import Glibc
import CSystem
#endif

final class ServiceNotifyTests: XCTestCase {
    func testMessageFormats() {
        typealias M = ServiceNotify.Message
        XCTAssertEqual(M.ready(), "READY=1")
        XCTAssertEqual(M.ready(status: "2 sessions"), "READY=1\nSTATUS=2 sessions")
        XCTAssertEqual(M.reloading(monotonicUsec: 123456789), "RELOADING=1\nMONOTONIC_USEC=123456789")
        XCTAssertEqual(M.reloading(monotonicUsec: 5, status: "reloading"), "RELOADING=1\nMONOTONIC_USEC=5\nSTATUS=reloading")
        XCTAssertEqual(M.stopping(), "STOPPING=1")
        XCTAssertEqual(M.stopping(status: "draining"), "STOPPING=1\nSTATUS=draining")
        XCTAssertEqual(M.watchdog(), "WATCHDOG=1")
        XCTAssertEqual(M.watchdog(status: "ok"), "WATCHDOG=1\nSTATUS=ok")
        // A newline in a status would start another assignment.
        XCTAssertEqual(M.status("a\nREADY=1\rb"), "STATUS=a READY=1 b")
    }

    func testEnvironment() {
        typealias S = ServiceNotify.Settings
        XCTAssertNil(S.parse([:], pid: 10))
        XCTAssertNil(S.parse(["NOTIFY_SOCKET": ""], pid: 10))
        XCTAssertEqual(S.parse(["NOTIFY_SOCKET": "/run/n"], pid: 10), S(socket: "/run/n", watchdogInterval: nil))
        XCTAssertEqual(S.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "30000000"], pid: 10)?.watchdogInterval, 15)
        XCTAssertEqual(S.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "10"], pid: 10)?.watchdogInterval, 0.1)
        // Meant for another process (a parent that forked us), or nonsense: off.
        XCTAssertNil(S.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "11"], pid: 10)?.watchdogInterval)
        XCTAssertNil(S.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "0"], pid: 10)?.watchdogInterval)
        XCTAssertNil(S.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "-5"], pid: 10)?.watchdogInterval)
        XCTAssertNil(S.parse(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "1s"], pid: 10)?.watchdogInterval)
    }

    func testAddresses() throws {
        let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        let (path, pathLength) = try ServiceNotify.address("/run/systemd/notify")
        XCTAssertEqual(Int(pathLength), offset + 19 + 1, "a path counts its NUL")
        XCTAssertEqual(Int32(path.sun_family), AF_UNIX)
        let (abs, absLength) = try ServiceNotify.address("@vigil/notify")
        XCTAssertEqual(Int(absLength), offset + 13, "an abstract name: leading NUL, no trailing one")
        withUnsafeBytes(of: abs.sun_path) { XCTAssertEqual(Array($0.prefix(3)), [0, UInt8(ascii: "v"), UInt8(ascii: "i")]) }
        for bad in ["relative/path", "@", "/", "vsock:2:1234", "/" + String(repeating: "x", count: 200)] {
            XCTAssertThrowsError(try ServiceNotify.address(bad), bad) { e in
                XCTAssertTrue("\(e)".contains("NOTIFY_SOCKET \"\(bad)\""), "\(e)")
            }
        }
    }

    /// A bound datagram socket standing in for the service manager.
    private func listener(_ name: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | CSYS_SOCK_NONBLOCK, 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var (addr, len) = try ServiceNotify.address(name)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) } }
        XCTAssertEqual(r, 0, "bind: errno \(errno)")
        return fd
    }

    private func receive(_ fd: Int32) -> [String] {
        var out: [String] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out.append(String(decoding: buf[0..<n], as: UTF8.self))
        }
    }

    func testDatagramsReachPathAndAbstractSocketsAndWatchdogPingsFromTheLoop() throws {
        let path = "/tmp/vigil-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        for name in [path, "@vigil-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"] {
            let rx = try listener(name)
            defer { close(rx) }
            let loop = EventLoop()
            let n = try ServiceNotify(settings: .init(socket: name, watchdogInterval: 0.02))
            var status = "starting"
            n.statusText = { status }
            n.ready()
            XCTAssertEqual(receive(rx), ["READY=1\nSTATUS=starting"])
            n.startTimer(loop: loop)
            var got: [String] = []
            XCTAssertTrue(loop.run(until: { got += receive(rx); return got.count >= 2 }, timeout: 10), "\(got)")
            XCTAssertTrue(got.allSatisfy { $0 == "WATCHDOG=1" }, "status unchanged: plain pings \(got)")
            status = "2 sessions"
            got = []
            XCTAssertTrue(loop.run(until: { got += receive(rx); return got.count >= 2 }, timeout: 10), "\(got)")
            XCTAssertTrue(got.contains("WATCHDOG=1\nSTATUS=2 sessions"), "\(got)")
            XCTAssertEqual(got.filter { $0.contains("STATUS=") }.count, 1, "a status is sent when it changes: \(got)")
            XCTAssertTrue(got.allSatisfy { $0.hasPrefix("WATCHDOG=1") }, "\(got)")
            n.reloading()
            n.ready()
            got = receive(rx).filter { $0 != "WATCHDOG=1" }
            XCTAssertEqual(got.count, 2, "\(got)")
            XCTAssertTrue(got[0].hasPrefix("RELOADING=1\nMONOTONIC_USEC="), got[0])
            XCTAssertEqual(got[1], "READY=1\nSTATUS=2 sessions")
            n.stopping()
            XCTAssertEqual(receive(rx).filter { $0 != "WATCHDOG=1" }, ["STOPPING=1\nSTATUS=stopping"])
            loop.run(until: { false }, timeout: 0.1)
            XCTAssertEqual(receive(rx), [], "no pings after STOPPING")
            XCTAssertEqual(n.dropped, 0)
        }
    }

    func testNoListenerCountsDropsAndNeverBlocks() throws {
        let n = try ServiceNotify(settings: .init(socket: "/tmp/vigil-no-such-socket-\(getpid())", watchdogInterval: nil))
        n.ready()
        n.stopping()
        XCTAssertEqual(n.sent, 0)
        XCTAssertEqual(n.dropped, 2)
    }
}
