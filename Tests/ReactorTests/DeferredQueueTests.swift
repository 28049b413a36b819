import XCTest
@testable import Reactor

final class DeferredQueueTests: XCTestCase {
    func testWorkNeverRunsBeforeTheSchedulingCallReturns() {
        let loop = EventLoop()
        var ran = false
        loop.defer { ran = true }
        XCTAssertFalse(ran)
        loop.runOnce()
        XCTAssertTrue(ran)
        loop.runOnce()
        XCTAssertEqual(loop.deferred.count, 0)
    }

    func testBudgetBoundsWorkPerIteration() {
        let loop = EventLoop()
        loop.deferred.budget = 10
        var ran = 0
        for _ in 0..<25 { loop.defer { ran += 1 } }
        loop.runOnce(); XCTAssertEqual(ran, 10)
        loop.runOnce(); XCTAssertEqual(ran, 20)
        loop.runOnce(); XCTAssertEqual(ran, 25)
        loop.runOnce(); XCTAssertEqual(ran, 25)
        XCTAssertEqual(loop.deferred.carriedOver, 2)
    }

    /// The loop's time box: after a source's first unit, no more once the
    /// iteration has run for its budget; the deferred queue itself is not
    /// boxed (it drains flushes and closes). The test's clock moves 200 µs
    /// per unit: with a 500 µs box, three units per iteration (0, 200 and
    /// 400 µs in).
    func testTimeBoxBoundsAnIterationsUnitsButNotTheDeferredQueue() {
        let loop = EventLoop()
        var now: UInt64 = 7_000_000
        loop.timeBox.clock = { now }
        loop.timeBox.budgetNanos = 500_000
        var units: [Int] = []
        func source() {
            var n = 0
            while loop.timeBox.mayRun(after: n) { n += 1; now += 200_000 }
            units.append(n)
        }
        loop.defer { source() }; loop.runOnce()
        loop.defer { source() }; loop.runOnce()
        XCTAssertEqual(units, [3, 3], "the box starts again with each iteration")
        XCTAssertEqual(loop.timeBox.cutShort, 2)

        // A unit that alone overruns the box still runs: the first always does.
        loop.defer { now += 5_000_000; source() }; loop.runOnce()
        XCTAssertEqual(units.last, 1)

        // Slices of the deferred queue are bounded by its count budget only.
        var ran = 0
        for _ in 0..<10 { loop.defer { now += 200_000; ran += 1 } }
        loop.runOnce(); XCTAssertEqual(ran, 10)

        // Off (0): always time.
        loop.timeBox.budgetNanos = 0
        now += 60_000_000_000
        XCTAssertTrue(loop.timeBox.hasTime)
        XCTAssertEqual(loop.timeBox.cutShort, 3)
    }

    func testWorkQueuedWhileDrainingWaitsForTheNextIteration() {
        let loop = EventLoop()
        var log: [Int] = []
        loop.defer {
            log.append(1)
            loop.defer { log.append(2) }
        }
        loop.runOnce()
        XCTAssertEqual(log, [1])
        loop.runOnce()
        XCTAssertEqual(log, [1, 2])
    }

    /// A slice that keeps rescheduling itself (a long job cut into pieces)
    /// must not starve a timer: the timer fires within a couple of
    /// iterations while the job continues.
    func testEndlessSlicedWorkDoesNotStarveTimers() {
        let loop = EventLoop()
        loop.deferred.budget = 4
        var slices = 0
        var stop = false
        func slice() {
            slices += 1
            if !stop { loop.defer(slice) }
        }
        loop.defer(slice)
        var timerFiredAtIteration: UInt?
        let t = TimerWatcher(loop: loop) { _ in timerFiredAtIteration = loop.iteration }
        t.start(after: 0)
        let startIteration = loop.iteration
        for _ in 0..<5 { loop.runOnce() }
        XCTAssertNotNil(timerFiredAtIteration)
        XCTAssertLessThanOrEqual(timerFiredAtIteration! - startIteration, 2)
        XCTAssertGreaterThanOrEqual(slices, 4)
        stop = true
        loop.runOnce(); loop.runOnce()
        XCTAssertEqual(loop.deferred.count, 0)
    }
}

final class EventLoopLifetimeTests: XCTestCase {
    /// The deferred queue must not keep its loop alive: a dropped loop is
    /// freed, and ev_loop_destroy gives back its backend descriptors.
    func testDroppedLoopIsFreedWithItsDescriptors() {
        let before = ProcessLimits.openDescriptorCount()
        weak var weakLoop: EventLoop?
        for _ in 0..<20 {
            let loop = EventLoop()
            loop.defer {}
            loop.runOnce()
            weakLoop = loop
        }
        XCTAssertNil(weakLoop, "a loop nobody holds is freed")
        XCTAssertEqual(ProcessLimits.openDescriptorCount(), before, "no epoll descriptor leaked per loop")
    }
}
