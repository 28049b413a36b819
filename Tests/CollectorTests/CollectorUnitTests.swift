// The collector's pure parts, without a process: the deadline wheel,
// the acknowledgement window, the agent configuration view, pattern checks.
import XCTest
import JSON
import Reactor
import Wire
import ConfigFile
@testable import Collector

private final class Entry: DeadlineEntry {
    var deadlineLink = DeadlineLink<Entry>()
    let name: String
    init(_ name: String) { self.name = name }
}

final class IterationBudgetTests: XCTestCase {
    /// The handshake, finish and input budgets share the loop's time box:
    /// after each one's first unit, none has room once the iteration's time
    /// is spent, whatever units it has left. The test's clock moves 150 µs
    /// per unit of a 500 µs box.
    func testBudgetsShareTheLoopsTimeBoxAndEachKeepsItsFirstUnit() {
        let loop = EventLoop()
        var now: UInt64 = 3_000_000
        loop.timeBox.clock = { now }
        loop.timeBox.budgetNanos = 500_000
        var handshakes = IterationBudget(limit: 8)
        var input = IterationBudget(limit: 8)
        var counts: [(Int, Int)] = []
        func iteration() {
            var h = 0, i = 0
            while handshakes.hasRoom(on: loop) { handshakes.spend(1, in: loop.iteration); h += 1; now += 150_000 }
            while input.hasRoom(on: loop) { input.spend(1, in: loop.iteration); i += 1; now += 150_000 }
            counts.append((h, i))
        }
        for _ in 0..<2 { loop.defer { iteration() }; loop.runOnce() }
        // 0, 150, 300, 450 µs in: four handshakes; then the input's first unit only.
        XCTAssertEqual(counts.map(\.0), [4, 4])
        XCTAssertEqual(counts.map(\.1), [1, 1])
        XCTAssertEqual(loop.timeBox.cutShort, 4)

        loop.timeBox.budgetNanos = 0
        loop.defer { iteration() }; loop.runOnce()
        XCTAssertEqual(counts.last?.0, 8, "off: the unit limit alone")
        XCTAssertEqual(counts.last?.1, 8)
    }
}

final class DeadlineWheelTests: XCTestCase {
    func testExpiresInOrderNeverEarlyAndOnlyWhatIsScheduled() {
        let loop = EventLoop()
        var fired: [(String, Double)] = []
        let wheel = DeadlineWheel<Entry>(loop: loop, slots: 8, granularity: 0.02) { e in
            fired.append((e.name, Clock.monotonic()))
        }
        let now = Clock.monotonic()
        let a = Entry("a"), b = Entry("b"), c = Entry("c"), far = Entry("far"), gone = Entry("gone")
        wheel.schedule(b, at: now + 0.10)
        wheel.schedule(a, at: now + 0.05)
        wheel.schedule(c, at: now + 0.10)
        wheel.schedule(far, at: now + 0.40)    // beyond 8 × 20 ms: re-filed on the way
        wheel.schedule(gone, at: now + 0.05)
        wheel.remove(gone)
        wheel.schedule(c, at: now + 0.20)      // moved
        XCTAssertEqual(wheel.count, 4)
        XCTAssertTrue(loop.run(until: { fired.count == 4 }, timeout: 5))
        XCTAssertEqual(fired.map(\.0), ["a", "b", "c", "far"])
        let due = ["a": 0.05, "b": 0.10, "c": 0.20, "far": 0.40]
        for (name, at) in fired { XCTAssertGreaterThanOrEqual(at - now, due[name]! - 0.002, name) }
        XCTAssertEqual(wheel.count, 0)
        XCTAssertFalse(wheel.isScheduled(gone))
    }

    func testCallbackMayRescheduleAndRemoveOthers() {
        let loop = EventLoop()
        let a = Entry("a"), b = Entry("b")
        var runs = 0
        var wheel: DeadlineWheel<Entry>!
        wheel = DeadlineWheel<Entry>(loop: loop, slots: 16, granularity: 0.01) { e in
            runs += 1
            wheel.remove(b)                     // the other entry of the same slot
            if runs < 3 { wheel.schedule(e, at: Clock.monotonic() + 0.01) }
        }
        let t = Clock.monotonic() + 0.02
        wheel.schedule(a, at: t)
        wheel.schedule(b, at: t)
        XCTAssertTrue(loop.run(until: { runs == 3 && wheel.count == 0 }, timeout: 5))
        XCTAssertEqual(runs, 3)
    }

    /// 2,000 entries due in the same slot — sessions connected in the same
    /// second — expire over several iterations, at most `perSlice` in each,
    /// in the order they were filed, none skipped, none early.
    func testEntriesDueTogetherExpireAtMostPerSliceInEachIteration() {
        let loop = EventLoop()
        var perIteration: [UInt: Int] = [:]
        var order: [String] = []
        let start = Clock.monotonic()
        var early = 0
        var wheel: DeadlineWheel<Entry>!
        let entries = (0..<2000).map { Entry("e\($0)") }
        wheel = DeadlineWheel<Entry>(loop: loop, slots: 64, granularity: 0.01, perSlice: 64) { e in
            perIteration[loop.iteration, default: 0] += 1
            order.append(e.name)
            if Clock.monotonic() < start + 0.02 { early += 1 }
            // A callback that removes a later due entry: it is not run.
            if e.name == "e0" { wheel.remove(entries[1999]) }
        }
        for e in entries.reversed() { wheel.schedule(e, at: start + 0.02) }
        XCTAssertTrue(loop.run(until: { wheel.count == 0 }, timeout: 10))
        XCTAssertEqual(order.count, 1999)
        XCTAssertEqual(Set(order).count, 1999)
        XCTAssertFalse(order.contains("e1999"))
        XCTAssertEqual(early, 0)
        XCTAssertLessThanOrEqual(perIteration.values.max() ?? 0, 64, "expiries in one iteration")
        XCTAssertGreaterThanOrEqual(perIteration.count, 1999 / 64)
        XCTAssertEqual(wheel.expired, 1999)
        XCTAssertLessThanOrEqual(wheel.largestSlice, 64)
        XCTAssertEqual(wheel.dueCount, 0)
    }
}

/// A session as OutboundBudget sees it.
final class Holder: OutboundHolder {
    var queuedBytes = 0
    var isEstablished = true
    var outboundHeld = 0
    var outboundDropped = false
}

final class OutboundBudgetTests: XCTestCase {
    /// 20,000 sessions written to at once (an ack flush, a pushed schedule)
    /// and drained by their flushes: the total follows every write and
    /// every flush, and nothing reads a session except its own write or
    /// flush — no walk over the sessions that hold bytes, however many.
    func testAccountsEachWriteAndFlushWithoutWalkingTheHolders() {
        let budget = OutboundBudget()
        let holders = (0..<20_000).map { _ in Holder() }
        for h in holders {
            h.queuedBytes = 100
            XCTAssertFalse(budget.observe(h, budget: 1 << 30, sessions: holders.count))
        }
        XCTAssertEqual(budget.total, 2_000_000)
        XCTAssertEqual(budget.holders, 20_000)
        // Half flushed completely, a quarter partly; the rest still full.
        for h in holders[0..<10_000] { h.queuedBytes = 0; budget.sent(h) }
        for h in holders[10_000..<15_000] { h.queuedBytes = 40; budget.sent(h) }
        XCTAssertEqual(budget.total, 5_000 * 40 + 5_000 * 100)
        XCTAssertEqual(budget.holders, 10_000)
        // A flush of a session that held nothing does not read it.
        let idle = Holder()
        budget.sent(idle)
        XCTAssertEqual(budget.reads, 20_000 + 15_000)
        for h in holders[10_000...] { budget.forget(h) }
        XCTAssertEqual(budget.total, 0)
        XCTAssertEqual(budget.holders, 0)
    }

    /// Over the budget, a session above its share is dropped once; one
    /// within its share, or not established, is not.
    func testDropsASessionAboveItsShareOnceWhileTheBudgetIsSpent() {
        let budget = OutboundBudget()
        let small = Holder(), big = Holder(), handshaking = Holder()
        handshaking.isEstablished = false
        small.queuedBytes = 100
        XCTAssertFalse(budget.observe(small, budget: 1000, sessions: 2))
        handshaking.queuedBytes = 900
        XCTAssertFalse(budget.observe(handshaking, budget: 1000, sessions: 2))
        big.queuedBytes = 900
        XCTAssertTrue(budget.observe(big, budget: 1000, sessions: 2))
        XCTAssertFalse(budget.observe(big, budget: 1000, sessions: 2), "dropped once")
        XCTAssertFalse(budget.observe(small, budget: 1000, sessions: 2), "within its share")
        budget.forget(big)
        XCTAssertEqual(budget.total, 1000)
    }
}

final class AckWindowTests: XCTestCase {
    func testAcknowledgesOnlyLeadingDurableBatchesCumulatively() {
        var w = AckWindow()
        let t1 = w.received(1), t2 = w.received(2), t3 = w.received(3)
        XCTAssertEqual(w.advance(), .none)
        w.completed(t2, durable: true)
        XCTAssertEqual(w.advance(), .none, "2 committed, but 1 not yet")
        w.completed(t1, durable: true)
        XCTAssertEqual(w.advance(), .ack(2))
        XCTAssertEqual(w.inFlight, 1)
        w.completed(t3, durable: false)
        XCTAssertEqual(w.advance(), .failed(3))
        XCTAssertEqual(w.acknowledged, 2)
    }

    func testTicketsSurviveCompaction() {
        var w = AckWindow()
        var tickets: [Int] = []
        for seq in 1...100 as ClosedRange<UInt64> { tickets.append(w.received(seq)) }
        for t in tickets.prefix(60) { w.completed(t, durable: true) }
        XCTAssertEqual(w.advance(), .ack(60))
        let late = w.received(101)
        for t in tickets.suffix(40) + [late] { w.completed(t, durable: true) }
        XCTAssertEqual(w.advance(), .ack(101))
        XCTAssertTrue(w.isEmpty)
        // A duplicate re-sent with a lower number never lowers the ack.
        w.completed(w.received(50), durable: true)
        XCTAssertEqual(w.advance(), .ack(101))
    }
}

final class AgentConfigViewTests: XCTestCase {
    func testLayersAndRemoteRules() {
        let (config, skipped) = AgentConfigView.effective(project: ["capture": "off", "groups": "a, b"],
                                                          agent: ["capture": "on", "ipa_port": "70000"])
        XCTAssertEqual(config.value("capture")?.description, "on")
        XCTAssertEqual(config.origin("capture")?.name, "agent")
        XCTAssertEqual(config.origin("groups")?.name, "project")
        XCTAssertEqual(config.origin("ipa_port")?.name, "default")
        XCTAssertEqual(skipped, ["ipa_port"])

        XCTAssertTrue(AgentConfigView.validate(["capture": "off", "status_interval_ms": "5s"]).isEmpty)
        XCTAssertEqual(AgentConfigView.validate(["access_key": "x.y"]).first?.key, "access_key")
        XCTAssertEqual(AgentConfigView.validate(["server_port": "7000"]).first?.problem, .notLive)
        XCTAssertEqual(AgentConfigView.remotelySettable(["capture": "off", "server_port": "1", "bogus": "1"]),
                       [KeyValue("capture", "off")])
        let rendered = AgentConfigView.json(Configuration(defaultsOf: AgentSchema.schema)).serialized
        XCTAssertTrue(rendered.contains(#"{"key":"access_key","value":null,"origin":"default","secret":true,"live":false}"#), rendered)
    }

    func testAgentConfigViewTakesWhatTheAgentReports() {
        let report = EffectiveConfig([
            ConfigEntry(key: "aggregation_interval_ms", value: "5000", origin: .commandLine),
            ConfigEntry(key: "ipa_port", value: "9000", origin: .file, detail: "/etc/vigil/agent.conf:7"),
            ConfigEntry(key: "groups", value: "edge", origin: .environment, detail: "VIGIL_GROUPS"),
            ConfigEntry(key: "capture", value: "off", origin: .collector),
            ConfigEntry(key: "status_interval_ms", value: "3000", origin: .collector),
            ConfigEntry(key: "log_level", value: "info", origin: .default),
            ConfigEntry(key: "access_key", value: "p.secret", origin: .file, detail: "x:1"),
            ConfigEntry(key: "no_such_key", value: "1", origin: .commandLine),
            ConfigEntry(key: "server_port", value: "not-a-port", origin: .commandLine),
        ])
        let kept = SessionManager.reported(report)
        XCTAssertNil(kept["access_key"], "a secret is never kept")
        XCTAssertNil(kept["no_such_key"])
        let (config, _) = AgentConfigView.effective(project: [:], agent: ["status_interval_ms": "2000"], reported: kept)
        let rows = (AgentConfigView.json(config).arrayValue ?? []).map(\.serialized)
        func row(_ key: String) -> String { rows.first { $0.contains(#""key":"\#(key)""#) } ?? "" }
        XCTAssertEqual(row("aggregation_interval_ms"),
                       #"{"key":"aggregation_interval_ms","value":"5000","origin":"command_line","secret":false,"live":true}"#)
        XCTAssertTrue(row("ipa_port").contains(#""value":"9000","origin":"file","source":"/etc/vigil/agent.conf:7""#), row("ipa_port"))
        XCTAssertTrue(row("groups").contains(#""value":"edge","origin":"environment","source":"VIGIL_GROUPS""#), row("groups"))
        XCTAssertTrue(row("capture").contains(#""value":"off","origin":"agent""#), row("capture"))
        // The collector's own stored override names its origin.
        XCTAssertTrue(row("status_interval_ms").contains(#""value":"2000","origin":"agent""#), row("status_interval_ms"))
        XCTAssertTrue(row("log_level").contains(#""origin":"default""#))
        XCTAssertTrue(row("server_port").contains(#""value":"6600","origin":"default""#), "an invalid report is ignored")
        XCTAssertTrue(row("access_key").contains(#""value":null"#))
    }

    func testPatternChecks() throws {
        let ok = try JSON.parse(#"{"patterns":[{"host":"*","path":"/a/*","monitor":"m","check":"c"}]}"#)
        XCTAssertEqual(APIHandler.parsePatterns(ok).patterns.first?.method, "")
        XCTAssertTrue(APIHandler.parsePatterns(ok).problems.isEmpty)
        let long = String(repeating: "x", count: 513)
        let bad = try JSON.parse(#"{"patterns":[{"host":"","path":"\#(long)","monitor":1,"check":"c"}, 7]}"#)
        let problems = APIHandler.parsePatterns(bad).problems.map(\.0)
        XCTAssertEqual(problems, ["patterns[0].host", "patterns[0].path", "patterns[0].monitor", "patterns[1]"])
        // The whole list must fit one Wire message.
        let many = (0..<2000).map { #"{"host":"h\#($0).example","path":"/\#(long.prefix(40))","monitor":"m","check":"c"}"# }
        let big = try JSON.parse(#"{"patterns":["# + many.joined(separator: ",") + "]}")
        XCTAssertEqual(APIHandler.parsePatterns(big).problems.map(\.0), ["patterns"])
    }
}
