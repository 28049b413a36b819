// StatsD through the running agent: datagrams on `statsd_port` and on the
// `statsd_socket` Unix socket arrive at the (test) collector as `statsd`
// aggregates with the window, the status carries the StatsD counters, and
// the sockets follow `statsd_port` and `capture` while running.
import XCTest
import ConfigFile
import Reactor
import Wire
@testable import Agent
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class StatsDRuntimeTests: XCTestCase {
    func waitForValues(_ h: AgentHarness, _ n: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(h.run(until: { h.runtime.statsd.pipeline.counters.values >= n }, timeout: 5),
                      "values: \(h.runtime.statsd.pipeline.counters.values) of \(n)", file: file, line: line)
    }

    func testUDPAndUnixSocketMetricsArriveAsStatsDAggregates() throws {
        let port = freeUDPPort()
        let path = NSTemporaryDirectory() + "vigil-statsd-\(getpid())-\(port).sock"
        let h = try AgentHarness(["statsd_port": "\(port)", "statsd_socket": path])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        XCTAssertEqual(h.runtime.statsd.localAddresses.map(\.port), [port])
        let udp = UDPClient(port: port)
        udp.send("orders:1|c\norders:1|c|#shop:eu")
        udp.send("checkout:120|ms\n_e{2,2}:ab|cd\nbroken|c")
        // The Unix datagram socket, as a DogStatsD client would use it.
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let sent = "orders:3|c".withCString { s in
            withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, s, 10, 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            } }
        }
        XCTAssertEqual(sent, 10)
        waitForValues(h, 4)
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.aggregates.count == 3 }), "got \(h.collector.aggregates)")
        XCTAssertEqual(h.collector.count("orders", "counter"), 4)
        XCTAssertEqual(h.collector.count("orders", "counter,shop:eu"), 1)
        XCTAssertEqual(h.collector.count("checkout", "timer"), 1)
        XCTAssertEqual(Set(h.collector.aggregates.map(\.source)), ["statsd"])
        let statuses = h.collector.statuses.count
        XCTAssertTrue(h.run(until: { h.collector.statuses.count > statuses }))
        XCTAssertEqual(h.collector.counter("statsd_lines"), 4)
        XCTAssertEqual(h.collector.counter("statsd_events"), 1)
        XCTAssertEqual(h.collector.counter("statsd_drops_parse_value"), 1)
        XCTAssertEqual(h.collector.counter("statsd_drops_parse"), 1)
        XCTAssertEqual(h.collector.counter("statsd_drops_kernel"), 0)
        XCTAssertEqual(h.collector.counter("drops_parse"), 0, "StatsD lines are not IPA drops")
        h.runtime.exit(0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the socket file is removed on exit")
    }

    func testOffByDefaultAndFollowsPortAndCaptureWhileRunning() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertFalse(h.runtime.statsd.isOpen, "statsd_port 0 by default")
        XCTAssertNil(h.collector.counter("statsd_lines"))
        let port = freeUDPPort()
        XCTAssertEqual(h.runtime.update([(key: "statsd_port", value: "\(port)")], origin: .update, what: "test"), [])
        XCTAssertEqual(h.runtime.statsd.localAddresses.map(\.port), [port])
        XCTAssertEqual(h.runtime.update([(key: "capture", value: "off")], origin: .update, what: "test"), [])
        XCTAssertFalse(h.runtime.statsd.isOpen)
        XCTAssertEqual(h.runtime.update([(key: "capture", value: "on")], origin: .update, what: "test"), [])
        XCTAssertTrue(h.runtime.statsd.isOpen)
        // A port another socket holds is refused, naming the key; nothing changes.
        let taken = try UDPSocket.loopback(port: 0)
        defer { taken.close() }
        let errors = h.runtime.update([(key: "statsd_port", value: "\(taken.localAddress.port)")], origin: .update, what: "test")
        XCTAssertEqual(errors.map(\.key), ["statsd_port"])
        XCTAssertEqual(h.runtime.statsd.localAddresses.map(\.port), [port])
        XCTAssertEqual(h.runtime.update([(key: "statsd_port", value: "0")], origin: .update, what: "test"), [])
        XCTAssertFalse(h.runtime.statsd.isOpen)
    }

    func testABadBindAddressIsAConfigError() {
        XCTAssertThrowsError(try agentConfig(["access_key": "acme.\(String(repeating: "A", count: 43))",
                                              "statsd_bind": "not-an-ip", "statsd_port": "8125"])) { e in
            XCTAssertTrue("\(e)".contains("statsd_bind"), "\(e)")
        }
    }
}
