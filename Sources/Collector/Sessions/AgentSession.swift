// AgentSession: one agent connection, from accept to close — the adapter
// between a TCPConnection and a Wire ServerSession.
//
//   bytes read ─▶ ServerSession.feed ─▶ events
//     .needKeys(project) ─▶ context.lookupKeys ┄┄ (later) keysArrived
//         ─▶ a handshake turn (context.mayHandshake) ─▶ provideKeys
//         ─▶ message 1 read, message 2 written ┄┄ message 3 read
//     .hello(h)          ─▶ context.admit ─▶ accept(Welcome) | reject(Error)
//     .record(r)         ─▶ context.received
//     .closed(reason)    ─▶ close (an Error record when there is something to say)
//   ServerSession.outbound ─▶ the connection's write queue
//
// The Wire session owns the protocol: the preamble, the handshake messages,
// which key (if any) message 3 was written with and the agent's static key.
// Nothing about the agent reaches the context before message 3 proved it. This object owns the connection's
// side of it — reading paused and resumed, bytes counted, outbound written,
// deadlines, the phases of closing — and asks its `context` for everything
// else. It holds what the collector knows of the agent (identity, operator
// state, the batches between receipt and acknowledgement), which the
// context's record handling reads and updates.
//
// Memory. The Wire session consumes every byte it is given; only while
// message 1 waits for its keys does it leave anything (what the agent sent
// early) in the connection, with reading paused. The Wire session's buffers
// are given back after any large message (`compactBuffers`); its handshake
// state is dropped once the Welcome is written. Data batches are the
// store's from the moment they are submitted; the session keeps only their
// sequence numbers until acknowledged. Timeouts are an entry in the
// collector's DeadlineWheel, not a timer per session.
//
// Thread: loop thread. Ownership: the TCPConnection holds its handler (this
// object) until its close callback; the SessionManager holds established
// agents by id. Everything that can end the session goes through `close` or
// `failHandshake`, and the bookkeeping runs once, in `finish`.
import CollectorStore
import Reactor
import Wire

final class AgentSession: TCPConnectionHandler, DeadlineEntry, ConnectedAgent, CustomStringConvertible {
    enum Phase: UInt8 { case handshake, established, closing, closed }

    /// Batches a session may have between receipt and acknowledgement
    /// (announced in the Welcome); beyond it the session stops reading.
    static let maxInFlightBatches = 64
    /// How long a closing session may take to send what it has queued.
    static let closeGrace = 5.0
    /// What a session's Wire buffers keep between messages: enough for an
    /// Ack or a Pong, so an idle session holds almost no buffer memory.
    static let idleBufferBytes = 64
    /// How often a session the collector does not read is sent a Ping: a
    /// quarter of the idle timeout, at most 15 s, so that an agent's own
    /// silence timeout (`tcp_so_timeout`, 60 s by default) never expires
    /// while the collector holds its session.
    static func heldPingInterval(idle: Double) -> Double { min(idle / 4, 15) }

    unowned let context: AgentSessionContext
    let peer: SocketAddress
    let sessionID: UInt64
    /// Accepted while `max_clients` sessions were open: the handshake runs
    /// only to tell the agent so.
    let overCapacity: Bool
    private(set) var connection: TCPConnection?
    private(set) var phase = Phase.handshake
    var deadlineLink = DeadlineLink<AgentSession>()
    let acceptedAt: Double
    private var wire: ServerSession?

    // Handshake.
    /// The project's keys, from their arrival until this session's turn.
    private var keys: HandshakeKeys?
    /// Queued for a handshake turn.
    private var awaitingTurn = false
    /// Message 2 went out: the next read carries message 3 (its last DH,
    /// the key trials, the admission), which the handshake budget bounds.
    private var message2Sent = false
    /// Message 3 proved who the agent is; the registry's answer is awaited
    /// with the Welcome it will get (`verifyIdentity`).
    private var pendingAccept: (hello: Hello, welcome: Welcome)?
    /// The preamble's project id.
    private(set) var projectName = ""

    // Established: who the agent is.
    private(set) var projectId: Int64 = 0
    /// The store's id of the access key the session authenticated with:
    /// revoking that key closes the session (KeyRevocations).
    private(set) var keyID: Int64 = 0
    /// The Hello's agent id; nil for a probe session.
    private(set) var agentID: String?
    /// (boot id, instance) as one key: batches are de-duplicated per agent
    /// process, since sequence numbers restart with each.
    private(set) var dedupBoot = ""
    /// The Hello's groups: which monitors this agent runs.
    private(set) var groups: [String] = []
    /// The operator's view: `connecting` until the first Status.
    var state = CollectorStore.AgentState.connecting
    /// The latest Interfaces record as JSON text (one allocation), for
    /// status snapshots.
    var interfaces: String?
    /// The agent's latest EffectiveConfig, kept to the agent schema's
    /// non-secret keys (so at most one entry per schema key).
    var reportedConfig: [String: ConfigEntry]?
    /// The stored overrides were pushed (on the first EffectiveConfig).
    var converged = false
    /// The disk-spool figures of the latest Status (nil: no spool).
    var spool: AgentSpoolFigures?
    /// OutboundBudget's account of this session: the connection's queued
    /// bytes as last read, and whether the budget dropped it.
    var outboundHeld = 0
    var outboundDropped = false

    // Established: flow.
    /// Batches between receipt and acknowledgement (the context's record
    /// handling submits and settles them).
    var window = AckWindow()
    /// In the context's list of sessions whose acks go out this iteration.
    var ackQueued = false
    /// This session's share of the per-session limits (SessionManager+Limits.swift).
    var limits = SessionLimitState()
    private var lastReceived = 0.0
    private var pinged = false
    private var windowPaused = false
    /// Reading stopped because the store refused one of this session's
    /// batches for being over its pending-rows bound (SessionManager+Records).
    private(set) var storePaused = false
    /// Batches the store refused as overloaded, in arrival order, with their
    /// AckWindow tickets: submitted again when the store has drained.
    var heldBatches: [(ticket: Int, batch: Batch)] = []
    /// Reading paused until the manager's next input turn (decode budget).
    private var inputWaiting = false
    private var draining = false

    init(context: AgentSessionContext, peer: SocketAddress, sessionID: UInt64, overCapacity: Bool) {
        self.context = context
        self.peer = peer
        self.sessionID = sessionID
        self.overCapacity = overCapacity
        acceptedAt = Clock.monotonic()
    }

    /// Wraps the accepted descriptor; the connection then owns it.
    func attach(fd: Int32, options: TCPConnection.Options) {
        wire = ServerSession(staticKey: context.collectorKey, limits: context.sessionLimits)
        connection = TCPConnection(loop: context.loop, fd: fd, peer: peer, options: options, handler: self)
        if connection?.state == .open {
            context.setDeadline(self, at: acceptedAt + context.settings.handshakeTimeout)
        }
    }

    var isProbe: Bool { phase != .handshake && agentID == nil }
    /// Strings the agent defined, for resolving its batches.
    var strings: StringTable? { wire?.strings }
    var description: String { "session \(sessionID) from \(peer)" + (agentID.map { " agent \($0)" } ?? "") }

    // MARK: TCPConnectionHandler

    func connectionWillRead(_ c: TCPConnection) {
        switch phase {
        case .established: guard !context.mayRead(self) else { return }
        case .handshake: guard message2Sent, !context.mayFinishHandshake(self) else { return }
        case .closing, .closed: return
        }
        inputWaiting = true
        c.pauseReading()
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        switch phase {
        case .handshake:
            handshakeRead(buffer)
        case .established:
            establishedRead(buffer)
        case .closing, .closed:
            buffer.consume(buffer.readableBytes)
        }
    }

    func connectionDidSend(_ c: TCPConnection) {
        if outboundHeld > 0 { context.didSend(self) }
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) {
        switch phase {
        case .handshake:
            let failure: HandshakeFailure
            switch reason {
            case .peerClosed, .reset: failure = .peerClosed
            case .readBufferLimit: failure = .badFrame
            default: failure = .ioError
            }
            context.handshakeFailed(self, failure)
        case .established:
            let why: CloseReason
            switch reason {
            case .peerClosed, .reset: why = .peerClosed
            case .idleTimeout: why = .idleTimeout
            case .readBufferLimit: why = .badFrameLength
            default: why = .ioError
            }
            wire?.close(why)
            context.sessionEnded(self, reason: why)
        case .closing, .closed:
            break
        }
        finish()
    }

    // MARK: handshake

    private func handshakeRead(_ buffer: ByteBuffer) {
        guard let wire else { return }
        let taken = wire.feed(buffer.readable) { event in self.handle(event) }
        context.didRead(self, bytes: taken)
        buffer.consume(taken)
        guard phase == .handshake else { return }
        flushOutbound()         // message 2, when the keys were already here
        offerKeys()
        guard buffer.readableBytes > 0 else { return }
        if phase == .established {
            // A client does not send before message 2; take what came anyway.
            establishedRead(buffer)
        } else if phase == .handshake {
            // Message 1 waits for its keys; what came after it stays in the
            // connection until the handshake is answered.
            connection?.pauseReading()
        }
    }

    /// The context's answer to `lookupKeys`.
    func keysArrived(_ answer: KeyDirectory.Answer) {
        guard phase == .handshake, let wire else { return }
        switch answer {
        case .keys(let k):
            keys = k
            offerKeys()
        case .unknownProject:
            wire.unknownProject { event in self.handle(event) }
        case .failed:
            failHandshake(.storeError)
        }
    }

    /// Gives the keys to the Wire session once message 1 is complete (so
    /// the key trials happen here, in a handshake turn, never in a read).
    private func offerKeys() {
        guard phase == .handshake, !awaitingTurn, keys != nil, wire?.hasMessage1 == true else { return }
        guard context.mayHandshake(self) else {
            awaitingTurn = true
            return
        }
        provideKeys()
    }

    /// This session's handshake turn, after `mayHandshake` refused. False
    /// when it no longer waits for one (it closed meanwhile).
    func handshakeTurn() -> Bool {
        guard awaitingTurn else { return false }
        awaitingTurn = false
        guard phase == .handshake, keys != nil, wire?.hasMessage1 == true else { return false }
        provideKeys()
        return true
    }

    /// Message 1 is read and message 2 written now (or the handshake fails);
    /// what the agent sent after message 1 is read again.
    private func provideKeys() {
        guard let wire, let keys else { return }
        wire.provideKeys(keys.candidates) { event in self.handle(event) }
        guard phase == .handshake else { return }
        message2Sent = true
        flushOutbound()
        connection?.resumeReading()
    }

    /// Message 3 authenticated under one of the project's keys. An agent's
    /// static key is checked against the registry before it is welcomed; a
    /// probe carries no identity.
    private func helloArrived(_ hello: Hello?) {
        guard phase == .handshake, let wire, let keys else { return }
        self.keys = nil  // secrets are not kept past the handshake
        projectId = keys.projectId
        keyID = keys.id(at: wire.keyIndex ?? 0)
        let admission = context.admit(self, hello: hello, revokedKey: keys.isRevoked(wire.keyIndex ?? 0))
        let welcome: Welcome
        switch admission {
        case .refuse(let error, let failure):
            wire.reject(error)
            failHandshake(failure)
            return
        case .welcome(let w):
            welcome = w
        }
        guard let hello, let agentKey = wire.peerStaticKey else { return welcomed(nil, welcome) }
        pendingAccept = (hello, welcome)
        context.verifyIdentity(self, agentID: hello.agentID, key: agentKey)
    }

    /// The context's answer to `verifyIdentity`.
    func identityAnswered(_ answer: IdentityAnswer) {
        guard phase == .handshake, let (hello, welcome) = pendingAccept, let wire else { return }
        pendingAccept = nil
        switch answer {
        case .refused(let error, let failure):
            wire.reject(error)
            failHandshake(failure)
        case .accepted:
            welcomed(hello, welcome)
        }
    }

    private func welcomed(_ hello: Hello?, _ welcome: Welcome) {
        guard let wire else { return }
        if let hello {
            agentID = hello.agentID
            dedupBoot = hello.instance == 0 ? hello.bootID : "\(hello.bootID)/\(hello.instance)"
            groups = hello.groups
        }
        do {
            try wire.accept(welcome)
        } catch {
            failHandshake(.ioError)
            return
        }
        phase = .established
        lastReceived = Clock.monotonic()
        context.sessionEstablished(self, hello: hello)
        flushOutbound()
        guard phase == .established else { return }
        context.setDeadline(self, at: lastReceived + context.settings.idleTimeout / 2)
        // Anything the agent sent early (kept in the connection while the
        // keys were looked up) is offered again now.
        connection?.resumeReading()
    }

    /// Closes a connection still in its handshake to make room for a newer
    /// one (SessionManager+Limits.swift); counted as `overload`.
    func evict() { failHandshake(.overload) }

    /// Ends a connection that did not become a session: counted, and
    /// closed — after the Error record a rejection sealed, if any.
    private func failHandshake(_ failure: HandshakeFailure) {
        guard phase == .handshake else { return }
        context.handshakeFailed(self, failure)
        phase = .closing
        keys = nil
        pendingAccept = nil
        if let out = wire?.outbound, out.readableBytes > 0 {
            flushOutbound()
            startClosing()
        } else {
            context.clearDeadline(self)
            connection?.close()
        }
    }

    // MARK: established

    private func establishedRead(_ buffer: ByteBuffer) {
        let n = buffer.readableBytes
        context.didRead(self, bytes: n)
        lastReceived = Clock.monotonic()
        pinged = false
        wire?.feed(buffer.readable) { event in self.handle(event) }
        buffer.consume(n)
        afterWireActivity()
    }

    // MARK: Wire events

    private func handle(_ event: SessionEvent) {
        switch event {
        case .record(let r):
            context.received(r, from: self)
        case .needKeys(let project):
            projectName = project
            // Started at once, in parallel with message 1 arriving.
            context.lookupKeys(for: self, project: project)
        case .hello(let hello):
            helloArrived(hello)
        case .closed(let reason):
            guard phase == .handshake else { return close(reason) }
            switch reason {
            case .badPreamble: failHandshake(.badPreamble)
            case .unknownProject: failHandshake(.unknownProject)
            case .handshakeFailed: failHandshake(.wrongKey)
            case .badHandshakePayload: failHandshake(.badHandshakePayload)
            case .outdatedProtocol: failHandshake(.outdatedAgent)
            default: failHandshake(.badFrame)
            }
        case .welcome:
            break
        }
    }

    // MARK: flow

    /// The collector, not the agent, keeps this session from being read:
    /// its silence is then no sign of a dead agent.
    private var readingHeld: Bool { windowPaused || storePaused || draining }

    /// The agent exceeded the window it was given: let TCP push back until
    /// acknowledgements catch up. True when reading was running.
    func pauseForWindow() -> Bool {
        guard !windowPaused else { return false }
        windowPaused = true
        connection?.pauseReading()
        holdStarted()
        return true
    }

    /// Reading was just stopped by the collector: a Ping now and every
    /// `heldPingInterval` (deadlinePassed) keeps the agent's silence
    /// timeout from running out. The deadline already set may be up to half
    /// an idle timeout away, longer than an agent waits.
    private func holdStarted() {
        guard phase == .established else { return }
        context.pinged(self)
        send(.ping(Ping(UInt64(bitPattern: Clock.wallMillis()))))
        if phase == .established {
            context.setDeadline(self, at: Clock.monotonic() + AgentSession.heldPingInterval(idle: context.settings.idleTimeout))
        }
    }

    /// The store refused a batch as overloaded: stop reading (TCP flow
    /// control pushes back on the agent, whose queue and spool hold the
    /// data) until the store drains. True when it was not paused so already.
    func pauseForStore() -> Bool {
        guard !storePaused, phase == .established else { return false }
        storePaused = true
        connection?.pauseReading()
        if !windowPaused { holdStarted() }
        return true
    }

    /// The store drained and the held batches went to it again: read again.
    /// The agent's silence restarts from now (it was ours, not its).
    func resumeFromStore() {
        guard storePaused, phase == .established else { return }
        storePaused = false
        lastReceived = Clock.monotonic()
        pinged = false
        context.setDeadline(self, at: lastReceived + context.settings.idleTimeout / 2)
        if !windowPaused && !inputWaiting && !draining { connection?.resumeReading() }
    }

    /// Acknowledgements went out: read again once half the window is free;
    /// a draining session closes when its last batch is acknowledged.
    func windowMoved() {
        guard phase == .established else { return }
        if windowPaused && window.inFlight <= AgentSession.maxInFlightBatches / 2 && !draining {
            windowPaused = false
            lastReceived = Clock.monotonic()     // the silence was ours
            // else the input turn or the store's drain resumes it
            if !inputWaiting && !storePaused { connection?.resumeReading() }
        }
        if draining && window.isEmpty { close(.local, error: ErrorRecord(code: .shuttingDown, message: "collector shutting down")) }
    }

    /// The manager's turn after `mayRead` refused: read again.
    func resumeInput() {
        guard inputWaiting else { return }
        inputWaiting = false
        if !windowPaused && !storePaused && !draining { connection?.resumeReading() }
    }

    // MARK: sending

    /// Queues, seals and writes one record. False when the session cannot
    /// take it (not established, or the peer stopped reading).
    @discardableResult
    func send(_ record: Record) -> Bool {
        guard phase == .established, let wire else { return false }
        do {
            try wire.send(record)
            try wire.flush()
        } catch {
            close(.outboundOverflow, error: ErrorRecord(code: .limitExceeded, message: "outbound queue full"))
            return false
        }
        flushOutbound()
        wire.compactBuffers(threshold: AgentSession.idleBufferBytes)
        return phase == .established
    }

    func sendControl(_ request: ControlRequest) -> Bool {
        guard agentID != nil else { return false }
        return send(.controlRequest(request))
    }

    /// Moves sealed bytes to the connection's write queue.
    private func flushOutbound() {
        guard let wire, let c = connection else { return }
        let out = wire.outbound
        let n = out.readableBytes
        guard n > 0 else { return }
        if c.write(out.readable) {
            context.didWrite(self, bytes: n)
            out.consume(n)
        } else {
            out.consume(n)
            context.writeRefused(self)
            if phase == .established {
                wire.close(.outboundOverflow)
                context.sessionEnded(self, reason: .outboundOverflow)
                phase = .closing
                c.abort()
            }
        }
    }

    private func afterWireActivity() {
        flushOutbound()
        wire?.compactBuffers(threshold: AgentSession.idleBufferBytes)
    }

    // MARK: timeouts

    /// The DeadlineWheel says this session's deadline passed.
    func deadlinePassed() {
        switch phase {
        case .handshake:
            failHandshake(.handshakeTimeout)
        case .established:
            let idle = context.settings.idleTimeout
            let now = Clock.monotonic()
            let silence = now - lastReceived
            if readingHeld {
                // We are the ones not reading: the agent's bytes (its Pongs,
                // its keep-alive Pings) wait in the socket. Keep the agent's
                // own silence timer fed with a Ping instead (a dead peer then
                // shows as a failed write), and count nothing as silence.
                context.pinged(self)
                send(.ping(Ping(UInt64(bitPattern: Clock.wallMillis()))))
                if phase == .established { context.setDeadline(self, at: now + AgentSession.heldPingInterval(idle: idle)) }
            } else if silence >= idle - 0.001 {
                close(.idleTimeout, error: ErrorRecord(code: .idleTimeout, message: "no data for \(Int(idle * 1000)) ms"))
            } else if silence >= idle / 2 - 0.001 && !pinged {
                pinged = true
                context.pinged(self)
                send(.ping(Ping(UInt64(bitPattern: Clock.wallMillis()))))
                if phase == .established { context.setDeadline(self, at: lastReceived + idle) }
            } else {
                // Data arrived since: the next check is half a timeout (or,
                // after a Ping, a full one) after the last byte.
                context.setDeadline(self, at: lastReceived + (pinged ? idle : idle / 2))
            }
        case .closing:
            // The peer does not read what is left: give up on it.
            connection?.abort()
        case .closed:
            break
        }
    }

    // MARK: closing

    /// Closes an established session for `reason`, telling the agent why
    /// with `error` when given.
    func close(_ reason: CloseReason, error: ErrorRecord? = nil) {
        switch phase {
        case .handshake:
            failHandshake(reason == .local ? .shuttingDown : .ioError)
            return
        case .closing, .closed:
            return
        case .established:
            break
        }
        wire?.close(reason, error: error)
        context.sessionEnded(self, reason: reason)
        phase = .closing
        flushOutbound()
        startClosing()
    }

    /// Graceful close, bounded: what is queued gets a few seconds to leave.
    private func startClosing() {
        guard let c = connection else { return }
        c.close()
        if c.state == .closing {
            context.setDeadline(self, at: Clock.monotonic() + AgentSession.closeGrace)
        } else {
            context.clearDeadline(self)
        }
    }

    /// Shutdown: stop taking data, let the batches in flight commit and be
    /// acknowledged, then close with a "shutting down" Error record.
    func drain() {
        switch phase {
        case .handshake:
            failHandshake(.shuttingDown)
        case .established:
            draining = true
            connection?.pauseReading()
            // Batches held for an overloaded store would wait for a drain
            // that shutdown does not wait for: the agent sends them again
            // to the next collector (they were never stored).
            if window.isEmpty || storePaused { close(.local, error: ErrorRecord(code: .shuttingDown, message: "collector shutting down")) }
        case .closing, .closed:
            break
        }
    }

    /// Shutdown deadline, or the outbound budget spent (OutboundBudget.swift):
    /// drop the connection now, with what it has queued.
    func abort(_ reason: CloseReason = .local) {
        guard phase != .closed else { return }
        if phase == .established {
            wire?.close(reason)
            context.sessionEnded(self, reason: reason)
        } else if phase == .handshake {
            context.handshakeFailed(self, .shuttingDown)
        }
        phase = .closing
        connection?.abort()
    }

    private func finish() {
        guard phase != .closed else { return }
        phase = .closed
        context.clearDeadline(self)
        context.sessionFinished(self)
        wire = nil
        keys = nil
        interfaces = nil
        reportedConfig = nil
        connection = nil
    }
}

extension AgentSession: OutboundHolder {
    var queuedBytes: Int { connection?.queuedBytes ?? 0 }
    var isEstablished: Bool { phase == .established }
}
