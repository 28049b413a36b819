// TCP monitors: connect time against a loopback listener, a refused port,
// a name looked up off the loop by the HostResolver ("localhost"), and the
// run cap.
import XCTest
import Reactor
@testable import MonitorModel
@testable import MonitorRunners
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class TCPMonitorTests: XCTestCase {
    var harness: EngineHarness!
    var listenFD: Int32 = -1
    var port: UInt16 = 0

    override func setUpWithError() throws {
        harness = EngineHarness()
        // A plain listening socket: the kernel completes the handshake from
        // the backlog, so nothing on the loop has to accept.
        listenFD = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
        try Syscalls.bind(listenFD, SocketAddress(parsing: "127.0.0.1:0"))
        try Syscalls.listen(listenFD, 64)
        port = try Syscalls.localAddress(listenFD).port
    }

    override func tearDown() {
        harness.shutdown()
        Syscalls.close(listenFD)
    }

    func testConnectToAListener() throws {
        let r = try XCTUnwrap(harness.first(.tcp("tcp-ok", host: "127.0.0.1", port: port)))
        XCTAssertEqual(r.status, .ok, r.message)
        XCTAssertEqual(r.phases.map(\.name), ["connect"])
        XCTAssertGreaterThan(r.phases[0].durationUs, 0)
        XCTAssertLessThan(r.phases[0].durationUs, 1_000_000)
        XCTAssertFalse(harness.engine.isHTTPLoaded, "tcp monitors do not load libcurl")
    }

    func testRefusedPortIsAnError() throws {
        Syscalls.close(listenFD)
        listenFD = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))  // for tearDown
        let r = try XCTUnwrap(harness.first(.tcp("tcp-refused", host: "127.0.0.1", port: port)))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(r.message, "connect failed: 127.0.0.1:\(port): connection refused")
    }

    func testHostNameIsResolvedOffTheLoop() throws {
        let r = try XCTUnwrap(harness.first(.tcp("tcp-name", host: "localhost", port: port)))
        // localhost may list ::1 first, where nothing listens: the next address is tried.
        XCTAssertEqual(r.status, .ok, r.message)
        XCTAssertEqual(r.phases.map(\.name), ["dns", "connect"])
    }

    func testIPv6Literal() throws {
        let fd6 = try Syscalls.socket(AF_INET6, Int32(SOCK_STREAM.rawValue))
        defer { Syscalls.close(fd6) }
        do {
            try Syscalls.bind(fd6, SocketAddress(parsing: "[::1]:0"))
        } catch {
            throw XCTSkip("no IPv6 loopback here: \(error)")
        }
        try Syscalls.listen(fd6, 8)
        let p6 = try Syscalls.localAddress(fd6).port
        let r = try XCTUnwrap(harness.first(.tcp("tcp-v6", host: "::1", port: p6)))
        XCTAssertEqual(r.status, .ok, r.message)
    }

    func testEnvironmentHostIsRefused() throws {
        var options = MonitorEngine.Options()
        options.environment = { $0 == "DB_HOST" ? "127.0.0.1" : nil }
        options.policy.environment = ["DB_HOST"]
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        let r = try XCTUnwrap(h.first(.tcp("tcp-env", host: "${env:DB_HOST}", port: port)))
        XCTAssertEqual(r.status, .refused, r.message)
        XCTAssertEqual(r.message, "spec.host: ${env:…} is never substituted into a host")
    }
}
