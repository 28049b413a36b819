// AgentHarness: an AgentRuntime on its own loop, configured from text like
// a file, with a UDP sender for instrumentation datagrams and a
// TestCollector on the same loop — everything on loopback, driven with
// `run(until:)` so tests stop by themselves.
import XCTest
import ConfigFile
import Reactor
import Wire
@testable import Agent
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// A UDP port that was free a moment ago (bound to 0, read, closed).
func freeUDPPort() -> UInt16 {
    let s = try! UDPSocket.loopback(port: 0)
    defer { s.close() }
    return s.localAddress.port
}

/// A TCP port that was free a moment ago.
func freeTCPPort() -> UInt16 {
    let loop = EventLoop()
    let l = try! TCPListener(loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)) { fd, _ in Syscalls.close(fd) }
    defer { l.close() }
    return l.localAddress.port
}

/// Sends datagrams to 127.0.0.1:port.
final class UDPClient {
    let fd: Int32
    let destination: SocketAddress

    init(port: UInt16, ipv6: Bool = false) {
        destination = try! SocketAddress(ip: ipv6 ? "::1" : "127.0.0.1", port: port)
        fd = socket(destination.family, Int32(SOCK_DGRAM.rawValue), 0)
        precondition(fd >= 0)
    }

    deinit { close(fd) }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = destination.withSockaddr { sa, len in
            bytes.withUnsafeMutableBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, len) }
        }
    }
}

/// Builds a configuration the way a file would give it.
func agentConfig(_ lines: [String: String]) throws -> (Configuration, AgentSettings) {
    let text = lines.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n")
    let config = try AgentSchema.schema.load(text: text, path: "test.conf")
    return (config, try AgentSettings(config))
}

final class AgentHarness {
    let loop = EventLoop()
    let collector: TestCollector
    let ipaPort: UInt16
    var lines: [String: String]
    private(set) var runtime: AgentRuntime!
    private(set) var exitCode: Int32?
    private(set) var events: [AgentRuntime.Event] = []
    lazy var udp = UDPClient(port: ipaPort)

    /// `overrides` replace or add configuration lines. The collector is
    /// started unless `startCollector` is false.
    init(_ overrides: [String: String] = [:], startCollector: Bool = true, collectorPort: UInt16? = nil) throws {
        collector = TestCollector(loop: loop)
        if startCollector { try collector.start(port: collectorPort) }
        let port = collectorPort ?? (startCollector ? collector.port : freeTCPPort())
        ipaPort = freeUDPPort()
        lines = [
            "server_host": "127.0.0.1", "server_port": "\(port)", "access_key": collector.key.text,
            "ipa_port": "\(ipaPort)", "aggregation_interval_ms": "3600000", "status_interval_ms": "200",
            "schedule_sync_interval_ms": "200", "reconnect_interval_min": "100", "reconnect_interval_max": "200",
            "tcp_connection_timeout": "2000", "log_level": "error",
        ]
        for (k, v) in overrides { lines[k] = v }
    }

    func start(mode: AgentRuntime.Mode = .run) throws {
        let (config, settings) = try agentConfig(lines)
        runtime = AgentRuntime(loop: loop, mode: mode, source: ConfigSource(path: nil, environment: [:], overrides: []),
                               config: config, settings: settings)
        runtime.onExit = { [unowned self] code in self.exitCode = code }
        runtime.onEvent = { [unowned self] e in self.events.append(e) }
        try runtime.start()
    }

    /// Runs the loop until `condition` holds (false after `timeout` s).
    @discardableResult
    func run(until condition: () -> Bool, timeout: Double = 10) -> Bool {
        loop.run(until: condition, timeout: timeout)
    }

    /// Runs the loop for `seconds` regardless (a timer wakes it on time).
    func spin(_ seconds: Double) {
        let end = Clock.monotonic() + seconds
        let wake = TimerWatcher(loop: loop) { _ in }
        wake.start(after: seconds)
        defer { wake.stop() }
        loop.run(until: { Clock.monotonic() >= end }, timeout: seconds + 1)
    }

    func connected() -> Bool { runtime.uplink.isEstablished && runtime.patternsSynced }

    /// Sends the rules and waits until the agent has installed them.
    func install(_ rules: [Wire.PatternRule], version: UInt64) {
        collector.push(Patterns(version: version, rules: rules))
        XCTAssertTrue(run(until: { self.runtime.pipeline.patterns.version == version }), "rules \(version) not installed")
    }

    /// Sends each text as one datagram and waits until all were ingested.
    func send(_ datagrams: [String], file: StaticString = #filePath, line: UInt = #line) {
        let before = runtime.pipeline.counters.datagrams
        for d in datagrams { udp.send(d) }
        let want = before + UInt64(datagrams.count)
        XCTAssertTrue(run(until: { self.runtime.pipeline.counters.datagrams >= want }, timeout: 5),
                      "datagrams not ingested: \(runtime.pipeline.counters.datagrams) of \(want)", file: file, line: line)
    }

    deinit {
        runtime?.onExit = nil
        runtime?.onEvent = nil
        runtime?.exit(0)
        collector.stop()
        // Let deferred closes run so descriptors are released.
        loop.run(until: { false }, timeout: 0.05)
    }
}

/// A rule as the collector sends it.
func rule(_ method: String = "", _ host: String, _ path: String, _ monitor: String, _ check: String,
          exclude: Bool = false) -> Wire.PatternRule {
    Wire.PatternRule(method: method, hostGlob: host, pathGlob: path, monitor: monitor, check: check, exclude: exclude)
}
