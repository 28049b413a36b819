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
// Thread: the default loop's thread (signals need the default loop).
import CollectorStore
import ConfigFile
import HTTPServer
import Reactor
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

    public let loop: EventLoop
    public private(set) var configuration: Configuration
    public private(set) var settings: CollectorSettings
    let configPath: String?
    let overrides: [(key: String, value: String)]
    let environment: [String: String]

    private(set) var store: SQLiteStore?
    public private(set) var manager: SessionManager?
    private var listener: TCPListener?
    private var http: HTTPServer?
    private var api: APIHandler?
    private var signals: [SignalWatcher] = []
    private var reportTimer: TimerWatcher?
    private var shutdownTimer: TimerWatcher?
    private var shuttingDown = false
    public private(set) var exitCode: Int32 = 0
    private(set) var reloadsApplied: UInt64 = 0
    private(set) var reloadsRejected: UInt64 = 0
    private var lastReport = ReportSnapshot()
    private let startedAt = Clock.monotonic()

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
        Log.info("vigil-collector starting", ["pid": "\(getpid())", "config": configPath ?? "(none)"])
        tuneDescriptors()

        // The deferred queue carries every connection's flush and close
        // callback (a writev each, 5–10 µs): with thousands of sessions, 64
        // per iteration would make acknowledgements wait behind one another,
        // and thousands would make one iteration last milliseconds.
        loop.deferred.budget = 256

        var options = StoreOptions(dataDirectory: settings.dataDir)
        options.synchronous = .full
        let store: SQLiteStore
        do {
            store = try SQLiteStore.open(loop: loop, options: options)
        } catch {
            throw StartError(description: "cannot open the database in \(settings.dataDir): \(error)")
        }
        self.store = store
        Log.info("database", ["path": store.path, "schema": "\(store.schemaVersion)"])

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

        store.markAllAgentsNotVisible(at: Clock.wallMillis()) { r in
            if case .failure(let e) = r { Log.warn("store: marking agents not visible failed", ["error": "\(e)"]) }
        }
        store.startRetention(days: settings.retentionDays, every: 3600, firstAfter: 60)

        let manager = SessionManager(loop: loop, store: store, settings: sessionSettings(settings))
        self.manager = manager

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

        let api = APIHandler(loop: loop, store: store, manager: manager, adminToken: token)
        api.metrics = { [unowned self] in self.renderMetrics() }
        api.collectorConfig = { [unowned self] in self.configuration }
        self.api = api
        let http = HTTPServer(loop: loop) { [unowned api] req, responder in api.handle(req, responder) }
        do {
            try http.start(address: settings.httpListen, connectionLimit: 256, timeoutSeconds: 30)
        } catch {
            throw StartError(description: "cannot serve HTTP on \(settings.httpListen) (http_listen): \(error)")
        }
        self.http = http

        for sig in [SIGTERM, SIGINT] {
            let w = SignalWatcher(loop: loop, signal: sig) { [unowned self] w in self.shutdown(signal: w.signal) }
            w.start()
            signals.append(w)
        }
        let hup = SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in self.reload() }
        hup.start()
        signals.append(hup)

        let report = TimerWatcher(loop: loop) { [unowned self] _ in self.selfReport() }
        report.start(after: CollectorServer.reportInterval, repeat: CollectorServer.reportInterval)
        reportTimer = report
        lastReport = snapshot()

        Log.info("listening on \(listener!.localAddress)", ["max_clients": "\(settings.maxClients)", "backlog": "\(settings.backlog)"])
        Log.info("http on \(settings.httpListen.withPort(http.port))")
        Log.info("ready", ["pid": "\(getpid())"])
    }

    private func sessionSettings(_ s: CollectorSettings) -> SessionSettings {
        SessionSettings(maxClients: s.maxClients, handshakeTimeout: s.handshakeTimeout, idleTimeout: s.idleTimeout)
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
            case "retention_days":
                s.retentionDays = freshSettings.retentionDays
                store?.retentionDays = s.retentionDays
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
        Log.info("shutting down", ["signal": signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : "\(signal)",
                                   "sessions": "\(manager?.open ?? 0)"])
        listener?.close()
        reportTimer?.stop()
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
        http?.stop()
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

    // MARK: metrics

    func renderMetrics() -> String {
        guard let manager, let store else { return "" }
        var p = PrometheusText()
        let s = manager.stats
        let st = store.stats

        p.family("vigil_sessions", "gauge", "Agent connections by phase.")
        p.sample("vigil_sessions", ["phase": "handshake"], manager.handshaking)
        p.sample("vigil_sessions", ["phase": "established"], manager.established)
        p.sample("vigil_sessions", ["phase": "closing"], manager.closing)
        p.family("vigil_agents", "gauge", "Connected agents by state (probe sessions excluded).")
        for st in [CollectorStore.AgentState.connecting, .stopped, .capturing, .wrongConfiguration] {
            p.sample("vigil_agents", ["state": st.rawValue], manager.count(st))
        }
        p.single("vigil_probe_sessions", "gauge", "Established probe sessions (no agent identity).", Double(manager.probes))
        p.single("vigil_max_clients", "gauge", "The max_clients setting in force.", Double(manager.settings.maxClients))

        p.single("vigil_connections_accepted_total", "counter", "TCP connections accepted on the session port.", Double(s.accepted))
        p.single("vigil_handshakes_total", "counter", "Handshakes completed (sessions established).", Double(s.handshakesCompleted))
        p.family("vigil_handshake_failures_total", "counter", "Connections that did not become a session, by reason.")
        for f in HandshakeFailure.allCases { p.sample("vigil_handshake_failures_total", ["reason": f.description], s.failures(f)) }
        p.summary("vigil_handshake_seconds", "Time from accept to Welcome.", s.handshakeMicros, unit: 1e-6)
        p.single("vigil_handshakes_deferred_total", "counter", "Handshakes postponed by the per-iteration budget.",
                 Double(s.handshakesDeferred))
        p.single("vigil_session_input_deferred_total", "counter", "Session reads postponed by the per-iteration decode budget.",
                 Double(s.inputDeferred))
        p.family("vigil_sessions_closed_total", "counter", "Established sessions closed, by reason.")
        for (reason, n) in s.sessionsClosed.nonZero { p.sample("vigil_sessions_closed_total", ["reason": reason.description], n) }
        p.single("vigil_sessions_replaced_total", "counter", "Sessions closed because the same agent connected again.",
                 Double(s.sessionsReplaced))
        p.family("vigil_key_lookups_total", "counter", "Project key reads for handshakes (shared: joined a queued read).")
        p.sample("vigil_key_lookups_total", ["kind": "read"], manager.keys.reads)
        p.sample("vigil_key_lookups_total", ["kind": "shared"], manager.keys.shared)

        p.single("vigil_records_in_total", "counter", "Records received from agents.", Double(s.recordsIn))
        p.single("vigil_bytes_in_total", "counter", "Bytes received on agent sessions.", Double(s.bytesIn))
        p.single("vigil_bytes_out_total", "counter", "Bytes sent on agent sessions.", Double(s.bytesOut))
        p.family("vigil_batches_total", "counter", "Data batches by outcome.")
        p.sample("vigil_batches_total", ["outcome": "received"], s.batchesReceived)
        p.sample("vigil_batches_total", ["outcome": "stored"], st.batchesStored)
        p.sample("vigil_batches_total", ["outcome": "duplicate"], st.batchesDuplicate)
        p.sample("vigil_batches_total", ["outcome": "failed"], st.batchesFailed)
        p.single("vigil_rows_stored_total", "counter", "Rows stored from data batches.", Double(st.rowsStored))
        p.single("vigil_acks_total", "counter", "Ack records sent (each after the batches it covers committed).", Double(s.acksSent))
        p.family("vigil_dropped_total", "counter", "Things dropped, by cause.")
        p.sample("vigil_dropped_total", ["cause": "unknown_batch_item"], s.itemsUnknownDropped)
        p.sample("vigil_dropped_total", ["cause": "write_refused"], s.writesRefused)
        p.sample("vigil_dropped_total", ["cause": "state_write_failed"], s.stateWritesFailed)
        p.single("vigil_window_pauses_total", "counter", "Sessions paused for exceeding their in-flight window.", Double(s.windowPauses))
        p.single("vigil_status_records_total", "counter", "Status records received.", Double(s.statusRecords))
        p.family("vigil_patterns_total", "counter", "Filter-rule answers and pushes.")
        p.sample("vigil_patterns_total", ["kind": "sent"], s.patternsSent)
        p.sample("vigil_patterns_total", ["kind": "unchanged"], s.patternsUnchanged)
        p.sample("vigil_patterns_total", ["kind": "pushed"], s.patternsPushed)
        p.family("vigil_schedules_total", "counter", "Monitor schedule answers and pushes.")
        p.sample("vigil_schedules_total", ["kind": "sent"], s.schedulesSent)
        p.sample("vigil_schedules_total", ["kind": "unchanged"], s.scheduleAnswers)
        p.sample("vigil_schedules_total", ["kind": "pushed"], s.schedulesPushed)
        p.single("vigil_pings_sent_total", "counter", "Pings sent to silent sessions.", Double(s.pingsSent))
        p.family("vigil_control_requests_total", "counter", "Control requests by result.")
        for (result, n) in manager.control.outcomes.sorted(by: { $0.key < $1.key }) {
            p.sample("vigil_control_requests_total", ["result": result], n)
        }
        p.single("vigil_control_requests_in_flight", "gauge", "Control requests waiting for an agent.", Double(manager.control.inFlight))

        p.summary("vigil_store_commit_seconds", "COMMIT (the fsync) of one store transaction.", st.commitMicros, unit: 1e-6)
        p.summary("vigil_store_transaction_seconds", "BEGIN to COMMIT of one store transaction (on the writer thread).",
                  st.transactionMicros, unit: 1e-6)
        p.single("vigil_store_transactions_total", "counter", "Store transactions committed.", Double(st.transactions))
        p.single("vigil_store_pending_rows", "gauge", "Rows queued for the store and not yet committed.", Double(st.pendingRows))
        p.family("vigil_store_failures_total", "counter", "Store operations that failed or were refused, by cause.")
        p.sample("vigil_store_failures_total", ["cause": "write_failed"], st.writesFailed)
        p.sample("vigil_store_failures_total", ["cause": "overloaded"], st.refusedOverloaded)
        p.sample("vigil_store_failures_total", ["cause": "closed"], st.refusedClosed)
        p.sample("vigil_store_failures_total", ["cause": "invalid"], st.refusedInvalid)
        p.sample("vigil_store_failures_total", ["cause": "busy_retry"], st.busyRetries)
        p.sample("vigil_store_failures_total", ["cause": "read_failed"], st.readsFailed - st.readsInterrupted)
        p.sample("vigil_store_failures_total", ["cause": "read_too_long"], st.readsInterrupted)
        p.single("vigil_store_retention_deleted_total", "counter", "Rows removed by retention.", Double(st.retentionDeleted))

        p.summary("vigil_loop_lag_seconds", "Time the loop was busy before polling again (since start).", loop.lag, unit: 1e-6)
        p.single("vigil_loop_iterations_total", "counter", "Event loop iterations.", Double(loop.iteration))

        p.single("process_open_fds", "gauge", "Open file descriptors.", Double(ProcessLimits.openDescriptorCount()))
        p.single("process_max_fds", "gauge", "The descriptor limit.", Double(ProcessLimits.descriptorLimit()))
        p.single("process_resident_memory_bytes", "gauge", "Resident set size.", Double(ProcessLimits.residentBytes()))
        p.single("vigil_heap_bytes", "gauge", "Heap bytes in use (malloc).", Double(ProcessLimits.heapBytesInUse()))
        p.single("process_cpu_seconds_total", "counter", "User and system CPU time.", ProcessLimits.cpuSeconds())
        p.single("vigil_uptime_seconds", "gauge", "Seconds since start.", Clock.monotonic() - startedAt)

        if let api {
            p.single("vigil_http_requests_total", "counter", "HTTP requests served.", Double(api.requests))
            p.single("vigil_http_unauthorized_total", "counter", "API requests refused for a missing or wrong token.",
                     Double(api.unauthorized))
        }
        p.family("vigil_config_reloads_total", "counter", "SIGHUP reloads by result.")
        p.sample("vigil_config_reloads_total", ["result": "applied"], reloadsApplied)
        p.sample("vigil_config_reloads_total", ["result": "rejected"], reloadsRejected)
        p.family("vigil_log_lines_total", "counter", "Log lines written, by level.")
        for l in LogLevel.allCases { p.sample("vigil_log_lines_total", ["level": l.name], Log.written[l.rawValue]) }
        return p.text
    }
}
