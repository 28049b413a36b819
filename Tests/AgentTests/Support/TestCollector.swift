// TestCollector: a small Wire server for the agent's tests — a Reactor
// TCPListener, one ServerSession per connection, and a "durable store"
// that survives stop()/start() the way a collector's database survives a
// kill -9. It acknowledges after storing (or holds acks on request),
// de-duplicates by (agent, instance, sequence), answers rule requests,
// pushes rules and control requests, and records everything it received
// with string refs resolved, so tests assert on names and numbers.
import Reactor
import Wire
@testable import Agent

/// A received aggregate with its names resolved.
struct ReceivedAggregate: Equatable {
    var windowStartMs: UInt64
    var windowLengthMs: UInt32
    var monitor: String
    var check: String
    var source: String
    var count: UInt64
    var sumUs: UInt64
    var minUs: UInt64
    var maxUs: UInt64
    var p50Us: UInt64
    var p95Us: UInt64
    var p99Us: UInt64
}

struct ReceivedEvent: Equatable {
    var method: String
    var host: String
    var path: String
    var durationUs: UInt64
    var monitor: String
    var check: String
}

final class TestCollector {
    let loop: EventLoop
    let key: AccessKey
    private(set) var port: UInt16 = 0
    private var listener: TCPListener?
    private(set) var sessions: [TestCollectorSession] = []

    // Behaviour.
    var acknowledge = true
    var patterns = Patterns(version: 0, rules: [])
    var limits = Welcome.Limits()
    /// Added to the real clock in Welcome (tests the agent's clock offset).
    var clockSkewMs: Int64 = 0
    /// Answer every Hello with this error instead of a Welcome.
    var reject: ErrorRecord?
    /// Do not answer Pings (a collector that hangs).
    var silent = false
    /// Close each session right after its Welcome (an overloaded collector
    /// that accepts and then gives up).
    var closeAfterWelcome = false

    // The durable store: survives stop()/start().
    private(set) var aggregates: [ReceivedAggregate] = []
    private(set) var events: [ReceivedEvent] = []
    private(set) var storedBatches: [String: Set<UInt64>] = [:]
    private(set) var duplicates = 0
    /// Highest acknowledged sequence per agent instance.
    private(set) var acked: [String: UInt64] = [:]

    // Observations (also kept across restarts).
    private(set) var hellos: [Hello] = []
    private(set) var statuses: [Status] = []
    private(set) var interfaces: [Interfaces] = []
    private(set) var effectiveConfigs: [EffectiveConfig] = []
    private(set) var controlResponses: [ControlResponse] = []
    private(set) var patternsRequests = 0
    private(set) var connections = 0
    private var nextRequestID: UInt64 = 1

    init(loop: EventLoop, key: AccessKey = TestCollector.makeKey()) {
        self.loop = loop
        self.key = key
    }

    /// The static key pair every TestCollector uses (its access keys pin it).
    static let staticKey = StaticKeyPair(secret: Key32(bytes: (0..<32).map { UInt8($0 * 5 & 0xFF) })!)

    static func makeKey(project: String = "acme") -> AccessKey {
        try! AccessKey(projectID: project, secret: Key32(bytes: (0..<32).map { UInt8($0 * 7 & 0xFF) })!,
                       collectorKey: staticKey.publicKey)
    }

    /// Listens on 127.0.0.1:`port` (0: a free port, remembered for restarts).
    func start(port: UInt16? = nil, host: String = "127.0.0.1") throws {
        let l = try TCPListener(loop: loop, address: SocketAddress(ip: host, port: port ?? self.port)) {
            [unowned self] fd, peer in self.accept(fd, peer)
        }
        self.port = l.localAddress.port
        listener = l
        l.start()
    }

    /// Like kill -9: the listener and every connection go away at once
    /// (reset), nothing more is answered. The store stays.
    func stop() {
        listener?.close()
        listener = nil
        for s in sessions { s.connection?.abort() }
        sessions = []
    }

    var isRunning: Bool { listener != nil }

    private func accept(_ fd: Int32, _ peer: SocketAddress) {
        connections += 1
        let key = self.key
        let session = ServerSession(staticKey: TestCollector.staticKey) { $0 == key.projectID ? key.secret : nil }
        let s = TestCollectorSession(collector: self, session: session)
        s.connection = TCPConnection(loop: loop, fd: fd, peer: peer, handler: s)
        sessions.append(s)
    }

    fileprivate func closed(_ s: TestCollectorSession) {
        sessions.removeAll { $0 === s }
    }

    var established: [TestCollectorSession] { sessions.filter { $0.session.state == .established } }

    // MARK: pushing

    func push(_ p: Patterns) {
        patterns = p
        for s in established { s.send(.patterns(p)) }
    }

    @discardableResult
    func control(_ kind: ControlKind, _ values: [KeyValue] = []) -> UInt64 {
        let id = nextRequestID
        nextRequestID += 1
        for s in established { s.send(.controlRequest(ControlRequest(requestID: id, kind: kind, values: values))) }
        return id
    }

    func response(to id: UInt64) -> ControlResponse? { controlResponses.first { $0.requestID == id } }

    var lastStatus: Status? { statuses.last }

    func counter(_ name: String) -> UInt64? { statuses.last?.counters.first { $0.name == name }?.value }

    /// Sum of aggregate counts for (monitor, check).
    func count(_ monitor: String, _ check: String) -> UInt64 {
        aggregates.filter { $0.monitor == monitor && $0.check == check }.reduce(0) { $0 + $1.count }
    }

    var totalCount: UInt64 { aggregates.reduce(0) { $0 + $1.count } }

    // MARK: receiving

    fileprivate func hello(_ s: TestCollectorSession, _ h: Hello?) {
        guard let h else {
            try? s.session.accept(Welcome(sessionID: 0, collectorTimeMs: 0))
            return
        }
        hellos.append(h)
        if let reject {
            s.session.reject(reject)
            return
        }
        s.instanceKey = "\(h.agentID)/\(h.instance)"
        let now = UInt64(Clock.wallMillis() + clockSkewMs)
        try? s.session.accept(Welcome(sessionID: UInt64(connections), collectorTimeMs: now,
                                      patternsVersion: patterns.version, ackedSequence: acked[s.instanceKey] ?? 0,
                                      limits: limits))
    }

    fileprivate func record(_ s: TestCollectorSession, _ r: Record) {
        switch r {
        case .dataBatch(let b):
            store(s, b)
            if acknowledge {
                acked[s.instanceKey] = max(acked[s.instanceKey] ?? 0, b.sequence)
                s.send(.ack(Ack(sequence: b.sequence)))
            }
        case .status(let st): statuses.append(st)
        case .interfaces(let i): interfaces.append(i)
        case .effectiveConfig(let c): effectiveConfigs.append(c)
        case .controlResponse(let c): controlResponses.append(c)
        case .patternsRequest(let p):
            patternsRequests += 1
            s.send(p.haveVersion == patterns.version ? .patternsUnchanged(PatternsUnchanged(version: p.haveVersion)) : .patterns(patterns))
        case .scheduleRequest(let q):
            s.send(.scheduleUnchanged(ScheduleUnchanged(version: q.haveVersion)))
        default:
            break
        }
    }

    /// Marks everything stored as acknowledged (durable) without sending
    /// Acks: the next Welcome tells the agent.
    func markDurable() {
        for (k, seqs) in storedBatches { acked[k] = seqs.max() ?? 0 }
    }

    /// Acknowledges everything stored so far on every session (after a
    /// period of holding acks).
    func ackAll() {
        for s in established {
            guard let max = storedBatches[s.instanceKey]?.max() else { continue }
            acked[s.instanceKey] = max
            s.send(.ack(Ack(sequence: max)))
        }
    }

    private func store(_ s: TestCollectorSession, _ b: DataBatch) {
        if storedBatches[s.instanceKey, default: []].contains(b.sequence) {
            duplicates += 1
            return
        }
        storedBatches[s.instanceKey, default: []].insert(b.sequence)
        let t = s.session.strings
        for item in b.items {
            switch item {
            case .aggregate(let a):
                aggregates.append(ReceivedAggregate(
                    windowStartMs: a.windowStartMs, windowLengthMs: a.windowLengthMs, monitor: t[a.monitor] ?? "?",
                    check: t[a.check] ?? "?", source: t[a.source] ?? "?", count: a.count, sumUs: a.sumUs,
                    minUs: a.minUs, maxUs: a.maxUs, p50Us: a.p50Us, p95Us: a.p95Us, p99Us: a.p99Us))
            case .event(let e):
                events.append(ReceivedEvent(method: t[e.method] ?? "?", host: t[e.host] ?? "?", path: e.path,
                                            durationUs: e.durationUs, monitor: t[e.monitor] ?? "?", check: t[e.check] ?? "?"))
            default:
                break
            }
        }
    }
}

/// One accepted connection of the test collector.
final class TestCollectorSession: TCPConnectionHandler {
    unowned let collector: TestCollector
    let session: ServerSession
    var connection: TCPConnection?
    var instanceKey = ""

    init(collector: TestCollector, session: ServerSession) {
        self.collector = collector
        self.session = session
    }

    func send(_ r: Record) {
        guard session.state == .established else { return }
        try? session.send(r)
        try? session.flush()
        writeOut()
    }

    private func writeOut() {
        let out = session.outbound
        guard !out.isEmpty else { return }
        connection?.write(out.readable)
        out.consume(out.readableBytes)
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        var events: [SessionEvent] = []
        if collector.silent {
            buffer.consume(buffer.readableBytes)
            return
        }
        session.feed(buffer.readable) { events.append($0) }
        buffer.consume(buffer.readableBytes)
        for e in events {
            switch e {
            case .hello(let h): collector.hello(self, h)
            case .record(let r): collector.record(self, r)
            case .closed: break
            case .welcome, .needKeys: break
            }
        }
        writeOut()
        // Rejected or failed: what was written (an Error) goes, then close.
        if case .closed = session.state { c.close() }
        else if collector.closeAfterWelcome && session.state == .established { c.close() }
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) {
        collector.closed(self)
    }
}
