// The spool's promise on the real system (docs/AGENT.md, "Spool"): a
// vigil-agent process and a vigil-collector process on loopback, records
// flowing at a steady rate from a UDP sender, the collector stopped for
// about 10 s (the 60 s shortened to keep the suite quick; nothing
// in the agent depends on the length) while the agent is restarted —
// with SIGTERM, or killed with kill -9 — and every record counted exactly
// once in the stored aggregates when the collector returns. Also a
// corrupted segment (skipped, counted) and a full spool (oldest dropped,
// counted), both seen through the collector's API and /metrics.
import Foundation
import XCTest
import Wire
@testable import Agent

final class SpoolEndToEndTests: XCTestCase {
    let project = "spool"

    /// Sends one IPA record every millisecond-ish from a thread; pausable,
    /// and it counts exactly what it sent.
    final class Sender: @unchecked Sendable {
        let udp: UDPClient
        private let lock = NSLock()
        private var count = 0
        private var paused = false
        private var stopped = false
        private var thread: Thread?

        init(port: UInt16) { udp = UDPClient(port: port) }

        var sent: Int { lock.withLock { count } }

        func start() {
            let t = Thread { [self] in
                while true {
                    let go = lock.withLock { () -> Bool? in
                        if stopped { return nil }
                        if paused { return false }
                        for _ in 0..<10 { udp.send("0\tGET\th\t/a\t3") }
                        count += 10
                        return true
                    }
                    guard go != nil else { return }
                    usleep(10_000)   // ~1,000 records/s
                }
            }
            thread = t
            t.start()
        }

        /// After it returns, nothing more is sent until `resume`.
        func pause() { lock.withLock { paused = true } }
        func resume() { lock.withLock { paused = false } }
        func stop() { lock.withLock { stopped = true } }
    }

    /// A collector with rules, and an agent whose `state_dir` survives its restarts.
    final class Rig {
        let system: RealCollectorTests.System
        let stateDir = "/tmp/vigil-spool-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var extra: [String: String]
        var collector: RealCollector { system.collector }
        var agentID: String { system.agentID }

        init(project: String, extra: [String: String] = [:]) throws {
            system = try RealCollectorTests.System(project: project)
            self.extra = ["spool_sync_interval_ms": "200"].merging(extra) { $1 }
            system.collector.putPatterns(project: project, [("", "*", "*", "m", "all")])
        }

        deinit { try? FileManager.default.removeItem(atPath: stateDir) }

        /// Starts the agent; waits until its UDP port is bound (its start
        /// line), not for a collector.
        func startAgent() throws {
            system.configPath = writeConfig(system.lines(extra))
            let a = try AgentProcess(["run", "--config", system.configPath], environment: ["VIGIL_STATE_DIR": stateDir])
            system.agent = a
            XCTAssertTrue(eventually { a.stderr.contains("vigil-agent started") }, a.stderr)
        }

        var agent: AgentProcess { system.agent! }

        func spoolSegments() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: stateDir + "/spool")) ?? [])
                .filter { $0.hasSuffix(".vsp") }.sorted().map { stateDir + "/spool/" + $0 }
        }

        /// A family's value on /metrics for this project (and label text).
        func metric(_ family: String, _ labels: String = "") -> Double? {
            for line in collector.metrics().split(separator: "\n") where line.hasPrefix(family + "{") && line.contains(labels) {
                return Double(line.split(separator: " ").last ?? "")
            }
            return nil
        }
    }

    /// Outage with a restart in the middle; `kill9`: the restart is a kill -9
    /// after the sender paused for longer than one aggregation window plus
    /// one spool_sync interval (the documented bound), else SIGTERM.
    func outageWithRestart(kill9: Bool) throws {
        let rig = try Rig(project: project, extra: ["aggregation_interval_ms": "500"])
        try rig.startAgent()
        XCTAssertTrue(eventually { rig.collector.counter(agent: rig.agentID, "rules") == 1 }, rig.agent.stderr)
        let sender = Sender(port: rig.system.ipaPort)
        sender.start()
        defer { sender.stop() }
        usleep(1_000_000)
        rig.collector.kill9()
        usleep(4_000_000)
        sender.pause()
        if kill9 {
            // Windows close every 500 ms; the spool takes the queue every 200 ms.
            usleep(1_500_000)
            rig.agent.signal(SIGKILL)
            XCTAssertTrue(eventually { !rig.agent.isRunning })
        } else {
            usleep(50_000)
            rig.agent.signal(SIGTERM)
            XCTAssertTrue(eventually(timeout: 10) { !rig.agent.isRunning }, rig.agent.stderr)
            XCTAssertEqual(rig.agent.exitCode, 0, rig.agent.stderr)
            XCTAssertTrue(rig.agent.stderr.contains("written to the spool"), rig.agent.stderr)
        }
        XCTAssertFalse(rig.spoolSegments().isEmpty, "the outage is on disk")
        // The restarted agent works before it reaches a collector: its port
        // is bound at once and it filters with the rules it saved.
        try rig.startAgent()
        XCTAssertTrue(rig.agent.stderr.contains("filter rules installed"), rig.agent.stderr)
        sender.resume()
        usleep(4_000_000)
        try rig.collector.start()
        usleep(1_000_000)
        sender.pause()
        usleep(50_000)
        let sent = sender.sent
        XCTAssertTrue(eventually(timeout: 60) { rig.collector.measuredCount(project: self.project) >= sent },
                      "measured \(rig.collector.measuredCount(project: project)) of \(sent)\n\(rig.agent.stderr)")
        // The spool delivered part of it (a status 200 ms later says so).
        XCTAssertTrue(eventually { (rig.collector.counter(agent: rig.agentID, "spool_replayed") ?? 0) > 0 },
                      "\(rig.collector.agent(rig.agentID))")
        rig.system.stopAgent()
        XCTAssertEqual(rig.collector.measuredCount(project: project), sent, "every record exactly once")
        XCTAssertEqual(rig.collector.counter(agent: rig.agentID, "drops_unmatched"), 0)
    }

    func testOutageWithSIGTERMRestartLosesNothing() throws {
        try outageWithRestart(kill9: false)
    }

    func testOutageWithKill9RestartLosesNothingOutsideTheBound() throws {
        try outageWithRestart(kill9: true)
    }

    func testCorruptedSegmentIsSkippedAndCounted() throws {
        let rig = try Rig(project: project, extra: ["aggregation_interval_ms": "200"])
        try rig.startAgent()
        XCTAssertTrue(eventually { rig.collector.counter(agent: rig.agentID, "rules") == 1 }, rig.agent.stderr)
        rig.collector.kill9()
        let sender = Sender(port: rig.system.ipaPort)
        sender.start()
        usleep(2_000_000)
        sender.stop()
        usleep(300_000)
        let sent = sender.sent
        rig.system.stopAgent()
        // Flip bytes inside the first record after the oldest segment's header.
        let segment = try XCTUnwrap(rig.spoolSegments().first)
        let fd = open(segment, O_RDWR)
        var junk = [UInt8](repeating: 0xA5, count: 4)
        XCTAssertEqual(pwrite(fd, &junk, 4, off_t(SegmentFormat.headerBytes + 12)), 4)
        close(fd)
        try rig.startAgent()
        try rig.collector.start()
        XCTAssertTrue(eventually(timeout: 30) { rig.collector.counter(agent: rig.agentID, "spool_corrupt") == 1 },
                      "\(rig.collector.agent(rig.agentID))\n\(rig.agent.stderr)")
        XCTAssertTrue(rig.agent.stderr.contains("spool: corrupt record skipped"), rig.agent.stderr)
        XCTAssertTrue(eventually { (rig.metric("vigil_agent_spool_dropped", "cause=\"corrupt\"") ?? 0) == 1 },
                      rig.collector.metrics())
        XCTAssertTrue(eventually { rig.collector.counter(agent: rig.agentID, "spool_batches") == 0 })
        let measured = rig.collector.measuredCount(project: project)
        XCTAssertGreaterThan(measured, 0)
        XCTAssertLessThan(measured, sent, "the corrupt batch's records are lost, the rest delivered")
        rig.system.stopAgent()
    }

    func testFullSpoolDropsTheOldestCounted() throws {
        let rig = try Rig(project: project, extra: ["forward_raw_events": "on", "spool_max_bytes": "131072",
                                                    "aggregation_interval_ms": "1h"])
        try rig.startAgent()
        XCTAssertTrue(eventually { rig.collector.counter(agent: rig.agentID, "rules") == 1 }, rig.agent.stderr)
        rig.collector.kill9()
        XCTAssertTrue(eventually { rig.agent.stderr.contains("uplink: session lost") })
        // ~100 bytes a raw event: 5,000 of them are far more than 128 KiB.
        let udp = UDPClient(port: rig.system.ipaPort)
        for i in 0..<5000 {
            udp.send("0\tGET\th\t/item/\(i)/some/longer/path/to/fill/the/spool\t1")
            if i % 200 == 199 { usleep(20_000) }
        }
        XCTAssertTrue(eventually { rig.agent.stderr.contains("spool: oldest segment dropped") }, rig.agent.stderr)
        try rig.collector.start()
        XCTAssertTrue(eventually(timeout: 30) { (rig.collector.counter(agent: rig.agentID, "spool_dropped_full") ?? 0) > 0 },
                      "\(rig.collector.agent(rig.agentID))")
        XCTAssertTrue(eventually { (rig.metric("vigil_agent_spool_dropped", "cause=\"full\"") ?? 0) > 0 }, rig.collector.metrics())
        XCTAssertLessThanOrEqual(rig.collector.counter(agent: rig.agentID, "spool_bytes") ?? .max, 131072)
        // Everything left in the spool is delivered.
        XCTAssertTrue(eventually(timeout: 30) {
            rig.collector.counter(agent: rig.agentID, "spool_batches") == 0 && rig.collector.counter(agent: rig.agentID, "queue2_depth") == 0
                && rig.collector.counter(agent: rig.agentID, "inflight_batches") == 0
        }, "\(rig.collector.agent(rig.agentID))")
        let events = rig.collector.events(project: project).count
        XCTAssertGreaterThan(events, 0, "the newest arrive")
        XCTAssertLessThan(events, 5000, "the oldest were dropped")
        XCTAssertEqual(rig.collector.counter(agent: rig.agentID, "drops_queue2"), 0, "nothing dropped in memory")
        rig.system.stopAgent()
    }
}
