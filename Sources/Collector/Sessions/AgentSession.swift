// AgentSession: one agent connection, from accept to close.
//
//   accept ─▶ preamble ─▶ project keys (store, async) ─▶ message 1 tried
//   with each key ─▶ Welcome (or an Error record, or a silent close) ─▶
//   records: batches stored then acknowledged, status, sync, control
//   answers ─▶ close (Error record when there is something to say)
//
// Memory. Until the handshake, unparsed bytes stay in the connection's own
// buffer (the preamble and message 1: at most ~16 KiB, bounded by
// `maxReadBuffer`), and the session has no Wire state at all. Afterwards
// every byte read is handed to the Wire session and consumed, so the
// connection keeps no read buffer; the Wire session's buffers are given
// back after any large message (`compactBuffers`). Data batches are the
// store's from the moment they are submitted; the session keeps only their
// sequence numbers until acknowledged. Timeouts are an entry in the
// collector's DeadlineWheel, not a timer per session.
//
// Thread: loop thread. Ownership: the TCPConnection holds its handler (this
// object) until its close callback; the SessionManager holds established
// agents by id. Everything that can end the session goes through `close` or
// `failHandshake`, and the bookkeeping runs once, in `finish`.
import CollectorStore
import JSON
import Reactor
import Wire

final class AgentSession: TCPConnectionHandler, DeadlineEntry, CustomStringConvertible {
    enum Phase: UInt8 { case handshake, established, closing, closed }

    unowned let manager: SessionManager
    let peer: SocketAddress
    let sessionID: UInt64
    /// Accepted while `max_clients` sessions were open: the handshake runs
    /// only to tell the agent so.
    let overCapacity: Bool
    private(set) var connection: TCPConnection?
    private(set) var phase = Phase.handshake
    var deadlineLink = DeadlineLink<AgentSession>()
    private let acceptedAt: Double

    // Handshake.
    private var keys: ProjectKeys?
    private var lookupStarted = false
    private var waitingForKeys = false
    /// The preamble's project id.
    private(set) var projectName = ""

    // Established.
    private var wire: ServerSession?
    private(set) var projectId: Int64 = 0
    /// The Hello's agent id; nil for a probe session.
    private(set) var agentID: String?
    /// (boot id, instance) as one key: batches are de-duplicated per agent
    /// process, since sequence numbers restart with each.
    private(set) var dedupBoot = ""
    /// The Hello's groups: which monitors this agent runs.
    private(set) var groups: [String] = []
    /// The operator's view: `connecting` until the first Status.
    var state = CollectorStore.AgentState.connecting
    private var lastReceived = 0.0
    private var pinged = false
    private var window = AckWindow()
    private var ackScheduled = false
    private var windowPaused = false
    /// Reading paused until the manager's next input turn (decode budget).
    private var inputWaiting = false
    private var draining = false
    /// The latest Interfaces record as JSON text (one allocation), for
    /// status snapshots.
    private var interfaces: String?

    init(manager: SessionManager, peer: SocketAddress, sessionID: UInt64, overCapacity: Bool) {
        self.manager = manager
        self.peer = peer
        self.sessionID = sessionID
        self.overCapacity = overCapacity
        acceptedAt = Clock.monotonic()
    }

    /// Wraps the accepted descriptor; the connection then owns it.
    func attach(fd: Int32, options: TCPConnection.Options) {
        connection = TCPConnection(loop: manager.loop, fd: fd, peer: peer, options: options, handler: self)
        if connection?.state == .open {
            manager.wheel.schedule(self, at: acceptedAt + manager.settings.handshakeTimeout)
        }
    }

    var isProbe: Bool { phase != .handshake && agentID == nil }
    var description: String { "session \(sessionID) from \(peer)" + (agentID.map { " agent \($0)" } ?? "") }

    // MARK: TCPConnectionHandler

    func connectionWillRead(_ c: TCPConnection) {
        guard phase == .established, !manager.mayRead(self) else { return }
        inputWaiting = true
        c.pauseReading()
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        switch phase {
        case .handshake:
            handshakeRead(buffer)
        case .established:
            manager.decoded(bytes: buffer.readableBytes)
            manager.stats.bytesIn &+= UInt64(buffer.readableBytes)
            lastReceived = Clock.monotonic()
            pinged = false
            feedWire(buffer.readable)
            buffer.consume(buffer.readableBytes)
            afterWireActivity()
        case .closing, .closed:
            buffer.consume(buffer.readableBytes)
        }
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
            record(failure)
        case .established:
            let why: CloseReason
            switch reason {
            case .peerClosed, .reset: why = .peerClosed
            case .idleTimeout: why = .idleTimeout
            case .readBufferLimit: why = .badFrameLength
            default: why = .ioError
            }
            wire?.close(why)
            manager.sessionEnded(self, reason: why)
        case .closing, .closed:
            break
        }
        finish()
    }

    // MARK: handshake

    private func handshakeRead(_ buffer: ByteBuffer) {
        let input = buffer.readable
        let preambleLength: Int
        switch Preamble.parse(input) {
        case .needMore:
            return
        case .invalid:
            failHandshake(.badPreamble)
            return
        case .complete(let p, let length):
            preambleLength = length
            if !lookupStarted {
                lookupStarted = true
                projectName = p.projectID
                // Started at once, in parallel with message 1 arriving.
                manager.lookupKeys(project: p.projectID) { [self] result in self.keysArrived(result) }
            }
        }
        guard input.count >= preambleLength + 2 else { return }
        let frameLength = Int(input[preambleLength]) << 8 | Int(input[preambleLength + 1])
        guard frameLength >= NoiseHandshake.overhead && frameLength <= manager.limits.maxHandshakeLength else {
            failHandshake(.badFrame)
            return
        }
        let total = preambleLength + 2 + frameLength
        guard input.count >= total else { return }
        guard let keys else {
            // The bytes stay in the connection's buffer and are offered
            // again when reading resumes (keysArrived).
            waitingForKeys = true
            connection?.pauseReading()
            return
        }
        guard manager.mayHandshake(self) else {
            connection?.pauseReading()
            return
        }
        manager.stats.bytesIn &+= UInt64(total)
        tryKeys(keys, UnsafeRawBufferPointer(rebasing: input[0..<total]))
        self.keys = nil  // secrets are not kept past the handshake
        buffer.consume(total)
        if phase == .established && buffer.readableBytes > 0 {
            // A client does not send before message 2; take what came anyway.
            manager.stats.bytesIn &+= UInt64(buffer.readableBytes)
            feedWire(buffer.readable)
            buffer.consume(buffer.readableBytes)
            afterWireActivity()
        }
    }

    private func keysArrived(_ result: Result<ProjectKeys, StoreError>) {
        guard phase == .handshake else { return }
        switch result {
        case .success(let k):
            keys = k
            if waitingForKeys {
                waitingForKeys = false
                connection?.resumeReading()
            }
        case .failure(.notFound):
            failHandshake(.unknownProject)
        case .failure(let e):
            manager.storeTrouble("handshake key lookup", e)
            failHandshake(.storeError)
        }
    }

    /// The manager's turn: offer the kept bytes again. False when the
    /// session no longer waits (it closed meanwhile).
    /// The manager's turn after `mayRead` refused: read again.
    func resumeInput() {
        guard inputWaiting else { return }
        inputWaiting = false
        if !windowPaused && !draining { connection?.resumeReading() }
    }

    func resumeHandshake() -> Bool {
        guard phase == .handshake, let c = connection, c.isReadingPaused, !waitingForKeys else { return false }
        c.resumeReading()
        return true
    }

    /// NNpsk0 gives no hint which key the initiator used, but message 1
    /// fails to decrypt under a wrong PSK: try each active key, then the
    /// revoked ones (only to say "revoked" instead of nothing).
    private func tryKeys(_ keys: ProjectKeys, _ message: UnsafeRawBufferPointer) {
        let candidates = keys.keys.map { ($0.secret, false) } + keys.revoked.map { ($0.secret, true) }
        for (secret, revoked) in candidates {
            guard let psk = KeyDirectory.psk(fromSecret: secret) else { continue }
            let s = ServerSession(limits: manager.limits) { _ in psk }
            var first: SessionEvent?
            s.feed(message) { event in if first == nil { first = event } }
            switch first {
            case .hello(let hello)?:
                if revoked {
                    wire = s
                    s.reject(ErrorRecord(code: .rejected, message: "access key revoked"))
                    failHandshake(.revokedKey)
                } else {
                    completeHandshake(s, keys: keys, hello: hello)
                }
                return
            case .closed(.handshakeFailed)?:
                continue
            case .closed(.badHandshakePayload)?:
                failHandshake(.badHandshakePayload)
                return
            case .closed?, .welcome?, .record?, nil:
                failHandshake(.badFrame)
                return
            }
        }
        failHandshake(.wrongKey)
    }

    private func completeHandshake(_ s: ServerSession, keys: ProjectKeys, hello: Hello?) {
        wire = s
        projectId = keys.projectId
        if manager.isShuttingDown {
            s.reject(ErrorRecord(code: .shuttingDown, message: "collector shutting down"))
            failHandshake(.shuttingDown)
            return
        }
        if overCapacity {
            s.reject(ErrorRecord(code: .limitExceeded, message: "collector at max_clients (\(manager.settings.maxClients))"))
            failHandshake(.capacity)
            return
        }
        if let hello {
            guard !hello.agentID.isEmpty, hello.agentID.utf8.count <= 256 else {
                s.reject(ErrorRecord(code: .protocolViolation, message: "hello needs an agent id of 1 to 256 bytes"))
                failHandshake(.badHello)
                return
            }
            agentID = hello.agentID
            dedupBoot = hello.instance == 0 ? hello.bootID : "\(hello.bootID)/\(hello.instance)"
            groups = hello.groups
        }
        let idle = manager.settings.idleTimeout
        let welcome = Welcome(sessionID: sessionID, collectorTimeMs: UInt64(max(0, Clock.wallMillis())),
                              patternsVersion: manager.cachedPatternsVersion(project: projectName),
                              limits: .init(maxRecordLength: UInt32(manager.limits.wire.maxRecordLength),
                                            maxBatchItems: UInt32(manager.limits.wire.maxBatchItems),
                                            maxStringID: manager.limits.wire.maxStringID,
                                            maxInFlightBatches: UInt32(SessionManager.maxInFlightBatches),
                                            pingIntervalMs: UInt32(idle * 500), idleTimeoutMs: UInt32(idle * 1000),
                                            maxStringTableBytes: UInt32(manager.limits.wire.maxStringTableBytes)))
        do {
            try s.accept(welcome)
        } catch {
            failHandshake(.ioError)
            return
        }
        phase = .established
        lastReceived = Clock.monotonic()
        manager.stats.handshakeMicros.record(UInt64(max(0, (lastReceived - acceptedAt) * 1e6)))
        manager.sessionEstablished(self, hello: hello)
        flushOutbound()
        guard phase == .established else { return }
        manager.wheel.schedule(self, at: lastReceived + idle / 2)
    }

    /// Ends a connection that did not become a session: counted, logged at
    /// most once a minute per source, and closed — after the Error record a
    /// rejection sealed, if any.
    private func failHandshake(_ failure: HandshakeFailure) {
        guard phase == .handshake else { return }
        record(failure)
        phase = .closing
        if let out = wire?.outbound, out.readableBytes > 0 {
            flushOutbound()
            startClosing()
        } else {
            manager.wheel.remove(self)
            connection?.close()
        }
    }

    private func record(_ failure: HandshakeFailure) {
        manager.handshakeFailed(self, failure)
    }

    // MARK: established

    private func feedWire(_ bytes: UnsafeRawBufferPointer) {
        guard let wire else { return }
        wire.feed(bytes) { event in self.handle(event) }
    }

    private func handle(_ event: SessionEvent) {
        switch event {
        case .record(let r):
            manager.stats.recordsIn &+= 1
            handle(r)
        case .closed(let reason):
            close(reason)
        case .hello, .welcome:
            break
        }
    }

    private func handle(_ record: Record) {
        guard phase == .established else { return }
        switch record {
        case .dataBatch(let b):
            receivedBatch(b)
        case .status(let s):
            receivedStatus(s)
        case .interfaces(let i):
            manager.stats.interfaceRecords &+= 1
            interfaces = AgentSession.json(i).serialized
        case .patternsRequest(let r):
            manager.patternsRequested(by: self, have: r.haveVersion)
        case .scheduleRequest(let r):
            if agentID == nil {
                manager.stats.scheduleAnswers &+= 1
                send(.scheduleUnchanged(ScheduleUnchanged(version: r.haveVersion)))
            } else {
                manager.scheduleRequested(by: self, have: r.haveVersion)
            }
        case .controlResponse(let r):
            manager.control.received(r, from: self)
        case .error(let e):
            Log.info("agent closed its session", ["agent": agentID ?? "probe", "code": "\(e.code)", "message": e.message])
        case .pong, .ping, .unknown, .hello, .welcome, .stringDef, .stringClear, .ack, .scheduleUnchanged, .schedule,
             .patternsUnchanged, .patterns, .controlRequest:
            break
        }
    }

    private func receivedBatch(_ b: DataBatch) {
        guard let agentID, let wire else { return }
        manager.stats.batchesReceived &+= 1
        let t: BatchTranslator.Translated
        switch BatchTranslator.translate(b, projectId: projectId, agentID: agentID, dedupBoot: dedupBoot,
                                         strings: wire.strings, receivedAt: Clock.wallMillis()) {
        case .success(let x): t = x
        case .failure(let refusal):
            close(.malformedRecord, error: ErrorRecord(code: .protocolViolation, message: refusal.description))
            return
        }
        manager.stats.itemsUnknownDropped &+= UInt64(t.unknownItems)
        let ticket = window.received(b.sequence)
        manager.store.submitBatch(t.batch) { [self] result in self.batchCompleted(ticket, result) }
        if window.inFlight > SessionManager.maxInFlightBatches && !windowPaused {
            // The agent exceeded the window it was given: let TCP push back.
            windowPaused = true
            manager.stats.windowPauses &+= 1
            connection?.pauseReading()
        }
    }

    private func batchCompleted(_ ticket: Int, _ result: Result<BatchOutcome, StoreError>) {
        if case .failure(let e) = result { manager.storeTrouble("storing a batch", e) }
        guard phase == .established else { return }
        if case .success = result { window.completed(ticket, durable: true) } else { window.completed(ticket, durable: false) }
        scheduleAck()
    }

    /// Acks of one commit go out together, on the next iteration.
    private func scheduleAck() {
        guard !ackScheduled else { return }
        ackScheduled = true
        manager.loop.defer { [self] in
            self.ackScheduled = false
            self.sendAcks()
        }
    }

    private func sendAcks() {
        guard phase == .established else { return }
        switch window.advance() {
        case .none:
            break
        case .ack(let sequence):
            manager.stats.acksSent &+= 1
            send(.ack(Ack(sequence: sequence)))
        case .failed(let sequence):
            close(.local, error: ErrorRecord(code: .internalError,
                                             message: "batch \(sequence) could not be stored; reconnect and send it again"))
            return
        }
        if windowPaused && window.inFlight <= SessionManager.maxInFlightBatches / 2 && !draining {
            windowPaused = false
            if !inputWaiting { connection?.resumeReading() }     // else the input turn resumes it
        }
        if draining && window.isEmpty { close(.local, error: ErrorRecord(code: .shuttingDown, message: "collector shutting down")) }
    }

    private func receivedStatus(_ s: Status) {
        guard agentID != nil else { return }
        manager.stats.statusRecords &+= 1
        let newState: CollectorStore.AgentState
        var messages = s.messages
        switch s.state {
        case .stopped: newState = .stopped
        case .capturing: newState = .capturing
        case .wrongConfiguration: newState = .wrongConfiguration
        default:
            newState = .stopped
            messages.append("unknown agent state \(s.state.rawValue)")
        }
        var fields: [(String, JSON)] = [
            ("agent_ts", .number(Double(s.timestampMs))), ("state", .string(newState.rawValue)),
            ("messages", .array(messages.map(JSON.string))), ("cpu_permille", .int(Int(s.cpuPermille))),
            ("rss_bytes", .number(Double(s.rssBytes))),
            ("counters", .object(s.counters.map { ($0.name, .number(Double($0.value))) })),
        ]
        if let interfaces { fields.append(("interfaces", .raw(interfaces))) }
        manager.agentStatus(self, state: newState, messages: messages, json: JSON.object(fields).serialized)
    }

    static func json(_ i: Interfaces) -> JSON {
        .array(i.interfaces.prefix(64).map { n in
            .object([("name", .string(n.name)), ("up", .bool(n.flags & NetworkInterface.flagUp != 0)),
                     ("loopback", .bool(n.flags & NetworkInterface.flagLoopback != 0)),
                     ("capturing", .bool(n.flags & NetworkInterface.flagCapturing != 0)),
                     ("addresses", .array(n.addresses.prefix(64).map(JSON.string)))])
        })
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
        wire.compactBuffers(threshold: SessionManager.idleBufferBytes)
        return phase == .established
    }

    func sendControl(_ request: ControlRequest) -> Bool {
        guard agentID != nil else { return false }
        return send(.controlRequest(request))
    }

    func sendPatterns(_ set: PatternSet, have: UInt64?) {
        let version = UInt64(max(0, set.version))
        if let have, have == version {
            manager.stats.patternsUnchanged &+= 1
            send(.patternsUnchanged(PatternsUnchanged(version: version)))
        } else {
            manager.stats.patternsSent &+= 1
            send(.patterns(PatternDirectory.record(set)))
        }
    }

    /// Moves sealed bytes to the connection's write queue.
    private func flushOutbound() {
        guard let wire, let c = connection else { return }
        let out = wire.outbound
        let n = out.readableBytes
        guard n > 0 else { return }
        if c.write(out.readable) {
            manager.stats.bytesOut &+= UInt64(n)
            out.consume(n)
        } else {
            out.consume(n)
            manager.stats.writesRefused &+= 1
            if phase == .established {
                wire.close(.outboundOverflow)
                manager.sessionEnded(self, reason: .outboundOverflow)
                phase = .closing
                c.abort()
            }
        }
    }

    private func afterWireActivity() {
        flushOutbound()
        wire?.compactBuffers(threshold: SessionManager.idleBufferBytes)
    }

    // MARK: timeouts

    /// The DeadlineWheel says this session's deadline passed.
    func deadlinePassed() {
        switch phase {
        case .handshake:
            failHandshake(.handshakeTimeout)
        case .established:
            let idle = manager.settings.idleTimeout
            let now = Clock.monotonic()
            let silence = now - lastReceived
            if silence >= idle - 0.001 {
                close(.idleTimeout, error: ErrorRecord(code: .idleTimeout, message: "no data for \(Int(idle * 1000)) ms"))
            } else if silence >= idle / 2 - 0.001 && !pinged {
                pinged = true
                manager.stats.pingsSent &+= 1
                send(.ping(Ping(UInt64(bitPattern: Clock.wallMillis()))))
                if phase == .established { manager.wheel.schedule(self, at: lastReceived + idle) }
            } else {
                // Data arrived since: the next check is half a timeout (or,
                // after a Ping, a full one) after the last byte.
                manager.wheel.schedule(self, at: lastReceived + (pinged ? idle : idle / 2))
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
        manager.sessionEnded(self, reason: reason)
        phase = .closing
        flushOutbound()
        startClosing()
    }

    /// Graceful close, bounded: what is queued gets a few seconds to leave.
    private func startClosing() {
        guard let c = connection else { return }
        c.close()
        if c.state == .closing {
            manager.wheel.schedule(self, at: Clock.monotonic() + SessionManager.closeGrace)
        } else {
            manager.wheel.remove(self)
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
            if window.isEmpty { close(.local, error: ErrorRecord(code: .shuttingDown, message: "collector shutting down")) }
        case .closing, .closed:
            break
        }
    }

    /// Shutdown deadline: drop the connection now.
    func abort() {
        guard phase != .closed else { return }
        if phase == .established {
            wire?.close(.local)
            manager.sessionEnded(self, reason: .local)
        } else if phase == .handshake {
            record(.shuttingDown)
        }
        phase = .closing
        connection?.abort()
    }

    private func finish() {
        guard phase != .closed else { return }
        phase = .closed
        manager.wheel.remove(self)
        manager.sessionFinished(self)
        wire = nil
        keys = nil
        interfaces = nil
        connection = nil
    }
}
