import XCTest
import Glibc
@testable import Reactor

final class WatcherTests: XCTestCase {
    func testActiveWatcherOutlivesItsOwnerAndIsFreedOnStop() throws {
        let loop = EventLoop()
        let (a, b) = try Syscalls.socketpair()
        defer { Syscalls.close(a); Syscalls.close(b) }
        weak var weakWatcher: IOWatcher?
        var fired = 0
        do {
            let w = IOWatcher(loop: loop, fd: a, events: .read) { w, ev in
                XCTAssertTrue(ev.contains(.read))
                fired += 1
                w.stop()  // the loop's retain is given back here
            }
            w.start()
            weakWatcher = w
        }
        XCTAssertNotNil(weakWatcher, "an active watcher is retained by the loop")
        XCTAssertEqual(loop.activeWatchers, 1)
        var byte: UInt8 = 1
        _ = Glibc.write(b, &byte, 1)
        XCTAssertTrue(loop.run(until: { fired == 1 }, timeout: 5))
        XCTAssertNil(weakWatcher, "a stopped watcher nobody holds is freed")
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testDeinitOfInactiveWatcherAndRestart() {
        let loop = EventLoop()
        var t: TimerWatcher? = TimerWatcher(loop: loop) { _ in }
        t!.start(after: 10)
        t!.stop()
        t!.start(after: 10)
        t!.stop()
        XCTAssertEqual(loop.activeWatchers, 0)
        t = nil
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testOneShotTimerStopsItselfAndReleases() {
        let loop = EventLoop()
        weak var weakTimer: TimerWatcher?
        var fired = 0
        do {
            let t = TimerWatcher(loop: loop) { _ in fired += 1 }
            t.start(after: 0.001)
            weakTimer = t
        }
        XCTAssertTrue(loop.run(until: { fired == 1 }, timeout: 5))
        XCTAssertNil(weakTimer, "libev stopped the one-shot timer, so its retain was given back")
        XCTAssertEqual(loop.activeWatchers, 0)
        loop.runOnce()
        XCTAssertEqual(fired, 1)
    }

    func testRepeatingTimerRestartedFromItsCallbackStaysRetained() {
        let loop = EventLoop()
        var fired = 0
        let t = TimerWatcher(loop: loop) { t in
            fired += 1
            if fired < 3 { t.start(after: 0.001) }
        }
        t.start(after: 0.001)
        XCTAssertTrue(loop.run(until: { fired == 3 }, timeout: 5))
        XCTAssertFalse(t.isActive)
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testTimerAgainImplementsAnActivityTimeout() {
        let loop = EventLoop()
        var expired = false
        let t = TimerWatcher(loop: loop) { _ in expired = true }
        t.repeatInterval = 0.2
        t.again()
        XCTAssertTrue(t.isActive)
        // Activity before the timeout pushes it back.
        for _ in 0..<3 {
            loop.run(until: { false }, timeout: 0.05)
            t.again()
        }
        XCTAssertFalse(expired)
        XCTAssertGreaterThan(t.remaining, 0.1)
        XCTAssertTrue(loop.run(until: { expired }, timeout: 5))
        t.stop()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    /// A descriptor closed and reused inside one iteration: the event that
    /// was pending for the old owner must not reach it (it was stopped), and
    /// the new owner must not see the old descriptor's readiness.
    func testStaleDescriptorEventIsNotDeliveredToTheNewOwner() throws {
        let loop = EventLoop()
        let (a, aPeer) = try Syscalls.socketpair()
        let (b, bPeer) = try Syscalls.socketpair()
        var one: UInt8 = 1
        _ = Glibc.write(aPeer, &one, 1)
        _ = Glibc.write(bPeer, &one, 1)

        var firedA = 0, firedB = 0, firedNew = 0
        var newPair: (Int32, Int32)?
        var newWatcher: IOWatcher?
        var wa: IOWatcher!
        var wb: IOWatcher!
        func retireOther(_ other: IOWatcher, fd: Int32) throws {
            other.stop()                // stop before close
            Syscalls.close(fd)
            let p = try Syscalls.socketpair()   // lowest free numbers: reuses fd
            newPair = p
            let reused = p.0 == fd ? p.0 : p.1
            newWatcher = IOWatcher(loop: loop, fd: reused, events: .read) { _, _ in firedNew += 1 }
            newWatcher!.start()
        }
        wa = IOWatcher(loop: loop, fd: a, events: .read) { _, _ in
            firedA += 1
            if newPair == nil { try? retireOther(wb, fd: b) }
            wa.stop()
        }
        wb = IOWatcher(loop: loop, fd: b, events: .read) { _, _ in
            firedB += 1
            if newPair == nil { try? retireOther(wa, fd: a) }
            wb.stop()
        }
        wa.start(); wb.start()
        loop.runOnce(wait: true)
        loop.runOnce()
        loop.runOnce()
        XCTAssertEqual(firedA + firedB, 1, "only the first of two ready watchers runs; the retired one is not called")
        XCTAssertNotNil(newPair)
        XCTAssertTrue(newPair!.0 == a || newPair!.0 == b || newPair!.1 == a || newPair!.1 == b, "descriptor number was reused")
        XCTAssertEqual(firedNew, 0, "the new owner sees no event from the old descriptor")
        newWatcher?.stop()
        Syscalls.close(newPair!.0); Syscalls.close(newPair!.1)
        Syscalls.close(firedA == 1 ? a : b)
        Syscalls.close(aPeer); Syscalls.close(bPeer)
        XCTAssertEqual(loop.activeWatchers, 0)
        wa = nil; wb = nil  // each callback captures both: break the cycle
    }

    func testIOWatcherChangesEvents() throws {
        let loop = EventLoop()
        let (a, b) = try Syscalls.socketpair()
        defer { Syscalls.close(a); Syscalls.close(b) }
        var seen: [IOEvents] = []
        let w = IOWatcher(loop: loop, fd: a, events: .write) { w, ev in
            seen.append(ev)
            w.set(events: .read)
        }
        w.start()
        XCTAssertTrue(loop.run(until: { seen.count == 1 }, timeout: 5))
        XCTAssertEqual(seen[0], .write)
        var one: UInt8 = 7
        _ = Glibc.write(b, &one, 1)
        XCTAssertTrue(loop.run(until: { seen.count == 2 }, timeout: 5))
        XCTAssertEqual(seen[1], .read)
        w.stop()
    }

    func testSignalWatcherRunsHandlerOnTheLoop() {
        let loop = EventLoop.makeDefault()
        var got = 0
        let s = SignalWatcher(loop: loop, signal: SIGUSR1) { _ in got += 1 }
        s.start()
        raise(SIGUSR1)
        XCTAssertTrue(loop.run(until: { got == 1 }, timeout: 5))
        s.stop()
        XCTAssertFalse(s.isActive)
    }

    func testChildWatcherReportsExitStatusAndSignal() throws {
        let loop = EventLoop.makeDefault()
        func spawn(_ script: String) -> pid_t {
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(script), nil]
            defer { argv.forEach { free($0) } }
            XCTAssertEqual(posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ), 0)
            return pid
        }
        var results: [ChildWatcher.Termination] = []
        let c1 = ChildWatcher(loop: loop, pid: spawn("exit 3")) { _, t in results.append(t) }
        c1.start()
        XCTAssertTrue(loop.run(until: { results.count == 1 }, timeout: 10))
        XCTAssertEqual(results[0], .exited(3))
        XCTAssertFalse(c1.isActive)

        let c2 = ChildWatcher(loop: loop, pid: spawn("kill -TERM $$")) { _, t in results.append(t) }
        c2.start()
        XCTAssertTrue(loop.run(until: { results.count == 2 }, timeout: 10))
        XCTAssertEqual(results[1], .signaled(SIGTERM))
    }

    func testAsyncWatcherIsTheThreadSafeWakeUp() {
        let loop = EventLoop()
        var woke = 0
        let a = AsyncWatcher(loop: loop) { _ in woke += 1 }
        a.start()
        let t = Thread { a.send() }
        t.start()
        XCTAssertTrue(loop.run(until: { woke >= 1 }, timeout: 5))
        a.stop()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testPeriodicFiresAtAWallClockTime() {
        let loop = EventLoop()
        var fired = 0
        let p = PeriodicWatcher(loop: loop) { _ in fired += 1 }
        p.start(offset: loop.now + 0.02, interval: 0)
        XCTAssertGreaterThan(p.nextAt, loop.now)
        XCTAssertTrue(loop.run(until: { fired == 1 }, timeout: 5))
        XCTAssertEqual(loop.activeWatchers, 0, "an absolute one-shot periodic stops itself")
    }

    func testPhaseWatchersRunAroundPoll() {
        let loop = EventLoop()
        var order: [String] = []
        let prep = PrepareWatcher(loop: loop) { _ in order.append("prepare") }
        let check = CheckWatcher(loop: loop) { _ in order.append("check") }
        let idle = IdleWatcher(loop: loop) { w in order.append("idle"); w.stop() }
        prep.start(); check.start(); idle.start()
        loop.runOnce()
        XCTAssertEqual(Array(order.prefix(3)), ["prepare", "check", "idle"])
        prep.stop(); check.stop(); idle.stop()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testLoopLagRecordsABusyCallback() {
        let loop = EventLoop()
        loop.resetLag()
        var done = false
        let t = TimerWatcher(loop: loop) { _ in
            let end = Clock.monotonicNanos() + 20_000_000
            while Clock.monotonicNanos() < end {}
            done = true
        }
        t.start(after: 0)
        XCTAssertTrue(loop.run(until: { done }, timeout: 5))
        loop.runOnce()
        XCTAssertGreaterThanOrEqual(loop.lag.max, 20_000, "a 20 ms callback shows as >= 20 ms of lag")
        XCTAssertGreaterThan(loop.iteration, 0)
    }
}
