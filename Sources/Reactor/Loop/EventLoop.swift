// EventLoop: one libev loop, driven from one thread.
//
// Threading: every method must be called on the loop's thread, except
// `AsyncWatcher.send()`, which is the one thread-safe way in.
//
// Besides running watchers, the loop measures its own lag: the time from
// poll returning (a check watcher at the highest priority) to the loop coming
// back to poll (a prepare watcher). That is how long any ready event can have
// waited, which is what "no callback runs long" is about. What ran in an
// iteration that took long is `profile`'s to say (IterationProfile).
import CEv
#if canImport(Glibc)
import Glibc
#endif

public final class EventLoop {
    /// The libev loop (`struct ev_loop *`).
    public let raw: OpaquePointer
    public let isDefault: Bool

    /// How long each busy iteration kept the loop from polling, in microseconds.
    public private(set) var lag = LogHistogram()
    /// Work deferred to later iterations; see `defer(_:)`.
    public let deferred: DeferredQueue
    /// Per-callback timing and the slow-iteration report; off until its
    /// threshold is set (IterationProfile).
    public let profile = IterationProfile()
    /// The time an iteration may spend on work that can wait; off until
    /// its budget is set (IterationTimeBox).
    public let timeBox = IterationTimeBox()

    /// Number of watchers currently retained by this loop (active ones).
    public internal(set) var activeWatchers = 0

    private var lagCheck: UnsafeMutablePointer<ev_check>
    private var lagPrepare: UnsafeMutablePointer<ev_prepare>
    private var busySince: UInt64 = 0

    /// The process-wide default loop: the only one that can watch child
    /// processes (ev.pod, "ev_child"). Every call returns the same object.
    public static func makeDefault() -> EventLoop {
        if let l = defaultLoop { return l }
        installSyserrHandler()
        guard let raw = ev_default_loop(UInt32(EVFLAG_AUTO)) else {
            fatalError("ev_default_loop failed: no usable backend")
        }
        let l = EventLoop(raw: raw, isDefault: true)
        defaultLoop = l
        return l
    }
    private static var defaultLoop: EventLoop?

    /// A new, independent loop (signals and children need the default one).
    public convenience init() {
        EventLoop.installSyserrHandler()
        guard let l = ev_loop_new(UInt32(EVFLAG_AUTO)) else { fatalError("ev_loop_new failed: no usable backend") }
        self.init(raw: l, isDefault: false)
    }

    private init(raw: OpaquePointer, isDefault: Bool) {
        self.raw = raw
        self.isDefault = isDefault
        lagCheck = .allocate(capacity: 1)
        lagPrepare = .allocate(capacity: 1)
        deferred = DeferredQueue()
        Syscalls.ignoreSIGPIPE()

        let me = Unmanaged.passUnretained(self).toOpaque()
        cev_check_init(lagCheck) { _, w, _ in
            let loop = Unmanaged<EventLoop>.fromOpaque(cev_data(w)!).takeUnretainedValue()
            loop.busySince = Clock.monotonicNanos()
            loop.timeBox.iterationStarted()
            loop.profile.iterationStarted()
        }
        cev_set_data(lagCheck, me)
        cev_set_priority(lagCheck, CEV_MAXPRI)
        ev_check_start(raw, lagCheck)
        ev_unref(raw)  // measurement alone must not keep ev_run alive

        cev_prepare_init(lagPrepare) { _, w, _ in
            let loop = Unmanaged<EventLoop>.fromOpaque(cev_data(w)!).takeUnretainedValue()
            if loop.busySince != 0 {
                let end = Clock.monotonicNanos()
                let busy = end &- loop.busySince
                loop.lag.record(busy / 1000)
                loop.busySince = 0
                loop.profile.iterationEnded(busyNanos: busy, iteration: loop.iteration, now: Double(end) / 1e9)
            }
        }
        cev_set_data(lagPrepare, me)
        cev_set_priority(lagPrepare, CEV_MINPRI)
        ev_prepare_start(raw, lagPrepare)
        ev_unref(raw)

        deferred.attach(to: self)
    }

    deinit {
        deferred.detach()
        ev_ref(raw); ev_check_stop(raw, lagCheck)
        ev_ref(raw); ev_prepare_stop(raw, lagPrepare)
        lagCheck.deallocate()
        lagPrepare.deallocate()
        if !isDefault { ev_loop_destroy(raw) }
    }

    /// Runs until `stop()` is called or no active watcher is left.
    public func run() {
        ev_run(raw, 0)
    }

    /// Runs one iteration. With `wait` false it polls without blocking.
    /// Returns true while active watchers remain.
    @discardableResult
    public func runOnce(wait: Bool = false) -> Bool {
        ev_run(raw, Int32(wait ? EVRUN_ONCE : EVRUN_NOWAIT)) != 0
    }

    /// Runs iterations until `condition` holds or `timeout` seconds pass
    /// (measured on the monotonic clock). Returns whether the condition held.
    /// Intended for tests and tools; servers call `run()`.
    @discardableResult
    public func run(until condition: () -> Bool, timeout: Double) -> Bool {
        let deadline = Clock.monotonicNanos() + UInt64(timeout * 1e9)
        let guardTimer = TimerWatcher(loop: self) { _ in }
        guardTimer.start(after: min(timeout, 0.05), repeat: 0.05)
        defer { guardTimer.stop() }
        while !condition() {
            if Clock.monotonicNanos() >= deadline { return false }
            runOnce(wait: true)
        }
        return true
    }

    /// Makes `run()` return after the current iteration.
    public func stop() {
        ev_break(raw, Int32(EVBREAK_ALL))
    }

    /// The loop's cached wall-clock time at the start of this iteration (`ev_now`).
    public var now: Double { ev_now(raw) }

    /// Monotonic seconds (CLOCK_MONOTONIC), for intervals and deadlines that
    /// must not jump with the wall clock; not cached per iteration.
    public var monotonicNow: Double { Clock.monotonic() }

    /// Refreshes `now` (`ev_now_update`), e.g. after a long computation.
    public func updateNow() { ev_now_update(raw) }

    /// Iterations completed so far (`ev_iteration`).
    public var iteration: UInt { UInt(ev_iteration(raw)) }

    /// Schedules `work` for a later iteration; see `DeferredQueue`. `label`
    /// names it in slow-iteration reports (by default, where it was called).
    public func `defer`(label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                        _ work: @escaping () -> Void) {
        let site = profile.enabled ? profile.site("deferred", label: label, file: file, line: line) : -1
        deferred.enqueue(work, site: site)
    }

    /// `defer` for work queued often from one place: `site` is interned
    /// once beforehand (`profile.site`), so nothing is looked up per call.
    public func `defer`(site: Int32, _ work: @escaping () -> Void) {
        deferred.enqueue(work, site: site)
    }

    public func resetLag() { lag = LogHistogram() }

    // ev_set_syserr_cb: libev prints and aborts on a fatal syscall error in
    // its backend; we log with errno first so the cause is in our log.
    private static var syserrInstalled = false
    private static func installSyserrHandler() {
        if syserrInstalled { return }
        syserrInstalled = true
        ev_set_syserr_cb { msg in
            let err = Glibc.errno
            let text = msg.map { String(cString: $0) } ?? "unknown"
            let line = "fatal: libev: \(text): \(Syscalls.errorName(err)) (\(err))\n"
            _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
            abort()
        }
    }
}

/// Clocks used by the Reactor. Monotonic time for intervals; wall time only
/// for timestamps that leave the process.
public enum Clock {
    @inline(__always)
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    public static func monotonic() -> Double { Double(monotonicNanos()) / 1e9 }

    /// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID: a
    /// system call, not the vDSO — about 0.3–0.9 µs here).
    public static func threadCPUNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Wall-clock time in milliseconds since the Unix epoch.
    public static func wallMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
