// ClusterNode: this collector as a member of a cluster of collectors on one
// database (docs/COLLECTOR.md, "Cluster") — its id, its heartbeat, and the
// leases of the agent sessions it holds.
//
// Ownership: when a handshake completes the agent is claimed at once (one
// statement: epoch = previous + 1), whoever held it before — a newer epoch
// wins without waiting for the old lease. Every `heartbeatInterval` one
// statement upserts this collector's row and renews the leases of all its
// sessions to now + `leaseMs`; it answers with the sessions whose agent a
// newer claim took meanwhile (the agent reconnected elsewhere, e.g. while
// this process was stopped), which are closed here, and with whether
// control commands wait that no NOTIFY announced. A session that ends
// releases its lease at once; a collector that dies leaves leases that
// expire after `leaseMs`: an agent with an expired lease is owned by no one.
//
// Nothing here runs per record or inside an ingest transaction: one claim
// and one release per session, one heartbeat per second for all of them.
// On SQLite (not shared) the same calls answer as a cluster of one.
//
// Thread: loop thread.
import CollectorStore
import Reactor

final class ClusterNode: SessionOwnership {
    /// How long a lease runs without renewal (ms): a collector silent this
    /// long (killed, stopped, cut off from the database) owns nothing.
    static let leaseMs: Int64 = 10_000
    /// Heartbeat and lease renewal period (s).
    static let heartbeatInterval = 1.0

    let id: String
    let loop: EventLoop
    let store: any OperatedStore
    private(set) var relay: ControlRelay!
    /// Filled by the server at start: sessions, lag, addresses.
    var presence: () -> CollectorPresence
    /// Closes the session of an agent whose lease a newer claim took.
    var closeStaleSession: ((String) -> Void)?

    private struct Lease {
        /// Which start of a session this is (a claim answering late for an
        /// earlier session is told apart).
        var generation: UInt64
        /// nil while the claim is in flight or failed.
        var epoch: Int64?
        var claiming: Bool
    }
    private var leases: [String: Lease] = [:]
    /// Agents whose stale session is being closed (until its end is seen).
    private var takenElsewhere: Set<String> = []
    private var generation: UInt64 = 0
    private var timer: TimerWatcher?
    private var heartbeatRunning = false
    private var reaping = false
    private var beatsSinceReap = 0
    /// Heartbeats between looks for expired leases.
    static let reapEvery = 2
    private var stopped = false

    // Counters for /metrics.
    private(set) var heartbeats: UInt64 = 0
    private(set) var heartbeatFailures: UInt64 = 0
    private(set) var claims: UInt64 = 0
    private(set) var claimFailures: UInt64 = 0
    private(set) var staleSessionsClosed: UInt64 = 0
    /// Expired leases this collector found and marked (their agents `not_visible`).
    private(set) var leasesReaped: UInt64 = 0
    /// The last heartbeat that committed (monotonic seconds; 0: none yet).
    private(set) var lastHeartbeatAt = 0.0

    init(id: String, loop: EventLoop, store: any OperatedStore, manager: ConnectedAgents, presence: @escaping () -> CollectorPresence) {
        self.id = id
        self.loop = loop
        self.store = store
        self.presence = presence
        relay = ControlRelay(node: self, manager: manager)
    }

    /// The collector id when `collector_id` is empty: host name and the
    /// bound agent listen port — with the address too when bound to one
    /// address, so collectors of one host on the same port with different
    /// addresses (127.0.0.1:6600, 127.0.0.2:6600) get different ids.
    static func collectorID(configured: String, hostName: String, listen: String) -> String {
        guard configured.isEmpty else { return configured }
        let port = listen.split(separator: ":").last.map(String.init) ?? ""
        let host = String(listen.dropLast(port.count + 1).filter { $0 != "[" && $0 != "]" })
        let wildcard = host.isEmpty || host == "0.0.0.0" || host == "::"
        return ClusterNames.collectorID(from: wildcard ? "\(hostName)-\(port)" : "\(hostName)-\(host)-\(port)")
    }

    /// Leases with an epoch, kept as they change: /metrics reads it on
    /// every scrape, and counting 20,000 leases there was a walk per scrape.
    private(set) var leasesHeld = 0

    /// Sets (or removes, nil) `agent`'s lease, keeping `leasesHeld`.
    private func setLease(_ agent: String, _ lease: Lease?) {
        let old = lease == nil ? leases.removeValue(forKey: agent) : leases.updateValue(lease!, forKey: agent)
        leasesHeld += (lease?.epoch != nil ? 1 : 0) - (old?.epoch != nil ? 1 : 0)
    }

    /// The epoch this collector holds `agent` with, nil when none (yet).
    func epoch(of agent: String) -> Int64? { leases[agent]?.epoch }

    func start() {
        let t = TimerWatcher(loop: loop, label: "cluster heartbeat") { [weak self] _ in self?.beat() }
        t.start(after: 0, repeat: ClusterNode.heartbeatInterval)
        timer = t
        relay.start()
    }

    /// Shutdown: no more heartbeats; relayed requests end as shutting down.
    /// The leases stay until they expire or the sessions' ends release them.
    func stop() {
        stopped = true
        timer?.stop()
        timer = nil
        relay.stop()
    }

    /// Whether a collector heartbeated within a lease's length.
    static func isLive(_ m: ClusterMember) -> Bool { m.heartbeatAgeMs < leaseMs }

    /// The cluster's collectors; on a store of one collector, this one
    /// from memory.
    func members(_ done: @escaping (Result<[ClusterMember], StoreError>) -> Void) {
        guard store.isShared else {
            let me = ClusterMember(presence: presence(), heartbeatMs: Clock.wallMillis(),
                                   heartbeatAgeMs: lastHeartbeatAt == 0 ? 0 : Int64((Clock.monotonic() - lastHeartbeatAt) * 1000),
                                   leasesHeld: leasesHeld)
            return loop.defer { done(.success([me])) }
        }
        store.clusterMembers(completion: done)
    }

    // MARK: sessions

    func sessionStarted(agent: String) {
        takenElsewhere.remove(agent)
        generation &+= 1
        setLease(agent, Lease(generation: generation, epoch: nil, claiming: false))
        claim(agent)
    }

    func sessionEnded(agent: String) -> Bool {
        guard let lease = leases[agent] else { return takenElsewhere.remove(agent) == nil }
        setLease(agent, nil)
        if let epoch = lease.epoch { release(SessionLease(agent: agent, epoch: epoch)) }
        // A claim in flight releases when it answers (the lease is gone).
        return true
    }

    private func claim(_ agent: String) {
        guard let lease = leases[agent], !lease.claiming else { return }
        let gen = lease.generation
        leases[agent]?.claiming = true
        claims &+= 1
        store.claimAgent(agent, collector: id, leaseMs: ClusterNode.leaseMs) { [weak self] r in
            guard let self else { return }
            let current = self.leases[agent]
            switch r {
            case .success(let epoch):
                guard let current, current.generation == gen else {
                    // The session ended (or another began) meanwhile: give it back.
                    // (A newer session's own claim, queued after this one, wins.)
                    if current == nil { self.release(SessionLease(agent: agent, epoch: epoch)) }
                    return
                }
                self.setLease(agent, Lease(generation: gen, epoch: epoch, claiming: false))
            case .failure(let e):
                self.claimFailures &+= 1
                // Claimed again at the next heartbeat.
                if current?.generation == gen { self.leases[agent]?.claiming = false }
                Log.warn("cluster: claiming agent failed", ["agent": agent, "error": "\(e)"])
            }
        }
    }

    private func release(_ lease: SessionLease) {
        store.releaseAgent(lease, collector: id) { r in
            if case .failure(let e) = r { Log.debug("cluster: releasing agent failed", ["agent": lease.agent, "error": "\(e)"]) }
        }
    }

    /// Agents of collectors that died: `not_visible` once their lease
    /// expired (every few beats; any live collector may do it).
    private func reap() {
        guard store.isShared, !reaping else { return }
        beatsSinceReap += 1
        guard beatsSinceReap >= ClusterNode.reapEvery else { return }
        beatsSinceReap = 0
        reaping = true
        store.reapExpiredLeases { [weak self] r in
            guard let self else { return }
            self.reaping = false
            if case .success(let n) = r, n > 0 {
                self.leasesReaped &+= UInt64(n)
                Log.info("cluster: agents whose collector stopped renewing their lease are not visible", ["agents": "\(n)"])
            }
        }
    }

    // MARK: heartbeat

    private func beat() {
        guard !stopped, !heartbeatRunning else { return }
        // Sessions whose claim failed are claimed again, a bounded number a beat.
        var retries = 0
        for (agent, l) in leases where l.epoch == nil && !l.claiming && retries < 1_000 {
            retries += 1
            claim(agent)
        }
        let held = leases.compactMap { agent, l in l.epoch.map { SessionLease(agent: agent, epoch: $0) } }
        heartbeatRunning = true
        store.heartbeat(presence(), leases: held, leaseMs: ClusterNode.leaseMs) { [weak self] r in
            guard let self else { return }
            self.heartbeatRunning = false
            switch r {
            case .failure(let e):
                self.heartbeatFailures &+= 1
                Log.debug("cluster: heartbeat failed", ["error": "\(e)"])
            case .success(let answer):
                self.heartbeats &+= 1
                self.lastHeartbeatAt = Clock.monotonic()
                for lost in answer.lost where self.leases[lost.agent]?.epoch == lost.epoch {
                    // Another collector holds the agent now: this session is stale.
                    self.setLease(lost.agent, nil)
                    self.staleSessionsClosed &+= 1
                    Log.info("cluster: agent taken by a newer session elsewhere; closing this one",
                             ["agent": lost.agent, "epoch": "\(lost.epoch)"])
                    self.takenElsewhere.insert(lost.agent)
                    self.closeStaleSession?(lost.agent)
                }
                if answer.pendingCommands > 0 { self.relay.takeCommands() }
                self.reap()
            }
        }
    }
}
