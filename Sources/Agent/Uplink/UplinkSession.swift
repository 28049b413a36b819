// UplinkSession: one connection attempt or session with a collector — the
// TCPConnection for the bytes, the Wire ClientSession for the protocol —
// and what belongs to one connection:
//
//  - Handshake: Hello on connect, bounded by `tcp_connection_timeout` as
//    the connect is; the Welcome gives the limits and the clock offset.
//  - Liveness: `tcp_so_timeout` of silence from the collector → Ping; no
//    answer within the grace → the connection is given up. A collector that
//    announces a ping interval gets a keepalive Ping when we were silent
//    that long.
//  - Writes: sealed bytes move from the Wire session to the socket's write
//    queue; a refused write gives the connection up.
//
// The Uplink above it keeps what outlives a connection: the queues, the
// in-flight window, failover and backoff (the collector's AgentSession is
// the same room on the other side).
//
// Timeouts use one timer re-armed only when it fires (reads just store a
// timestamp): libev's "be smart about timeouts".
//
// Thread: loop thread. Ownership: the TCPConnection holds this handler until
// its close callback; the uplink holds the current one and lets go of it on
// close or stop. The session holds the uplink weakly; an event for a session
// the uplink no longer holds is dropped (its close still counts its bytes).
import Reactor
import Wire

final class UplinkSession: TCPConnectionHandler {
    weak var uplink: Uplink?
    let host: String
    let address: SocketAddress
    /// The protocol state; sealed output waits in `wire.outbound`.
    let wire: ClientSession
    private(set) var connection: TCPConnection?
    private(set) var established = false
    /// The Welcome of this session (nil during the handshake).
    private(set) var welcome: Welcome?
    /// Collector clock minus local clock, from this handshake (ms).
    private(set) var clockOffsetMs: Int64 = 0
    /// Closing only to introduce the agent again (a new Hello), not a loss.
    var reintroducing = false
    /// Why we gave up on it, when we did (kept over the TCP close reason).
    private(set) var failReason: String?
    /// Timeouts apply at their next use.
    var settings: UplinkSettings

    private var helloSentAtMs: Int64 = 0
    private var handshakeDeadline = 0.0
    private var lastReceived = 0.0
    private var lastSent: Double
    private var pingSentAt: Double?
    private var livenessTimer: TimerWatcher!

    init(uplink: Uplink, host: String, address: SocketAddress, settings: UplinkSettings) {
        self.uplink = uplink
        self.host = host
        self.address = address
        self.settings = settings
        wire = ClientSession(accessKey: uplink.accessKey, identity: uplink.identity, hello: uplink.hello)
        lastSent = Clock.monotonic()
        livenessTimer = TimerWatcher(loop: uplink.loop) { [weak self] _ in self?.livenessCheck() }
    }

    deinit { livenessTimer.stop() }

    /// Starts the TCP connect; everything after it comes from callbacks.
    func connect(loop: EventLoop) {
        var o = TCPConnection.Options()
        o.connectTimeout = settings.connectTimeout
        o.writeBudget = settings.sendMaxBytes
        // Producing pauses above two bursts queued and resumes below half
        // of one; the hard cap leaves room for a burst above the watermark.
        o.highWatermark = 2 * settings.sendMaxBytes
        o.lowWatermark = settings.sendMaxBytes / 2
        o.maxQueuedBytes = 4 * settings.sendMaxBytes + 140_000
        connection = TCPConnection.connect(loop: loop, to: address, options: o, handler: self)
    }

    private var isCurrent: Bool { uplink?.session === self }

    /// Open and below the write queue's high watermark.
    var isOpen: Bool { connection?.state == .open }
    var isWritable: Bool { connection?.isWritable ?? false }
    var bytesWritten: UInt64 { connection?.bytesWritten ?? 0 }

    // MARK: - Writing

    /// Seals `record` and writes it out at once (session setup, Pings).
    /// False when not established or the connection was given up.
    @discardableResult
    func send(_ record: Record) -> Bool {
        guard established else { return false }
        do {
            try wire.send(record)
            try wire.flush()
        } catch {
            fail("cannot send \(record.type.map { "\($0)" } ?? "record"): \(error)")
            return false
        }
        uplink?.counters.recordsSent &+= 1
        return writeOut()
    }

    /// Moves sealed bytes from the Wire session to the socket's write queue.
    @discardableResult
    func writeOut() -> Bool {
        let out = wire.outbound
        guard !out.isEmpty, let conn = connection else { return true }
        guard conn.write(out.readable) else {
            fail("the connection refused \(out.readableBytes) bytes (write queue full)")
            return false
        }
        out.consume(out.readableBytes)
        lastSent = Clock.monotonic()
        return true
    }

    // MARK: - Ending

    /// Gives up for `reason` (reset: nothing more is sent).
    func fail(_ reason: String) {
        if failReason == nil { failReason = reason }
        connection?.abort()
    }

    /// Closes gracefully: what is written is flushed first. The close
    /// callback still comes.
    func close() {
        connection?.close()
    }

    /// The uplink let go of this session (stop): no more liveness checks.
    func leave() {
        livenessTimer.stop()
        connection?.close()
    }

    /// What ended it, for logs and status.
    func closeReason(_ tcp: TCPCloseReason) -> String {
        if let failReason { return failReason }
        if tcp == .peerClosed { return established ? "closed by the collector" : "refused by the collector during the handshake: unknown project or wrong access key (or a collector of another installation, which cannot read what the access key pins; or the collector is overloaded or stopping; its log names the reason)" }
        return tcp.description
    }

    // MARK: - TCPConnectionHandler

    func connectionDidConnect(_ c: TCPConnection) {
        guard isCurrent else { return }
        let now = Clock.monotonic()
        lastReceived = now
        handshakeDeadline = now + settings.connectTimeout
        helloSentAtMs = Clock.wallMillis()
        do {
            try wire.start()
        } catch {
            fail("cannot start the handshake: \(error)")
            return
        }
        writeOut()
        armLiveness()
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        guard let uplink, uplink.session === self else {
            buffer.consume(buffer.readableBytes)
            return
        }
        lastReceived = Clock.monotonic()
        pingSentAt = nil
        var events: [SessionEvent] = []
        let handshaking = welcome == nil
        wire.feed(buffer.readable) { events.append($0) }
        buffer.consume(buffer.readableBytes)
        // Message 3 (the Hello) leaves now: the Welcome's clock is measured
        // against this round trip.
        if handshaking && wire.outbound.readableBytes > 0 { helloSentAtMs = Clock.wallMillis() }
        writeOut()   // message 3, Pongs
        for event in events {
            guard uplink.session === self else { return }
            switch event {
            case .welcome(let w): welcomed(w, uplink)
            case .record(let r): received(r, uplink)
            case .closed(let reason): wireClosed(reason)
            case .hello, .needKeys: break
            }
        }
    }

    func connectionWritabilityChanged(_ c: TCPConnection) {
        if c.isWritable, isCurrent { uplink?.sessionWritable(self) }
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) {
        livenessTimer.stop()
        uplink?.sessionClosed(self, reason: reason, bytesWritten: c.bytesWritten)
    }

    // MARK: - Protocol

    private func welcomed(_ w: Welcome, _ uplink: Uplink) {
        let nowMs = Clock.wallMillis()
        established = true
        welcome = w
        // Welcome carries the collector's clock when it was written:
        // assume that was half-way through the handshake round trip.
        clockOffsetMs = Int64(w.collectorTimeMs) + (nowMs - helloSentAtMs) / 2 - nowMs
        armLiveness()
        uplink.sessionEstablished(self, atMs: nowMs)
    }

    private func received(_ record: Record, _ uplink: Uplink) {
        switch record {
        case .pong:
            break   // its arrival already counted as a sign of life
        case .error(let e):
            failReason = "collector closed the session: \(e.code) \(e.message)"
            uplink.session(self, received: record)
        default:
            uplink.session(self, received: record)
        }
    }

    private func wireClosed(_ reason: CloseReason) {
        if failReason == nil {
            if reason == .rejected, let e = wire.peerError {
                failReason = "rejected by the collector: \(e.code)" + (e.message.isEmpty ? "" : " (\(e.message))")
            } else if reason == .handshakeFailed {
                // Message 2 did not decrypt: whoever answered does not hold
                // the secret key of the collector this access key names.
                failReason = "the collector could not prove its identity: its static key is not the one in the access key "
                    + "(a different collector installation, or someone posing as one); nothing was sent"
            } else {
                failReason = "session closed: \(reason)"
            }
        }
        writeOut()   // a final Error record, if the Wire session wrote one
        connection?.close()
    }

    // MARK: - Liveness

    private func armLiveness() {
        let deadline: Double
        if !established {
            deadline = handshakeDeadline
        } else if let ping = pingSentAt {
            deadline = ping + settings.pingGrace
        } else {
            var d = lastReceived + settings.silenceTimeout
            if let keepalive = keepaliveInterval { d = min(d, lastSent + keepalive) }
            deadline = d
        }
        livenessTimer.start(after: max(0.001, deadline - Clock.monotonic()))
    }

    /// The collector closes silent sessions; it announces how often to ping.
    private var keepaliveInterval: Double? {
        guard let ms = welcome?.limits.pingIntervalMs, ms > 0 else { return nil }
        return Double(ms) / 1000
    }

    private func livenessCheck() {
        guard isCurrent else { return }
        let now = Clock.monotonic()
        if !established {
            if now >= handshakeDeadline - 0.001 {
                fail("handshake not answered within \(Uplink.seconds(settings.connectTimeout)) s")
                return
            }
        } else if let ping = pingSentAt {
            if now - ping >= settings.pingGrace - 0.001 {
                fail("no answer to a Ping within \(Uplink.seconds(settings.pingGrace)) s after \(Uplink.seconds(settings.silenceTimeout)) s of silence")
                return
            }
        } else if now - lastReceived >= settings.silenceTimeout - 0.001 {
            sendPing(now)
        } else if let keepalive = keepaliveInterval, now - lastSent >= keepalive - 0.001 {
            sendPing(now)
            pingSentAt = nil   // a keepalive, not a liveness probe
        }
        if isCurrent { armLiveness() }
    }

    private func sendPing(_ now: Double) {
        pingSentAt = now
        uplink?.counters.pingsSent &+= 1
        send(.ping(Ping(UInt64(bitPattern: Int64(Clock.monotonicNanos())))))
    }
}
