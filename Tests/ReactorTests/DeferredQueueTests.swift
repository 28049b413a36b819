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
