// MonitorEngine: the synthetic monitors of one agent, on its loop.
//
// The agent hands it the schedule (`apply(schedule:)` with each Schedule
// record, or `apply(definitions:lastRunMs:)`) and queues what `onResult`
// delivers (the agent's `BatchEncoder` makes the DataBatch
// items). Inside: a `MonitorScheduler` decides, one TimerWatcher wakes the
// engine at the next due time, and each run goes to its runner — HTTP
// through libcurl's multi-socket interface (libcurl is loaded when the first
// HTTP monitor is scheduled), TCP through `TCPConnection`, exec as a child
// process speaking docs/MONITORS.md's line protocol. No threads of ours; no
// blocking call on the loop.
//
// Results: every started run reports exactly one result; an overtime skip
// reports a result with status overtime; a run of a monitor that was
// removed is cancelled and its result dropped (counted in
// `stats.droppedRemoved`); a run refused because `maxConcurrentRuns` runs
// are in flight reports an error result (counted in
// `stats.skippedConcurrency`); a run the agent's own policy forbids (an
// exec command outside `exec_monitors`, a variable outside `monitor_env`,
// a variable in a URL's host) reports a result with status refused and the
// rule (counted in `stats.refused`). `onResult` is always called from a loop
// callback, never from inside a call made on the engine.
//
// Thread: loop thread only. Ownership: the owner keeps the engine; runs and
// watchers it creates live no longer than it, except an exec child being
// terminated, which is reaped even after `shutdown()`.
import MonitorModel
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

public final class MonitorEngine {
    /// Who may run custom monitors on this agent (`exec_monitors`). There is
    /// no "anything goes": a command runs only from a directory the agent's
    /// own configuration names.
    public enum ExecPolicy: Equatable, Sendable {
        /// Exec monitors are refused (the default).
        case disabled
        /// Only commands whose real path (symbolic links resolved) lies
        /// inside one of these directories (also resolved).
        case directories([String])
    }

    /// What the agent's own configuration lets monitors do. Never set by the
    /// collector (docs/AGENT.md, "Agent-local policy").
    public struct Policy: Equatable, Sendable {
        public var exec: ExecPolicy
        /// Variables `${env:NAME}` may name (`monitor_env`); `VIGIL_*` never,
        /// whatever this says.
        public var environment: Set<String>

        public init(exec: ExecPolicy = .disabled, environment: Set<String> = []) {
            self.exec = exec
            self.environment = environment
        }
    }

    public struct Options {
        /// When set, only monitors sharing a group with this list run; the
        /// collector already sends only the agent's groups, so this is a
        /// second check (e.g. after a local `groups` change).
        public var groups: [String]?
        /// Runs in flight at most; a due run beyond it is skipped with an
        /// error result. Bounds sockets, easy handles and child processes.
        public var maxConcurrentRuns = 512
        /// Exec off, no environment: what the agent's configuration allows
        /// replaces it (and `setPolicy` while running).
        public var policy = Policy()
        /// Seconds a custom monitor has to answer the handshake.
        public var execHandshakeTimeout = 5.0
        /// Seconds a custom monitor has to exit after "exit" before SIGTERM.
        public var execExitGrace = 2.0
        /// Seconds between SIGTERM and SIGKILL.
        public var execKillGrace = 2.0
        /// Monitor output (stderr, `log` lines) in the agent's log.
        public var outputLinesPerRun = 20
        public var outputLinesPerMinute = 120
        public var outputMaxLineBytes = 512
        /// The libcurl to dlopen (nil: "libcurl.so.4").
        public var curlLibrary: String?
        public var userAgent = "vigil-agent-monitor/1"
        /// Resolves `${env:NAME}`; nil reads the process environment.
        public var environment: ((String) -> String?)?
        /// Host names of tcp checks; nil: the engine makes its own on the
        /// first name. The agent passes the one its uplink uses.
        public var resolver: HostResolver?

        public init() {}
    }

    /// Counters for Status. Monotonic.
    public struct Stats: Equatable, Sendable {
        public var runsStarted: UInt64 = 0
        public var runsCompleted: UInt64 = 0
        public var runsFailed: UInt64 = 0
        /// Slots skipped because the previous run was still going.
        public var overtime: UInt64 = 0
        /// Slots skipped because the loop fell a whole interval behind.
        public var lateSkips: UInt64 = 0
        public var skippedConcurrency: UInt64 = 0
        /// Results of runs whose monitor was removed mid-run.
        public var droppedRemoved: UInt64 = 0
        /// Monitors left out of a schedule (invalid spec or other group).
        public var monitorsRejected: UInt64 = 0
        /// Runs the agent's policy refused (reported with status refused).
        public var refused: UInt64 = 0
        public var execSpawned: UInt64 = 0
        public var execTerminated: UInt64 = 0
        public var execKilled: UInt64 = 0
        public var execProtocolErrors: UInt64 = 0
        public var outputLinesLogged: UInt64 = 0
        public var outputLinesDropped: UInt64 = 0

        /// The counters as Status `Counter`s, named `monitors_*`.
        public var counters: [Counter] {
            [Counter("monitors_runs_started", runsStarted), Counter("monitors_runs_completed", runsCompleted),
             Counter("monitors_runs_failed", runsFailed), Counter("monitors_overtime", overtime),
             Counter("monitors_late_skips", lateSkips), Counter("monitors_skipped_concurrency", skippedConcurrency),
             Counter("monitors_dropped_removed", droppedRemoved), Counter("monitors_rejected", monitorsRejected),
             Counter("monitors_refused", refused),
             Counter("monitors_exec_spawned", execSpawned), Counter("monitors_exec_terminated", execTerminated),
             Counter("monitors_exec_killed", execKilled), Counter("monitors_exec_protocol_errors", execProtocolErrors),
             Counter("monitors_output_lines_logged", outputLinesLogged),
             Counter("monitors_output_lines_dropped", outputLinesDropped)]
        }
    }

    public let loop: EventLoop
    public private(set) var options: Options
    public let scheduler: MonitorScheduler
    private let onResult: (MonitorRunResult) -> Void
    private var timer: TimerWatcher!
    private var runs: [UInt64: (runID: UInt64, run: MonitorRun)] = [:]
    private var curl: CurlMulti?
    private var curlError: String?
    /// URL schemes ("http", "https") whose first libcurl run has
    /// completed (`onHTTPWarm`).
    private var warmSchemes: Set<String> = []
    private var resolver: HostResolver?
    private let output: MonitorOutputLog
    private let execStats = ExecStats()
    private var counts = Stats()
    private var assembler = ScheduleAssembler()
    private var isShutDown = false

    /// - Parameters:
    ///   - clock, random: injectable for tests (virtual time, fixed jitter).
    ///   - onResult: each result, on the loop.
    public init(loop: EventLoop, options: Options = Options(), clock: MonitorClock = SystemMonitorClock(),
                random: any RandomSource = XorShiftRandom(), onResult: @escaping (MonitorRunResult) -> Void) {
        self.loop = loop
        self.options = options
        self.onResult = onResult
        scheduler = MonitorScheduler(clock: clock, random: random)
        output = MonitorOutputLog(linesPerRun: options.outputLinesPerRun, maxLineBytes: options.outputMaxLineBytes,
                                  linesPerMinute: options.outputLinesPerMinute)
        timer = TimerWatcher(loop: loop) { [unowned self] _ in self.tick() }
    }

    deinit { shutdown() }

    // MARK: schedule

    /// Feeds one Schedule record from the session. Parts of a split
    /// schedule are joined first; returns nil until the schedule is whole,
    /// then the messages for monitors left out (for Status), [] when none.
    @discardableResult
    public func apply(schedule record: Schedule) -> [String]? {
        guard let whole = assembler.add(record) else { return nil }
        let (defs, lastRun, errors) = ScheduleCodec.definitions(from: whole)
        counts.monitorsRejected &+= UInt64(errors.count)
        apply(definitions: defs, lastRunMs: lastRun)
        return errors
    }

    /// Replaces the monitor set (see `MonitorScheduler.apply` for what
    /// happens to unchanged, changed and removed monitors).
    public func apply(definitions: [MonitorDefinition], lastRunMs: [UInt64: UInt64] = [:]) {
        guard !isShutDown else { return }
        var defs = definitions
        if let mine = options.groups {
            defs = definitions.filter { $0.groups.contains(where: mine.contains) }
        }
        let changes = scheduler.apply(defs, lastRunMs: lastRunMs)
        for (id, runID) in changes.cancelled {
            if let r = runs[id], r.runID == runID {
                runs[id] = nil
                r.run.cancel()
                counts.droppedRemoved &+= 1
            }
        }
        // The first HTTP monitor scheduled loads libcurl (not before: it
        // costs an idle agent ~6 MB).
        if curl == nil && curlError == nil && defs.contains(where: { $0.kind == .http }) { loadCurl() }
        rearm()
    }

    /// Cancels every run and stops scheduling; results in flight are dropped.
    public func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        timer.stop()
        for (_, r) in runs { r.run.cancel() }
        runs.removeAll()
        curl?.shutdown()
    }

    /// A new policy (the agent's own configuration changed, e.g. SIGHUP);
    /// it decides from the next run on.
    public func setPolicy(_ policy: Policy) { options.policy = policy }

    // MARK: introspection

    public var stats: Stats {
        var s = counts
        s.overtime = scheduler.overtimeSkips
        s.lateSkips = scheduler.lateSkips
        s.execSpawned = execStats.spawned
        s.execTerminated = execStats.terminated
        s.execKilled = execStats.killed
        s.execProtocolErrors = execStats.protocolErrors
        s.outputLinesLogged = output.written
        s.outputLinesDropped = output.dropped
        return s
    }

    /// Called on the loop, on a later iteration, when the first HTTP run of
    /// a scheme ("http", then "https", or the other way round) has completed
    /// since libcurl was loaded: its one-time paths (dlopen's relocations,
    /// library constructors, `curl_global_init`, the TLS library's first
    /// context) have run, and what they touched can be given back. The
    /// agent trims mapped pages from here (MappedPageTrim). At most twice
    /// per engine.
    public var onHTTPWarm: ((_ scheme: String) -> Void)?

    public var scheduledCount: Int { scheduler.count }
    public var runningCount: Int { runs.count }
    /// Whether libcurl has been loaded (an HTTP monitor was scheduled).
    public var isHTTPLoaded: Bool { curl != nil }
    /// The libcurl version string once loaded.
    public var httpLibraryVersion: String { CurlLibrary.version }
    /// Sockets libcurl has the loop watching right now.
    public var httpSocketsWatched: Int { curl?.watchedSockets ?? 0 }
    /// Schedule parts thrown away (see `ScheduleAssembler`).
    public var schedulePartsDiscarded: UInt64 { assembler.discarded }

    // MARK: running

    private func rearm() {
        guard !isShutDown, let due = scheduler.nextDueMs else { timer.stop(); return }
        let wait = max(due - scheduler.clock.monotonicMs, 0)
        timer.start(after: Double(wait) / 1000)
    }

    private func tick() {
        for action in scheduler.takeDue() {
            switch action {
            case .start(let id, let runID):
                guard let def = scheduler.definition(id) else { continue }
                start(def, runID: runID)
            case .overtime(let id, let running):
                guard let def = scheduler.definition(id) else { continue }
                let ctx = context(def, runID: 0)
                onResult(ctx.result(.overtime, message: "skipped: run \(running) still in progress", durationUs: 0))
            }
        }
        rearm()
    }

    private func context(_ def: MonitorDefinition, runID: UInt64) -> RunContext {
        RunContext(definition: def, runID: runID, startedMs: UInt64(max(scheduler.clock.wallMs, 0)),
                   startedNanos: Clock.monotonicNanos()) { [weak self] result in
            self?.completed(result)
        }
    }

    private func start(_ def: MonitorDefinition, runID: UInt64) {
        let ctx = context(def, runID: runID)
        let run: MonitorRun
        if runs.count >= options.maxConcurrentRuns {
            counts.skippedConcurrency &+= 1
            run = FailedRun(loop: loop, context: ctx, message: "skipped: \(options.maxConcurrentRuns) runs already in progress")
        } else {
            run = makeRun(def, ctx)
        }
        counts.runsStarted &+= 1
        runs[def.numericID] = (runID, run)
        run.start()
    }

    private func makeRun(_ def: MonitorDefinition, _ ctx: RunContext) -> MonitorRun {
        let allowed = options.policy.environment
        var env = EnvResolver(lookup: options.environment, allowed: { allowed.contains($0) })
        do {
            switch def.check {
            case .http(var h):
                let written = h.url
                // Where a request goes is never decided by a variable: a
                // value in the host could send the others (a token in a
                // header) elsewhere, or spell itself into a DNS query.
                if EnvReference.containsReference(written) {
                    guard let hostPort = HTTPURL.hostPort(written), !EnvReference.containsReference(String(hostPort)) else {
                        return refuse(ctx, "spec.url: ${env:…} is never substituted into a URL's scheme, host or port")
                    }
                }
                h.url = try env.resolve(written)
                if EnvReference.containsReference(written) {
                    // Validation could not see through the references; check now.
                    if let problem = HTTPURL.problem(h.url) {
                        return FailedRun(loop: loop, context: ctx, message: "spec.url after ${env:…} resolution: \(problem)")
                    }
                    if HTTPURL.hostPort(h.url) != HTTPURL.hostPort(written) {
                        return refuse(ctx, "spec.url: a ${env:…} value would change the URL's host")
                    }
                }
                for i in h.headers.indices { h.headers[i].value = try env.resolve(h.headers[i].value) }
                if let b = h.body { h.body = try env.resolve(b) }
                guard let curl else {
                    return FailedRun(loop: loop, context: ctx, message: curlError ?? "libcurl is not loaded")
                }
                return HTTPRun(multi: curl, context: ctx, check: h, env: env, userAgent: options.userAgent)
            case .tcp(let t):
                if EnvReference.containsReference(t.host) {
                    return refuse(ctx, "spec.host: ${env:…} is never substituted into a host")
                }
                return TCPRun(loop: loop, context: ctx, host: t.host, port: t.port, env: env) { [unowned self] in
                    if let r = self.resolver ?? self.options.resolver { return r }
                    let r = HostResolver(loop: self.loop)
                    self.resolver = r
                    return r
                }
            case .exec(var e):
                e.command = try env.resolve(e.command)
                for i in e.args.indices { e.args[i] = try env.resolve(e.args[i]) }
                if case .object(let o) = try env.resolve(.object(e.config)) { e.config = o }
                switch execDecision(e.command) {
                case .refused(let why): return refuse(ctx, why)
                case .failed(let why): return FailedRun(loop: loop, context: ctx, message: why)
                case .run(let path):
                    // The checked file is the one started: a link swapped
                    // after the check cannot redirect the spawn.
                    e.command = path
                }
                return ExecRun(loop: loop, context: ctx, check: e, env: env,
                               settings: ExecSettings(handshakeTimeout: options.execHandshakeTimeout,
                                                      exitGrace: options.execExitGrace, killGrace: options.execKillGrace),
                               output: output, environment: MonitorEngine.childEnvironment(), stats: execStats)
            }
        } catch {
            if error.notAllowed { return refuse(ctx, "\(error)") }
            return FailedRun(loop: loop, context: ctx, message: "\(error)")
        }
    }

    /// A run the policy does not allow: reported with status refused and
    /// why, counted in `stats.refused`.
    private func refuse(_ ctx: RunContext, _ why: String) -> MonitorRun {
        counts.refused &+= 1
        return FailedRun(loop: loop, context: ctx, message: why, status: .refused)
    }

    private func completed(_ result: MonitorRunResult) {
        guard let r = runs[result.monitorID], r.runID == result.runID else { return }
        runs[result.monitorID] = nil
        guard scheduler.finished(monitorID: result.monitorID, runID: result.runID) else {
            counts.droppedRemoved &+= 1
            return
        }
        counts.runsCompleted &+= 1
        if result.status != .ok { counts.runsFailed &+= 1 }
        if r.run is HTTPRun { noteWarm(result) }
        onResult(result)
    }

    /// `onHTTPWarm` for the first completed libcurl run of each scheme (not
    /// a run that failed before reaching libcurl).
    private func noteWarm(_ result: MonitorRunResult) {
        guard onHTTPWarm != nil, warmSchemes.count < 2,
              let def = scheduler.definition(result.monitorID), case .http(let h) = def.check else { return }
        let scheme = HTTPRun.isHTTPS(h.url) ? "https" : "http"
        guard warmSchemes.insert(scheme).inserted else { return }
        loop.defer { [weak self] in self?.onHTTPWarm?(scheme) }
    }

    /// dlopen and curl_global_init block the loop once, for a few
    /// milliseconds (logged); every later HTTP call is nonblocking.
    private func loadCurl() {
        let t0 = Clock.monotonicNanos()
        do {
            try CurlLibrary.load(soname: options.curlLibrary)
            curl = try CurlMulti(loop: loop)
            let ms = Double((Clock.monotonicNanos() &- t0) / 10_000) / 100
            Log.info("monitors: loaded \(CurlLibrary.version) for HTTP monitors in \(ms) ms")
        } catch {
            curlError = "\(error)"
            Log.error("monitors: HTTP monitors cannot run: \(error)")
        }
    }

    enum ExecDecision: Equatable {
        /// Start this file (the command's real path).
        case run(String)
        /// The policy does not allow it.
        case refused(String)
        /// Allowed, but cannot start here.
        case failed(String)
    }

    /// Whether `command` may run under the exec policy: its real path
    /// (realpath(3): symbolic links, `.` and `..` resolved) must lie inside
    /// the real path of one of the allowed directories.
    func execDecision(_ command: String) -> ExecDecision {
        let dirs: [String]
        switch options.policy.exec {
        case .disabled: return .refused("exec monitors are disabled on this agent (exec_monitors)")
        case .directories(let d): dirs = d
        }
        let allowedText = dirs.joined(separator: ", ")
        guard command.hasPrefix("/") else {
            return .refused("command \(command) is not an absolute path inside the allowed directories (\(allowedText))")
        }
        guard let real = MonitorEngine.realPath(command) else {
            // Nothing to run (missing file or directory): an error, not a refusal.
            let e = errno
            return .failed("cannot start \(command): \(String(cString: strerror(e))) (\(e))")
        }
        for d in dirs {
            guard let realDir = MonitorEngine.realPath(d) else { continue }
            let prefix = realDir == "/" ? "/" : realDir + "/"
            if real.hasPrefix(prefix) && real.utf8.count > prefix.utf8.count {
                guard loop.isDefault else { return .failed("exec monitors need the agent's default loop (child processes)") }
                return .run(real)
            }
        }
        let shown = real == command ? command : "\(command) (really \(real))"
        return .refused("command \(shown) is outside the allowed directories (\(allowedText))")
    }

    /// realpath(3), or nil (errno set) when the path does not resolve.
    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The agent's environment minus VIGIL_* (the access key may be there).
    static func childEnvironment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if !s.hasPrefix("VIGIL_") { out.append(s) }
            p += 1
        }
        return out
    }
}
