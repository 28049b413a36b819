// Per-iteration cost of the loop itself, of an idle watcher, and of a timer
// that fires every iteration. An idle watcher keeps the loop from blocking,
// so each iteration is one non-blocking poll plus the watchers' callbacks
// (and the loop's own lag check/prepare pair, and the counting check
// watcher); the cost of one more watcher is the slope between the baseline
// and N more of them. The same three again with the slow-iteration
// profile on (IterationProfile: every callback timed, threshold far above
// any iteration here) give its cost per callback.
import Reactor
#if canImport(Glibc)
import Glibc
#endif

struct LoopOverheadBench {
    let iterations: Int
    let watchers: Int

    func run() {
        // Warm up once so page faults and lazy binding are not measured.
        _ = measure(idle: 1, timers: 0, iterations: iterations / 10)
        let base = measure(idle: 1, timers: 0, iterations: iterations)
        let idles = measure(idle: 1 + watchers, timers: 0, iterations: iterations)
        let timers = measure(idle: 1, timers: watchers, iterations: iterations)
        let oneTimer = measure(idle: 1, timers: 1, iterations: iterations)
        let pBase = measure(idle: 1, timers: 0, iterations: iterations, profiled: true)
        let pIdles = measure(idle: 1 + watchers, timers: 0, iterations: iterations, profiled: true)
        let pTimers = measure(idle: 1, timers: watchers, iterations: iterations, profiled: true)
        let timerFire = (timers - base) / Double(watchers), pTimerFire = (pTimers - pBase) / Double(watchers)
        print("loop_iteration_ns=\(fmt(base, 1)) idle_watcher_ns=\(fmt((idles - base) / Double(watchers), 1))"
            + " timer_fire_ns=\(fmt(timerFire, 1)) one_timer_iteration_ns=\(fmt(oneTimer, 1))"
            + " profiled_loop_iteration_ns=\(fmt(pBase, 1)) profiled_idle_watcher_ns=\(fmt((pIdles - pBase) / Double(watchers), 1))"
            + " profiled_timer_fire_ns=\(fmt(pTimerFire, 1)) profile_ns_per_callback=\(fmt(pTimerFire - timerFire, 1))"
            + " watchers=\(watchers) iterations=\(iterations)")
    }

    /// Nanoseconds per iteration with `idle` idle watchers and `timers`
    /// timers that re-arm themselves to fire on every iteration.
    private func measure(idle: Int, timers: Int, iterations: Int, profiled: Bool = false) -> Double {
        let loop = EventLoop()
        if profiled { loop.profile.thresholdMicros = 60_000_000 }
        // Counted by a check watcher: idle watchers do not run in an
        // iteration where a timer is pending (ev.pod, "ev_idle").
        let target = loop.iteration + UInt(iterations)
        let counter = CheckWatcher(loop: loop) { _ in
            if loop.iteration >= target { loop.stop() }
        }
        counter.start()
        let extra = (0..<max(idle, 1)).map { _ in IdleWatcher(loop: loop) { _ in } }
        extra.forEach { $0.start() }
        let ts = (0..<timers).map { _ in TimerWatcher(loop: loop) { t in t.start(after: 0) } }
        ts.forEach { $0.start(after: 0) }
        let t0 = Clock.monotonicNanos()
        loop.run()
        let ns = Double(Clock.monotonicNanos() - t0) / Double(iterations)
        counter.stop()
        extra.forEach { $0.stop() }
        ts.forEach { $0.stop() }
        return ns
    }
}
