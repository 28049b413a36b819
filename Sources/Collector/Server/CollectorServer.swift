// CollectorServer: `vigil-collector run` — the process around the session
// layer: start-up tuning, the store, the two listening sockets, signals,
// the periodic self-report, reload and shutdown.
//
// Start-up order matters for scripts and operators: configuration errors end
// the process before any socket is opened; then the descriptor limit is
// raised (and logged), the store opened, the admin token resolved, and only
// then the sockets bound, each announced with one log line:
//   listening on 127.0.0.1:6600
//   http on 127.0.0.1:6680
//   ready
//
// Signals: SIGTERM/SIGINT shut down (stop accepting, let batches in flight
// commit and be acknowledged, close sessions, exit 0 within
// `shutdownBound`); SIGHUP re-reads the configuration file and takes over the
// live keys, or keeps the running configuration if the file is invalid.
//
// The /metrics page is rendered in CollectorMetrics.swift.
//
// Thread: the default loop's thread (signals need the default loop).
import Alerts
import CollectorStore
import ConfigFile
import HTTPServer
import Reactor
import RemoteWrite
import Wire
#if canImport(Glibc)
import Glibc
#endif

public struct StartError: Error, CustomStringConvertible {
    public let description: String
}

public final class CollectorServer {
    /// Seconds a shutdown may take before the remaining sessions are dropped.
    public static let shutdownBound = 10.0
    /// Seconds between self-report lines.
    public static let reportInterval = 60.0
    /// Descriptors the process needs besides sessions (database, sockets,
    /// HTTP clients, the listener's reserve).
    static let descriptorReserve: UInt64 = 300
    /// The loop's time box: what an iteration may spend, after each
    /// source's first unit, on work that can wait (IterationTimeBox).
    static let iterationTimeBudgetNanos: UInt64 = 500_000

    public let loop: EventLoop
    public private(set) var configuration: Configuration
    public private(set) var settings: CollectorSettings
    let configPath: String?
    let overrides: [(key: String, value: String)]
    let environment: [String: String]

    private(set) var store: (any OperatedStore)?
    public private(set) var manager: SessionManager?
    private var listener: TCPListener?
    private var http: HTTPServer?
    /// What /healthz reports besides answering (HealthWatch.swift).
    private var healthWatch: HealthWatch?
    /// The `metrics_listen` listener (/metrics and /healthz only); nil when off.
    private var metricsHTTP: HTTPServer?
    private var api: APIHandler?
    /// This collector in its cluster (a cluster of one on SQLite).
    private(set) var cluster: ClusterNode?
    /// The remote-write sender and its feed; nil without `remote_write_url`.
    private(set) var remoteWrite: RemoteWriteFeed?
    private var signals: [SignalWatcher] = []
    private var reportTimer: TimerWatcher?
    /// The /metrics summaries' recent window, and the timer that steps it.
    let summaryWindows = SummaryWindows()
    private var windowTimer: TimerWatcher?
    /// The history of the collector's own health in the store.
    private var healthSampler: HealthSampler?
    /// Evaluates the alert rules (docs/ALERTS.md).
    private(set) var alertEvaluator: AlertEvaluator?
    private(set) var alertNotifier: AlertNotifier?
    private var alertDelivery: NotificationDelivery?
    private var shutdownTimer: TimerWatcher?
    /// malloc's in-use figure for /metrics, read no more often than its
    /// cost allows (ProcessLimits.swift).
    private let heapGauge = HeapGauge()
    private var shuttingDown = false
    public private(set) var exitCode: Int32 = 0
    private(set) var reloadsApplied: UInt64 = 0
    private(set) var reloadsRejected: UInt64 = 0
    private var lastReport = ReportSnapshot()
    private let startedAt = Clock.monotonic()
    /// The service manager's notify socket (`vigil-collector run` under
    /// systemd); nil otherwise. READY once listening, RELOADING/READY around
    /// SIGHUP, STOPPING at shutdown, watchdog pings from the loop.
    public var notify: ServiceNotify?

    public init(loop: EventLoop, configuration: Configuration, settings: CollectorSettings, configPath: String?,
                overrides: [(key: String, value: String)], environment: [String: String]) {
        self.loop = loop
        self.configuration = configuration
        self.settings = settings
        self.configPath = configPath
        self.overrides = overrides
        self.environment = environment
    }

    // MARK: start

    public func start() throws(StartError) {
        Log.level = settings.logLevel
        Log.format = settings.logFormat
        loop.profile.thresholdMicros = UInt64(settings.loopSlowIteration * 1e6)
        Log.info("vigil-collector starting", ["pid": "\(getpid())", "config": configPath ?? "(none)"])
        tuneDescriptors()

        // The deferred queue carries every connection's flush and close
        // callback (a writev each, 5–10 µs): with thousands of sessions, 64
        // per iteration would make acknowledgements wait behind one another,
        // and thousands would make one iteration last milliseconds.
        loop.deferred.budget = 256
        // And the intake that can wait — handshake turns and finishes,
        // session input, store completions — shares half a millisecond per
        // iteration beyond each one's first unit (IterationTimeBox): each
        // budget alone stays under a millisecond, their sum in one
        // iteration did not.
        loop.timeBox.budgetNanos = CollectorServer.iterationTimeBudgetNanos

        let store: any OperatedStore
        do {
            store = try StoreSelection.open(loop: loop, settings: settings)
        } catch {
            throw StartError(description: "cannot open \(StoreSelection.describe(settings)): \(error)")
        }
        self.store = store
        Log.info("database", ["store": settings.store.rawValue, "path": store.location, "schema": "\(store.schemaVersion)"])

        let token: String
        do {
            let (t, source) = try AdminToken.resolve(configured: settings.adminToken, dataDir: settings.dataDir)
            token = t
            switch source {
            case .configuration: Log.info("admin token from configuration key admin_token")
            case .generated(let path): Log.info("admin token written to \(path)", ["path": path])
            case .file(let path): Log.info("admin token read from \(path)", ["path": path])
            }
        } catch {
            throw StartError(description: "admin token: \(error)")
        }

        let collectorKey: StaticKeyPair
        do {
            let (key, path, created) = try CollectorKey.load(dataDir: settings.dataDir)
            collectorKey = key
            Log.info(created ? "collector key created" : "collector key read",
                     ["path": path, "public_key": key.publicText])
        } catch {
            throw StartError(description: "\(error)")
        }

        // In a cluster, the agents other collectors hold keep their state.
        store.markUnheldAgentsNotVisible(at: Clock.wallMillis()) { r in
            if case .failure(let e) = r { Log.warn("store: marking agents not visible failed", ["error": "\(e)"]) }
        }
        store.startRetention(days: settings.retentionDays, agentDays: settings.agentRetentionDays,
                             selfMetricsDays: settings.selfMetricsRetentionDays, every: 3600, firstAfter: 60)

        let manager = SessionManager(loop: loop, store: store, settings: sessionSettings(settings), collectorKey: collectorKey)
        self.manager = manager
        store.agentsForgotten = { [weak manager] ids in manager?.forgetKnownAgents(Set(ids)) }
        store.agents(project: nil) { [weak manager] r in
            switch r {
            case .success(let records): manager?.noteKnownAgents(records)
            case .failure(let e): Log.warn("store: reading the known agents failed", ["error": "\(e)"])
            }
        }

        if let rw = settings.remoteWrite {
            let authorization: String?
            let tls: TLSCredentials?
            do {
                authorization = try rw.authorization()
                tls = try rw.tlsCredentials()
            } catch {
                throw StartError(description: "remote write: \(error)")
            }
            var o = RemoteWriteOptions(url: rw.url)
            o.authorization = authorization
            o.tlsCredentials = tls
            o.maxSamplesPerRequest = rw.maxSamplesPerRequest
            o.maxQueuedSamples = rw.queueSamples
            o.flushInterval = rw.flushInterval
            o.timeout = rw.timeout
            o.userAgent = "vigil-collector/\(CollectorVersion.current)"
            let sender = RemoteWriteSender(loop: loop, options: o)
            sender.start()
            let feed = RemoteWriteFeed(loop: loop, sender: sender, maxSeries: rw.maxSeries) { [unowned manager] in
                RemoteWriteFeed.agentStates(manager)
            }
            manager.batchStored = { [unowned feed] project, batch in feed.stored(project: project, batch: batch) }
            remoteWrite = feed
            Log.info("remote write to \(rw.url)", ["auth": authorization == nil ? "none" : rw.bearerTokenFile.isEmpty ? "basic" : "bearer",
                                                  "max_samples_per_request": "\(rw.maxSamplesPerRequest)",
                                                  "queue_samples": "\(rw.queueSamples)",
                                                  "tls_ca": tls.map { "\($0.source) (\($0.count) certificates)" } ?? "none"])
        }

        var lo = TCPListener.Options()
        lo.backlog = settings.backlog
        lo.acceptBatch = 64
        do {
            let l = try TCPListener(loop: loop, address: settings.listen, options: lo) { [unowned manager] fd, peer in
                manager.accept(fd: fd, peer: peer)
            }
            l.start()
            listener = l
        } catch {
            throw StartError(description: "cannot listen on \(settings.listen) (listen): \(error)")
        }

        var tls: HTTPTLSMaterial?
        if !settings.httpTLSCert.isEmpty {
            do {
                tls = try HTTPTLSMaterial.load(certificate: ("http_tls_cert", settings.httpTLSCert), key: ("http_tls_key", settings.httpTLSKey))
            } catch {
                throw StartError(description: "cannot serve HTTPS: \(error)")
            }
        }
        let api = APIHandler(loop: loop, store: store, manager: manager, adminToken: token,
                             sessions: ConsoleSessions(maxSessions: settings.consoleMaxSessions, ttl: settings.consoleSessionTTL))
        do {
            api.console = try ConsoleFiles.load(configured: settings.consoleDir)
        } catch {
            throw StartError(description: "\(error)")
        }
        for w in api.console.warnings { Log.warn(w) }
        api.metrics = { [unowned self] in self.metrics() }
        api.uploads = Uploads(loop: loop, store: store, maxBytes: settings.uploadMaxBytes, maxConcurrent: settings.uploadMaxConcurrent)
        api.collectorConfig = { [unowned self] in self.configuration }
        let health = HealthWatch(loop: loop, store: store, loopStall: settings.healthLoopStall, storeStall: settings.healthStoreStall)
        health.start()
        healthWatch = health
        api.health = { [unowned health, unowned self] in health.problems() + (self.cluster?.problems() ?? []) }
        self.api = api
        let http = HTTPServer(loop: loop) { [unowned api] req, responder in api.handle(req, responder) }
        // The token (or console session) is checked before a body is read.
        http.admit = { [unowned api] req in api.admit(req) }
        // Capture uploads are read as they arrive, never collected whole.
        http.streamer = { [unowned api] req, responder in api.stream(req, responder) }
        do {
            try http.start(address: settings.httpListen, limits: settings.httpLimits, tls: tls)
        } catch {
            throw StartError(description: "cannot serve HTTP on \(settings.httpListen) (http_listen): \(error)")
        }
        self.http = http
        if let address = settings.metricsListen {
            let m = HTTPServer(loop: loop, maxBodyBytes: 0) { [unowned api] req, responder in api.handleMetricsOnly(req, responder) }
            do {
                try m.start(address: address, limits: settings.httpLimits)
            } catch {
                throw StartError(description: "cannot serve /metrics on \(address) (metrics_listen): \(error)")
            }
            metricsHTTP = m
        }

        let startedMs = Clock.wallMillis()
        let collectorID = ClusterNode.collectorID(configured: settings.collectorID, hostName: CollectorServer.hostName(),
                                                  listen: listener!.localAddress.description)
        let instance = ClusterNode.makeInstance(hostName: CollectorServer.hostName())
        let node = ClusterNode(id: collectorID, instance: instance, loop: loop, store: store, manager: manager) { [unowned self, unowned manager] in
            CollectorPresence(id: collectorID, startedMs: startedMs, listen: "\(self.listener?.localAddress.description ?? "")",
                              httpListen: "\(self.settings.httpListen.withPort(self.http?.port ?? 0))", sessions: manager.established,
                              lagP99Us: Int64(self.loop.lag.quantile(0.99)), version: CollectorVersion.current, instance: instance)
        }
        // Two live processes with one collector id would pass for one: refused.
        do {
            try node.register(hostName: CollectorServer.hostName())
        } catch {
            throw StartError(description: "\(error)")
        }
        node.closeStaleSession = { [unowned manager] agent in manager.closeStaleSession(agent: agent) }
        manager.ownership = node
        api.cluster = node
        node.start()
        cluster = node
        Log.info("cluster", ["collector_id": collectorID, "shared": store.isShared ? "yes" : "no",
                             "channel": store.isShared ? ClusterNames.channel(collectorID) : "-"])

        for sig in [SIGTERM, SIGINT] {
            let w = SignalWatcher(loop: loop, signal: sig) { [unowned self] w in self.shutdown(signal: w.signal) }
            w.start()
            signals.append(w)
        }
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in self.reload() }
        hup.start()
        signals.append(hup)

        let report = TimerWatcher(loop: loop, label: "self-report") { [unowned self] _ in self.selfReport() }
        report.start(after: CollectorServer.reportInterval, repeat: CollectorServer.reportInterval)
        reportTimer = report
        lastReport = snapshot()
        let window = TimerWatcher(loop: loop, label: "metrics summary window") { [unowned self] _ in
            guard let manager = self.manager, let store = self.store else { return }
            self.summaryWindows.tick(CollectorMetrics.histograms(manager: manager, store: store, loop: self.loop))
        }
        window.start(after: SummaryWindows.step, repeat: SummaryWindows.step)
        windowTimer = window
        let sampler = HealthSampler(loop: loop, manager: manager, store: store)
        sampler.start(interval: settings.selfMetricsInterval)
        healthSampler = sampler
        let holder = settings.alertEvaluatorId.isEmpty ? "\(CollectorServer.hostName()):\(settings.listen)" : settings.alertEvaluatorId
        let evaluator = AlertEvaluator(loop: loop, store: store,
                                       settings: AlertEvaluatorSettings(interval: settings.alertEvalInterval, slice: settings.alertEvalSlice,
                                                                        holder: holder))
        let helper = settings.alertNotifyHelper.isEmpty ? (ConsoleFiles.executableDirectory() ?? ".") + "/vigil-notify" : settings.alertNotifyHelper
        let delivery = NotificationDelivery(loop: loop, helperPath: helper, timeout: settings.alertNotifyTimeout)
        let notifier = AlertNotifier(loop: loop, store: store, delivery: delivery, settings: notifierSettings(settings))
        evaluator.sink = notifier
        evaluator.start()
        alertEvaluator = evaluator
        alertNotifier = notifier
        alertDelivery = delivery

        Log.info("listening on \(listener!.localAddress)", ["max_clients": "\(settings.maxClients)", "backlog": "\(settings.backlog)"])
        Log.info("http on \(settings.httpListen.withPort(http.port))", ["tls": tls == nil ? "off" : "on"])
        if let m = metricsHTTP, let a = settings.metricsListen { Log.info("metrics on \(a.withPort(m.port))") }
        if let dir = api.console.directory {
            Log.info("console on \(tls == nil ? "http" : "https")://\(settings.httpListen.withPort(http.port))/", ["dir": dir])
        }
        Log.info("ready", ["pid": "\(getpid())"])
        notify?.statusText = { [unowned self] in self.serviceStatus() }
        notify?.ready()
        notify?.startTimer(loop: loop)
    }

    /// The service manager's status line.
    func serviceStatus() -> String {
        guard let manager else { return "starting" }
        return "\(manager.established) sessions, \(manager.connectedAgents) agents, \(manager.count(.capturing)) capturing"
    }

    /// The host's name (gethostname(2)), for the alert lease's default holder.
    static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "unknown" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func notifierSettings(_ s: CollectorSettings) -> AlertNotifierSettings {
        var n = AlertNotifierSettings()
        n.groupWait = s.alertGroupWait
        n.maxConcurrent = s.alertNotifyMaxConcurrent
        n.maxAttempts = s.alertNotifyRetries + 1
        return n
    }

    private func sessionSettings(_ s: CollectorSettings) -> SessionSettings {
        var r = SessionSettings(maxClients: s.maxClients, handshakeTimeout: s.handshakeTimeout, idleTimeout: s.idleTimeout,
                        statusWriteInterval: s.statusWriteInterval, maxHandshakesPerAddress: s.maxHandshakesPerAddress,
                        handshakeReserve: s.handshakeReserve)
        r.outboundBudget = s.outboundBudget
        return r
    }

    /// Raises RLIMIT_NOFILE to the hard limit and warns when more clients
    /// are allowed than descriptors (the backlog-versus-somaxconn warning
    /// comes from TCPListener).
    private func tuneDescriptors() {
        do {
            let (before, after, hard) = try ProcessLimits.raiseDescriptorLimit()
            Log.info("descriptor limit \(after)", ["before": "\(before)", "hard": "\(hard)"])
        } catch {
            Log.warn("cannot raise the descriptor limit", ["error": "\(error)", "limit": "\(ProcessLimits.descriptorLimit())"])
        }
        checkLimits(settings)
        presizeDescriptorTable()
    }

    /// Grows the process's descriptor table once, now, to hold `max_clients`
    /// sessions. The kernel doubles it as descriptors are opened, and in a
    /// process with more than one thread every doubling waits for an RCU
    /// grace period (expand_fdtable → synchronize_rcu): during a ramp to
    /// 20,000 sessions the loop slept 10–20 ms in `accept` at each one
    /// (`io accept 1x 19.9 ms` with 1.0 ms of CPU). Now, before the store's
    /// thread starts, a descriptor just below the size needed is opened and
    /// closed; the table never shrinks.
    private func presizeDescriptorTable() {
        let want = min(UInt64(settings.maxClients) + CollectorServer.descriptorReserve, ProcessLimits.descriptorLimit())
        guard want > 64 else { return }
        let fd = fcntl(2, F_DUPFD, Int32(clamping: want - 1))
        if fd >= 0 { close(fd) }
    }

    private func checkLimits(_ s: CollectorSettings) {
        let limit = ProcessLimits.descriptorLimit()
        if UInt64(s.maxClients) + CollectorServer.descriptorReserve > limit {
            Log.warn("max_clients exceeds what the descriptor limit allows",
                     ["max_clients": "\(s.maxClients)", "descriptor_limit": "\(limit)",
                      "usable": "\(limit > CollectorServer.descriptorReserve ? limit - CollectorServer.descriptorReserve : 0)",
                      "hint": "raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower max_clients"])
        }
        // A backlog above net.core.somaxconn is reported by TCPListener
        // when it listens (the kernel caps it silently).
    }

    // MARK: reload (SIGHUP)

    func reload() {
        guard !shuttingDown else { return }
        notify?.reloading()
        defer { notify?.ready() }
        let fresh: Configuration
        let freshSettings: CollectorSettings
        do {
            (fresh, freshSettings) = try CollectorSettings.load(file: configPath, environment: environment, overrides: overrides)
        } catch {
            reloadsRejected &+= 1
            // The details first: the summary line is the one to wait for.
            for e in error.errors { Log.error("reload: \(e)") }
            Log.error("reload: configuration rejected; keeping the running one", ["errors": "\(error.errors.count)"])
            return
        }
        let r = configuration.reloading(from: fresh)
        for key in r.needsRestart {
            Log.warn("reload: \(key) changed but takes effect only after a restart", ["key": key])
        }
        configuration = r.configuration
        var s = settings
        for key in r.applied {
            switch key {
            case "admin_token":
                s.adminToken = freshSettings.adminToken
                do {
                    let (token, _) = try AdminToken.resolve(configured: s.adminToken, dataDir: settings.dataDir)
                    api?.adminToken = token
                } catch {
                    Log.error("reload: admin token: \(error)")
                }
            case "max_clients": s.maxClients = freshSettings.maxClients
            case "handshake_timeout_ms": s.handshakeTimeout = freshSettings.handshakeTimeout
            case "session_idle_timeout_ms": s.idleTimeout = freshSettings.idleTimeout
            case "status_write_interval_ms": s.statusWriteInterval = freshSettings.statusWriteInterval
            case "max_handshakes_per_address": s.maxHandshakesPerAddress = freshSettings.maxHandshakesPerAddress
            case "handshake_reserve": s.handshakeReserve = freshSettings.handshakeReserve
            case "session_outbound_budget_bytes": s.outboundBudget = freshSettings.outboundBudget
            case "health_store_stall_ms":
                s.healthStoreStall = freshSettings.healthStoreStall
                healthWatch?.storeStall = s.healthStoreStall
            case "health_loop_stall_ms":
                s.healthLoopStall = freshSettings.healthLoopStall
                healthWatch?.loopStall = s.healthLoopStall
            case "retention_days":
                s.retentionDays = freshSettings.retentionDays
                store?.retentionDays = s.retentionDays
            case "agent_retention_days":
                s.agentRetentionDays = freshSettings.agentRetentionDays
                store?.agentRetentionDays = s.agentRetentionDays
            case "self_metrics_interval_ms":
                s.selfMetricsInterval = freshSettings.selfMetricsInterval
                healthSampler?.start(interval: s.selfMetricsInterval)
            case "alert_eval_interval_ms":
                s.alertEvalInterval = freshSettings.alertEvalInterval
                alertEvaluator?.settings.interval = s.alertEvalInterval
                alertEvaluator?.start()
            case "alert_group_wait_ms", "alert_notify_max_concurrent", "alert_notify_retries":
                s.alertGroupWait = freshSettings.alertGroupWait
                s.alertNotifyMaxConcurrent = freshSettings.alertNotifyMaxConcurrent
                s.alertNotifyRetries = freshSettings.alertNotifyRetries
                alertNotifier?.settings = notifierSettings(s)
            case "alert_notify_timeout_ms":
                s.alertNotifyTimeout = freshSettings.alertNotifyTimeout
                alertDelivery?.timeout = s.alertNotifyTimeout
            case "alert_eval_slice":
                s.alertEvalSlice = freshSettings.alertEvalSlice
                alertEvaluator?.settings.slice = s.alertEvalSlice
            case "upload_max_bytes":
                s.uploadMaxBytes = freshSettings.uploadMaxBytes
                api?.uploads?.maxBytes = s.uploadMaxBytes
            case "upload_max_concurrent":
                s.uploadMaxConcurrent = freshSettings.uploadMaxConcurrent
                api?.uploads?.maxConcurrent = s.uploadMaxConcurrent
            case "self_metrics_retention_days":
                s.selfMetricsRetentionDays = freshSettings.selfMetricsRetentionDays
                store?.selfMetricsRetentionDays = s.selfMetricsRetentionDays
            case "loop_slow_iteration_ms":
                s.loopSlowIteration = freshSettings.loopSlowIteration
                loop.profile.thresholdMicros = UInt64(s.loopSlowIteration * 1e6)
            case "log_level":
                s.logLevel = freshSettings.logLevel
                Log.level = s.logLevel
            case "log_format":
                s.logFormat = freshSettings.logFormat
                Log.format = s.logFormat
            default:
                break
            }
        }
        settings = s
        manager?.settings = sessionSettings(s)
        if r.applied.contains("max_clients") { checkLimits(s) }
        reloadsApplied &+= 1
        Log.info("configuration reloaded", ["applied": r.applied.isEmpty ? "-" : r.applied.joined(separator: ","),
                                            "needs_restart": r.needsRestart.isEmpty ? "-" : r.needsRestart.joined(separator: ",")])
    }

    // MARK: shutdown (SIGTERM, SIGINT)

    func shutdown(signal: Int32) {
        guard !shuttingDown else {
            Log.info("shutdown already in progress")
            return
        }
        shuttingDown = true
        notify?.stopping(status: "stopping: \(manager?.open ?? 0) sessions closing")
        Log.info("shutting down", ["signal": signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : "\(signal)",
                                   "sessions": "\(manager?.open ?? 0)"])
        listener?.close()
        reportTimer?.stop()
        windowTimer?.stop()
        healthWatch?.stop()
        healthSampler?.stop()
        alertEvaluator?.stop()
        alertNotifier?.stop()
        store?.stopRetention()
        let timer = TimerWatcher(loop: loop) { [unowned self] _ in
            Log.warn("shutdown bound reached; dropping the remaining sessions",
                     ["bound_s": "\(Int(CollectorServer.shutdownBound))", "sessions": "\(self.manager?.open ?? 0)"])
            self.manager?.abortAll()
        }
        timer.start(after: CollectorServer.shutdownBound)
        shutdownTimer = timer
        guard let manager else { return finishShutdown() }
        manager.shutdown { [unowned self] in self.finishShutdown() }
    }

    private func finishShutdown() {
        shutdownTimer?.stop()
        cluster?.stop()
        remoteWrite?.close()
        http?.stop()
        metricsHTTP?.stop()
        for s in signals { s.stop() }
        let stats = manager?.stats
        guard let store else { loop.stop(); return }
        store.close { [unowned self] in
            Log.info("stopped", ["acks": "\(stats?.acksSent ?? 0)", "batches": "\(stats?.batchesReceived ?? 0)",
                                 "uptime_s": "\(Int(Clock.monotonic() - self.startedAt))"])
            self.loop.stop()
        }
    }

    // MARK: self-report

    private struct ReportSnapshot {
        var at = 0.0
        var handshakes: UInt64 = 0
        var failures: UInt64 = 0
        var batches: UInt64 = 0
        var rows: UInt64 = 0
        var acks: UInt64 = 0
        var bytesIn: UInt64 = 0
        var cpu = 0.0
    }

    private func snapshot() -> ReportSnapshot {
        let s = manager?.stats ?? CollectorStats()
        return ReportSnapshot(at: Clock.monotonic(), handshakes: s.handshakesCompleted, failures: s.totalHandshakeFailures,
                              batches: s.batchesReceived, rows: store?.stats.rowsStored ?? 0, acks: s.acksSent, bytesIn: s.bytesIn,
                              cpu: ProcessLimits.cpuSeconds())
    }

    /// One line a minute: what the collector holds and did since the last line.
    func selfReport() {
        guard let manager, let store else { return }
        let now = snapshot()
        let prev = lastReport
        lastReport = now
        let secs = max(0.001, now.at - prev.at)
        let lag = loop.lag
        let commit = store.stats.commitMicros
        Log.info("report", [
            "sessions": "\(manager.established)", "handshaking": "\(manager.handshaking)",
            "agents": "\(manager.connectedAgents)", "capturing": "\(manager.count(.capturing))",
            "wrong_config": "\(manager.count(.wrongConfiguration))",
            "handshakes": "\(now.handshakes &- prev.handshakes)", "failures": "\(now.failures &- prev.failures)",
            "batches": "\(now.batches &- prev.batches)", "rows": "\(now.rows &- prev.rows)", "acks": "\(now.acks &- prev.acks)",
            "in_kbps": "\(Int(Double(now.bytesIn &- prev.bytesIn) / secs / 1024))",
            "cpu_pct": "\(Int((now.cpu - prev.cpu) / secs * 100))",
            "lag_p99_ms": CollectorServer.millis(lag.quantile(0.99)), "lag_max_ms": CollectorServer.millis(lag.max),
            "commit_p99_ms": CollectorServer.millis(commit.quantile(0.99)),
            "pending_rows": "\(store.stats.pendingRows)",
            "rss_mb": "\(ProcessLimits.residentBytes() >> 20)",
        ])
    }

    static func millis(_ us: UInt64) -> String {
        let ms = Double(us) / 1000
        return ms < 10 ? String(Double(Int(ms * 100)) / 100) : String(Int(ms))
    }

    /// The /metrics page (CollectorMetrics.swift).
    func metrics() -> String {
        guard let manager, let store else { return "" }
        return CollectorMetrics.render(manager: manager, store: store, loop: loop, api: api, http: [http, metricsHTTP].compactMap { $0 }, windows: summaryWindows,
                                       reloads: (applied: reloadsApplied, rejected: reloadsRejected),
                                       uptime: Clock.monotonic() - startedAt, remoteWrite: remoteWrite,
                                       alerts: alertEvaluator, notifier: alertNotifier, heap: heapGauge, cluster: cluster)
    }
}
