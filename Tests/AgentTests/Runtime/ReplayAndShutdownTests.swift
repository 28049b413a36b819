// File mode (replay) and shutdown, in process: every batch acknowledged
// before a replay exits 0; a replay with no collector exits non-zero with
// the reason; SIGTERM's drain delivers what was queued, or gives up after
// the drain limit and still exits 0.
import XCTest
import Reactor
import Wire
@testable import Agent

func writeTempFile(_ text: String) -> String {
    let path = "/tmp/vigil-agent-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).ipa"
    let f = fopen(path, "w")!
    fputs(text, f)
    fclose(f)
    return path
}

final class ReplayAndShutdownTests: XCTestCase {
    let rules = [rule("", "*", "/a/*", "m", "a"), rule("", "*", "/b", "m", "b")]

    func testReplaySendsEverythingAndWaitsForTheAcks() throws {
        var lines = (0..<5000).map { "0\tGET\th\t/a/\($0)\t\($0 % 100)" }
        lines += ["1 GET http://h/b?x=1 3", "garbage", "0\tGET\th\t/unmatched\t1",
                  "0\tGET\th\t/" + String(repeating: "z", count: 20_000) + "\t1"]
        let path = writeTempFile(lines.joined(separator: "\n"))   // no final newline
        defer { unlink(path) }
        let h = try AgentHarness(["forward_raw_events": "on"])
        h.collector.patterns = Patterns(version: 3, rules: rules)
        let (config, settings) = try agentConfig(h.lines)
        let runtime = AgentRuntime(loop: h.loop, mode: .replay, source: ConfigSource(path: nil, environment: [:], overrides: []),
                                   config: config, settings: settings)
        var code: Int32?
        runtime.onExit = { code = $0 }
        let driver = ReplayDriver(runtime: runtime, path: path)
        var out = ""
        driver.output = { out += $0 }
        try driver.start()
        XCTAssertFalse(runtime.receiver.isOpen, "replay opens no UDP socket")
        XCTAssertTrue(h.run(until: { code != nil }, timeout: 30))
        XCTAssertEqual(code, 0)
        XCTAssertEqual(h.collector.count("m", "a"), 5000)
        XCTAssertEqual(h.collector.count("m", "b"), 1)
        XCTAssertEqual(h.collector.events.count, 5001, "raw events too, none dropped (reading waits for queue 2)")
        XCTAssertTrue(runtime.uplink.isDrained)
        XCTAssertTrue(out.contains("read lines=5004 records=5002 matched=5001"), out)
        XCTAssertTrue(out.contains("bad_version=1"), out)
        XCTAssertTrue(out.contains("oversize=1"), out)
        XCTAssertTrue(out.contains("unmatched=1"), out)
        XCTAssertTrue(out.contains("queue1=0 queue2=0"), out)
        XCTAssertTrue(out.contains("acknowledged batches=\(runtime.uplink.counters.batchesSent)"), out)
    }

    func testReplayWithoutACollectorExitsNonZeroNamingTheReason() throws {
        let path = writeTempFile("0\tGET\th\t/a/1\t1\n")
        defer { unlink(path) }
        let h = try AgentHarness(["server_host": "127.0.0.1, 127.0.0.3"], startCollector: false, collectorPort: freeTCPPort())
        let (config, settings) = try agentConfig(h.lines)
        let runtime = AgentRuntime(loop: h.loop, mode: .replay, source: ConfigSource(path: nil, environment: [:], overrides: []),
                                   config: config, settings: settings)
        var code: Int32?
        runtime.onExit = { code = $0 }
        let driver = ReplayDriver(runtime: runtime, path: path)
        driver.output = { _ in }
        try driver.start()
        XCTAssertTrue(h.run(until: { code != nil }, timeout: 10))
        XCTAssertEqual(code, ReplayDriver.ExitCode.unreachable)
        XCTAssertTrue(driver.failure?.contains("no collector reachable") ?? false, driver.failure ?? "")
        XCTAssertTrue(driver.failure?.contains("refused") ?? false, driver.failure ?? "")
    }

    func testShutdownDrainsQueuedDataThenExitsZero() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(rules, version: 1)
        h.send((0..<50).map { "0\tGET\th\t/a/\($0)\t1" })
        h.collector.acknowledge = false
        h.runtime.beginShutdown(reason: "SIGTERM")
        XCTAssertFalse(h.runtime.receiver.isOpen, "ingest stops at once")
        h.spin(0.2)
        XCTAssertNil(h.exitCode, "waits for the acknowledgement")
        h.collector.ackAll()
        XCTAssertTrue(h.run(until: { h.exitCode != nil }, timeout: 3))
        XCTAssertEqual(h.exitCode, 0)
        XCTAssertEqual(h.collector.count("m", "a"), 50, "the open window was closed and delivered")
    }

    func testShutdownGivesUpAfterTheDrainLimit() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(rules, version: 1)
        h.send(["0\tGET\th\t/a/1\t1"])
        h.collector.stop()
        let t0 = Clock.monotonic()
        h.runtime.beginShutdown(reason: "SIGTERM")
        XCTAssertTrue(h.run(until: { h.exitCode != nil }, timeout: 10))
        let took = Clock.monotonic() - t0
        XCTAssertEqual(h.exitCode, 0)
        XCTAssertGreaterThanOrEqual(took, AgentRuntime.drainSeconds - 0.1)
        XCTAssertLessThan(took, AgentRuntime.drainSeconds + 3)
    }
}
