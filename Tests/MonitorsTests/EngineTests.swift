// The engine as the agent uses it: Schedule records in, run results out,
// overtime and removals with real runs, lazy libcurl, the concurrency cap.
import XCTest
import JSON
import Reactor
import Wire
@testable import MonitorModel
@testable import MonitorRunners
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class EngineTests: XCTestCase {
    var listenFD: Int32 = -1
    var port: UInt16 = 0

    override func setUpWithError() throws {
        listenFD = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
        try Syscalls.bind(listenFD, SocketAddress(parsing: "127.0.0.1:0"))
        try Syscalls.listen(listenFD, 64)
        port = try Syscalls.localAddress(listenFD).port
    }

    override func tearDown() { Syscalls.close(listenFD) }

    func testScheduleRecordsDriveRuns() throws {
        let h = EngineHarness()
        defer { h.shutdown() }
        let defs = [MonitorDefinition.tcp("a", host: "127.0.0.1", port: port, interval: 1, timeout: 1),
                    MonitorDefinition.tcp("b", host: "127.0.0.1", port: port, interval: 1, timeout: 1)]
        for record in ScheduleCodec.records(version: 1, definitions: defs) {
            XCTAssertEqual(h.engine.apply(schedule: record), [])
        }
        XCTAssertEqual(h.engine.scheduledCount, 2)
        XCTAssertTrue(h.loop.run(until: { h.results.count >= 4 }, timeout: 10), "two runs of each within ~1 s")
        XCTAssertEqual(Set(h.results.map(\.monitorKey)), ["a", "b"])
        XCTAssertTrue(h.results.allSatisfy { $0.status == .ok })
        let runIDs = h.results.map(\.runID)
        XCTAssertEqual(Set(runIDs).count, runIDs.count, "every run has its own id")
    }

    func testInvalidSpecInScheduleIsReportedAndSkipped() {
        let h = EngineHarness()
        defer { h.shutdown() }
        var bad = ScheduleCodec.spec(.tcp("t", host: "127.0.0.1", port: 1))
        bad.kind = "icmp"
        let messages = h.engine.apply(schedule: Schedule(version: 2, monitors: [bad]))
        XCTAssertEqual(messages?.count, 1)
        XCTAssertEqual(h.engine.scheduledCount, 0)
        XCTAssertEqual(h.engine.stats.monitorsRejected, 1)
    }

    func testGroupsFilter() {
        var options = MonitorEngine.Options()
        options.groups = ["eu"]
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        var eu = MonitorDefinition.tcp("eu", host: "127.0.0.1", port: port)
        eu.groups = ["eu", "us"]
        let other = MonitorDefinition.tcp("default", host: "127.0.0.1", port: port)
        h.engine.apply(definitions: [eu, other])
        XCTAssertEqual(h.engine.scheduler.monitorIDs, [eu.numericID])
    }

    func testLibcurlIsLoadedOnlyForHTTPMonitors() {
        let h = EngineHarness()
        defer { h.shutdown() }
        h.engine.apply(definitions: [.tcp("t", host: "127.0.0.1", port: port)])
        XCTAssertFalse(h.engine.isHTTPLoaded)
        h.engine.apply(definitions: [.tcp("t", host: "127.0.0.1", port: port), .http("h", url: "http://127.0.0.1:\(port)/")])
        XCTAssertTrue(h.engine.isHTTPLoaded)
    }

    func testOvertimeWhenARunOutlastsTheInterval() throws {
        var options = MonitorEngine.Options()
        options.policy = .init(exec: .directories(["/bin", "/usr/bin"]))
        options.execExitGrace = 3
        options.execKillGrace = 0.2
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        // The monitor finishes its step at once but ignores "exit" for 2.5 s,
        // so the run lasts longer than its 1 s interval.
        let d = MonitorDefinition.exec("long", steps: [("a", 1)], config: JSONObject([("a", "true")]),
                                       command: "/bin/sh", interval: 1, timeout: 1)
        var def = d
        if case .exec(var e) = def.check {
            e.args = ["-c", "read -r h; echo 'VIGIL-MONITOR 1'; read -r c; read -r r; echo ok; read -r x; sleep 2.5"]
            def.check = .exec(e)
        }
        h.engine.apply(definitions: [def])
        XCTAssertTrue(h.loop.run(until: { h.results.contains { $0.status != .overtime } }, timeout: 10))
        let overtime = h.results.filter { $0.status == .overtime }
        XCTAssertGreaterThanOrEqual(overtime.count, 2, "slots at ~1 s and ~2 s were skipped")
        XCTAssertEqual(h.engine.stats.overtime, UInt64(overtime.count))
        let run = h.results.first { $0.status != .overtime }!
        XCTAssertEqual(run.status, .ok)
        XCTAssertTrue(overtime.allSatisfy { $0.message == "skipped: run \(run.runID) still in progress" })
    }

    func testRemovedMonitorMidRunIsCancelledAndItsResultDropped() throws {
        var options = MonitorEngine.Options()
        options.policy = .init(exec: .directories([TestPaths.root + "/examples/monitors"]))
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        let d = MonitorDefinition.exec("gone", steps: [("wait", 20)], config: JSONObject([("wait", "sleep 20")]))
        h.engine.apply(definitions: [d])
        XCTAssertTrue(h.loop.run(until: { h.engine.stats.execSpawned == 1 }, timeout: 5))
        h.idle(0.2)
        XCTAssertEqual(h.engine.runningCount, 1)
        h.engine.apply(definitions: [])
        XCTAssertEqual(h.engine.runningCount, 0)
        XCTAssertEqual(h.engine.stats.droppedRemoved, 1)
        // The child is terminated and reaped; no result is delivered.
        XCTAssertTrue(h.loop.run(until: { h.engine.stats.execTerminated == 1 }, timeout: 5))
        h.idle(0.5)
        XCTAssertEqual(h.results, [])
    }

    func testConcurrencyCapSkipsWithAnError() throws {
        var options = MonitorEngine.Options()
        options.maxConcurrentRuns = 2
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        let defs = (0..<5).map { MonitorDefinition.tcp("c\($0)", host: "127.0.0.1", port: port) }
        h.run(defs, until: 5)
        XCTAssertEqual(h.results.filter { $0.status == .ok }.count, 2)
        let skipped = h.results.filter { $0.status == .error }
        XCTAssertEqual(skipped.count, 3)
        XCTAssertTrue(skipped.allSatisfy { $0.message == "skipped: 2 runs already in progress" })
        XCTAssertEqual(h.engine.stats.skippedConcurrency, 3)
    }

    func testEngineAndItsRunsAreFreed() throws {
        let loop = EventLoop.makeDefault()
        let watchersBefore = loop.activeWatchers
        weak var weakEngine: MonitorEngine?
        var results = 0
        do {
            let engine = MonitorEngine(loop: loop, random: FixedRandom(0)) { _ in results += 1 }
            weakEngine = engine
            engine.apply(definitions: [.tcp("t", host: "127.0.0.1", port: port),
                                       .http("h", url: "http://127.0.0.1:\(port)/", timeout: 1),
                                       .exec("e", steps: [("a", 5)], config: JSONObject([("a", "true")]))])
            XCTAssertTrue(loop.run(until: { results >= 2 }, timeout: 10))
            engine.shutdown()
        }
        // Let the exec child be reaped and the closes be delivered.
        let end = Clock.monotonic() + 1
        loop.run(until: { Clock.monotonic() >= end }, timeout: 5)
        XCTAssertNil(weakEngine, "nothing keeps the engine alive after shutdown")
        XCTAssertEqual(loop.activeWatchers, watchersBefore, "every watcher of the engine and its runs is stopped")
    }
}
