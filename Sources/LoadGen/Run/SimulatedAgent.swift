// SimulatedAgent: one agent's session as the contract has it (contract.md
// §1–§7), cut down to what load needs: Hello, then Interfaces, Status and
// PatternsRequest; a Status every interval; numbered DataBatches kept
// until the cumulative Ack; unacknowledged batches re-sent first after a
// reconnect (same agent id, boot id and instance, so the collector
// de-duplicates); Pongs for Pings (inside ClientSession); a refusing
// ControlResponse for each ControlRequest; the next collector of the list
// after a lost session.
//
// Holds no timer: the runner's wheels decide when each agent sends and
// checks liveness, and its admission queue when it connects.
#if canImport(Glibc)
import Glibc
#endif
import Reactor
import Wire

/// One simulated agent. Loop thread only. The runner owns it (and outlives
/// it); while connected its TCPConnection holds it too, as its handler.
final class SimulatedAgent: TCPConnectionHandler {
    enum State: UInt8 {
        /// Not started, or waiting in the admission queue or a backoff.
        case idle
        case connecting
        case handshake
        case established
        /// The run is over for this agent.
        case stopped
    }

    let index: Int32
    let agentID: String
    unowned let runner: LoadRunner
    private(set) var state = State.idle
    private(set) var tracker = AckTracker()
    /// Position in the collector list of the current or next attempt.
    private(set) var collector = 0
    private var connection: TCPConnection?
    private var session: ClientSession?
    /// This agent's static key pair, derived from the access key's secret
    /// and the agent id: the same on every run, so an id enrolled by one
    /// run is accepted in the next. Made on the first connect.
    private var identity: StaticKeyPair?
    /// Consecutive attempts that failed (backoff grows with it).
    private(set) var failures = 0
    private var attemptStarted = 0.0
    private(set) var lastReceived = 0.0
    private var pingSentAt = 0.0
    /// When the last established session was lost (0: none pending).
    private var lostAt = 0.0
    /// Had a session once: a batch slot passed while offline is skipped
    /// data, not a ramp that has not reached this agent yet.
    private var everEstablished = false
    /// In-flight limit of the current session.
    private var window = 1
    /// Why the session is being given up (kept over the TCP close reason).
    private var failReason: CloseReason?

    init(index: Int32, runner: LoadRunner) {
        self.index = index
        self.runner = runner
        agentID = "\(runner.options.prefix)-\(index)"
    }

    var isEstablished: Bool { state == .established }
    var inFlight: Int { tracker.inFlight }

    // MARK: connecting

    /// Opens a connection to the current collector (the runner admitted it).
    func connect() {
        guard state == .idle else { return }
        state = .connecting
        failReason = nil
        attemptStarted = Clock.monotonic()
        runner.stats.attempts &+= 1
        if identity == nil { identity = StaticKeyPair.derived(seed: runner.options.accessKey.secret, label: "vigil-load/" + agentID) }
        session = ClientSession(accessKey: runner.options.accessKey, identity: identity!, hello: runner.hello(for: self))
        connection = TCPConnection.connect(loop: runner.loop, to: runner.options.collectors[collector],
                                           options: runner.connectionOptions(for: index), handler: self)
    }

    func connectionDidConnect(_ c: TCPConnection) {
        guard state == .connecting, let session else { return }
        do {
            try session.start()
        } catch {
            give(up: .local)
            return
        }
        state = .handshake
        writeOut()
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        guard let session, state == .handshake || state == .established else {
            buffer.consume(buffer.readableBytes)
            return
        }
        lastReceived = Clock.monotonic()
        pingSentAt = 0
        var events = runner.takeEventScratch()
        session.feed(buffer.readable) { events.append($0) }
        buffer.consume(buffer.readableBytes)
        writeOut()   // Pongs
        for event in events {
            // A handler may have given the session up (abort): the rest is moot.
            guard self.session === session, connection?.state != .closed else { break }
            switch event {
            case .welcome(let w): established(w)
            case .record(let r): received(r)
            case .closed(let reason): sessionClosed(reason)
            case .hello, .needKeys: break
            }
        }
        runner.returnEventScratch(events)
        if self.session === session, state == .established { session.compactBuffers() }
    }

    private func established(_ w: Welcome) {
        guard state == .handshake, let session else { return }
        let now = Clock.monotonic()
        state = .established
        everEstablished = true
        failures = 0
        runner.stats.handshakes &+= 1
        runner.stats.handshakeMicros.record(UInt64(max(0, (now - attemptStarted) * 1e6)))
        if lostAt > 0 {
            runner.stats.reconnectGapMillis.record(UInt64(max(0, (now - lostAt) * 1000)))
            lostAt = 0
        }
        let announced = Int(w.limits.maxInFlightBatches)
        window = announced > 0 ? min(announced, runner.options.inflight) : runner.options.inflight
        if w.ackedSequence > 0 { acknowledge(w.ackedSequence) }
        runner.agentEstablished(self)
        // Session setup, as an agent does it (contract §3, §4).
        let ok = send(.interfaces(Interfaces([NetworkInterface(name: "lo", flags: NetworkInterface.flagUp | NetworkInterface.flagLoopback,
                                                                 addresses: ["127.0.0.1/8"])])), flush: false)
            && send(.status(status()), flush: false)
            && send(.patternsRequest(PatternsRequest(haveVersion: 0)))
        guard ok, self.session === session else { return }
        runner.stats.statuses &+= 1
        // Unacknowledged batches first, in order (contract §5).
        if let again = tracker.unacknowledged {
            for s in again {
                guard sendBatch(s) else { return }
                runner.stats.batchesResent &+= 1
            }
        }
        if runner.options.mode == .ingest { pump() }
    }

    private func received(_ r: Record) {
        switch r {
        case .ack(let a):
            acknowledge(a.sequence)
            if runner.options.mode == .ingest { pump() }
        case .pong(let p):
            runner.stats.pongs &+= 1
            let sent = p.value
            let now = Clock.monotonicNanos()
            if runner.measuringPings && sent > 0 && sent <= now { runner.stats.pingMicros.record((now - sent) / 1000) }
        case .controlRequest(let c):
            runner.stats.controlRequests &+= 1
            send(.controlResponse(ControlResponse(requestID: c.requestID, ok: false,
                                                  message: "simulated agent (vigil-load): control is not supported")))
        case .error(let e):
            runner.noteError(e)
        default:
            break   // Patterns, PatternsUnchanged, ScheduleUnchanged: nothing to apply
        }
    }

    private func acknowledge(_ sequence: UInt64) {
        let outcome = tracker.acknowledge(upTo: sequence)
        runner.ledger.record(outcome, agentID: agentID, collector: collector)
        if case .beyondSent(let n) = outcome { runner.bogusAck(self, n) }
    }

    private func sessionClosed(_ reason: CloseReason) {
        if failReason == nil { failReason = reason }
        if reason == .rejected, let e = session?.peerError { runner.noteError(e) }
        writeOut()   // a final Error record, if the session sealed one
        connection?.close()
    }

    // MARK: sending

    /// The Status record of this agent.
    private func status() -> Status {
        Status(timestampMs: UInt64(max(0, Clock.wallMillis())), state: .capturing, cpuPermille: 1, rssBytes: 6 << 20,
               counters: [Counter("inflight_batches", UInt64(tracker.inFlight)), Counter("batches_sent", tracker.nextSequence - 1)])
    }

    /// Queues `record` (and seals it unless `flush` is false) and hands
    /// the bytes to the connection. False when the session was given up.
    @discardableResult
    private func send(_ record: Record, flush: Bool = true) -> Bool {
        guard let session, state == .established else { return false }
        do {
            try session.send(record)
            if flush { try session.flush() }
        } catch {
            runner.stats.sendErrors &+= 1
            give(up: .local)
            return false
        }
        return flush ? writeOut() : true
    }

    /// Moves sealed bytes to the connection's write queue.
    @discardableResult
    private func writeOut() -> Bool {
        guard let session, let connection, connection.state != .closed else { return false }
        let out = session.outbound
        guard !out.isEmpty else { return true }
        guard connection.write(out.readable) else {
            runner.stats.writeRefused &+= 1
            give(up: .outboundOverflow)
            return false
        }
        out.consume(out.readableBytes)
        return true
    }

    private func sendBatch(_ sequence: UInt64) -> Bool {
        guard let session, state == .established else { return false }
        let o = runner.options
        do {
            let items = try BatchContent.items(sequence: sequence, count: o.items, baseMs: runner.baseMs,
                                               names: runner.checkNames, session: session)
            try session.send(.dataBatch(DataBatch(sequence: sequence, items: items)))
            try session.flush()
        } catch {
            runner.stats.sendErrors &+= 1
            give(up: .local)
            return false
        }
        runner.stats.itemsSent &+= UInt64(o.items)
        return writeOut()
    }

    /// density: this agent's batch slot came round.
    func batchDue() {
        guard state == .established, !runner.stopProducing else {
            if everEstablished && state != .stopped && !runner.stopProducing { runner.stats.batchesSkipped &+= 1 }
            return
        }
        guard tracker.inFlight < window else {
            runner.stats.batchesSkipped &+= 1
            return
        }
        let s = tracker.newBatch()
        if sendBatch(s) { runner.stats.batchesSent &+= 1 }
    }

    /// ingest: fill the window while the connection takes bytes.
    func pump() {
        while state == .established, !runner.stopProducing, tracker.inFlight < window,
              let c = connection, c.isWritable {
            let s = tracker.newBatch()
            guard sendBatch(s) else { return }
            runner.stats.batchesSent &+= 1
        }
    }

    func connectionWritabilityChanged(_ c: TCPConnection) {
        if c.isWritable && runner.options.mode == .ingest { pump() }
    }

    /// This agent's status slot came round.
    func statusDue(ping: Bool) {
        guard state == .established, !runner.stopProducing else { return }
        if send(.status(status()), flush: !ping) {
            runner.stats.statuses &+= 1
            if ping {
                runner.stats.pingsSent &+= 1
                send(.ping(Ping(Clock.monotonicNanos())))
            }
        }
    }

    /// The liveness slot: handshake deadline, collector silence (Ping,
    /// then give up).
    func livenessDue(now: Double) {
        switch state {
        case .connecting, .handshake:
            if now - attemptStarted >= runner.options.connectTimeout {
                give(up: .handshakeTimeout)
            }
        case .established:
            let silence = runner.options.silence
            if pingSentAt > 0 {
                if now - pingSentAt >= silence / 2 {
                    runner.stats.livenessFailures &+= 1
                    give(up: .idleTimeout)
                }
            } else if now - lastReceived >= silence {
                pingSentAt = now
                runner.stats.pingsSent &+= 1
                send(.ping(Ping(Clock.monotonicNanos())))
            }
        case .idle, .stopped:
            break
        }
    }

    /// Gives up on the current connection (RST), for `reason`.
    private func give(up reason: CloseReason) {
        if failReason == nil { failReason = reason }
        connection?.abort()
    }

    // MARK: ending

    /// The run is over: close gracefully (what is queued is sent first).
    func stop() {
        switch state {
        case .stopped:
            return
        case .idle:
            state = .stopped
            runner.agentClosed(self)
        case .connecting, .handshake, .established:
            // The close callback marks it stopped.
            if let session, case .established = session.state {
                session.close(.local, error: ErrorRecord(code: .shuttingDown, message: "load generator finished"))
                writeOut()
            }
            connection?.close()
        }
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) {
        guard c === connection else { return }
        let was = state
        let why = failReason ?? session?.closeReason ?? SimulatedAgent.closeReason(reason)
        connection = nil
        session = nil
        pingSentAt = 0
        runner.stats.closeReasons.add(why)
        let now = Clock.monotonic()
        switch was {
        case .established:
            runner.agentLost(self)
            if !runner.isStopping {
                runner.stats.sessionsLost &+= 1
                lostAt = now
            }
        case .connecting, .handshake:
            runner.attemptEnded(self)
            if why == .rejected {
                runner.stats.rejected &+= 1
            } else if why == .handshakeTimeout || reason == .connectTimeout {
                if was == .handshake { runner.stats.handshakeTimeouts &+= 1 } else { runner.stats.connectTimeouts &+= 1 }
            } else if reason == .refused {
                runner.stats.connectRefused &+= 1
            } else {
                runner.stats.otherAttemptFailures &+= 1
            }
            failures += 1
        case .idle, .stopped:
            break
        }
        if runner.isStopping {
            state = .stopped
            runner.agentClosed(self)
            return
        }
        state = .idle
        // The next collector of the list; a lost session retries almost at
        // once (like the agent), a failed attempt backs off.
        if runner.options.collectors.count > 1 { collector = (collector + 1) % runner.options.collectors.count }
        runner.scheduleReconnect(self, afterFailures: was == .established ? 0 : failures)
    }

    static func closeReason(_ r: TCPCloseReason) -> CloseReason {
        switch r {
        case .peerClosed, .reset: return .peerClosed
        case .connectTimeout: return .handshakeTimeout
        case .idleTimeout: return .idleTimeout
        case .localClose, .localAbort: return .local
        case .readBufferLimit: return .badFrameLength
        case .refused, .error: return .ioError
        }
    }
}
