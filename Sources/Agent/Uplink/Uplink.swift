// Uplink: the agent's one session to a collector — TCPConnection for the
// bytes, ClientSession for the protocol — and everything that keeps data
// flowing across failures:
//
//  - Failover: on a lost session the next host in `server_host` is tried at
//    once; a failed attempt moves on to the next host; when a whole round
//    fails, a jittered `reconnect_interval_min…max` wait, exponential after
//    three rounds up to 5 minutes (CollectorList). Every wait is logged with
//    its next attempt time.
//  - Delivery: data items leave the queues as numbered DataBatches that stay
//    in the in-flight window until the collector's cumulative Ack. After a
//    reconnect, what the Welcome says is durable is settled, and the rest is
//    re-sent first, in order, before anything new.
//  - Fairness: at most `net_send_max_bytes` are sealed and queued per burst;
//    then the loop gets control back and the next burst runs on a later
//    iteration (a zero timer, so UDP and timers are polled in between).
//  - Liveness: `tcp_so_timeout` of silence from the collector → Ping; no
//    answer within the grace → the session is given up and replaced. The
//    handshake is bounded by `tcp_connection_timeout` as the connect is.
//
// Timeouts use one timer re-armed only when it fires (reads just store a
// timestamp): libev's "be smart about timeouts".
#if canImport(Glibc)
import Glibc
#endif
import Reactor
import Wire

/// The uplink's tunables, taken from the configuration.
public struct UplinkSettings: Equatable, Sendable {
    public var hosts: [String]
    public var port: UInt16
    /// Seconds for connect + handshake (`tcp_connection_timeout`).
    public var connectTimeout: Double
    /// Seconds of silence before a Ping (`tcp_so_timeout`).
    public var silenceTimeout: Double
    /// Bytes sealed per burst (`net_send_max_bytes`).
    public var sendMaxBytes: Int
    public var queue1Size: Int
    public var queue2Size: Int
    /// Seconds (`reconnect_interval_min`/`max`).
    public var reconnectMin: Double
    public var reconnectMax: Double

    public init(hosts: [String], port: UInt16, connectTimeout: Double = 5, silenceTimeout: Double = 60,
                sendMaxBytes: Int = 5 << 20, queue1Size: Int = 512, queue2Size: Int = 1024,
                reconnectMin: Double = 5, reconnectMax: Double = 10) {
        self.hosts = hosts
        self.port = port
        self.connectTimeout = connectTimeout
        self.silenceTimeout = silenceTimeout
        self.sendMaxBytes = sendMaxBytes
        self.queue1Size = queue1Size
        self.queue2Size = queue2Size
        self.reconnectMin = reconnectMin
        self.reconnectMax = reconnectMax
    }

    /// After `silenceTimeout` of silence a Ping goes out; the session is
    /// given up if nothing arrives within this many more seconds.
    public var pingGrace: Double { min(silenceTimeout, max(1, silenceTimeout / 2)) }
}

public enum UplinkState: Equatable, Sendable, CustomStringConvertible {
    case stopped
    /// Resolving, connecting or in the handshake with `host`.
    case connecting(host: String)
    case established(host: String)
    /// A whole round failed; the next attempt is at `untilMs` (wall clock).
    case waiting(untilMs: Int64)

    public var name: String {
        switch self {
        case .stopped: return "stopped"
        case .connecting: return "connecting"
        case .established: return "established"
        case .waiting: return "waiting"
        }
    }

    public var description: String {
        switch self {
        case .stopped: return "stopped"
        case .connecting(let h): return "connecting to \(h)"
        case .established(let h): return "established with \(h)"
        case .waiting(let t): return "waiting until \(Log.timestamp(millis: t))"
        }
    }
}

/// What the uplink tells its owner, on the loop thread.
public protocol UplinkDelegate: AnyObject {
    /// A session was established. Session-setup records go out with
    /// `sendNow` from here (they precede anything queued).
    func uplinkEstablished(_ uplink: Uplink, welcome: Welcome)
    /// A record for the owner: Patterns, PatternsUnchanged, ControlRequest,
    /// Schedule… (Ack, Ping, Pong and Error are handled inside).
    func uplink(_ uplink: Uplink, received record: Record)
    /// A session ended or an attempt failed. `roundFailed`: every host of
    /// the list failed in a row and a backoff wait began.
    func uplinkDisconnected(_ uplink: Uplink, reason: String, roundFailed: Bool)
    /// Batches were acknowledged.
    func uplinkAcknowledged(_ uplink: Uplink)
}

public struct UplinkCounters: Sendable {
    /// Sessions established, and lost after being established.
    public var sessions: UInt64 = 0
    public var reconnects: UInt64 = 0
    /// Attempts that failed before a session was established.
    public var connectFailures: UInt64 = 0
    /// Batches sent for the first time, and re-sent after a reconnect.
    public var batchesSent: UInt64 = 0
    public var batchesResent: UInt64 = 0
    public var itemsSent: UInt64 = 0
    /// Standalone records sent (Status, ControlResponse, Interfaces, …).
    public var recordsSent: UInt64 = 0
    public var pingsSent: UInt64 = 0
    /// Bursts that spent `net_send_max_bytes` and yielded to the loop.
    public var burstsYielded: UInt64 = 0
    /// The last time without a session: how long it lasted (ms) and how
    /// many attempts it took to end it — what the first status after a
    /// reconnect reports about the outage the log recorded.
    public var lastOutageMs: UInt64 = 0
    public var lastOutageAttempts: UInt64 = 0
    /// Items dropped because their names could not fit the collector's
    /// string table even after a clear.
    public var itemsUnencodable: UInt64 = 0
    /// Acks that named a batch never sent (ignored).
    public var bogusAcks: UInt64 = 0
    public init() {}
}

/// The one collector session. Loop thread only; owned by the runtime.
/// Holds the send queues and the in-flight window, so their memory is
/// bounded by the queue sizes and `maxInFlightBatches` × `maxBatchBytes`.
public final class Uplink {
    /// Most items and bytes per DataBatch (the collector may announce less).
    public static let maxBatchItems = 1024
    public static let maxBatchBytes = 60_000
    /// Unacknowledged batches kept when the collector announces no limit.
    public static let defaultInFlightBatches = 64

    public let loop: EventLoop
    public let accessKey: AccessKey
    public private(set) var settings: UplinkSettings
    public private(set) var hello: Hello
    public weak var delegate: UplinkDelegate?

    public private(set) var queues: SendQueues<OutboundItem>
    public private(set) var window: InFlightWindow<[OutboundItem]>
    public private(set) var state: UplinkState = .stopped
    public private(set) var counters = UplinkCounters()
    /// The current session's Welcome (nil when not established).
    public private(set) var welcome: Welcome?
    /// Collector clock minus local clock, from the last handshake (ms).
    public private(set) var clockOffsetMs: Int64 = 0
    /// The last failure, for status and logs.
    public private(set) var lastError: String?

    private var list: CollectorList<XorShiftRandom>
    private let resolver: HostResolver
    private var resolving: HostResolver.Request?
    private var link: UplinkLink?
    private var reconnectTimer: TimerWatcher!
    private var livenessTimer: TimerWatcher!
    private var pumpTimer: TimerWatcher!
    private var started = false
    /// Highest batch sequence written on the current session.
    private var sentThrough: UInt64 = 0
    /// Hello changed: reconnect to the same host once the queues are empty.
    private var reintroduce = false
    private var closedBytesWritten: UInt64 = 0
    /// Since when (wall ms) no session has been established, and the
    /// attempts made since.
    private var outageSinceMs: Int64 = 0
    private var outageAttempts: UInt64 = 0
    /// Wall ms when the current session was established; 0 without one.
    public private(set) var sessionStartMs: Int64 = 0
    private var random = XorShiftRandom()

    public init(loop: EventLoop, accessKey: AccessKey, hello: Hello, settings: UplinkSettings) {
        self.loop = loop
        self.accessKey = accessKey
        self.hello = hello
        self.settings = settings
        queues = SendQueues(queue1Size: settings.queue1Size, queue2Size: settings.queue2Size)
        window = InFlightWindow(maxBatches: 4096, maxBytes: Uplink.defaultInFlightBatches * Uplink.maxBatchBytes)
        list = CollectorList(hosts: settings.hosts, minDelay: settings.reconnectMin, maxDelay: settings.reconnectMax,
                             random: XorShiftRandom())
        resolver = HostResolver(loop: loop)
        reconnectTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.connectNow() }
        livenessTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.livenessCheck() }
        pumpTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.pump() }
    }

    deinit {
        reconnectTimer.stop()
        livenessTimer.stop()
        pumpTimer.stop()
        resolving?.cancel()
        link?.connection?.abort()
    }

    // MARK: - Control

    /// Starts connecting (on a later iteration).
    public func start() {
        guard !started else { return }
        started = true
        outageSinceMs = Clock.wallMillis()
        outageAttempts = 0
        state = .connecting(host: list.current)
        reconnectTimer.start(after: 0)
    }

    /// Stops reconnecting and closes the session gracefully (what is
    /// already written is flushed). Queued items stay queued.
    public func stop() {
        started = false
        reconnectTimer.stop()
        livenessTimer.stop()
        pumpTimer.stop()
        resolving?.cancel()
        resolving = nil
        if let link {
            // Its close callback still comes (and counts its bytes).
            self.link = nil
            link.connection?.close()
        }
        welcome = nil
        state = .stopped
    }

    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// The host the uplink is on or trying, and its 1-based list position.
    public var currentHost: String { list.current }
    public var currentHostIndex: Int { list.index + 1 }

    /// Bytes written to collectors so far, all sessions.
    public var bytesUploaded: UInt64 { closedBytesWritten &+ (link?.connection?.bytesWritten ?? 0) }

    /// Nothing queued and nothing waiting for an acknowledgement.
    public var isDrained: Bool { queues.isEmpty && window.isEmpty }

    /// Applies changed tunables. Queue resizes and delays apply now;
    /// timeouts at their next use; connection options at the next connect.
    public func update(_ new: UplinkSettings) {
        if new.queue1Size != settings.queue1Size || new.queue2Size != settings.queue2Size {
            queues.resize(queue1Size: new.queue1Size, queue2Size: new.queue2Size)
        }
        if new.reconnectMin != settings.reconnectMin || new.reconnectMax != settings.reconnectMax {
            list.setDelays(min: new.reconnectMin, max: new.reconnectMax, random: XorShiftRandom())
        }
        settings = new
        schedulePump()
    }

    /// A new Hello (agent name or groups changed): it is sent from the next
    /// session, which starts once what is queued now has been written.
    public func updateHello(_ new: Hello) {
        guard new != hello else { return }
        hello = new
        if isEstablished {
            reintroduce = true
            schedulePump()
        }
    }

    // MARK: - Sending

    /// Queues an item; false (counted by queue) when that queue is full.
    @discardableResult
    public func enqueue(_ item: OutboundItem, priority: Bool) -> Bool {
        let ok = queues.push(item, priority: priority)
        if ok { schedulePump() }
        return ok
    }

    /// Whether an `enqueue` on that queue would succeed (check before
    /// building an expensive item, and count a refusal with `countRefused`).
    public func hasRoom(priority: Bool) -> Bool { queues.hasRoom(priority: priority) }
    public func countRefused(priority: Bool) { queues.countRefused(priority: priority) }

    /// Sends `record` on the current session at once, ahead of the queues
    /// (session setup: Interfaces, Status, PatternsRequest). False when no
    /// session is established.
    @discardableResult
    public func sendNow(_ record: Record) -> Bool {
        guard let link, link.established else { return false }
        do {
            try link.session.send(record)
            try link.session.flush()
        } catch {
            fail(link, "cannot send \(record.type.map { "\($0)" } ?? "record"): \(error)")
            return false
        }
        counters.recordsSent &+= 1
        return writeOut(link)
    }

    /// Raw events arrive one at a time; lingering this long before a burst
    /// lets them share a batch (one record and one Ack instead of dozens).
    public static let linger = 0.05

    /// Arms the pump: at once for queue 1, re-sends, a full batch of queue 2
    /// or a yielded burst; after `linger` for a few raw events.
    private func schedulePump(now: Bool = false) {
        guard let link, link.established else { return }
        let urgent = now || reintroduce || !queues.queue1.isEmpty || queues.queue2.count >= batchItemLimit
            || window.firstPending(after: sentThrough) != nil
        if pumpTimer.isActive {
            if urgent && pumpTimer.remaining > 0.0005 { pumpTimer.start(after: 0) }
            return
        }
        pumpTimer.start(after: urgent ? 0 : Uplink.linger)
    }

    private var inFlightLimit: Int {
        let announced = Int(welcome?.limits.maxInFlightBatches ?? 0)
        return announced > 0 ? min(announced, 4096) : Uplink.defaultInFlightBatches
    }

    private var batchItemLimit: Int {
        let announced = Int(welcome?.limits.maxBatchItems ?? 0)
        return announced > 0 ? min(announced, Uplink.maxBatchItems) : Uplink.maxBatchItems
    }

    /// A batch never exceeds one burst (a single item larger than a burst
    /// still goes, alone).
    private var batchByteLimit: Int {
        let announced = Int(welcome?.limits.maxRecordLength ?? 0)
        let limit = announced > 0 ? min(announced - 16, Uplink.maxBatchBytes) : Uplink.maxBatchBytes
        return min(limit, settings.sendMaxBytes)
    }

    /// One burst: re-sends first, then queue 1, then queue 2, until
    /// `sendMaxBytes` are sealed, the connection is above its high
    /// watermark, or the in-flight window is full.
    private func pump() {
        guard let link, link.established, let conn = link.connection, conn.state == .open else { return }
        let session = link.session
        let budget = settings.sendMaxBytes
        var produced = 0
        var blocked = false
        while produced < budget {
            guard conn.isWritable else { blocked = true; break }
            do {
                if let entry = window.firstPending(after: sentThrough) {
                    if !(try BatchEncoder.send(sequence: entry.sequence, items: entry.batch, on: session)) {
                        unencodable(entry.items)
                    }
                    sentThrough = entry.sequence
                    counters.batchesResent &+= 1
                } else if let next = queues.next {
                    if case .record(let r) = next {
                        _ = queues.pop()
                        try session.send(r)
                        counters.recordsSent &+= 1
                    } else {
                        guard window.count < inFlightLimit, window.bytes + Uplink.maxBatchBytes <= window.maxBytes else {
                            blocked = true
                            break
                        }
                        let (items, bytes) = BatchEncoder.takeBatch(from: &queues, limits: batchLimits(session))
                        let sequence = window.add(items, bytes: bytes, items: items.count)
                        if !(try BatchEncoder.send(sequence: sequence, items: items, on: session)) {
                            unencodable(items.count)
                        }
                        sentThrough = sequence
                        counters.batchesSent &+= 1
                        counters.itemsSent &+= UInt64(items.count)
                    }
                } else {
                    break
                }
                try session.flush()
            } catch {
                fail(link, "cannot encode for the collector: \(error)")
                return
            }
            produced += session.outbound.readableBytes
            guard writeOut(link) else { return }
        }
        if produced >= budget && !blocked && hasWork {
            // Budget spent: yield, continue on a later iteration.
            counters.burstsYielded &+= 1
            schedulePump(now: true)
        } else if reintroduce && !hasWork {
            reintroduce = false
            link.reintroducing = true
            Log.info("uplink: re-introducing the agent (name or groups changed)", ["collector": link.host])
            conn.close()
        }
    }

    private var hasWork: Bool { !queues.isEmpty || window.firstPending(after: sentThrough) != nil }

    private func batchLimits(_ session: ClientSession) -> BatchEncoder.Limits {
        let table = session.stringTableLimits
        return BatchEncoder.Limits(maxItems: batchItemLimit, maxBytes: batchByteLimit,
                                   maxNames: max(1, Int(table.maxID) / 2), maxNameBytes: max(1, table.maxBytes / 2))
    }

    /// A batch whose names cannot fit this collector's string table went
    /// out empty: its items are lost, and counted.
    private func unencodable(_ items: Int) {
        counters.itemsUnencodable &+= UInt64(items)
        Log.error("uplink: a batch's names exceed the collector's string table; its items were dropped",
                  ["items": "\(items)"])
    }

    /// Moves sealed bytes from the session to the socket's write queue.
    @discardableResult
    private func writeOut(_ link: UplinkLink) -> Bool {
        let out = link.session.outbound
        guard !out.isEmpty, let conn = link.connection else { return true }
        guard conn.write(out.readable) else {
            fail(link, "the connection refused \(out.readableBytes) bytes (write queue full)")
            return false
        }
        out.consume(out.readableBytes)
        link.lastSent = Clock.monotonic()
        return true
    }

    // MARK: - Connecting

    private func connectNow() {
        guard started, link == nil, resolving == nil else { return }
        let host = list.current
        state = .connecting(host: host)
        resolving = resolver.resolve(host, port: settings.port) { [unowned self] result in
            self.resolving = nil
            guard self.started else { return }
            switch result {
            case .success(let address): self.open(host: host, address: address)
            case .failure(let e): self.attemptFailed(host: host, reason: e.description)
            }
        }
    }

    private func open(host: String, address: SocketAddress) {
        let session = ClientSession(accessKey: accessKey, hello: hello)
        let link = UplinkLink(uplink: self, host: host, address: address, session: session)
        var o = TCPConnection.Options()
        o.connectTimeout = settings.connectTimeout
        o.writeBudget = settings.sendMaxBytes
        // Producing pauses above two bursts queued and resumes below half
        // of one; the hard cap leaves room for a burst above the watermark.
        o.highWatermark = 2 * settings.sendMaxBytes
        o.lowWatermark = settings.sendMaxBytes / 2
        o.maxQueuedBytes = 4 * settings.sendMaxBytes + 140_000
        self.link = link
        link.connection = TCPConnection.connect(loop: loop, to: address, options: o, handler: link)
    }

    fileprivate func linkConnected(_ link: UplinkLink) {
        guard link === self.link else { return }
        let now = Clock.monotonic()
        link.lastReceived = now
        link.handshakeDeadline = now + settings.connectTimeout
        link.helloSentAtMs = Clock.wallMillis()
        do {
            try link.session.start()
        } catch {
            fail(link, "cannot start the handshake: \(error)")
            return
        }
        writeOut(link)
        armLiveness()
    }

    fileprivate func linkRead(_ link: UplinkLink, _ buffer: ByteBuffer) {
        guard link === self.link else {
            buffer.consume(buffer.readableBytes)
            return
        }
        link.lastReceived = Clock.monotonic()
        link.pingSentAt = nil
        var events: [SessionEvent] = []
        link.session.feed(buffer.readable) { events.append($0) }
        buffer.consume(buffer.readableBytes)
        writeOut(link)   // Pongs
        for event in events {
            guard link === self.link else { return }
            switch event {
            case .welcome(let w): established(link, w)
            case .record(let r): received(link, r)
            case .closed(let reason): sessionClosed(link, reason)
            case .hello, .needKeys: break
            }
        }
    }

    private func established(_ link: UplinkLink, _ w: Welcome) {
        let nowMs = Clock.wallMillis()
        link.established = true
        welcome = w
        // Welcome carries the collector's clock when message 2 was written:
        // assume that was half-way through the handshake round trip.
        clockOffsetMs = Int64(w.collectorTimeMs) + (nowMs - link.helloSentAtMs) / 2 - nowMs
        list.connected()
        counters.sessions &+= 1
        counters.lastOutageMs = UInt64(max(0, nowMs - outageSinceMs))
        counters.lastOutageAttempts = outageAttempts + 1
        sessionStartMs = nowMs
        state = .established(host: link.host)
        var settled = 0
        if w.ackedSequence > 0 && w.ackedSequence < window.nextSequence {
            settled = window.acknowledge(upTo: w.ackedSequence)
        }
        sentThrough = window.acknowledged
        let resend = window.count
        Log.info("uplink established", [
            "collector": "\(link.host):\(settings.port)", "session": "\(w.sessionID)",
            "clock_offset_ms": "\(clockOffsetMs)", "resending_batches": "\(resend)",
        ])
        delegate?.uplinkEstablished(self, welcome: w)
        guard link === self.link else { return }
        armLiveness()
        schedulePump()
        if settled > 0 { delegate?.uplinkAcknowledged(self) }
    }

    private func received(_ link: UplinkLink, _ record: Record) {
        switch record {
        case .ack(let a):
            // Any batch ever sent may be acknowledged (a commit can finish
            // after a reconnect); one never sent cannot.
            guard a.sequence < window.nextSequence else {
                counters.bogusAcks &+= 1
                Log.warn("uplink: ack for a batch never sent, ignored", ["sequence": "\(a.sequence)", "sent": "\(window.nextSequence - 1)"])
                return
            }
            if window.acknowledge(upTo: a.sequence) > 0 {
                delegate?.uplinkAcknowledged(self)
                schedulePump()
            }
        case .pong:
            break
        case .error(let e):
            lastError = "collector closed the session: \(e.code) \(e.message)"
            link.failReason = lastError
        default:
            delegate?.uplink(self, received: record)
        }
    }

    private func sessionClosed(_ link: UplinkLink, _ reason: CloseReason) {
        if link.failReason == nil {
            if reason == .rejected, let e = link.session.peerError {
                link.failReason = "rejected by the collector: \(e.code)" + (e.message.isEmpty ? "" : " (\(e.message))")
            } else {
                link.failReason = "session closed: \(reason)"
            }
        }
        writeOut(link)   // a final Error record, if the session wrote one
        link.connection?.close()
    }

    /// Gives up on `link` for `reason` (reset: nothing more is sent).
    private func fail(_ link: UplinkLink, _ reason: String) {
        if link.failReason == nil { link.failReason = reason }
        link.connection?.abort()
    }

    fileprivate func linkClosed(_ link: UplinkLink, _ tcpReason: TCPCloseReason) {
        closedBytesWritten &+= link.connection?.bytesWritten ?? 0
        guard link === self.link else { return }
        self.link = nil
        livenessTimer.stop()
        pumpTimer.stop()
        welcome = nil
        if link.established {
            outageSinceMs = Clock.wallMillis()
            outageAttempts = 0
            sessionStartMs = 0
        }
        let endpoint = "\(link.host):\(settings.port)"
        if link.established {
            let reason = link.failReason ?? (tcpReason == .peerClosed ? "closed by the collector" : tcpReason.description)
            if link.reintroducing {
                state = .connecting(host: list.current)
                reconnectTimer.start(after: 0)
                return
            }
            lastError = reason
            counters.reconnects &+= 1
            list.lost()
            Log.warn("uplink: session lost; trying the next collector now", [
                "collector": endpoint, "reason": reason, "next": "\(list.current):\(settings.port)",
            ])
            state = .connecting(host: list.current)
            reconnectTimer.start(after: 0)
            delegate?.uplinkDisconnected(self, reason: reason, roundFailed: false)
        } else {
            let reason = link.failReason ?? (tcpReason == .peerClosed ? "closed by the collector during the handshake" : tcpReason.description)
            attemptFailed(host: link.host, reason: reason)
        }
    }

    private func attemptFailed(host: String, reason: String) {
        let endpoint = "\(host):\(settings.port)"
        lastError = "\(endpoint): \(reason)"
        counters.connectFailures &+= 1
        outageAttempts &+= 1
        let delay = list.failed()
        if delay == 0 {
            Log.info("uplink: collector unreachable; trying the next one", [
                "collector": endpoint, "reason": reason, "next": "\(list.current):\(settings.port)",
            ])
            state = .connecting(host: list.current)
            reconnectTimer.start(after: 0)
            delegate?.uplinkDisconnected(self, reason: lastError!, roundFailed: false)
            return
        }
        let at = Clock.wallMillis() + Int64(delay * 1000)
        state = .waiting(untilMs: at)
        Log.warn("uplink: no collector reachable; waiting", [
            "round": "\(list.failedRounds)", "last": endpoint, "reason": reason,
            "next_attempt_in_s": Uplink.seconds(delay), "next_attempt_at": Log.timestamp(millis: at),
            "next": "\(list.current):\(settings.port)",
        ])
        reconnectTimer.start(after: delay)
        delegate?.uplinkDisconnected(self, reason: lastError!, roundFailed: true)
    }

    // MARK: - Liveness

    private func armLiveness() {
        guard let link else { livenessTimer.stop(); return }
        let deadline: Double
        if !link.established {
            deadline = link.handshakeDeadline
        } else if let ping = link.pingSentAt {
            deadline = ping + settings.pingGrace
        } else {
            var d = link.lastReceived + settings.silenceTimeout
            if let keepalive = keepaliveInterval { d = min(d, link.lastSent + keepalive) }
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
        guard let link else { return }
        let now = Clock.monotonic()
        if !link.established {
            if now >= link.handshakeDeadline - 0.001 {
                fail(link, "handshake not answered within \(Uplink.seconds(settings.connectTimeout)) s")
                return
            }
        } else if let ping = link.pingSentAt {
            if now - ping >= settings.pingGrace - 0.001 {
                fail(link, "no answer to a Ping within \(Uplink.seconds(settings.pingGrace)) s after \(Uplink.seconds(settings.silenceTimeout)) s of silence")
                return
            }
        } else if now - link.lastReceived >= settings.silenceTimeout - 0.001 {
            sendPing(link, now)
        } else if let keepalive = keepaliveInterval, now - link.lastSent >= keepalive - 0.001 {
            sendPing(link, now)
            link.pingSentAt = nil   // a keepalive, not a liveness probe
        }
        if link === self.link { armLiveness() }
    }

    private func sendPing(_ link: UplinkLink, _ now: Double) {
        link.pingSentAt = now
        counters.pingsSent &+= 1
        sendNow(.ping(Ping(UInt64(bitPattern: Int64(Clock.monotonicNanos())))))
    }

    static func seconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// One connection attempt or session: the TCP connection's handler.
/// Holds the uplink weakly; the connection holds this until it closes.
final class UplinkLink: TCPConnectionHandler {
    weak var uplink: Uplink?
    let host: String
    let address: SocketAddress
    let session: ClientSession
    var connection: TCPConnection?
    var established = false
    var reintroducing = false
    /// Why we gave up on it, when we did (kept over the TCP close reason).
    var failReason: String?
    var helloSentAtMs: Int64 = 0
    var handshakeDeadline = 0.0
    var lastReceived = 0.0
    var lastSent = 0.0
    var pingSentAt: Double?

    init(uplink: Uplink, host: String, address: SocketAddress, session: ClientSession) {
        self.uplink = uplink
        self.host = host
        self.address = address
        self.session = session
        lastSent = Clock.monotonic()
    }

    func connectionDidConnect(_ c: TCPConnection) { uplink?.linkConnected(self) }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        if let uplink { uplink.linkRead(self, buffer) } else { buffer.consume(buffer.readableBytes) }
    }

    func connectionWritabilityChanged(_ c: TCPConnection) {
        if c.isWritable { uplink?.linkWritable(self) }
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) { uplink?.linkClosed(self, reason) }
}

extension Uplink {
    fileprivate func linkWritable(_ link: UplinkLink) {
        guard link === self.link else { return }
        schedulePump()
    }
}
