// Uplink: the agent's link to its collectors, above one connection at a
// time (UplinkSession: handshake, liveness, writes). It keeps what outlives
// a connection:
//
//  - Failover: on a lost session the next host in `server_host` is tried at
//    once (but a session lost again before it lasted 30 s waits a backoff
//    delay); a failed attempt moves on to the next host; when a whole round
//    fails, a jittered `reconnect_interval_min…max` wait, exponential after
//    three rounds up to 5 minutes (CollectorList). Every wait is logged with
//    its next attempt time. Host names are resolved off the loop
//    (Reactor's HostResolver).
//  - Delivery: data items leave the queues as numbered DataBatches
//    (BatchEncoder) that stay in the in-flight window until the collector's
//    cumulative Ack. After a reconnect, what the Welcome says is durable is
//    settled, and the rest is re-sent first, in order, before anything new.
//  - Fairness: at most `net_send_max_bytes` are sealed and queued per burst;
//    then the loop gets control back and the next burst runs on a later
//    iteration (a zero timer, so UDP and timers are polled in between).
//  - Re-introduction: a new Hello (name or groups changed) goes out on a
//    new session to the same host, once what is queued now was written.
//  - Spool (optional, Uplink+Spool.swift): every batch is appended to the
//    disk spool before it is sent; what the queues cannot hold, and what
//    waits while no session is up, is written there as batches; after a
//    reconnect or a restart the spool's batches are sent, oldest first,
//    before anything new.
//
// Thread: loop thread only. Ownership: the runtime owns the uplink; the
// uplink owns the queues, the window and the current session.
import Reactor
import Wire

/// The agent's link to its collectors. Loop thread only; owned by the
/// runtime. Holds the send queues and the in-flight window, so their memory
/// is bounded by the queue sizes and `maxInFlightBatches` × `maxBatchBytes`.
public final class Uplink {
    /// Most items and bytes per DataBatch (the collector may announce less).
    public static let maxBatchItems = 1024
    public static let maxBatchBytes = 60_000
    /// Unacknowledged batches kept when the collector announces no limit.
    public static let defaultInFlightBatches = 64

    public let loop: EventLoop
    public let accessKey: AccessKey
    /// The agent's static key pair (`state_dir/agent_key`): its identity,
    /// proven in every handshake.
    public let identity: StaticKeyPair
    public private(set) var settings: UplinkSettings
    public private(set) var hello: Hello
    public weak var delegate: UplinkDelegate?

    public internal(set) var queues: SendQueues<OutboundItem>
    public internal(set) var window: InFlightWindow<[OutboundItem]>
    /// The disk spool; nil: memory only (queues drop when full).
    public let spool: Spool?
    /// Spooled batches up to here were handed to the window or found
    /// unreadable (the replay's position; see Uplink+Spool).
    var replayedThrough: UInt64 = 0
    var spoolTimer: TimerWatcher?
    public private(set) var state: UplinkState = .stopped
    /// The session counts its records and Pings here too.
    public internal(set) var counters = UplinkCounters()
    /// The current session's Welcome (nil when not established).
    public var welcome: Welcome? { session?.welcome }
    /// Collector clock minus local clock, from the last handshake (ms).
    public private(set) var clockOffsetMs: Int64 = 0
    /// The last failure, for status and logs.
    public private(set) var lastError: String?

    /// The connection attempt or session in progress, if any.
    private(set) var session: UplinkSession?
    private var list: CollectorList<XorShiftRandom>
    /// Names in `server_host`; shared with the monitors' tcp checks.
    public let resolver: HostResolver
    private var resolving: HostResolver.Request?
    private var reconnectTimer: TimerWatcher!
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
    /// Monotonic seconds when the current session was established.
    private var sessionStartMonotonic = 0.0
    private var random = XorShiftRandom()

    /// `resolver`: the process's host name resolver (nil: one of its own).
    public init(loop: EventLoop, accessKey: AccessKey, identity: StaticKeyPair, hello: Hello, settings: UplinkSettings,
                resolver: HostResolver? = nil, spool: Spool? = nil) {
        self.loop = loop
        self.accessKey = accessKey
        self.identity = identity
        self.hello = hello
        self.settings = settings
        queues = SendQueues(queue1Size: settings.queue1Size, queue2Size: settings.queue2Size)
        self.spool = spool
        window = InFlightWindow(maxBatches: 4096, maxBytes: Uplink.defaultInFlightBatches * Uplink.maxBatchBytes,
                                after: spool?.acknowledged ?? 0)
        list = CollectorList(hosts: settings.hosts, minDelay: settings.reconnectMin, maxDelay: settings.reconnectMax,
                             random: XorShiftRandom())
        self.resolver = resolver ?? HostResolver(loop: loop)
        reconnectTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.connectNow() }
        pumpTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.pump() }
        if spool != nil { spoolTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.spoolTick() } }
    }

    deinit {
        spoolTimer?.stop()
        reconnectTimer.stop()
        pumpTimer.stop()
        resolving?.cancel()
        session?.connection?.abort()
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
        startSpoolTimer()
    }

    /// Stops reconnecting and closes the session gracefully (what is
    /// already written is flushed). Queued items stay queued.
    public func stop() {
        started = false
        reconnectTimer.stop()
        pumpTimer.stop()
        resolving?.cancel()
        resolving = nil
        if let session {
            // Its close callback still comes (and counts its bytes).
            self.session = nil
            session.leave()
        }
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
    public var bytesUploaded: UInt64 { closedBytesWritten &+ (session?.bytesWritten ?? 0) }

    /// Nothing queued and nothing waiting for an acknowledgement (in the
    /// window or in the spool).
    public var isDrained: Bool { queues.isEmpty && window.isEmpty && !spoolHasUnsent }

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
        session?.settings = new
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
        if item.isData && !queues.hasRoom(priority: priority) { spill(reason: .full) }
        let ok = queues.push(item, priority: priority)
        if ok { schedulePump() }
        return ok
    }

    /// Whether an `enqueue` on that queue would succeed (check before
    /// building an expensive item, and count a refusal with `countRefused`).
    public func hasRoom(priority: Bool) -> Bool {
        if !queues.hasRoom(priority: priority) { spill(reason: .full) }
        return queues.hasRoom(priority: priority)
    }
    public func countRefused(priority: Bool) { queues.countRefused(priority: priority) }

    /// Sends `record` on the current session at once, ahead of the queues
    /// (session setup: Interfaces, Status, PatternsRequest). False when no
    /// session is established.
    @discardableResult
    public func sendNow(_ record: Record) -> Bool {
        session?.send(record) ?? false
    }

    /// Raw events arrive one at a time; lingering this long before a burst
    /// lets them share a batch (one record and one Ack instead of dozens).
    public static let linger = 0.05

    /// Arms the pump: at once for queue 1, re-sends, a full batch of queue 2
    /// or a yielded burst; after `linger` for a few raw events.
    func schedulePump(now: Bool = false) {
        guard let session, session.established else { return }
        let urgent = now || reintroduce || !queues.queue1.isEmpty || queues.queue2.count >= batchItemLimit
            || window.firstPending(after: sentThrough) != nil || spoolHasUnsent
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

    var batchItemLimit: Int {
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
        guard let current = session, current.established, current.isOpen else { return }
        let wire = current.wire
        let budget = settings.sendMaxBytes
        var produced = 0
        var blocked = false
        while produced < budget {
            guard current.isWritable else { blocked = true; break }
            do {
                if let entry = window.firstPending(after: sentThrough) {
                    if !(try BatchEncoder.send(sequence: entry.sequence, items: entry.batch, on: wire)) {
                        unencodable(entry.items)
                    }
                    sentThrough = entry.sequence
                    counters.batchesResent &+= 1
                } else if let next = queues.next, case .record(let r) = next {
                    _ = queues.pop()
                    try wire.send(r)
                    counters.recordsSent &+= 1
                } else if spoolHasUnsent || queues.next != nil {
                    guard window.count < inFlightLimit, window.bytes + Uplink.maxBatchBytes <= window.maxBytes else {
                        blocked = true
                        break
                    }
                    if spoolHasUnsent {
                        // Spooled batches first, oldest first, under their own sequences.
                        guard let b = nextSpooledBatch() else { continue }
                        let bytes = b.items.reduce(16) { $0 + $1.encodedSizeBound }
                        window.add(b.items, bytes: bytes, items: b.items.count, sequence: b.sequence)
                        // A batch above this collector's item limit goes out empty, counted.
                        let fits = b.items.count <= batchItemLimit
                        if !(try BatchEncoder.send(sequence: b.sequence, items: fits ? b.items : [], on: wire)) || !fits {
                            unencodable(b.items.count)
                        }
                        sentThrough = b.sequence
                        counters.batchesSent &+= 1
                        counters.itemsSent &+= UInt64(b.items.count)
                    } else {
                        let (items, bytes) = BatchEncoder.takeBatch(from: &queues, limits: batchLimits(wire))
                        let sequence: UInt64
                        if let spool {
                            // Written through before it is sent: a kill -9 loses none of it.
                            sequence = spool.append(items, nowMs: Clock.wallMillis()).sequence
                            replayedThrough = sequence
                            window.add(items, bytes: bytes, items: items.count, sequence: sequence)
                        } else {
                            sequence = window.add(items, bytes: bytes, items: items.count)
                        }
                        if !(try BatchEncoder.send(sequence: sequence, items: items, on: wire)) {
                            unencodable(items.count)
                        }
                        sentThrough = sequence
                        counters.batchesSent &+= 1
                        counters.itemsSent &+= UInt64(items.count)
                    }
                } else {
                    break
                }
                try wire.flush()
            } catch {
                current.fail("cannot encode for the collector: \(error)")
                return
            }
            produced += wire.outbound.readableBytes
            guard current.writeOut() else { return }
        }
        if produced >= budget && !blocked && hasWork {
            // Budget spent: yield, continue on a later iteration.
            counters.burstsYielded &+= 1
            schedulePump(now: true)
        } else if reintroduce && !hasWork {
            reintroduce = false
            current.reintroducing = true
            Log.info("uplink: re-introducing the agent (name or groups changed)", ["collector": current.host])
            current.close()
        }
    }

    private var hasWork: Bool { !queues.isEmpty || window.firstPending(after: sentThrough) != nil || spoolHasUnsent }

    private func batchLimits(_ wire: ClientSession) -> BatchEncoder.Limits {
        let table = wire.stringTableLimits
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

    // MARK: - Connecting

    private func connectNow() {
        guard started, session == nil, resolving == nil else { return }
        let host = list.current
        state = .connecting(host: host)
        resolving = resolver.resolve(host, port: settings.port) { [unowned self] result in
            self.resolving = nil
            guard self.started else { return }
            switch result {
            // The first address (getaddrinfo's preference); the next host in
            // the list is the fallback, not the next address.
            case .success(let addresses): self.open(host: host, address: addresses[0])
            case .failure(let e): self.attemptFailed(host: host, reason: e.description)
            }
        }
    }

    private func open(host: String, address: SocketAddress) {
        let session = UplinkSession(uplink: self, host: host, address: address, settings: settings)
        self.session = session
        session.connect(loop: loop)
    }

    // MARK: - What the session reports

    /// The handshake completed: settle what the Welcome says is durable and
    /// re-send the rest before anything new.
    func sessionEstablished(_ session: UplinkSession, atMs nowMs: Int64) {
        guard session === self.session, let w = session.welcome else { return }
        clockOffsetMs = session.clockOffsetMs
        list.connected()
        counters.sessions &+= 1
        counters.lastOutageMs = UInt64(max(0, nowMs - outageSinceMs))
        counters.lastOutageAttempts = outageAttempts + 1
        sessionStartMs = nowMs
        sessionStartMonotonic = Clock.monotonic()
        state = .established(host: session.host)
        var settled = 0
        if w.ackedSequence > 0 && w.ackedSequence < window.nextSequence {
            settled = window.acknowledge(upTo: w.ackedSequence)
        }
        settled += spoolWelcomed(ackedSequence: w.ackedSequence)
        sentThrough = window.acknowledged
        let resend = window.count
        Log.info("uplink established", [
            "collector": "\(session.host):\(settings.port)", "session": "\(w.sessionID)",
            "clock_offset_ms": "\(clockOffsetMs)", "resending_batches": "\(resend)",
        ])
        delegate?.uplinkEstablished(self, welcome: w)
        guard session === self.session else { return }
        schedulePump()
        if settled > 0 { delegate?.uplinkAcknowledged(self) }
    }

    /// A record the session does not handle itself (Acks, the collector's
    /// Error, and everything for the owner).
    func session(_ session: UplinkSession, received record: Record) {
        switch record {
        case .ack(let a):
            // Any batch ever sent may be acknowledged (a commit can finish
            // after a reconnect); one never sent cannot.
            guard a.sequence < window.nextSequence else {
                counters.bogusAcks &+= 1
                Log.warn("uplink: ack for a batch never sent, ignored", ["sequence": "\(a.sequence)", "sent": "\(window.nextSequence - 1)"])
                return
            }
            spool?.acknowledge(upTo: a.sequence)
            if window.acknowledge(upTo: a.sequence) > 0 {
                delegate?.uplinkAcknowledged(self)
                schedulePump()
            }
        case .error:
            lastError = session.failReason
        default:
            delegate?.uplink(self, received: record)
        }
    }

    func sessionWritable(_ session: UplinkSession) {
        guard session === self.session else { return }
        schedulePump()
    }

    /// The connection closed (every session reports this once).
    func sessionClosed(_ session: UplinkSession, reason tcpReason: TCPCloseReason, bytesWritten: UInt64) {
        closedBytesWritten &+= bytesWritten
        guard session === self.session else { return }
        self.session = nil
        pumpTimer.stop()
        if session.established {
            outageSinceMs = Clock.wallMillis()
            outageAttempts = 0
            sessionStartMs = 0
        }
        let endpoint = "\(session.host):\(settings.port)"
        let reason = session.closeReason(tcpReason)
        if session.established {
            if session.reintroducing {
                state = .connecting(host: list.current)
                reconnectTimer.start(after: 0)
                return
            }
            lastError = reason
            counters.reconnects &+= 1
            let lasted = Clock.monotonic() - sessionStartMonotonic
            let delay = list.lost(after: lasted)
            guard delay > 0 else {
                Log.warn("uplink: session lost; trying the next collector now", [
                    "collector": endpoint, "reason": reason, "next": "\(list.current):\(settings.port)",
                ])
                state = .connecting(host: list.current)
                reconnectTimer.start(after: 0)
                delegate?.uplinkDisconnected(self, reason: reason, roundFailed: false)
                return
            }
            let at = Clock.wallMillis() + Int64(delay * 1000)
            state = .waiting(untilMs: at)
            Log.warn("uplink: session lost again before it lasted \(Int(CollectorList<XorShiftRandom>.healthySession)) s; waiting", [
                "collector": endpoint, "reason": reason, "lasted_s": Uplink.seconds(lasted),
                "short_losses": "\(list.shortLosses)", "next_attempt_in_s": Uplink.seconds(delay),
                "next_attempt_at": Log.timestamp(millis: at), "next": "\(list.current):\(settings.port)",
            ])
            reconnectTimer.start(after: delay)
            delegate?.uplinkDisconnected(self, reason: reason, roundFailed: false)
        } else {
            attemptFailed(host: session.host, reason: reason)
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

    static func seconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
