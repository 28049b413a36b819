// SessionManager: every agent session of the collector — accepting under
// `max_clients`, the registry of connected agents and their states, the
// counters, the per-iteration budgets, and the services sessions share (key
// lookups, the deadline wheel) and the per-session limits
// (SessionManager+Limits.swift). It is each session's `AgentSessionContext`
// and the HTTP API's `ConnectedAgents`; what it does with the records agents
// send is in SessionManager+Records.swift, keeping agents' rules, schedules
// and configuration in step in SessionManager+Sync.swift.
//
// Per-event work is O(1): a read touches its own session; a state change
// moves one count between gauges; the registry is a dictionary by agent id.
// Only operator actions (a pattern push) walk the sessions of a project, in
// slices.
//
// Thread: loop thread. Owns the sessions' registry entries; the sessions
// themselves are owned by their connections.
import CollectorStore
import ConfigFile
import Reactor
import Wire

/// The session settings that may change while running (SIGHUP).
public struct SessionSettings: Sendable {
    public var maxClients: Int
    public var handshakeTimeout: Double
    public var idleTimeout: Double
    /// Seconds between two stored Status records of one session (0: none).
    public var statusWriteInterval: Double
    /// Connections in their handshake from one IP address, at most.
    public var maxHandshakesPerAddress: Int
    /// Slots of `maxClients` that connections in their handshake cannot take.
    public var handshakeReserve: Int
    /// Bytes queued to send to agents across all sessions (OutboundBudget.swift).
    public var outboundBudget = 256 << 20

    public init(maxClients: Int, handshakeTimeout: Double, idleTimeout: Double, statusWriteInterval: Double = 0,
                maxHandshakesPerAddress: Int = 64, handshakeReserve: Int = 0) {
        self.maxClients = maxClients
        self.maxHandshakesPerAddress = maxHandshakesPerAddress
        self.handshakeReserve = handshakeReserve
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.statusWriteInterval = statusWriteInterval
    }
}

public final class SessionManager {
    /// Patterns sent per loop iteration when a change is pushed.
    static let pushSlice = 256
    /// Handshakes completed per loop iteration (each costs an X25519 key
    /// generation and agreement, ~0.1 ms); a reconnect storm is spread over
    /// iterations instead of holding the loop.
    static let handshakesPerIteration = 8
    /// Handshakes that may finish on message 3 per loop iteration (its DH,
    /// decryption, the key trials and the admission: ~50 µs, more on a busy
    /// core). Unbounded, a ramp of thousands of agents finished hundreds in
    /// one iteration (20–50 ms of CPU); past it, the rest wait their input
    /// turn, message 3 left in the kernel.
    static let handshakeFinishesPerIteration = 16
    /// Wire bytes of established sessions read per loop iteration (about
    /// 1 µs of decrypting, decoding and translating per aggregate). When a
    /// commit acknowledges many batches at once, their agents' next batches
    /// arrive together; past this budget the rest wait in the kernel for a
    /// later iteration. One read (`readBudget`) may overshoot it.
    static let inputBytesPerIteration = 16 * 1024
    /// What every read of an established session costs that budget besides
    /// its bytes: a read syscall and a callback even when it brings nothing
    /// — an end of file. Without it 2,059 sessions ending at once were read
    /// (and closed) in one iteration, 12.7 ms of CPU; with it a budget holds
    /// at most 256 reads, the rest wait their input turn.
    static let inputChargePerRead = 64
    /// Sessions refused by that budget that are let read again per
    /// iteration (TurnQueue). Enough for what 16 KiB feeds (batches of a few
    /// hundred bytes to a few KiB); the rest keep waiting, paused, in order,
    /// instead of all being re-armed only for most to be refused again.
    static let inputTurnsPerIteration = 64
    /// Sessions whose acknowledgements one deferred slice sends (a seal and
    /// a write each); more wait for the next slice.
    static let acksPerSlice = 256
    /// Most Statuses in one store write.
    static let statusesPerWrite = 256
    /// How long a due Status waits for others to share its store write.
    /// Written each in its own iteration, Statuses from many sessions went
    /// about 1.3 to a write, and every such write is a barrier the ingest
    /// connections' batch groups stop at (docs/STORAGE.md).
    static let statusGatherSeconds = 0.05
    /// How often the store's pending rows are looked at while sessions are
    /// pushed back, and how many of them resume per look.
    static let drainCheckInterval = 0.05
    static let resumesPerSlice = 256
    /// Ended sessions whose final Status and `not_visible` one store write
    /// carries, one write per iteration; more wait for the next
    /// (SessionManager+Ends.swift).
    static let sessionEndsPerSlice = 256

    public let loop: EventLoop
    let store: MeasurementStore
    public var settings: SessionSettings
    let sessionLimits: SessionLimits
    let collectorKey: StaticKeyPair
    let connectionOptions: TCPConnection.Options
    private(set) lazy var wheel = DeadlineWheel<AgentSession>(loop: loop) { $0.deadlinePassed() }
    let keys: KeyDirectory
    private(set) var revocations: KeyRevocations!
    /// Follows the store's change log (Sync/ChangeFollower.swift).
    private(set) var changes: ChangeFollower!
    let patterns: PatternDirectory
    let schedules: ScheduleDirectory
    let control: ControlRouter
    public internal(set) var stats = CollectorStats()
    /// The bytes queued to agents across sessions, against `outboundBudget`.
    let outbound = OutboundBudget()
    var failureLog = LogLimiter(interval: 60, maxKeys: 4096)
    private var troubleLog = LogLimiter(interval: 60, maxKeys: 64)

    /// Connections accepted and not yet closed (what `max_clients` bounds).
    public private(set) var open = 0
    public private(set) var handshaking = 0
    public private(set) var established = 0
    public private(set) var closing = 0
    public private(set) var probes = 0
    private var sessions: [UInt64: AgentSession] = [:]
    /// Established agent sessions by agent id.
    var agents: [String: AgentSession] = [:]
    /// Every agent the store knows, by project name: read at start
    /// (`noteKnownAgents`) and added to at each handshake, so /metrics can
    /// count the `not_visible` ones without a store read per scrape.
    private(set) var knownAgents: [String: Set<String>] = [:]
    /// Established agent sessions by operator state (`AgentState` order).
    private var stateCounts = [Int](repeating: 0, count: CollectorStore.AgentState.allCases.count)
    /// The sessions in `agents` by project and operator state (`AgentState`
    /// order), kept as they change so a /metrics scrape costs O(projects),
    /// not a walk over every agent (15 ms of the loop at 20,000 agents).
    private var projectStateCounts: [String: [Int]] = [:]
    /// The listed sessions' spool figures by project, kept the same way.
    private var projectSpools: [String: ProjectSpools] = [:]
    private var nextSessionID: UInt64

    private var handshakeBudget = IterationBudget(limit: SessionManager.handshakesPerIteration)
    private var waitingForTurn = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)
    private lazy var handshakeTurns = DeferOnce(loop: loop, label: "handshake turns") { [weak self] in self?.giveHandshakeTurns() }
    private var finishBudget = IterationBudget(limit: SessionManager.handshakeFinishesPerIteration)
    private var inputBudget = IterationBudget(limit: SessionManager.inputBytesPerIteration)
    private lazy var waitingForInput = TurnQueue<AgentSession>(loop: loop, perTurn: SessionManager.inputTurnsPerIteration,
                                                               label: "input turns") { $0.resumeInput() }
    /// Sessions with acknowledgements to send, flushed together once per
    /// iteration by one deferred slice (SessionManager+Records.swift).
    /// Sessions paused because the store refused their batches as
    /// overloaded, oldest first (SessionManager+Records, "push-back").
    var pushedBack = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)
    var pushBackStarted = 0.0
    var pushBackEpisodeSessions = 0
    var pushBackEpisodeResumed = 0
    /// Sessions in `pushedBack` that ended meanwhile (dropped at the next look).
    var pushedBackGone = 0
    private(set) lazy var drainCheck = TimerWatcher(loop: loop, label: "store drain check") { [weak self] _ in self?.resumePushedBack() }
    var acksDue = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)
    lazy var ackFlush = DeferOnce(loop: loop, label: "ack flush") { [weak self] in self?.flushAcks() }
    /// Called with each batch the store has just stored (not duplicates),
    /// after its commit, with the agent's project name: the remote-write
    /// feed's input. It must only take the batch and return.
    var batchStored: ((_ project: String, _ batch: Batch) -> Void)?
    /// The cluster's view of who holds which agent (ClusterNode): told when
    /// an agent's session here begins and ends.
    weak var ownership: SessionOwnership?

    /// Ended agent sessions waiting for their store write, in order, and
    /// by agent id (SessionManager+Ends.swift).
    var sessionEnds = RingBuffer<PendingSessionEnd>(capacity: 64, overflow: .grow)
    var sessionEndsByAgent: [String: PendingSessionEnd] = [:]
    lazy var sessionEndWrites = DeferOnce(loop: loop, label: "session ends") { [weak self] in self?.writeSessionEnds() }

    /// Sessions with a Status waiting for its interval to end, and the one
    /// timer that writes them (SessionManager+Limits.swift).
    /// Statuses due, for the next group write (SessionManager+Limits).
    var statusWrites: [AgentStatusWrite] = []
    lazy var statusGroup = DeferOnce(loop: loop, label: "status writes") { [weak self] in self?.writeStatusGroup() }
    private(set) lazy var statusGather = TimerWatcher(loop: loop, label: "status gather") { [weak self] _ in self?.writeStatusGroup() }
    var statusWaiting = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)
    private(set) lazy var statusTimer = TimerWatcher(loop: loop, label: "status writes") { [weak self] _ in self?.writeDueStatuses() }

    /// Connections in their handshake by source address, and in accept
    /// order (entries that finished meanwhile are skipped and pruned).
    var handshakingByAddress: [String: Int] = [:]
    var handshakeOrder = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)

    public private(set) var isShuttingDown = false
    var drained: (() -> Void)?

    public init(loop: EventLoop, store: MeasurementStore, settings: SessionSettings, collectorKey: StaticKeyPair) {
        self.loop = loop
        self.collectorKey = collectorKey
        self.store = store
        self.settings = settings
        // Bounds per session: a 16 KiB handshake, a 64 KiB string table,
        // at most 1 MiB sealed and waiting for the socket.
        sessionLimits = SessionLimits(wire: WireLimits(maxStringID: 8192, maxStringTableBytes: 64 * 1024),
                                      maxHandshakeLength: 16 * 1024, maxOutboundBytes: 1 << 20)
        var o = TCPConnection.Options()
        o.idleTimeout = 0                 // the deadline wheel does timeouts
        o.readBudget = 8 * 1024           // per wakeup; keeps one read within the input budget
        // What may wait in the connection: bytes an agent sent after message
        // 1 while its keys are looked up (none, from a well-behaved agent).
        o.maxReadBuffer = Preamble.maxLength + 2 + sessionLimits.maxHandshakeLength
        o.maxQueuedBytes = 2 << 20
        o.label = "session"               // "io session" in slow-iteration reports
        connectionOptions = o
        keys = KeyDirectory(loop: loop, store: store)
        revocations = nil
        patterns = PatternDirectory(loop: loop, store: store)
        schedules = ScheduleDirectory(loop: loop, store: store)
        control = ControlRouter(loop: loop, store: store)
        // Session ids differ across restarts without coordination.
        nextSessionID = UInt64(max(0, Clock.wallMillis())) << 16
        revocations = KeyRevocations(loop: loop, store: store) { [unowned self] id in self.closeSessions(usingKey: id) }
        revocations.start()
        changes = ChangeFollower(loop: loop, store: store, apply: { [unowned self] in self.applyChanges($0) },
                                 reloadAll: { [unowned self] in self.reloadAfterChangeGap() })
        changes.start()
    }

    /// Ends every established session that authenticated with access key
    /// `keyID` (revoked): an Error record says why.
    @discardableResult
    func closeSessions(usingKey keyID: Int64) -> Int {
        var n = 0
        for s in Array(sessions.values) where s.phase == .established && s.keyID == keyID {
            s.close(.keyRevoked, error: ErrorRecord(code: .rejected, message: "access key revoked"))
            n += 1
        }
        if n > 0 { Log.info("sessions closed: access key revoked", ["key": "\(keyID)", "sessions": "\(n)"]) }
        return n
    }

    // MARK: accepting

    /// Connections past `max_clients` still get a handshake so they can be
    /// told why they are refused; this many more are simply closed.
    var overloadMargin: Int { max(64, settings.maxClients / 100) }

    /// Takes an accepted descriptor (TCPListener's callback).
    public func accept(fd: Int32, peer: SocketAddress) {
        stats.accepted &+= 1
        if isShuttingDown || open >= settings.maxClients + overloadMargin {
            Syscalls.close(fd)
            stats.fail(isShuttingDown ? .shuttingDown : .overload)
            logFailure(isShuttingDown ? .shuttingDown : .overload, peer: peer, project: nil)
            return
        }
        // The limits on connections that have not authenticated
        // (SessionManager+Limits.swift).
        guard admitUnauthenticated(peer: peer) else {
            Syscalls.close(fd)
            return
        }
        nextSessionID &+= 1
        let s = AgentSession(context: self, peer: peer, sessionID: nextSessionID, overCapacity: open >= settings.maxClients)
        open += 1
        handshaking += 1
        sessions[s.sessionID] = s
        handshakeStarted(s)
        s.attach(fd: fd, options: connectionOptions)
    }

    // MARK: handshake turns

    /// Runs from the deferred queue: sessions that waited get the
    /// iteration's handshakes, first come first served.
    private func giveHandshakeTurns() {
        while handshakeBudget.hasRoom(on: loop), let s = waitingForTurn.popFirst() {
            if s.handshakeTurn() { handshakeBudget.spend(1, in: loop.iteration) }
        }
        if !waitingForTurn.isEmpty { handshakeTurns.schedule() }
    }

    // MARK: agent states

    /// Established agent sessions in `state`.
    public func count(_ state: CollectorStore.AgentState) -> Int { stateCounts[index(of: state)] }

    public var connectedAgents: Int { agents.count }

    /// Agents the store holds (the collector's start reads them).
    func noteKnownAgents(_ records: [AgentRecord]) {
        for r in records { knownAgents[r.project, default: []].insert(r.id) }
    }

    /// Agents the store no longer holds (retention removed them); one that
    /// connected again meanwhile is registered anew, so it stays.
    func forgetKnownAgents(_ ids: Set<String>) {
        let gone = ids.filter { agents[$0] == nil }
        for (project, set) in knownAgents {
            let left = set.subtracting(gone)
            knownAgents[project] = left.isEmpty ? nil : left
        }
    }

    /// Agents by project and operator state: connected agents by their
    /// state, every other known agent as `not_visible`.
    /// The connected agents' spool figures, summed per project (kept as
    /// they change: O(projects), not a walk over the agents).
    func agentSpoolsByProject() -> [String: AgentSpoolFigures] {
        var out: [String: AgentSpoolFigures] = [:]
        for (project, p) in projectSpools where p.agents > 0 { out[project] = p.figures }
        return out
    }

    /// A listed session's spool figures change to `figures` (a Status).
    func setSpool(_ s: AgentSession, _ figures: AgentSpoolFigures?) {
        guard let id = s.agentID, agents[id] === s else {
            s.spool = figures
            return
        }
        countSpool(s, -1)
        s.spool = figures
        countSpool(s, +1)
    }

    /// `s` enters (+1) or leaves (-1) `agents` with its spool figures.
    private func countSpool(_ s: AgentSession, _ delta: Int) {
        guard let f = s.spool else { return }
        if delta > 0 {
            projectSpools[s.projectName, default: ProjectSpools()].add(f)
        } else {
            projectSpools[s.projectName]?.remove(f)
            if projectSpools[s.projectName]?.agents == 0 { projectSpools.removeValue(forKey: s.projectName) }
        }
    }

    func agentCountsByProject() -> [String: [CollectorStore.AgentState: Int]] {
        var out: [String: [CollectorStore.AgentState: Int]] = [:]
        let states = CollectorStore.AgentState.allCases
        for (project, counts) in projectStateCounts where counts.contains(where: { $0 != 0 }) {
            var m: [CollectorStore.AgentState: Int] = [:]
            for (i, n) in counts.enumerated() where n != 0 { m[states[states.index(states.startIndex, offsetBy: i)]] = n }
            out[project] = m
        }
        // Every connected agent of a project is among its known ones
        // (registered at its handshake; forgetKnownAgents keeps connected ones).
        for (project, ids) in knownAgents {
            let connected = projectStateCounts[project]?.reduce(0, +) ?? 0
            out[project, default: [:]][.notVisible, default: 0] += ids.count - connected
        }
        return out
    }

    /// `s` enters (+1) or leaves (-1) `agents` in its current state.
    private func countInProject(_ s: AgentSession, _ delta: Int) {
        projectStateCounts[s.projectName, default: [Int](repeating: 0, count: stateCounts.count)][index(of: s.state)] += delta
        countSpool(s, delta)
    }

    /// An agent's operator state changed (a Status record).
    func setState(_ s: AgentSession, _ state: CollectorStore.AgentState) {
        guard let id = s.agentID, s.state != state else { return }
        stateCounts[index(of: s.state)] -= 1
        stateCounts[index(of: state)] += 1
        let listed = agents[id] === s
        if listed { countInProject(s, -1) }
        s.state = state
        if listed { countInProject(s, +1) }
    }

    private func index(of state: CollectorStore.AgentState) -> Int {
        CollectorStore.AgentState.allCases.firstIndex(of: state)!
    }

    // MARK: shutdown

    /// Stops taking sessions; each one finishes its batches in flight, is
    /// acknowledged and closed. `done` runs once every connection is gone.
    public func shutdown(_ done: @escaping () -> Void) {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        revocations.stop()
        changes.stop()
        drained = done
        control.cancelAll()
        for s in Array(sessions.values) { s.drain() }
        if open == 0 && sessionEnds.isEmpty, let d = drained {
            drained = nil
            loop.defer { d() }
        }
    }

    /// The shutdown bound passed: drop what is left.
    public func abortAll() {
        for s in Array(sessions.values) { s.abort() }
    }

    // MARK: logging, rate-limited

    func logFailure(_ f: HandshakeFailure, peer: SocketAddress, project: String?) {
        switch f {
        case .peerClosed, .shuttingDown: return
        default: break
        }
        // Per source and reason: a wrong key right after an unknown project
        // from the same host is a second, different mistake worth a line.
        guard failureLog.allow(peer.ip + " " + f.description, now: loop.now) else { return }
        Log.warn("handshake failed", ["reason": f.description, "source": peer.ip, "project": project ?? "-",
                                      "failures": "\(stats.totalHandshakeFailures)", "suppressed": "\(failureLog.suppressed)"])
    }

    func storeTrouble(_ what: String, _ e: StoreError) {
        guard troubleLog.allow(what, now: loop.now) else { return }
        Log.warn("store: \(what) failed", ["error": "\(e)", "suppressed": "\(troubleLog.suppressed)"])
    }

    func stateWriteFailed(_ what: String, _ e: StoreError) {
        stats.stateWritesFailed &+= 1
        storeTrouble(what, e)
    }
}

// MARK: - AgentSessionContext

extension SessionManager: AgentSessionContext {
    func setDeadline(_ s: AgentSession, at time: Double) { wheel.schedule(s, at: time) }
    func clearDeadline(_ s: AgentSession) { wheel.remove(s) }

    func lookupKeys(for s: AgentSession, project: String) {
        stats.keyLookups &+= 1
        keys.lookup(project: project) { [weak self, weak s] answer in
            if case .failed(let e) = answer { self?.storeTrouble("handshake key lookup", e) }
            s?.keysArrived(answer)
        }
    }

    /// Whether a session may try its keys on message 1 in this iteration.
    /// When not — the budget is spent, or others wait already — it waits its
    /// turn (`giveHandshakeTurns`) on a later iteration.
    func mayHandshake(_ s: AgentSession) -> Bool {
        if waitingForTurn.isEmpty && handshakeBudget.hasRoom(on: loop) {
            handshakeBudget.spend(1, in: loop.iteration)
            return true
        }
        stats.handshakesDeferred &+= 1
        waitingForTurn.append(s)
        handshakeTurns.schedule()
        return false
    }

    /// One write (or comparison) per completed handshake: the first
    /// handshake of an id enrolls its key; later ones must prove the same
    /// key in the same project. Refusals write nothing.
    func verifyIdentity(_ s: AgentSession, agentID: String, key: Key32) {
        let project = s.projectName
        let publicKey = Base64URL.encode(key.bytes)
        // Accepted: the agent is claimed before its Welcome (ClusterNode).
        let ownership = self.ownership
        let accept = { [weak s] in
            guard let ownership else { s?.identityAnswered(.accepted); return }
            ownership.claimAtHandshake(agent: agentID) { [weak s] in s?.identityAnswered(.accepted) }
        }
        store.enrollAgent(id: agentID, projectId: s.projectId, publicKey: publicKey, at: Clock.wallMillis()) { [weak s] r in
            guard let s else { return }
            switch r {
            case .success(.enrolled):
                Log.info("agent enrolled", ["agent": agentID, "project": project, "public_key": publicKey])
                accept()
            case .success(.known):
                accept()
            case .success(.keyMismatch):
                s.identityAnswered(.refused(ErrorRecord(code: .identityMismatch, message:
                    "agent id '\(agentID)' is enrolled with another static key; if this host was rebuilt, "
                    + "reset its identity on the collector (POST /api/v1/agents/{id}/reset-identity)"), .agentKeyMismatch))
            case .success(.otherProject):
                s.identityAnswered(.refused(ErrorRecord(code: .identityMismatch, message:
                    "agent id '\(agentID)' belongs to another project"), .agentInOtherProject))
            case .failure(let e):
                Log.warn("store: agent identity check failed", ["agent": agentID, "error": "\(e)"])
                s.identityAnswered(.refused(ErrorRecord(code: .internalError, message: "the collector cannot read its registry"),
                                            .storeError))
            }
        }
    }

    func admit(_ s: AgentSession, hello: Hello?, revokedKey: Bool) -> Admission {
        if revokedKey {
            return .refuse(ErrorRecord(code: .rejected, message: "access key revoked"), .revokedKey)
        }
        if isShuttingDown {
            return .refuse(ErrorRecord(code: .shuttingDown, message: "collector shutting down"), .shuttingDown)
        }
        if s.overCapacity {
            return .refuse(ErrorRecord(code: .limitExceeded, message: "collector at max_clients (\(settings.maxClients))"), .capacity)
        }
        if let hello, hello.agentID.isEmpty || hello.agentID.utf8.count > 256 {
            return .refuse(ErrorRecord(code: .protocolViolation, message: "hello needs an agent id of 1 to 256 bytes"), .badHello)
        }
        let idle = settings.idleTimeout
        let limits = sessionLimits.announced(maxInFlightBatches: UInt32(AgentSession.maxInFlightBatches),
                                             pingIntervalMs: UInt32(idle * 500), idleTimeoutMs: UInt32(idle * 1000))
        return .welcome(Welcome(sessionID: s.sessionID, collectorTimeMs: UInt64(max(0, Clock.wallMillis())),
                                patternsVersion: patterns.cachedVersion(project: s.projectName), limits: limits))
    }

    func handshakeFailed(_ s: AgentSession, _ failure: HandshakeFailure) {
        handshaking -= 1
        handshakeEnded(s)
        closing += 1
        stats.fail(failure)
        logFailure(failure, peer: s.peer, project: s.projectName.isEmpty ? nil : s.projectName)
    }

    func sessionEstablished(_ s: AgentSession, hello: Hello?) {
        handshaking -= 1
        handshakeEnded(s)
        established += 1
        stats.handshakesCompleted &+= 1
        stats.handshakeMicros.record(UInt64(max(0, (Clock.monotonic() - s.acceptedAt) * 1e6)))
        guard let hello, let id = s.agentID else {
            probes += 1
            stats.probeSessions &+= 1
            return
        }
        stateCounts[index(of: .connecting)] += 1
        knownAgents[s.projectName, default: []].insert(id)
        if let old = agents[id] {
            // The same agent again (a reconnect whose old TCP connection we
            // have not seen die): the newer session wins. It is registered
            // first, so the old one's close does not mark the agent gone.
            countInProject(old, -1)
            agents[id] = s
            countInProject(s, +1)
            stats.sessionsReplaced &+= 1
            old.close(.local, error: ErrorRecord(code: .duplicateAgent, message: "a newer session of this agent connected"))
        } else {
            agents[id] = s
            countInProject(s, +1)
        }
        Log.debug("session established", ["agent": id, "project": s.projectName, "peer": "\(s.peer)"])
        // A previous session's end still waiting for its slice is written
        // first, so the store sees it gone before it connects again.
        writeSessionEndNow(agent: id)
        ownership?.sessionStarted(agent: id)
        let now = Clock.wallMillis()
        store.agentConnected(AgentHello(id: id, projectId: s.projectId, name: hello.name, hostname: hello.host,
                                        version: hello.version, bootId: hello.bootID, at: now)) { [weak self] r in
            if case .failure(let e) = r { self?.stateWriteFailed("agent registration", e) }
        }
        // An agent that reports its configuration ("config") converges on
        // its first EffectiveConfig, which carries its remote_config policy;
        // any other client at once.
        if !hello.capabilities.contains("config") {
            s.converged = true
            converge(s)
        }
    }

    /// Whether an established session may read more input in this
    /// iteration. Once the iteration's budget is spent the session waits
    /// (reading paused, bytes left in the kernel) and `resumeInput()` lets it
    /// read again on a later iteration.
    func mayRead(_ s: AgentSession) -> Bool {
        if inputBudget.hasRoom(on: loop) {
            inputBudget.spend(SessionManager.inputChargePerRead, in: loop.iteration)
            return true
        }
        stats.inputDeferred &+= 1
        waitingForInput.append(s)   // watched again on a later iteration, `inputTurnsPerIteration` at a time
        return false
    }

    /// Whether a session whose message 2 went out may read message 3 in
    /// this iteration; when not, it waits for an input turn like a session
    /// past the decode budget (counted as a deferred handshake).
    func mayFinishHandshake(_ s: AgentSession) -> Bool {
        if finishBudget.hasRoom(on: loop) {
            finishBudget.spend(1, in: loop.iteration)
            return true
        }
        stats.handshakesDeferred &+= 1
        waitingForInput.append(s)
        return false
    }

    func didRead(_ s: AgentSession, bytes: Int) {
        stats.bytesIn &+= UInt64(bytes)
        // Established input counts against the iteration's decode budget.
        if s.phase == .established { inputBudget.spend(bytes, in: loop.iteration) }
    }

    func didWrite(_ s: AgentSession, bytes: Int) {
        stats.bytesOut &+= UInt64(bytes)
        if outbound.observe(s, budget: settings.outboundBudget, sessions: established) {
            stats.limited(.outboundBudget)
            Log.warn("session dropped: outbound budget spent and it holds more than its share",
                     ["agent": s.agentID ?? "-", "queued_bytes": "\(s.connection?.queuedBytes ?? 0)",
                      "total_bytes": "\(outbound.total)", "budget_bytes": "\(settings.outboundBudget)"])
            // Not from inside the session's own write.
            loop.defer { s.abort(.outboundOverflow) }
        }
    }
    func didSend(_ s: AgentSession) { outbound.sent(s) }
    func writeRefused(_ s: AgentSession) { stats.writesRefused &+= 1 }
    func pinged(_ s: AgentSession) { stats.pingsSent &+= 1 }

    func sessionEnded(_ s: AgentSession, reason: CloseReason) {
        established -= 1
        closing += 1
        if s.storePaused { pushedBackEnded(s) }
        stats.sessionsClosed.add(reason)
        control.sessionClosed(s)
        guard let id = s.agentID else {
            probes -= 1
            return
        }
        stateCounts[index(of: s.state)] -= 1
        guard agents[id] === s else { return }  // replaced by a newer session
        agents.removeValue(forKey: id)
        countInProject(s, -1)
        Log.debug("session closed", ["agent": id, "reason": "\(reason)"])
        // Taken by another collector: the agent's state is that one's to write.
        guard ownership?.sessionEnded(agent: id) ?? true else { return }
        // Its latest Status and the state that says it is gone: written in
        // a later iteration's slice, with the other sessions that ended.
        queueSessionEnd(s, agent: id)
    }

    func sessionFinished(_ s: AgentSession) {
        outbound.forget(s)
        open -= 1
        closing -= 1
        sessions.removeValue(forKey: s.sessionID)
        if isShuttingDown && open == 0 && sessionEnds.isEmpty, let d = drained {
            drained = nil
            d()
        }
    }
}

// MARK: - ConnectedAgents (the HTTP API's view)

extension SessionManager: ConnectedAgents {
    func session(forAgent id: String) -> ConnectedAgent? { agents[id] }
    /// Closes the agent's session here: another collector holds it now.
    func closeStaleSession(agent id: String) {
        agents[id]?.close(.local, error: ErrorRecord(code: .duplicateAgent, message: "the agent connected to another collector"))
    }
    var collectorPublicKey: Key32 { collectorKey.publicKey }
    func keyRevoked(_ keyID: Int64) { revocations.revoked(keyID) }
}
