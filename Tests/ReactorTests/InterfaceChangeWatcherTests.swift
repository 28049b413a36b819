// InterfaceChangeWatcher: subscribes on this host, reports a message on its
// socket once per wakeup, and closes cleanly. A real interface change needs
// privileges the tests must not use on the host; a message sent to the
// watcher's netlink port stands in for one (itself privileged for
// NETLINK_ROUTE: skipped when not allowed).
import XCTest
import Glibc
@testable import Reactor
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class InterfaceChangeWatcherTests: XCTestCase {
    private func open(_ loop: EventLoop, _ onChange: @escaping () -> Void) throws -> InterfaceChangeWatcher {
        do {
            return try InterfaceChangeWatcher(loop: loop, onChange: onChange)
        } catch let e as SyscallError where e.errno == EAFNOSUPPORT || e.errno == EPERM || e.errno == EACCES {
            throw XCTSkip("no rtnetlink socket here: \(e)")
        }
    }

    func testOpensWatchesAndClosesOnce() throws {
        let loop = EventLoop()
        let before = loop.activeWatchers
        let w = try open(loop) {}
        XCTAssertTrue(w.isOpen)
        XCTAssertGreaterThanOrEqual(w.fd, 0)
        XCTAssertEqual(loop.activeWatchers, before + 1)
        w.close()
        w.close()
        XCTAssertFalse(w.isOpen)
        XCTAssertEqual(loop.activeWatchers, before)
    }

    func testAMessageOnTheSocketIsOneChange() throws {
        let loop = EventLoop()
        var changes = 0
        let w = try open(loop) { changes += 1 }
        defer { w.close() }
        // The watcher's port id (sockaddr_nl: family, pad, pid, groups), then
        // an NLMSG_NOOP header (len, type, flags, seq, pid) to it from a
        // second socket, three times.
        var me = [UInt32](repeating: 0, count: 3)
        var len = socklen_t(12)
        let rc = me.withUnsafeMutableBytes { getsockname(w.fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len) }
        XCTAssertEqual(rc, 0)
        let sender = try Syscalls.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), 0 /* NETLINK_ROUTE */)
        defer { Syscalls.close(sender) }
        let noop: [UInt32] = [16, 1 /* NLMSG_NOOP, flags 0 */, 0, 0]
        var to: [UInt32] = [UInt32(AF_NETLINK), me[1], 0]
        for _ in 0..<3 {
            let sent = noop.withUnsafeBytes { msg in
                to.withUnsafeMutableBytes { dst in
                    sendto(sender, msg.baseAddress, msg.count, 0, dst.baseAddress!.assumingMemoryBound(to: sockaddr.self), 12)
                }
            }
            if sent < 0 && (errno == EPERM || errno == EACCES) { throw XCTSkip("sending on NETLINK_ROUTE needs CAP_NET_ADMIN") }
            XCTAssertEqual(sent, 16, "errno \(errno)")
        }
        XCTAssertTrue(loop.run(until: { changes > 0 }, timeout: 5))
        // The three messages were drained in that wakeup: no second report.
        _ = loop.run(until: { false }, timeout: 0.2)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(w.changes, 1)
        XCTAssertTrue(w.isOpen)
    }
}
