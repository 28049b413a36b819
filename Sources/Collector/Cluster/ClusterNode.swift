// ClusterNode: this collector as a member of a cluster of collectors on one
// database (docs/COLLECTOR.md, "Cluster") — its id, its heartbeat, and the
// leases of the agent sessions it holds.
//
// Ownership: when an agent's identity is accepted the agent is claimed
// (one statement: epoch = previous + 1), whoever held it before — a newer
// epoch wins without waiting for the old lease — and only then does its
// Welcome go out: once the agent (or anyone) can see the session
// established, every collector finds its owner, so a control request sent
// anywhere right after a failover reaches it instead of finding no owner
// (a configuration staged, 202) or the dead one (504). A claim that failed
// is made again when the session starts, then at each heartbeat. Every `heartbeatInterval` one
// statement upserts this collector's row and renews every lease held under
// this collector id to now + `leaseMs` — by id, no list of leases is built
// or sent, so a beat costs this loop the same at 10 or 20,000 sessions; it
// answers with the sessions whose agent a newer claim took (the agent
// reconnected elsewhere, e.g. while this process was stopped), which are
// closed here — the next beat acknowledges them, and until one does they
// are reported again (an answer lost with its connection loses nothing;
// closing a session twice, or one this collector has claimed again since,
// is a no-op: the epochs differ) — and with whether control commands wait
// that no NOTIFY announced. Since the renewal is by id, no lease may stay
// under this id without a session here: a session that ends releases its
// lease at once (a release that failed is tried again at each beat), a
// claim made at a handshake that never became a session is released after
// a lease's length, and a new process of the id releases at start what an
// earlier one left. A collector that dies leaves leases that expire after
// `leaseMs`: an agent with an expired lease is owned by no one.
//
// Collector id: two processes must not run as one collector. Each run has
// an instance token (`host/pid/random`) kept in the collectors row. At
// start (`register`, before the loop serves) a row another instance holds
// with a heartbeat younger than a lease refuses the start, naming that
// instance's addresses and heartbeat age — unless it is a process of this
// host that is gone (a restart right after kill -9). While running, a
// heartbeat that finds the row taken by another instance leaves it alone,
// logs and counts it (`vigil_cluster_id_conflicts_total`) and /healthz
// answers 503 (`collector_id_conflict`) for as long as that lasts.
//
// Nothing here runs per record or inside an ingest transaction: one claim
// and one release per session, one heartbeat per second for all of them.
// On SQLite (not shared) the same calls answer as a cluster of one.
//
// Thread: loop thread.
import CollectorStore
import Glibc
import JSON
import Reactor
import Wire

final class ClusterNode: SessionOwnership {
    /// How long a lease runs without renewal (ms): a collector silent this
    /// long (killed, stopped, cut off from the database) owns nothing.
    static let leaseMs: Int64 = 10_000
    /// Heartbeat and lease renewal period (s).
    static let heartbeatInterval = 1.0

    let id: String
    /// This run of the process: `host/pid/random`.
    let instance: String
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
    /// Agents whose session is being closed without writing their state —
    /// taken by a newer claim elsewhere, or forgotten — until its end is seen.
    private var takenElsewhere: Set<String> = []
    /// Sessions closed because their agent was forgotten through another collector.
    private(set) var forgottenSessionsClosed: UInt64 = 0
    private var generation: UInt64 = 0
    /// Epochs claimed before a Welcome, until the session starts (a
    /// handshake that fails after its claim leaves an entry that the
    /// agent's next claim replaces, or that is released after a lease's
    /// length: `handshakeClaims` keeps them in claim order for that).
    private var claimedAtHandshake: [String: Int64] = [:]
    private var handshakeClaims: [(agent: String, epoch: Int64, at: Double)] = []
    private var handshakeClaimsHead = 0
    /// Claims at a handshake that a heartbeat reported taken before their
    /// session started: the session is closed as stale when it starts.
    private var lostBeforeStart: [String: Int64] = [:]
    /// Sessions without an epoch whose claim failed: claimed again at the
    /// next beats (a bounded number a beat).
    private var unclaimed: Set<String> = []
    /// Releases that failed: tried again at the next beats (the heartbeat
    /// renews every lease under this id, so a lease left would live on).
    private var failedReleases: [String: Int64] = [:]
    /// Values agents here accepted through relayed configuration updates,
    /// until the asker's stored change comes back (`takeRelayedConfig`).
    private var relayedConfig: [String: [String: String]] = [:]
    /// Taken sessions the last answered heartbeat reported and this
    /// collector handled: acknowledged by the next one (at most one
    /// answer's worth, so bounded by the store's limit a beat).
    private var lostHandled: [SessionLease] = []
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
    /// Heartbeats that found this id's row held by another instance.
    private(set) var idConflicts: UInt64 = 0
    /// That instance, as the last heartbeat found it; nil while the row is ours.
    private(set) var displacedBy: CollectorHolder?

    init(id: String, instance: String, loop: EventLoop, store: any OperatedStore, manager: ConnectedAgents,
         presence: @escaping () -> CollectorPresence) {
        self.id = id
        self.instance = instance
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
        if lease == nil { unclaimed.remove(agent) }
    }

    /// A new instance token: this host, this process, 9 random bytes.
    static func makeInstance(hostName: String) -> String {
        let host = ClusterNames.collectorID(from: hostName)
        return "\(host)/\(getpid())/" + Base64URL.encode(Array(Key32.random().bytes.prefix(9)))
    }

    /// Whether `instance` names a process of this host that no longer runs.
    static func isGone(_ instance: String, hostName: String) -> Bool {
        let f = instance.split(separator: "/")
        guard f.count == 3, String(f[0]) == ClusterNames.collectorID(from: hostName), let pid = pid_t(f[1]), pid > 0 else { return false }
        return pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Why the collector id cannot be used, for a refused start.
    static func refusal(_ h: CollectorHolder) -> String {
        "collector_id '\(h.id)' is in use by another live collector (listen \(h.listen.isEmpty ? "?" : h.listen), "
            + "http_listen \(h.httpListen.isEmpty ? "?" : h.httpListen), instance \(h.instance), last heartbeat \(h.heartbeatAgeMs) ms ago); "
            + "give each collector its own collector_id, or wait until its lease (\(ClusterNode.leaseMs / 1000) s) has expired"
    }

    /// Start, blocking, before the loop serves: takes this id's row, or
    /// throws the refusal when another live instance holds it.
    func register(hostName: String) throws {
        var replacing: String?
        while true {
            guard let holder = try store.registerCollector(presence(), leaseMs: ClusterNode.leaseMs, replacing: replacing) else { return }
            guard replacing == nil, ClusterNode.isGone(holder.instance, hostName: hostName) else {
                throw ClusterNode.IDInUse(description: ClusterNode.refusal(holder))
            }
            Log.info("cluster: the last process with this collector id is gone; taking its row over",
                     ["collector_id": id, "instance": holder.instance])
            replacing = holder.instance
        }
    }

    struct IDInUse: Error, CustomStringConvertible { let description: String }

    /// Why /healthz should answer 503 on this collector's account.
    func problems() -> [JSON] {
        guard let h = displacedBy else { return [] }
        return [.object([("cause", .string("collector_id_conflict")),
                         ("detail", .string("another live collector runs with collector_id '\(h.id)'")),
                         ("other_listen", .string(h.listen)), ("other_http_listen", .string(h.httpListen)),
                         ("other_instance", .string(h.instance)), ("heartbeat_age_ms", .int(h.heartbeatAgeMs))])]
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

    func claimAtHandshake(agent: String, done: @escaping () -> Void) {
        // A database of one collector: nobody else to tell; claimed at start.
        guard store.isShared, !stopped else { return done() }
        claims &+= 1
        store.claimAgent(agent, collector: id, leaseMs: ClusterNode.leaseMs) { [weak self] r in
            guard let self else { return done() }
            switch r {
            case .success(let epoch):
                self.claimedAtHandshake[agent] = epoch
                self.handshakeClaims.append((agent, epoch, Clock.monotonic()))
                // Bounded: the oldest go first (released unless started).
                if self.handshakeClaims.count - self.handshakeClaimsHead > 65_536 { self.expireHandshakeClaims(keep: 32_768) }
            case .failure(let e):
                // Claimed again when the session starts.
                self.claimFailures &+= 1
                self.claimedAtHandshake[agent] = nil
                Log.warn("cluster: claiming agent failed", ["agent": agent, "error": "\(e)"])
            }
            done()
        }
    }

    func sessionStarted(agent: String) {
        takenElsewhere.remove(agent)
        generation &+= 1
        let lostEpoch = lostBeforeStart.removeValue(forKey: agent)
        if let epoch = claimedAtHandshake.removeValue(forKey: agent) {
            setLease(agent, Lease(generation: generation, epoch: epoch, claiming: false))
            if lostEpoch == epoch {
                // Taken by a newer claim elsewhere before it started here.
                loop.defer { [weak self] in self?.lose(SessionLease(agent: agent, epoch: epoch)) }
            }
            return
        }
        setLease(agent, Lease(generation: generation, epoch: nil, claiming: false))
        claim(agent)
    }

    func sessionEnded(agent: String) -> Bool {
        relayedConfig[agent] = nil
        guard let lease = leases[agent] else { return takenElsewhere.remove(agent) == nil }
        setLease(agent, nil)
        if let epoch = lease.epoch { release(SessionLease(agent: agent, epoch: epoch)) }
        // A claim in flight releases when it answers (the lease is gone).
        return true
    }

    func sessionForgotten(agent: String) {
        forgottenSessionsClosed &+= 1
        takenElsewhere.insert(agent)
        guard let lease = leases[agent] else { return }
        setLease(agent, nil)
        if let epoch = lease.epoch { release(SessionLease(agent: agent, epoch: epoch)) }
    }

    /// A relayed configuration update the agent accepted (ControlRelay).
    func relayedConfigApplied(agent: String, values: [KeyValue]) {
        // Bounded: a memory lost here only means one push too many.
        if relayedConfig.count >= 65_536 { relayedConfig.removeAll() }
        for kv in values { relayedConfig[agent, default: [:]][kv.key] = kv.value }
    }

    func takeRelayedConfig(agent: String, keys: [String]) -> [String: String] {
        guard var held = relayedConfig[agent] else { return [:] }
        var out: [String: String] = [:]
        for k in keys { if let v = held.removeValue(forKey: k) { out[k] = v } }
        relayedConfig[agent] = held.isEmpty ? nil : held
        return out
    }

    private func claim(_ agent: String) {
        unclaimed.remove(agent)
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
                if current?.generation == gen {
                    self.leases[agent]?.claiming = false
                    self.unclaimed.insert(agent)
                }
                Log.warn("cluster: claiming agent failed", ["agent": agent, "error": "\(e)"])
            }
        }
    }

    private func release(_ lease: SessionLease) {
        failedReleases[lease.agent] = nil
        store.releaseAgent(lease, collector: id) { [weak self] r in
            guard case .failure(let e) = r else { return }
            Log.debug("cluster: releasing agent failed", ["agent": lease.agent, "error": "\(e)"])
            // Tried again at the next beats, unless a newer session here holds it.
            // Bounded: a release dropped here lives on until the agent connects again.
            guard let self, self.leases[lease.agent] == nil, self.failedReleases.count < 65_536 else { return }
            self.failedReleases[lease.agent] = lease.epoch
        }
    }

    /// Claims made at a handshake whose session did not start within a
    /// lease's length — or, to bound them, all but the newest `keep` — are
    /// released (a session that starts later claims again).
    private func expireHandshakeClaims(keep: Int = .max) {
        let before = Clock.monotonic() - Double(ClusterNode.leaseMs) / 1000
        while handshakeClaimsHead < handshakeClaims.count,
              handshakeClaims.count - handshakeClaimsHead > keep || handshakeClaims[handshakeClaimsHead].at < before {
            let c = handshakeClaims[handshakeClaimsHead]
            handshakeClaimsHead += 1
            guard claimedAtHandshake[c.agent] == c.epoch else { continue }
            claimedAtHandshake[c.agent] = nil
            lostBeforeStart[c.agent] = nil
            release(SessionLease(agent: c.agent, epoch: c.epoch))
        }
        if handshakeClaimsHead > 1_024 && handshakeClaimsHead * 2 > handshakeClaims.count {
            handshakeClaims.removeFirst(handshakeClaimsHead)
            handshakeClaimsHead = 0
        }
    }

    /// A session whose agent a newer claim took: closed as stale.
    private func lose(_ lost: SessionLease) {
        guard leases[lost.agent]?.epoch == lost.epoch else { return }
        // Another collector holds the agent now: this session is stale.
        setLease(lost.agent, nil)
        staleSessionsClosed &+= 1
        Log.info("cluster: agent taken by a newer session elsewhere; closing this one",
                 ["agent": lost.agent, "epoch": "\(lost.epoch)"])
        takenElsewhere.insert(lost.agent)
        closeStaleSession?(lost.agent)
    }

    /// A heartbeat found this id's row held by `holder` (nil: ours).
    private func noteHolder(_ holder: CollectorHolder?) {
        defer { displacedBy = holder }
        guard let holder else {
            if displacedBy != nil { Log.info("cluster: this collector's row is its own again", ["collector_id": id]) }
            return
        }
        idConflicts &+= 1
        if displacedBy?.instance != holder.instance {
            Log.error("cluster: another live collector runs with this collector_id; /healthz answers 503 until one of them stops",
                      ["collector_id": id, "instance": instance, "other_instance": holder.instance, "other_listen": holder.listen,
                       "other_http_listen": holder.httpListen, "other_heartbeat_age_ms": "\(holder.heartbeatAgeMs)"])
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
        // Nothing here walks the sessions: what is done is bounded by what
        // changed (failed claims and releases, handshakes in flight).
        // Sessions whose claim failed are claimed again, a bounded number a beat.
        for agent in Array(unclaimed.prefix(1_000)) { claim(agent) }
        for (agent, epoch) in Array(failedReleases.prefix(1_000)) {
            // A newer session here claimed the agent again: nothing to release.
            if leases[agent] == nil { release(SessionLease(agent: agent, epoch: epoch)) } else { failedReleases[agent] = nil }
        }
        expireHandshakeClaims()
        heartbeatRunning = true
        store.heartbeat(presence(), leaseMs: ClusterNode.leaseMs, acknowledging: lostHandled) { [weak self] r in
            guard let self else { return }
            self.heartbeatRunning = false
            switch r {
            case .failure(let e):
                // `lostHandled` stays to be acknowledged again: whether this
                // beat's deletion committed is unknown, and acknowledging a
                // row already gone is harmless.
                self.heartbeatFailures &+= 1
                Log.debug("cluster: heartbeat failed", ["error": "\(e)"])
            case .success(let answer):
                self.heartbeats &+= 1
                self.lastHeartbeatAt = Clock.monotonic()
                self.noteHolder(answer.displacedBy)
                // A taken session is reported until acknowledged; handling
                // it again changes nothing (`lose` compares epochs). One
                // whose claim at the handshake has not become a session yet
                // is remembered. Displaced, nothing was acknowledged or
                // reported: the acknowledgements wait for the row to be ours.
                if answer.displacedBy == nil { self.lostHandled = answer.lost }
                for lost in answer.lost {
                    if self.claimedAtHandshake[lost.agent] == lost.epoch, self.lostBeforeStart.count < 65_536 {
                        self.lostBeforeStart[lost.agent] = lost.epoch
                    }
                    self.lose(lost)
                }
                if answer.pendingCommands > 0 { self.relay.takeCommands() }
                self.reap()
            }
        }
    }
}
