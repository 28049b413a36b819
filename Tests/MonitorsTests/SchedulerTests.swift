// MonitorScheduler in virtual time: the first-run rule, jitter bounds, the
// fixed cadence, overtime skips, and definition changes mid-run.
import XCTest
import Reactor
@testable import MonitorModel
@testable import MonitorRunners

final class SchedulerTests: XCTestCase {
    let clock = ManualMonitorClock(monotonicMs: 5_000_000, wallMs: 1_700_000_000_000)

    func scheduler(_ jitter: Double...) -> MonitorScheduler {
        var r = FixedRandom()
        r.values = jitter.isEmpty ? [0] : jitter
        return MonitorScheduler(clock: clock, random: r)
    }

    func tcp(_ id: String, interval: UInt32) -> MonitorDefinition { .tcp(id, host: "127.0.0.1", port: 1, interval: interval, timeout: 1) }

    /// Advances to `ms` after the start and returns what came due.
    func at(_ s: MonitorScheduler, _ ms: Int64, from start: Int64) -> [MonitorScheduler.Action] {
        clock.monotonicMs = start + ms
        clock.wallMs = 1_700_000_000_000 + ms
        return s.takeDue()
    }

    func testFirstRunNeverRunBeforeIsJitterOnly() {
        let s = scheduler(0.25)
        let d = tcp("a", interval: 10)
        s.apply([d])
        XCTAssertEqual(s.dueMs(d.numericID), clock.monotonicMs + 2_500)
        XCTAssertEqual(s.nextDueMs, clock.monotonicMs + 2_500)
    }

    func testFirstRunWaitsForTheRestOfTheIntervalSinceTheLastRun() {
        let s = scheduler(0)
        let d = tcp("a", interval: 10)
        // Last run 4 s ago: 6 s left, jitter 0.
        s.apply([d], lastRunMs: [d.numericID: UInt64(clock.wallMs - 4_000)])
        XCTAssertEqual(s.dueMs(d.numericID), clock.monotonicMs + 6_000)
        // Last run long ago: due now (plus jitter 0).
        let e = tcp("b", interval: 10)
        s.apply([d, e], lastRunMs: [e.numericID: UInt64(clock.wallMs - 60_000)])
        XCTAssertEqual(s.dueMs(e.numericID), clock.monotonicMs)
        // Last run "in the future" (skewed clock): at most one interval.
        let f = tcp("c", interval: 10)
        s.apply([d, e, f], lastRunMs: [f.numericID: UInt64(clock.wallMs + 3_600_000)])
        XCTAssertEqual(s.dueMs(f.numericID), clock.monotonicMs + 10_000)
    }

    func testJitterStaysWithinZeroToInterval() {
        for (unit, expected) in [(0.0, Int64(0)), (0.5, 5_000), (0.9999999999, 9_999), (1.0, 9_999)] {
            let s = scheduler(unit)
            let d = tcp("a", interval: 10)
            s.apply([d], lastRunMs: [d.numericID: UInt64(clock.wallMs - 3_000)])
            XCTAssertEqual(s.dueMs(d.numericID)! - clock.monotonicMs, 7_000 + expected, "unit \(unit)")
        }
        // Many monitors with a real random source: every first run within [wait, wait + interval).
        let s = MonitorScheduler(clock: clock, random: XorShiftRandom(seed: 99))
        let defs = (0..<500).map { tcp("m\($0)", interval: UInt32(1 + $0 % 60)) }
        s.apply(defs)
        for d in defs {
            let delay = s.dueMs(d.numericID)! - clock.monotonicMs
            XCTAssertGreaterThanOrEqual(delay, 0)
            XCTAssertLessThan(delay, Int64(d.intervalMs))
        }
    }

    func testFixedCadenceIndependentOfRunLength() {
        let s = scheduler(0.1)
        let start = clock.monotonicMs
        let d = tcp("a", interval: 10)
        s.apply([d])
        XCTAssertEqual(at(s, 999, from: start), [])
        guard case .start(_, let r1)? = at(s, 1_000, from: start).first else { return XCTFail("first run due at 1 s") }
        // The run takes 3.5 s; the next slot is still 10 s after the first.
        clock.advance(ms: 3_500)
        XCTAssertTrue(s.finished(monitorID: d.numericID, runID: r1))
        XCTAssertEqual(s.dueMs(d.numericID), start + 11_000)
        XCTAssertEqual(at(s, 10_999, from: start), [])
        guard case .start(_, let r2)? = at(s, 11_000, from: start).first else { return XCTFail("second run due at 11 s") }
        XCTAssertGreaterThan(r2, r1)
    }

    func testRunStillGoingWhenDueIsSkippedAsOvertime() {
        let s = scheduler(0)
        let start = clock.monotonicMs
        let d = tcp("a", interval: 5)
        s.apply([d])
        guard case .start(_, let r1)? = at(s, 0, from: start).first else { return XCTFail() }
        XCTAssertEqual(at(s, 5_000, from: start), [.overtime(monitorID: d.numericID, runningRunID: r1)])
        XCTAssertEqual(at(s, 10_000, from: start), [.overtime(monitorID: d.numericID, runningRunID: r1)])
        XCTAssertEqual(s.overtimeSkips, 2)
        XCTAssertTrue(s.finished(monitorID: d.numericID, runID: r1))
        XCTAssertFalse(s.finished(monitorID: d.numericID, runID: r1), "a run finishes once")
        guard case .start(_, let r2)? = at(s, 15_000, from: start).first else { return XCTFail("runs again after finishing") }
        XCTAssertNotEqual(r1, r2)
        XCTAssertEqual(s.overtimeSkips, 2)
    }

    func testLateLoopSkipsMissedSlotsInsteadOfBursting() {
        let s = scheduler(0)
        let start = clock.monotonicMs
        let d = tcp("a", interval: 1)
        s.apply([d])
        guard case .start(_, let r1)? = at(s, 0, from: start).first else { return XCTFail() }
        s.finished(monitorID: d.numericID, runID: r1)
        // The process slept for 5.5 s: one run now, the next on the old grid.
        let due = at(s, 5_500, from: start)
        XCTAssertEqual(due.count, 1)
        XCTAssertEqual(s.lateSkips, 4)
        XCTAssertEqual(s.dueMs(d.numericID), start + 6_000)
    }

    func testMonitorsDueTogetherComeInIDOrder() {
        let s = scheduler(0)
        let defs = (0..<20).map { tcp("m\($0)", interval: 10) }
        s.apply(defs.shuffled(using: &rngForShuffle))
        let ids = s.takeDue().map { action -> UInt64 in
            if case .start(let id, _) = action { return id }
            return 0
        }
        XCTAssertEqual(ids, defs.map(\.numericID).sorted())
    }
    private var rngForShuffle = SeededRNG(seed: 7)

    func testDefinitionChangesMidRun() {
        let s = scheduler(0)
        let start = clock.monotonicMs
        let keep = tcp("keep", interval: 10)
        let change = tcp("change", interval: 10)
        let remove = tcp("remove", interval: 10)
        s.apply([keep, change, remove])
        let first = at(s, 0, from: start)
        var run: [UInt64: UInt64] = [:]
        for case .start(let id, let r) in first { run[id] = r }
        XCTAssertEqual(run.count, 3)

        // 4 s into the runs the schedule changes: `change` gets a new port and
        // a 20 s interval, `remove` is gone, `keep` is the same.
        clock.monotonicMs = start + 4_000
        clock.wallMs += 4_000
        let changed = MonitorDefinition.tcp("change", host: "127.0.0.1", port: 2, interval: 20, timeout: 1)
        let c = s.apply([keep, changed])
        XCTAssertEqual(c.added, [])
        XCTAssertEqual(c.changed, [change.numericID])
        XCTAssertEqual(c.removed, [remove.numericID])
        XCTAssertEqual(c.cancelled.map(\.monitorID), [remove.numericID])
        XCTAssertEqual(c.cancelled.map(\.runID), [run[remove.numericID]!])

        // Unchanged keeps its cadence; changed restarts from its last start:
        // max(start + 20 s − now, 0) + jitter 0 = 16 s from now.
        XCTAssertEqual(s.dueMs(keep.numericID), start + 10_000)
        XCTAssertEqual(s.dueMs(change.numericID), start + 20_000)
        XCTAssertNil(s.dueMs(remove.numericID))
        XCTAssertEqual(s.definition(change.numericID), changed)

        // The changed monitor's run (old definition) still finishes and counts;
        // the removed one's result is refused.
        XCTAssertEqual(s.runningRunID(change.numericID), run[change.numericID])
        XCTAssertTrue(s.finished(monitorID: change.numericID, runID: run[change.numericID]!))
        XCTAssertFalse(s.finished(monitorID: remove.numericID, runID: run[remove.numericID]!))
        XCTAssertTrue(s.finished(monitorID: keep.numericID, runID: run[keep.numericID]!))

        guard case .start(let k, let r2)? = at(s, 10_000, from: start).first, k == keep.numericID else { return XCTFail("keep at 10 s") }
        s.finished(monitorID: k, runID: r2)
        XCTAssertEqual(at(s, 19_999, from: start).count, 0)
        let due = at(s, 20_000, from: start)
        XCTAssertEqual(due.count, 2, "change, and keep again")
        for case .overtime in due { XCTFail("nothing is running") }
        XCTAssertEqual(s.count, 2)
    }

    func testChangeWhileRunningStillCountsOvertime() {
        let s = scheduler(0)
        let start = clock.monotonicMs
        let d = tcp("a", interval: 2)
        s.apply([d])
        guard case .start(_, let r1)? = at(s, 0, from: start).first else { return XCTFail() }
        clock.monotonicMs = start + 500
        clock.wallMs += 500
        s.apply([MonitorDefinition.tcp("a", host: "127.0.0.1", port: 9, interval: 2, timeout: 1)])
        // Rescheduled from the running start: due at 2 s; the run is still going.
        XCTAssertEqual(at(s, 2_000, from: start), [.overtime(monitorID: d.numericID, runningRunID: r1)])
    }

    func testRemovingEverythingLeavesNothingDue() {
        let s = scheduler(0)
        s.apply((0..<10).map { tcp("m\($0)", interval: 1) })
        s.apply([])
        XCTAssertNil(s.nextDueMs)
        XCTAssertEqual(s.takeDue(), [])
        XCTAssertEqual(s.count, 0)
    }

    func testReapplyingTheSameSetChangesNothing() {
        let s = scheduler(0.3, 0.7)
        let defs = [tcp("a", interval: 10), tcp("b", interval: 20)]
        s.apply(defs)
        let due = defs.map { s.dueMs($0.numericID) }
        let c = s.apply(defs, lastRunMs: [defs[0].numericID: UInt64(clock.wallMs)])
        XCTAssertEqual(c, MonitorScheduler.Changes())
        XCTAssertEqual(defs.map { s.dueMs($0.numericID) }, due)
    }
}
