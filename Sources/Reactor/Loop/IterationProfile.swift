// IterationProfile: what ran in a slow loop iteration, and for how long.
//
// The loop's lag (EventLoop.lag) says how long an iteration kept the loop from
// polling, not why. While `thresholdMicros` is above zero, every watcher
// callback and every deferred slice is timed on the monotonic clock (two vDSO
// `clock_gettime` reads, ~25 ns each here) and its time is added, in a small
// table indexed by call site, to the current iteration. When the iteration
// ends (the loop's lowest-priority prepare watcher) and it took at least the
// threshold, the iteration is counted and reported: the sites that ran, by
// total time, with how often each ran, and the time no callback accounts for
// (libev itself, the kernel's epoll_wait return), and the CPU time the loop's
// thread actually got during the iteration (CLOCK_THREAD_CPUTIME_ID, read at
// its start and end): wall time well above CPU time is time the thread waited
// for a core — another process on it (CPU steal on a shared machine) — which
// inflates whichever callback was running then. Reports are rate-limited
// (`minReportInterval`); the ones left out are counted — except an
// iteration longer than every one before it, which is always reported, so
// the maximum the lag shows is never one the log left out. The CPU time is
// read for every slow iteration, reported or not: `slowIterationsOnCPU`
// counts those in which the thread itself ran for the threshold (the
// loop's own work, not a wait for a core), and `mostCPUMicros` is the most
// CPU time any iteration took.
//
// Why time every callback rather than only a sample of iterations: a slow
// iteration is only known to be slow at its end, and its breakdown must have
// been measured by then. The cost is measured by `reactor-bench loop-overhead`
// (docs/PERFORMANCE.md, "Loop lag"): a few tens of nanoseconds per callback,
// well under 1 % of the loop's time at 20,000 sessions, and nothing with the
// threshold at 0 (one predictable branch).
//
// A call site is interned once, when its watcher or DeferOnce is made (a
// dictionary lookup), and carried as a small integer; `loop.defer` with no
// site interns only while profiling is on. Labels name a fixed set of
// places (never an id or an address): each distinct one is kept for good.
//
// Thread: the loop's thread, like the loop.

public final class IterationProfile {
    /// Iterations at least this long are counted and reported; 0 turns
    /// timing off (the default).
    public var thresholdMicros: UInt64 = 0 {
        didSet { enabled = thresholdMicros > 0; clearIteration() }
    }
    /// At most one report per this many seconds (monotonic); the others are counted.
    public var minReportInterval = 1.0
    /// Sites named in one report, the costliest first.
    public var maxSitesReported = 8
    /// Receives each report; by default a warning line on the log.
    public var report: (SlowIteration) -> Void = { IterationProfile.log($0) }

    /// Iterations that reached the threshold since start.
    public private(set) var slowIterations: UInt64 = 0
    /// Slow iterations not reported because of the rate limit.
    public private(set) var reportsSuppressed: UInt64 = 0
    /// Callbacks timed since start.
    public private(set) var callbacksTimed: UInt64 = 0
    /// The longest iteration seen while profiling, in microseconds.
    public private(set) var longestMicros: UInt64 = 0
    /// Slow iterations in which the loop's thread itself used at least the
    /// threshold in CPU time (the rest waited for a core for part of it).
    public private(set) var slowIterationsOnCPU: UInt64 = 0
    /// The most CPU time a slow iteration took, in microseconds.
    public private(set) var mostCPUMicros: UInt64 = 0
    /// The thread's CPU clock (nanoseconds); tests inject their own.
    public var cpuClock: () -> UInt64 = Clock.threadCPUNanos

    /// True while timing is on (`thresholdMicros > 0`).
    public private(set) var enabled = false

    private var names: [String] = []
    private var labelled: [String: Int32] = [:]
    private var placed: [PlaceKey: Int32] = [:]
    // Per site, this iteration: callbacks and nanoseconds.
    private var runs: [UInt32] = []
    private var nanos: [UInt64] = []
    private var touched: [Int32] = []
    private var suppressedSinceReport: UInt64 = 0
    private var lastReportAt = -Double.infinity
    private var cpuAtStart: UInt64 = 0

    init() {}

    // MARK: call sites

    /// The site for a callback of `kind` made at `file`:`line`, named `label`
    /// when one is given ("session") and by where it was made otherwise.
    /// Sites with the same kind and label are one site, wherever made.
    public func site(_ kind: StaticString, label: String?, file: StaticString, line: UInt) -> Int32 {
        if let label {
            let name = "\(kind) \(label)"
            if let id = labelled[name] { return id }
            let id = newSite(name)
            labelled[name] = id
            return id
        }
        let key = PlaceKey(kind: UInt(bitPattern: kind.utf8Start), file: UInt(bitPattern: file.utf8Start), line: line)
        if let id = placed[key] { return id }
        let id = newSite("\(kind) \(file):\(line)")
        placed[key] = id
        return id
    }

    private func newSite(_ name: String) -> Int32 {
        names.append(name)
        runs.append(0)
        nanos.append(0)
        return Int32(names.count - 1)
    }

    /// The name a site was given (for tests and reports).
    public func name(of site: Int32) -> String { names[Int(site)] }

    // MARK: timing (the watchers' trampolines and the deferred queue)

    /// The start of a callback: a timestamp, or 0 when timing is off.
    @inline(__always)
    public func begin() -> UInt64 { enabled ? Clock.monotonicNanos() : 0 }

    /// The end of a callback that `begin` timed from `start`.
    @inline(__always)
    public func end(_ site: Int32, _ start: UInt64) {
        guard start != 0 else { return }
        add(site, Clock.monotonicNanos() &- start)
    }

    /// Adds `ns` to `site` in the current iteration (tests drive it directly).
    public func add(_ site: Int32, _ ns: UInt64) {
        guard site >= 0, Int(site) < runs.count else { return }
        let i = Int(site)
        callbacksTimed &+= 1
        if runs[i] == 0 { touched.append(site) }
        runs[i] &+= 1
        nanos[i] &+= ns
    }

    /// The iteration's busy part begins (the loop's lag check, after poll).
    @inline(__always)
    func iterationStarted() {
        if enabled { cpuAtStart = cpuClock() }
    }

    /// The iteration ended after `busyNanos`; reports it if it was slow.
    /// `now` is monotonic seconds (the rate limit's clock).
    public func iterationEnded(busyNanos: UInt64, iteration: UInt, now: Double) {
        guard enabled else { return }
        let micros = busyNanos / 1000
        let longest = micros > longestMicros
        if longest { longestMicros = micros }
        if micros >= thresholdMicros {
            slowIterations &+= 1
            let cpu = cpuAtStart == 0 ? nil : (cpuClock() &- cpuAtStart) / 1000
            if let cpu {
                if cpu >= thresholdMicros { slowIterationsOnCPU &+= 1 }
                if cpu > mostCPUMicros { mostCPUMicros = cpu }
            }
            if longest || now - lastReportAt >= minReportInterval {
                lastReportAt = now
                var r = breakdown(totalNanos: busyNanos, iteration: iteration)
                r.cpuMicros = cpu
                r.longest = longest
                report(r)
                suppressedSinceReport = 0
            } else {
                reportsSuppressed &+= 1
                suppressedSinceReport &+= 1
            }
        }
        clearIteration()
        cpuAtStart = 0
    }

    private func breakdown(totalNanos: UInt64, iteration: UInt) -> SlowIteration {
        var sites = touched.map { SlowIteration.Site(name: names[Int($0)], runs: Int(runs[Int($0)]), micros: nanos[Int($0)] / 1000) }
        let accounted = touched.reduce(UInt64(0)) { $0 &+ nanos[Int($1)] } / 1000
        sites.sort { $0.micros != $1.micros ? $0.micros > $1.micros : $0.name < $1.name }
        let left = sites.count > maxSitesReported ? sites.count - maxSitesReported : 0
        let totalMicros = totalNanos / 1000
        return SlowIteration(iteration: iteration, micros: totalMicros, sites: Array(sites.prefix(maxSitesReported)),
                             sitesLeftOut: left, unattributedMicros: totalMicros > accounted ? totalMicros - accounted : 0,
                             suppressedBefore: suppressedSinceReport)
    }

    private func clearIteration() {
        for s in touched { runs[Int(s)] = 0; nanos[Int(s)] = 0 }
        touched.removeAll(keepingCapacity: true)
    }

    /// The default report: one warning line.
    public static func log(_ r: SlowIteration) {
        Log.warn("slow loop iteration", ["ms": millis(r.micros), "cpu_ms": r.cpuMicros.map(millis) ?? "-", "ran": r.summary,
                                         "unattributed_ms": millis(r.unattributedMicros),
                                         "iteration": "\(r.iteration)", "suppressed": "\(r.suppressedBefore)",
                                         "longest": r.longest ? "yes" : "no"])
    }

    static func millis(_ us: UInt64) -> String {
        let tenths = (us + 50) / 100
        return "\(tenths / 10).\(tenths % 10)"
    }

    private struct PlaceKey: Hashable {
        var kind: UInt
        var file: UInt
        var line: UInt
    }
}

/// One slow iteration: how long it took and what ran in it.
public struct SlowIteration: Sendable {
    public struct Site: Sendable, Equatable {
        /// The watcher kind and its label (or where it was made).
        public var name: String
        /// Callbacks of this site in the iteration.
        public var runs: Int
        /// Their total time.
        public var micros: UInt64
    }
    /// `EventLoop.iteration` when it ended.
    public var iteration: UInt
    public var micros: UInt64
    /// The costliest sites first, at most `maxSitesReported`.
    public var sites: [Site]
    /// Sites that ran but are not listed.
    public var sitesLeftOut: Int
    /// The iteration's time no timed callback accounts for.
    public var unattributedMicros: UInt64
    /// Slow iterations left out by the rate limit since the previous report.
    public var suppressedBefore: UInt64
    /// CPU time the loop's thread got in the iteration (nil when the
    /// iteration's start was not seen); `micros` minus this is time spent
    /// waiting for a core.
    public var cpuMicros: UInt64? = nil
    /// Longer than every iteration before it: reported despite the rate limit.
    public var longest = false

    /// "io session read 812x 41.0 ms, timer metrics window 1x 20.1 ms, …".
    public var summary: String {
        var parts = sites.map { "\($0.name) \($0.runs)x \(IterationProfile.millis($0.micros)) ms" }
        if sitesLeftOut > 0 { parts.append("\(sitesLeftOut) more") }
        return parts.isEmpty ? "-" : parts.joined(separator: ", ")
    }
}
