// LoadRunner: every simulated agent on one event loop, and the run's
// timeline:
//
//   ramping ─▶ measuring (--duration) ─▶ draining (--drain) ─▶ closing ─▶ done
//
// One 10 ms timer drives everything periodic: the admission of connects
// (a token bucket at --rate, at most --max-pending connects and
// handshakes in progress, fed by the ramp and by reconnect backoffs), the
// status, batch and liveness wheels (PhaseWheel: each agent at its own
// random phase), the phase changes and the progress lines. Per agent there
// is no timer at all, so 10^5 agents cost the loop nothing while idle.
#if canImport(Glibc)
import Glibc
#endif
import Reactor
import Wire

/// A run of `vigil-load density|ingest`. Loop thread only; `run()` blocks
/// until the run is over and returns its summary.
public final class LoadRunner {
    public enum Phase: Int, Comparable {
        case ramping, measuring, draining, closing, done
        public static func < (a: Phase, b: Phase) -> Bool { a.rawValue < b.rawValue }
        var name: String { ["ramping", "measuring", "draining", "closing", "done"][rawValue] }
    }

    public static let tick = 0.01

    public let loop: EventLoop
    public let options: LoadOptions
    public let ledger: AckLedger
    /// Loopback source addresses, agent i uses sources[i % count].
    public let sources: [SocketAddress]
    let bootID: String
    let instance: UInt64
    let baseMs: Int64
    let checkNames: [String]
    var stats = LoadStats()
    public private(set) var phase = Phase.ramping

    private var agents: [SimulatedAgent] = []
    private var connectOptions: [TCPConnection.Options] = []
    private var admission: RingBuffer<Int32>
    private var backoff = DueQueue()
    private var random: SplitMix64
    private var tokens = 1.0
    private var statusWheel: PhaseWheel
    private var batchWheel: PhaseWheel
    private var livenessWheel: PhaseWheel
    private var timer: TimerWatcher!
    private var signals: [SignalWatcher] = []
    private var signalCount = 0
    private var scratch: [SessionEvent] = []

    /// Connects and handshakes in progress.
    public private(set) var pending = 0
    public private(set) var established = 0
    /// Agents whose connection has closed after `stop` (closing phase).
    private var stopped = 0
    private var bogusAcksLogged = 0

    // Timeline (monotonic seconds).
    private var started = 0.0
    private var lastTick = 0.0
    private var rampEnded = 0.0
    private var lastRampHandshake = 0.0
    private var rampHandshakes: UInt64 = 0
    private var rampComplete = false
    private var windowStart = 0.0
    private var windowEnd = 0.0
    private var phaseDeadline = 0.0
    private var nextReport = 0.0
    private var sessionsMin = Int.max
    private var sessionsAtWindowEnd = 0
    private var atWindowStart = (records: UInt64(0), batches: UInt64(0), cpu: 0.0, lost: UInt64(0))
    private var atWindowEnd = (records: UInt64(0), batches: UInt64(0), cpu: 0.0, lost: UInt64(0))
    private var windowLag = LogHistogram()
    private var windowPings = LogHistogram()
    private var lastReportRecords: UInt64 = 0
    private var lastReportAt = 0.0

    /// `ledgerOutput` receives the acknowledgement ledger (nil: totals only).
    public init(options: LoadOptions, loop: EventLoop, sources: [SocketAddress], ledgerOutput: LedgerOutput?) {
        self.options = options
        self.loop = loop
        self.sources = sources
        let key = Key32.random().bytes
        bootID = key[0..<16].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        instance = key[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } | 1
        baseMs = Clock.wallMillis()
        checkNames = BatchContent.checkNames(options.items)
        let seed = options.seed != 0 ? options.seed : UInt64(bitPattern: Int64(Clock.monotonicNanos())) ^ instance
        random = SplitMix64(seed: seed)
        ledger = AckLedger(header: LedgerHeader(bootID: bootID, instance: instance, baseMs: baseMs, items: options.items,
                                                prefix: options.prefix, collectors: options.collectors.map(\.description)),
                           output: ledgerOutput)
        admission = RingBuffer(capacity: options.agents, overflow: .dropNewest)
        let now = Clock.monotonic()
        statusWheel = PhaseWheel(period: options.statusInterval, tick: LoadRunner.tick, origin: now)
        batchWheel = PhaseWheel(period: options.batchInterval, tick: LoadRunner.tick, origin: now)
        livenessWheel = PhaseWheel(period: 1, tick: LoadRunner.tick, origin: now)
        var base = TCPConnection.Options()
        base.connectTimeout = options.connectTimeout
        connectOptions = sources.isEmpty ? [base] : sources.map { var o = base; o.localAddress = $0; return o }
    }

    // MARK: agent-facing

    func hello(for agent: SimulatedAgent) -> Hello {
        Hello(agentID: agent.agentID, name: agent.agentID, host: "vigil-load", version: "vigil-load 1",
              bootID: bootID, instance: instance, capabilities: ["aggregates"], groups: ["default"])
    }

    func connectionOptions(for index: Int32) -> TCPConnection.Options {
        connectOptions[Int(index) % connectOptions.count]
    }

    func takeEventScratch() -> [SessionEvent] {
        var e: [SessionEvent] = []
        swap(&e, &scratch)
        return e
    }

    func returnEventScratch(_ events: [SessionEvent]) {
        scratch = events
        scratch.removeAll(keepingCapacity: true)
    }

    /// No new batches or statuses (draining and after).
    var stopProducing: Bool { phase >= .draining }
    /// Sessions are being closed on purpose: no reconnects, no "lost".
    var isStopping: Bool { phase >= .closing }
    var measuringPings: Bool { phase == .measuring }

    func agentEstablished(_ a: SimulatedAgent) {
        pending -= 1
        established += 1
        if phase == .ramping {
            rampHandshakes &+= 1
            lastRampHandshake = Clock.monotonic()
        }
    }

    func agentLost(_ a: SimulatedAgent) { established -= 1 }
    func attemptEnded(_ a: SimulatedAgent) { pending -= 1 }
    func agentClosed(_ a: SimulatedAgent) { stopped += 1 }

    func scheduleReconnect(_ a: SimulatedAgent, afterFailures failures: Int) {
        let o = options
        let delay: Double
        if failures == 0 {
            delay = random.uniform(0, o.reconnectMin)
        } else {
            let doubling = Double(1 << min(failures - 1, 3))
            delay = random.uniform(o.reconnectMin, o.reconnectMax) * doubling
        }
        backoff.push(a.index, at: Clock.monotonic() + delay)
    }

    func bogusAck(_ a: SimulatedAgent, _ sequence: UInt64) {
        guard bogusAcksLogged < 5 else { return }
        bogusAcksLogged += 1
        Log.error("ack for a batch never sent", ["agent": a.agentID, "sequence": "\(sequence)",
                                                  "sent_through": "\(a.tracker.nextSequence - 1)"])
    }

    func noteError(_ e: ErrorRecord) {
        stats.peerErrors["\(e.code)", default: 0] &+= 1
    }

    // MARK: running

    /// Runs the whole timeline and returns the summary. With
    /// `handleSignals`, SIGINT and SIGTERM end the run early (the default
    /// loop should run it then: a signal is watched by one loop only).
    public func run(handleSignals: Bool = true) -> SummaryFields {
        started = Clock.monotonic()
        lastTick = started
        nextReport = started + options.reportInterval
        lastReportAt = started
        loop.deferred.budget = 4096
        agents.reserveCapacity(options.agents)
        for i in 0..<options.agents {
            let a = SimulatedAgent(index: Int32(i), runner: self)
            agents.append(a)
            _ = admission.append(Int32(i))
            statusWheel.insert(Int32(i), phase: random.unit())
            if options.mode == .density { batchWheel.insert(Int32(i), phase: random.unit()) }
            livenessWheel.insert(Int32(i), phase: random.unit())
        }
        timer = TimerWatcher(loop: loop) { [unowned self] _ in self.tickNow() }
        timer.start(after: 0, repeat: LoadRunner.tick)
        for sig in handleSignals ? [SIGINT, SIGTERM] : [] {
            let w = SignalWatcher(loop: loop, signal: sig) { [unowned self] _ in self.signalled() }
            w.start()
            signals.append(w)
        }
        Log.info("ramping", ["agents": "\(options.agents)", "rate": SummaryFields.fixed(options.rate, 0),
                             "collectors": options.collectors.map(\.description).joined(separator: ","),
                             "sources": sources.isEmpty ? "kernel" : "\(sources.first!.ip)…\(sources.last!.ip)"])
        loop.run()
        timer.stop()
        signals.forEach { $0.stop() }
        return summary()
    }

    private func signalled() {
        signalCount += 1
        if signalCount > 1 {
            Log.warn("second signal: exiting at once")
            try? ledger.finish()
            exit(1)
        }
        Log.info("signal: ending the run early", ["phase": phase.name])
        let now = Clock.monotonic()
        if phase == .ramping { endRamp(now) }
        if phase == .measuring { beginDrain(now) }
    }

    private func tickNow() {
        let now = Clock.monotonic()
        let dt = max(0, now - lastTick)
        lastTick = now

        while let id = backoff.popDue(now) {
            if phase < .closing { _ = admission.append(id) } else { agents[Int(id)].stop() }
        }
        tokens = min(tokens + dt * options.rate, max(1, options.rate * LoadRunner.tick * 2))
        while tokens >= 1, pending < options.maxPending, phase < .closing, let id = admission.popFirst() {
            tokens -= 1
            pending += 1
            agents[Int(id)].connect()
        }

        livenessWheel.advance(to: now) { agents[Int($0)].livenessDue(now: now) }
        let ping = phase == .measuring
        statusWheel.advance(to: now) { agents[Int($0)].statusDue(ping: ping) }
        if options.mode == .density { batchWheel.advance(to: now) { agents[Int($0)].batchDue() } }

        switch phase {
        case .ramping:
            if established == options.agents { rampComplete = true; endRamp(now) }
            else if now - started >= options.rampTimeout { endRamp(now) }
        case .measuring:
            sessionsMin = min(sessionsMin, established)
            if now >= windowStart + options.duration { beginDrain(now) }
        case .draining:
            if now >= phaseDeadline || agents.allSatisfy({ !$0.isEstablished || $0.inFlight == 0 }) { beginClose(now) }
        case .closing:
            if stopped >= options.agents || now >= phaseDeadline { finish() }
        case .done:
            break
        }
        if options.reportInterval > 0 && now >= nextReport {
            nextReport = now + options.reportInterval
            progress(now)
        }
    }

    private func endRamp(_ now: Double) {
        guard phase == .ramping else { return }
        rampEnded = now
        let span = max(0.001, (lastRampHandshake > 0 ? lastRampHandshake : now) - started)
        Log.info("ramp complete", [
            "sessions": "\(established)", "agents": "\(options.agents)", "complete": rampComplete ? "1" : "0",
            "seconds": SummaryFields.fixed(now - started, 1),
            "handshakes_per_s": SummaryFields.fixed(Double(rampHandshakes) / span, 0),
            "failures": "\(stats.attemptFailures)",
        ])
        phase = .measuring
        windowStart = now
        sessionsMin = established
        atWindowStart = (ledger.records, ledger.batches, ProcessLimits.cpuSeconds(), stats.sessionsLost)
        loop.resetLag()
        stats.pingMicros = LogHistogram()
    }

    private func beginDrain(_ now: Double) {
        guard phase == .measuring else { return }
        windowEnd = now
        sessionsAtWindowEnd = established
        atWindowEnd = (ledger.records, ledger.batches, ProcessLimits.cpuSeconds(), stats.sessionsLost)
        windowLag = loop.lag
        windowPings = stats.pingMicros
        phase = .draining
        phaseDeadline = now + options.drain
        Log.info("measurement window over; draining acknowledgements", ["seconds": SummaryFields.fixed(options.drain, 1)])
    }

    private func beginClose(_ now: Double) {
        phase = .closing
        phaseDeadline = now + 5
        for a in agents { a.stop() }
    }

    private func finish() {
        phase = .done
        loop.stop()
    }

    private func progress(_ now: Double) {
        let records = ledger.records
        let rate = Double(records &- lastReportRecords) / max(0.001, now - lastReportAt)
        lastReportRecords = records
        lastReportAt = now
        Log.info("progress", [
            "t": SummaryFields.fixed(now - started, 1), "phase": phase.name, "sessions": "\(established)",
            "pending": "\(pending)", "queued": "\(admission.count)", "backoff": "\(backoff.count)",
            "handshakes": "\(stats.handshakes)", "failures": "\(stats.attemptFailures)", "lost": "\(stats.sessionsLost)",
            "acked_records": "\(records)", "acked_records_per_s": SummaryFields.fixed(rate, 0),
            "lag_p99_ms": SummaryFields.fixed(Double(loop.lag.quantile(0.99)) / 1000, 2),
        ])
    }

    // MARK: summary

    private func summary() -> SummaryFields {
        if windowEnd == 0 {   // ended before or during the window
            windowEnd = lastTick
            if windowStart == 0 { windowStart = started; atWindowStart = (0, 0, 0, 0) }
            atWindowEnd = (ledger.records, ledger.batches, ProcessLimits.cpuSeconds(), stats.sessionsLost)
            windowLag = loop.lag
            windowPings = stats.pingMicros
            sessionsAtWindowEnd = established
        }
        let window = max(0.001, windowEnd - windowStart)
        let rampSpan = max(0.001, (lastRampHandshake > 0 ? lastRampHandshake : (rampEnded > 0 ? rampEnded : lastTick)) - started)
        var s = SummaryFields()
        func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
        s.add("mode", text: options.mode.rawValue)
        s.add("agents", options.agents)
        s.add("sessions", sessionsAtWindowEnd)
        s.add("sessions_min", sessionsMin == Int.max ? sessionsAtWindowEnd : sessionsMin)
        s.add("ramp_complete", rampComplete ? 1 : 0)
        s.add("ramp_s", (rampEnded > 0 ? rampEnded : lastTick) - started, decimals: 1)
        s.add("handshakes", stats.handshakes)
        s.add("handshakes_per_s", Double(rampHandshakes) / rampSpan, decimals: 0)
        s.add("handshake_p50_ms", ms(stats.handshakeMicros.quantile(0.5)), decimals: 1)
        s.add("handshake_p99_ms", ms(stats.handshakeMicros.quantile(0.99)), decimals: 1)
        s.add("attempt_failures", stats.attemptFailures)
        s.add("refused", stats.connectRefused)
        s.add("connect_timeouts", stats.connectTimeouts)
        s.add("handshake_timeouts", stats.handshakeTimeouts)
        s.add("rejected", stats.rejected)
        s.add("sessions_lost", stats.sessionsLost)
        s.add("sessions_lost_in_window", atWindowEnd.lost &- atWindowStart.lost)
        s.add("liveness_failures", stats.livenessFailures)
        s.add("window_s", window, decimals: 1)
        s.add("statuses", stats.statuses)
        s.add("batches_sent", stats.batchesSent)
        s.add("batches_resent", stats.batchesResent)
        s.add("batches_skipped", stats.batchesSkipped)
        s.add("acked_batches", ledger.batches)
        s.add("acked_records", ledger.records)
        s.add("acked_records_in_window", atWindowEnd.records &- atWindowStart.records)
        s.add("acked_records_per_s", Double(atWindowEnd.records &- atWindowStart.records) / window, decimals: 0)
        s.add("inflight_at_end", agents.reduce(0) { $0 + $1.inFlight })
        s.add("stale_acks", ledger.stale)
        s.add("bogus_acks", ledger.beyondSent)
        s.add("pings", stats.pingsSent)
        s.add("pongs", stats.pongs)
        s.add("ping_rtt_p50_ms", ms(windowPings.quantile(0.5)), decimals: 2)
        s.add("ping_rtt_p99_ms", ms(windowPings.quantile(0.99)), decimals: 2)
        s.add("ping_rtt_max_ms", ms(windowPings.max), decimals: 2)
        s.add("reconnect_gap_p99_ms", Double(stats.reconnectGapMillis.quantile(0.99)), decimals: 0)
        s.add("reconnect_gap_max_ms", Double(stats.reconnectGapMillis.max), decimals: 0)
        s.add("control_requests", stats.controlRequests)
        s.add("write_refused", stats.writeRefused)
        s.add("send_errors", stats.sendErrors)
        s.add("loop_lag_p99_ms", ms(windowLag.quantile(0.99)), decimals: 2)
        s.add("loop_lag_max_ms", ms(windowLag.max), decimals: 2)
        s.add("cpu_pct", (atWindowEnd.cpu - atWindowStart.cpu) / window * 100, decimals: 0)
        s.add("rss_mb", Double(ProcessLimits.residentBytes()) / 1_048_576, decimals: 0)
        s.add("sources", max(1, sources.count))
        let closes = stats.closeReasons.nonZero.map { "\($0.0):\($0.1)" }.joined(separator: ",")
        s.add("closes", text: closes.isEmpty ? "none" : closes)
        let errs = stats.peerErrors.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
        s.add("peer_errors", text: errs.isEmpty ? "none" : errs)
        return s
    }
}
