// A minimal in-process Wire server for the load generator's tests: accepts
// sessions with one project's key, answers Hello with a Welcome announcing
// `window`, records every DataBatch, and acknowledges per `policy`.
import Reactor
import Wire

final class TestCollector {
    enum AckPolicy {
        /// Ack each batch as it arrives.
        case immediately
        /// Ack everything received every `interval` seconds (lets a window fill).
        case every(Double)
        /// Like `.immediately`, but the first session of each agent is
        /// reset, unacknowledged, when its batch `n` arrives.
        case resetFirstSessionAt(UInt64)
        /// Ack a sequence that was never sent.
        case bogus
    }

    let loop: EventLoop
    let key: AccessKey
    let listener: TCPListener
    var policy: AckPolicy
    var window: UInt32
    private(set) var sessions: [TestSession] = []
    /// Every batch received, per agent, in arrival order.
    var batches: [String: [UInt64]] = [:]
    var acked: [String: UInt64] = [:]
    var statuses = 0
    var interfaces = 0
    var patternsRequests = 0
    /// Most batches one session had unacknowledged at once.
    var maxUnacked = 0
    var resetAgents = Set<String>()
    /// Source address of every accepted connection.
    var peers: [String] = []
    private var ackTimer: TimerWatcher?

    /// This collector's static key pair (the access key pins its public half).
    let staticKey = StaticKeyPair.generate()

    init(loop: EventLoop, policy: AckPolicy = .immediately, window: UInt32 = 64) throws {
        self.loop = loop
        self.policy = policy
        self.window = window
        key = try AccessKey.generate(projectID: "loadtest", collectorKey: staticKey.publicKey)
        var accept: ((Int32, SocketAddress) -> Void)?
        listener = try TCPListener(loop: loop, address: try SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in accept?(fd, peer) }
        accept = { [unowned self] fd, peer in
            let s = TestSession(collector: self)
            s.connection = TCPConnection(loop: loop, fd: fd, peer: peer, handler: s)
            self.sessions.append(s)
            self.peers.append(peer.ip)
        }
        listener.start()
        if case .every(let t) = policy {
            let timer = TimerWatcher(loop: loop) { [unowned self] _ in self.sessions.forEach { $0.ackAll() } }
            timer.start(after: t, repeat: t)
            ackTimer = timer
        }
    }

    var address: SocketAddress { listener.localAddress }

    func stop() {
        ackTimer?.stop()
        listener.close()
        sessions.forEach { $0.connection?.abort() }
    }
}

final class TestSession: TCPConnectionHandler {
    unowned let collector: TestCollector
    var connection: TCPConnection?
    let wire: ServerSession
    var agent = ""
    var received: [UInt64] = []
    var ackedThrough: UInt64 = 0

    init(collector: TestCollector) {
        self.collector = collector
        let secret = collector.key.secret
        let project = collector.key.projectID
        wire = ServerSession(staticKey: collector.staticKey) { $0 == project ? secret : nil }
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        var events: [SessionEvent] = []
        wire.feed(buffer.readable) { events.append($0) }
        buffer.consume(buffer.readableBytes)
        for e in events {
            switch e {
            case .hello(let h):
                agent = h?.agentID ?? ""
                try? wire.accept(Welcome(sessionID: 1, collectorTimeMs: 0,
                                         limits: .init(maxInFlightBatches: collector.window)))
            case .record(.dataBatch(let b)):
                collector.batches[agent, default: []].append(b.sequence)
                received.append(b.sequence)
                collector.maxUnacked = max(collector.maxUnacked, received.filter { $0 > ackedThrough }.count)
                switch collector.policy {
                case .immediately:
                    ack(b.sequence)
                case .every:
                    break
                case .resetFirstSessionAt(let n):
                    if b.sequence == n && !collector.resetAgents.contains(agent) {
                        collector.resetAgents.insert(agent)
                        c.abort()
                        return
                    }
                    ack(b.sequence)
                case .bogus:
                    ack(b.sequence + 1000)
                }
            case .record(.status): collector.statuses += 1
            case .record(.interfaces): collector.interfaces += 1
            case .record(.patternsRequest): collector.patternsRequests += 1
            case .record, .welcome, .needKeys: break
            case .closed: c.close()
            }
        }
        flush()
    }

    func ack(_ n: UInt64) {
        try? wire.send(.ack(Ack(sequence: n)))
        ackedThrough = max(ackedThrough, n)
        collector.acked[agent] = max(collector.acked[agent] ?? 0, n)
    }

    func ackAll() {
        guard connection?.state == .open, let last = received.last, last > ackedThrough else { return }
        ack(last)
        flush()
    }

    func flush() {
        try? wire.flush()
        let out = wire.outbound
        if !out.isEmpty, let c = connection {
            c.write(out.readable)
            out.consume(out.readableBytes)
        }
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) { connection = nil }
}
