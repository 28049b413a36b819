// AgentRuntime: the agent put together on one loop —
//
//   UDP ─▶ IPAReceiver ─▶ IngestPipeline (parse → filter → aggregate)
//                               │ windows in collector time ─▶ queue 1
//   UDP, unix ─▶ StatsDReceiver ─▶ StatsDPipeline ─┘ (AgentRuntime+StatsD)
//                               └ raw events (opt-in, redacted) ─▶ queue 2
//   Uplink (one session) ◀─ queues, status, control answers
//   collector ─▶ Patterns (installed at once), ControlRequest, Acks
//   collector ─▶ Schedule ─▶ MonitorEngine (synthetic monitors) ─▶ queue 1
//
// and the timers around it: the aggregation window (aligned to the
// collector's clock, using the offset learned in the handshake), status,
// and rule sync. Configuration changes (remote control, SIGHUP) are in
// AgentRuntime+Config.swift, status in +Status, shutdown in +Shutdown.
//
// Thread: loop thread only; one runtime per process (or per test).
import IPAPipeline
#if canImport(Glibc)
import Glibc
#endif
import ConfigFile
import MonitorRunners
import Reactor
import Wire

/// The running agent. Loop thread only; one per process (or per test).
public final class AgentRuntime {
    public enum Mode: Sendable {
        /// `vigil-agent run`: UDP ingest as configured.
        case run
        /// `vigil-agent replay`: no UDP; records come from a file.
        case replay
    }

    /// Events for a driver (replay) or a test.
    public enum Event: Equatable, Sendable {
        case established
        /// The collector answered the first rule request of a session.
        case patternsSynced(version: UInt64)
        case acknowledged
        case disconnected(reason: String, roundFailed: Bool)
    }

    public let loop: EventLoop
    public let mode: Mode
    public let source: ConfigSource
    public internal(set) var config: Configuration
    public internal(set) var settings: AgentSettings
    public let pipeline: IngestPipeline
    public let receiver: IPAReceiver
    public let statsd: StatsDReceiver
    public let uplink: Uplink
    /// Synthetic monitors (run mode; nil in replay). Exec monitors need the
    /// default loop (child watchers). Replaced when `groups` changes.
    public internal(set) var monitors: MonitorEngine?
    /// Passed to every engine this runtime makes (MonitorEngine.onHTTPWarm):
    /// `run` trims mapped pages from here.
    public var onHTTPWarm: ((String) -> Void)? { didSet { monitors?.onHTTPWarm = onHTTPWarm } }
    /// The schedule version the engine holds (0: none yet).
    public internal(set) var scheduleVersion: UInt64 = 0
    /// Monitors the last schedule left out, with why (Status messages).
    public internal(set) var monitorProblems: [String] = []
    /// The Hello's instance and boot id: random per process start, or the
    /// spool's (kept across restarts so re-sent batches keep their identity).
    public let instance: UInt64
    public var onEvent: ((Event) -> Void)?
    /// Called once when the process should exit, with its status.
    public var onExit: ((Int32) -> Void)?

    /// Config errors of the last rejected update or reload; non-empty means
    /// state `wrong_configuration`.
    public internal(set) var configProblems: [String] = []
    /// Wall ms when capture last started; 0 while stopped.
    public internal(set) var captureStartMs: Int64 = 0
    /// Whether the current session has answered a rule request yet.
    public private(set) var patternsSynced = false
    public internal(set) var draining = false
    /// Where the rules last received are kept (RuleFile); nil: not kept.
    public var rulesPath: String?

    var windowTimer: TimerWatcher!
    var statusTimer: TimerWatcher!
    var syncTimer: TimerWatcher!
    var drainTimer: TimerWatcher?
    var signals: [SignalWatcher] = []
    /// Start of the open aggregation window, collector time (ms).
    var openWindowStart: Int64 = 0
    var statusBaseline = StatusBaseline()
    var lastInterfaces: [Wire.NetworkInterface] = []
    /// `receiver.generation` when `lastInterfaces` was read (the bound
    /// addresses decide the capturing flag).
    var lastBoundGeneration: UInt64 = .max
    /// Interface changes from rtnetlink (run mode); nil: every status tick
    /// reads the interfaces again.
    var interfaceWatch: InterfaceChangeWatcher?
    /// A change was announced since `lastInterfaces` was read.
    var interfacesStale = false
    var exited = false
    /// The service manager's notify socket (`vigil-agent run` under
    /// systemd); nil otherwise. READY once capturing, RELOADING/READY around
    /// SIGHUP, STOPPING at shutdown, watchdog pings from the loop.
    public var notify: ServiceNotify?

    /// `identity`: the agent's static key pair, from `state_dir/agent_key`
    /// (AgentCommandLine); in-process tests pass none and get a fresh one.
    /// `spool`: the disk spool (run mode), nil for memory only.
    public init(loop: EventLoop, mode: Mode = .run, source: ConfigSource, config: Configuration, settings: AgentSettings,
                identity: StaticKeyPair = .generate(), spool: Spool? = nil) {
        self.loop = loop
        self.mode = mode
        self.source = source
        self.config = config
        self.settings = settings
        var rng = SystemRandomNumberGenerator()
        instance = spool?.instance ?? (rng.next() | 1)
        pipeline = IngestPipeline(aggregationIntervalMs: Int64(settings.aggregationIntervalMs))
        receiver = IPAReceiver(loop: loop, pipeline: pipeline)
        statsd = StatsDReceiver(loop: loop, pipeline: StatsDPipeline(
            aggregationIntervalMs: Int64(settings.aggregationIntervalMs), limits: settings.statsdLimits))
        // One name resolver for the process: the uplink's collectors and the
        // tcp monitors' hosts (its threads start on the first name).
        uplink = Uplink(loop: loop, accessKey: settings.accessKey, identity: identity,
                        hello: AgentRuntime.hello(settings, instance: instance), settings: settings.uplink,
                        resolver: HostResolver(loop: loop), spool: spool)
        monitors = mode == .run ? AgentRuntime.monitorEngine(loop: loop, uplink: uplink, settings: settings) : nil
        uplink.delegate = self
        windowTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.windowFired() }
        statusTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.statusTick() }
        syncTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.syncTick() }
        Log.level = settings.logLevel
        Log.format = settings.logFormat
        setForwarding(settings.forwardRawEvents)
    }

    deinit {
        windowTimer.stop()
        statusTimer.stop()
        syncTimer.stop()
        drainTimer?.stop()
        for s in signals { s.stop() }
        interfaceWatch?.close()
    }

    /// Binds the instrumentation sockets (run mode, capture on), starts the
    /// uplink and the timers. Throws a bind failure (nothing is left open).
    public func start() throws {
        if let rulesPath, let saved = RuleFile.load(from: rulesPath) {
            // Filter as before the restart until a collector answers.
            install(saved, save: false)
        }
        if mode == .run && settings.capture {
            try receiver.open(settings.ingest)
            captureStartMs = Clock.wallMillis()
            do { try applyStatsD(settings) } catch { receiver.close(); throw error }
        }
        Log.info("vigil-agent started", [
            "version": AgentVersion.current, "mode": mode == .run ? "run" : "replay",
            "agent": settings.agentName, "agent_id": uplink.hello.agentID,
            "collectors": settings.uplink.hosts.joined(separator: ","), "port": "\(settings.uplink.port)",
            "capture": receiver.isOpen ? receiver.localAddresses.map { "\($0)" }.joined(separator: ",") : "off",
            "statsd": statsdDescription,
        ])
        for (address, buffer) in receiver.receiveBuffers {
            if let b = buffer { Log.debug("udp receive buffer", ["socket": "\(address)", "granted": "\(b.granted)"]) }
        }
        statusBaseline = StatusBaseline(runtime: self)
        lastInterfaces = HostInfo.interfaces()
        if mode == .run && interfaceWatch == nil {
            do {
                interfaceWatch = try InterfaceChangeWatcher(loop: loop) { [unowned self] in self.interfacesStale = true }
            } catch {
                Log.info("interface changes not watched: reading them at every status", ["error": "\(error)"])
            }
        }
        scheduleWindow()
        restartStatusTimer()
        restartSyncTimer()
        uplink.start()
        notify?.statusText = { [unowned self] in
            "capture \(self.receiver.isOpen ? "on" : "off"), uplink \(self.uplink.state)"
        }
        notify?.ready()
        notify?.startTimer(loop: loop)
    }

    /// SIGHUP reloads, SIGTERM and SIGINT drain and exit (default loop only).
    public func installSignalHandlers() {
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in self.reload() }
        let term = SignalWatcher(loop: loop, signal: SIGTERM) { [unowned self] _ in self.beginShutdown(reason: "SIGTERM") }
        let int = SignalWatcher(loop: loop, signal: SIGINT) { [unowned self] _ in self.beginShutdown(reason: "SIGINT") }
        signals = [hup, term, int]
        for s in signals { s.start() }
    }

    /// Who this agent says it is (contract: the id is stable per host and
    /// name; boot id and instance are random per process start).
    static func hello(_ settings: AgentSettings, instance: UInt64) -> Hello {
        let hex = String(instance, radix: 16)
        return Hello(agentID: HostInfo.agentID(name: settings.agentName), name: settings.agentName,
                     host: HostInfo.hostname(), version: AgentVersion.current,
                     bootID: String(repeating: "0", count: 16 - hex.count) + hex, instance: instance,
                     capabilities: ["aggregates", "events", "capture", "config", "monitors"], groups: settings.groups)
    }

    // MARK: - Time

    /// The collector's clock as best known (local wall clock + offset).
    public var collectorNowMs: Int64 { Clock.wallMillis() &+ uplink.clockOffsetMs }

    // MARK: - Aggregation windows

    func scheduleWindow() {
        let now = collectorNowMs
        let agg = pipeline.aggregator
        if openWindowStart == 0 { openWindowStart = agg.windowStart(containing: now) }
        let end = openWindowStart + agg.intervalMs
        windowTimer.start(after: max(0.001, Double(end - now) / 1000))
    }

    private func windowFired() {
        let now = collectorNowMs
        let agg = pipeline.aggregator
        // libev's clock and the wall clock may disagree by a hair.
        if now >= openWindowStart + agg.intervalMs - 2 {
            flushWindow()
            openWindowStart = max(openWindowStart + agg.intervalMs, agg.windowStart(containing: now))
        }
        scheduleWindow()
    }

    /// After a handshake the offset may have moved the collector's "now"
    /// into another window: close the open one under its old start and
    /// open the one that contains collector-now.
    func realignWindow() {
        let current = pipeline.aggregator.windowStart(containing: collectorNowMs)
        if current != openWindowStart {
            flushWindow()
            openWindowStart = current
        }
        scheduleWindow()
    }

    /// Closes the open window: one aggregate per key into queue 1.
    func flushWindow() {
        for a in pipeline.aggregator.flush(windowStartMs: openWindowStart) {
            uplink.enqueue(.aggregate(a), priority: true)
        }
        flushStatsD()
    }

    /// Everything counted so far goes out now, as the open window's data
    /// (replay's end, shutdown). The window itself continues.
    public func flushOpenWindow() { flushWindow() }

    // MARK: - Raw events

    func setForwarding(_ on: Bool) {
        guard on else { pipeline.onMatched = nil; return }
        pipeline.onMatched = { [unowned self] record, rule in self.forward(&record, rule: rule) }
    }

    private func forward(_ record: inout IPARecord, rule: Int) {
        // Check for room before building the strings: a full queue costs
        // a counter increment, not four allocations.
        guard uplink.hasRoom(priority: false) else {
            uplink.countRefused(priority: false)
            return
        }
        let r = pipeline.patterns.rules[rule]
        var nowUs = UInt64(max(0, loop.now * 1_000_000)) &+ UInt64(bitPattern: uplink.clockOffsetMs &* 1000)
        // Placed by its own time (replay): the event keeps that time too.
        if pipeline.placement != nil && record.timestampMs > 0 {
            nowUs = UInt64(max(0, record.timestampMs &+ uplink.clockOffsetMs)) &* 1000
        }
        uplink.enqueue(.event(ForwardedEvent(
            timestampUs: nowUs, method: record.methodString, host: record.hostString,
            path: Redactor.redactPath(record.path), durationUs: ForwardedEvent.microseconds(record.durationMs),
            monitor: r.monitor, check: r.check, status: UInt32(max(0, record.status)),
            errorClass: ForwardedEvent.errorClass(of: record))), priority: false)
    }

    // MARK: - Rules

    func install(_ patterns: Patterns, save: Bool = true) {
        let rules = patterns.rules.map(FilterRule.init(wire:))
        let set = PatternSet(rules: rules, version: patterns.version)
        pipeline.install(set)
        statsd.pipeline.install(set)
        Log.info("filter rules installed", ["version": "\(patterns.version)", "rules": "\(rules.count)",
                                            "unusable": "\(set.unusable.count)"])
        for i in set.unusable {
            Log.warn("filter rule ignored", ["version": "\(patterns.version)", "rule": "\(i + 1)",
                                             "problem": rules[i].problem ?? ""])
        }
        if save, let rulesPath { RuleFile.save(patterns, to: rulesPath) }
    }

    private func syncTick() {
        guard uplink.isEstablished else { return }
        uplink.sendNow(.patternsRequest(PatternsRequest(haveVersion: pipeline.patterns.version)))
        requestSchedule()
    }

    // MARK: - Monitors

    static func monitorEngine(loop: EventLoop, uplink: Uplink, settings: AgentSettings) -> MonitorEngine {
        var options = MonitorEngine.Options()
        options.groups = settings.groups.isEmpty ? ["default"] : settings.groups
        options.policy = settings.monitorPolicy
        options.resolver = uplink.resolver
        return MonitorEngine(loop: loop, options: options) { [unowned uplink] result in
            // Refused when queue 1 is full: counted there (drops_queue1).
            uplink.enqueue(.monitorRun(result), priority: true)
        }
    }

    /// `groups` changed: a fresh engine for the new groups, and the next
    /// session (new Hello) asks for the whole schedule again.
    func regroupMonitors() {
        guard let old = monitors else { return }
        old.shutdown()
        monitors = AgentRuntime.monitorEngine(loop: loop, uplink: uplink, settings: settings)
        monitors?.onHTTPWarm = onHTTPWarm
        scheduleVersion = 0
        monitorProblems = []
    }

    func requestSchedule() {
        guard monitors != nil else { return }
        uplink.sendNow(.scheduleRequest(ScheduleRequest(haveVersion: scheduleVersion)))
    }

    /// One Schedule record (answer or push); parts are joined by the engine.
    func received(_ schedule: Schedule) {
        guard let monitors, !draining else { return }
        guard let rejected = monitors.apply(schedule: schedule) else { return }
        scheduleVersion = schedule.version
        if rejected != monitorProblems {
            monitorProblems = rejected
            statusChanged()
        }
        Log.info("monitor schedule applied", ["version": "\(schedule.version)",
                                              "monitors": "\(monitors.scheduler.count)", "left_out": "\(rejected.count)"])
        for m in rejected { Log.warn("monitor left out", ["version": "\(schedule.version)", "problem": m]) }
    }

    func restartSyncTimer() {
        let s = Double(settings.syncIntervalMs) / 1000
        syncTimer.start(after: s, repeat: s)
    }

    func restartStatusTimer() {
        let s = Double(settings.statusIntervalMs) / 1000
        statusTimer.start(after: s, repeat: s)
    }

    func emit(_ e: Event) { onEvent?(e) }

    /// Stops the loop once, reporting `code`.
    func exit(_ code: Int32) {
        guard !exited else { return }
        exited = true
        windowTimer.stop()
        statusTimer.stop()
        syncTimer.stop()
        drainTimer?.stop()
        for s in signals { s.stop() }
        notify?.stopTimer()
        monitors?.shutdown()
        receiver.close()
        statsd.close()
        interfaceWatch?.close()
        uplink.stop()
        if let onExit { onExit(code) } else { loop.stop() }
    }
}

extension AgentRuntime: UplinkDelegate {
    public func uplinkEstablished(_ uplink: Uplink, welcome: Welcome) {
        patternsSynced = false
        interfacesStale = false
        lastInterfaces = interfacesNow()
        uplink.sendNow(.interfaces(Interfaces(lastInterfaces)))
        uplink.sendNow(.effectiveConfig(AgentRuntime.effectiveConfig(config)))
        uplink.sendNow(.status(makeStatus()))
        uplink.sendNow(.patternsRequest(PatternsRequest(haveVersion: pipeline.patterns.version)))
        requestSchedule()
        restartSyncTimer()
        realignWindow()
        emit(.established)
    }

    public func uplink(_ uplink: Uplink, received record: Record) {
        switch record {
        case .patterns(let p):
            if p.version != pipeline.patterns.version || p.rules.map(FilterRule.init(wire:)) != pipeline.patterns.rules {
                install(p)
            }
            markSynced()
        case .patternsUnchanged:
            markSynced()
        case .controlRequest(let r):
            handleControl(r)
        case .schedule(let sched):
            received(sched)
        case .scheduleUnchanged:
            break
        default:
            Log.debug("uplink: record ignored", ["type": "\(record.type.map { "\($0)" } ?? "unknown")"])
        }
    }

    private func markSynced() {
        guard !patternsSynced else { return }
        patternsSynced = true
        emit(.patternsSynced(version: pipeline.patterns.version))
    }

    public func uplinkDisconnected(_ uplink: Uplink, reason: String, roundFailed: Bool) {
        patternsSynced = false
        emit(.disconnected(reason: reason, roundFailed: roundFailed))
    }

    public func uplinkAcknowledged(_ uplink: Uplink) {
        emit(.acknowledged)
    }
}
