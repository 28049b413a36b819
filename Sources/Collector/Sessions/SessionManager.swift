// SessionManager: every agent session of the collector — accepting under
// `max_clients`, the registry of connected agents and their states, the
// counters, and the services sessions share (key lookups, filter rules,
// control requests, the deadline wheel).
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

    public init(maxClients: Int, handshakeTimeout: Double, idleTimeout: Double) {
        self.maxClients = maxClients
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
    }
}

public final class SessionManager {
    /// Batches a session may have between receipt and acknowledgement
    /// (announced in the Welcome); beyond it the session stops reading.
    static let maxInFlightBatches = 64
    /// How long a closing session may take to send what it has queued.
    static let closeGrace = 5.0
    /// Patterns sent per loop iteration when a change is pushed.
    static let pushSlice = 256
    /// What a session's Wire buffers keep between messages: enough for an
    /// Ack or a Pong, so an idle session holds almost no buffer memory.
    static let idleBufferBytes = 64
    /// Handshakes completed per loop iteration (each costs an X25519 key
    /// generation and agreement, ~0.1 ms); a reconnect storm is spread over
    /// iterations instead of holding the loop.
    static let handshakesPerIteration = 8
    /// Wire bytes of established sessions read per loop iteration (about
    /// 1 µs of decrypting, decoding and translating per aggregate). When a
    /// commit acknowledges many batches at once, their agents' next batches
    /// arrive together; past this budget the rest wait in the kernel for a
    /// later iteration. One read (`readBudget`) may overshoot it.
    static let inputBytesPerIteration = 16 * 1024

    public let loop: EventLoop
    let store: MeasurementStore
    public var settings: SessionSettings
    let limits: SessionLimits
    let connectionOptions: TCPConnection.Options
    private(set) lazy var wheel = DeadlineWheel<AgentSession>(loop: loop) { $0.deadlinePassed() }
    let keys: KeyDirectory
    let patterns: PatternDirectory
    let schedules: ScheduleDirectory
    let control: ControlRouter
    public internal(set) var stats = CollectorStats()
    private var failureLog = LogLimiter(interval: 60, maxKeys: 4096)
    private var troubleLog = LogLimiter(interval: 60, maxKeys: 64)

    /// Connections accepted and not yet closed (what `max_clients` bounds).
    public private(set) var open = 0
    public private(set) var handshaking = 0
    public private(set) var established = 0
    public private(set) var closing = 0
    public private(set) var probes = 0
    private var sessions: [UInt64: AgentSession] = [:]
    private var agents: [String: AgentSession] = [:]
    /// Established agent sessions by operator state (`AgentState` order).
    private var stateCounts = [Int](repeating: 0, count: CollectorStore.AgentState.allCases.count)
    private var nextSessionID: UInt64
    private var handshakeBudget = IterationBudget(limit: SessionManager.handshakesPerIteration)
    private var waitingForTurn = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)
    private var turnScheduled = false
    private var inputBudget = IterationBudget(limit: SessionManager.inputBytesPerIteration)
    private var waitingForInput = RingBuffer<AgentSession>(capacity: 64, overflow: .grow)
    private var inputTurnScheduled = false
    public private(set) var isShuttingDown = false
    private var drained: (() -> Void)?

    public init(loop: EventLoop, store: MeasurementStore, settings: SessionSettings) {
        self.loop = loop
        self.store = store
        self.settings = settings
        // Bounds per session: a 16 KiB handshake, a 64 KiB string table,
        // at most 1 MiB sealed and waiting for the socket.
        limits = SessionLimits(wire: WireLimits(maxStringID: 8192, maxStringTableBytes: 64 * 1024),
                               maxHandshakeLength: 16 * 1024, maxOutboundBytes: 1 << 20)
        var o = TCPConnection.Options()
        o.idleTimeout = 0                 // the deadline wheel does timeouts
        o.readBudget = 8 * 1024           // per wakeup; keeps one read within the input budget
        o.maxReadBuffer = Preamble.maxLength + 2 + limits.maxHandshakeLength
        o.maxQueuedBytes = 2 << 20
        connectionOptions = o
        keys = KeyDirectory(store: store)
        patterns = PatternDirectory(loop: loop, store: store)
        schedules = ScheduleDirectory(loop: loop, store: store)
        control = ControlRouter(loop: loop, store: store)
        // Session ids differ across restarts without coordination.
        nextSessionID = UInt64(max(0, Clock.wallMillis())) << 16
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
        nextSessionID &+= 1
        let s = AgentSession(manager: self, peer: peer, sessionID: nextSessionID, overCapacity: open >= settings.maxClients)
        open += 1
        handshaking += 1
        sessions[s.sessionID] = s
        s.attach(fd: fd, options: connectionOptions)
    }

    /// Whether a session may run its handshake's key agreement in this
    /// iteration. When not, it waits (reading paused, its bytes kept in the
    /// connection) and `resumeHandshake()` is called on a later iteration.
    func mayHandshake(_ s: AgentSession) -> Bool {
        if handshakeBudget.hasRoom(in: loop.iteration) {
            handshakeBudget.spend(1, in: loop.iteration)
            return true
        }
        stats.handshakesDeferred &+= 1
        waitingForTurn.append(s)
        scheduleTurns()
        return false
    }

    private func scheduleTurns() {
        guard !turnScheduled else { return }
        turnScheduled = true
        loop.defer { [weak self] in
            guard let self else { return }
            self.turnScheduled = false
            // Wake one iteration's worth; their bytes are offered again on a
            // later iteration, where each asks for a turn once more.
            var n = 0
            while n < SessionManager.handshakesPerIteration, let s = self.waitingForTurn.popFirst() {
                if s.resumeHandshake() { n += 1 }
            }
            if !self.waitingForTurn.isEmpty { self.scheduleTurns() }
        }
    }

    /// Whether an established session may read more input in this
    /// iteration. Once the iteration's budget is spent the session waits
    /// (reading paused, bytes left in the kernel) and `resumeInput()` lets it
    /// read again on a later iteration.
    func mayRead(_ s: AgentSession) -> Bool {
        if inputBudget.hasRoom(in: loop.iteration) { return true }
        stats.inputDeferred &+= 1
        waitingForInput.append(s)
        if !inputTurnScheduled {
            inputTurnScheduled = true
            // Runs at the end of this iteration: the sessions are watched
            // again and read on the next one, each asking once more.
            loop.defer { [weak self] in
                guard let self else { return }
                self.inputTurnScheduled = false
                while let s = self.waitingForInput.popFirst() { s.resumeInput() }
            }
        }
        return false
    }

    /// Counts input decoded in this iteration against the budget.
    func decoded(bytes: Int) {
        inputBudget.spend(bytes, in: loop.iteration)
    }

    func lookupKeys(project: String, _ completion: @escaping KeyDirectory.Completion) {
        stats.keyLookups &+= 1
        keys.lookup(project: project, completion)
    }

    // MARK: lifecycle callbacks from sessions

    func handshakeFailed(_ s: AgentSession, _ failure: HandshakeFailure) {
        handshaking -= 1
        closing += 1
        stats.fail(failure)
        logFailure(failure, peer: s.peer, project: s.projectName.isEmpty ? nil : s.projectName)
    }

    func sessionEstablished(_ s: AgentSession, hello: Hello?) {
        handshaking -= 1
        established += 1
        stats.handshakesCompleted &+= 1
        guard let hello, let id = s.agentID else {
            probes += 1
            stats.probeSessions &+= 1
            return
        }
        stateCounts[index(of: .connecting)] += 1
        if let old = agents[id] {
            // The same agent again (a reconnect whose old TCP connection we
            // have not seen die): the newer session wins. It is registered
            // first, so the old one's close does not mark the agent gone.
            agents[id] = s
            stats.sessionsReplaced &+= 1
            old.close(.local, error: ErrorRecord(code: .duplicateAgent, message: "a newer session of this agent connected"))
        }
        agents[id] = s
        Log.debug("session established", ["agent": id, "project": s.projectName, "peer": "\(s.peer)"])
        let now = Clock.wallMillis()
        store.agentConnected(AgentHello(id: id, projectId: s.projectId, name: hello.name, hostname: hello.host,
                                        version: hello.version, bootId: hello.bootID, at: now)) { [weak self] r in
            if case .failure(let e) = r { self?.stateWriteFailed("agent registration", e) }
        }
        converge(s)
    }

    /// An established session is closing (for `reason`).
    func sessionEnded(_ s: AgentSession, reason: CloseReason) {
        established -= 1
        closing += 1
        stats.sessionsClosed.add(reason)
        control.sessionClosed(s)
        guard let id = s.agentID else {
            probes -= 1
            return
        }
        stateCounts[index(of: s.state)] -= 1
        guard agents[id] === s else { return }  // replaced by a newer session
        agents.removeValue(forKey: id)
        Log.debug("session closed", ["agent": id, "reason": "\(reason)"])
        store.setAgentState(agent: id, state: .notVisible, messages: [], at: Clock.wallMillis()) { [weak self] r in
            if case .failure(let e) = r { self?.stateWriteFailed("agent state", e) }
        }
    }

    /// The connection is gone (every session ends here exactly once).
    func sessionFinished(_ s: AgentSession) {
        open -= 1
        closing -= 1
        sessions.removeValue(forKey: s.sessionID)
        if isShuttingDown && open == 0, let d = drained {
            drained = nil
            d()
        }
    }

    func agentStatus(_ s: AgentSession, state: CollectorStore.AgentState, messages: [String], json: String) {
        guard let id = s.agentID else { return }
        if s.state != state {
            stateCounts[index(of: s.state)] -= 1
            stateCounts[index(of: state)] += 1
            s.state = state
        }
        store.recordAgentStatus(agent: id, state: state, messages: messages,
                                snapshot: StatusSnapshot(ts: Clock.wallMillis(), json: json)) { [weak self] r in
            if case .failure(let e) = r { self?.stateWriteFailed("agent status", e) }
        }
    }

    // MARK: filter rules

    func patternsRequested(by s: AgentSession, have: UInt64) {
        patterns.rules(project: s.projectName) { [weak self] result in
            switch result {
            case .success(let set): s.sendPatterns(set, have: have)
            case .failure(.notFound): s.sendPatterns(PatternSet(version: 0, updated: 0, patterns: []), have: have)
            case .failure(let e): self?.storeTrouble("reading filter rules", e)
            }
        }
    }

    /// The version for the Welcome, when known without a read (0 otherwise:
    /// the agent asks anyway).
    func cachedPatternsVersion(project: String) -> UInt64 { patterns.cachedVersion(project: project) }

    /// A new rule set committed: every connected agent of the project gets
    /// it now, a slice of sessions per loop iteration.
    public func pushPatterns(project: String, set: PatternSet) {
        patterns.replaced(project: project, with: set)
        let targets = agents.values.filter { $0.projectName == project }
        pushSlice(targets[...], set)
    }

    private func pushSlice(_ targets: ArraySlice<AgentSession>, _ set: PatternSet) {
        for s in targets.prefix(SessionManager.pushSlice) {
            stats.patternsPushed &+= 1
            s.sendPatterns(set, have: nil)
        }
        let rest = targets.dropFirst(SessionManager.pushSlice)
        if !rest.isEmpty { loop.defer { [weak self] in self?.pushSlice(rest, set) } }
    }

    // MARK: monitor schedules

    /// `ScheduleRequest(have)`: "unchanged" when the agent holds the
    /// current version, else the monitors of its groups with its last run
    /// of each (from the stored runs).
    func scheduleRequested(by s: AgentSession, have: UInt64?) {
        schedules.definitions(project: s.projectName) { [weak self] result in
            switch result {
            case .success(let e): self?.sendSchedule(e, to: s, have: have)
            case .failure(.notFound): self?.sendSchedule(ScheduleDirectory.Entry(version: 0, definitions: []), to: s, have: have)
            case .failure(let e): self?.storeTrouble("reading monitor definitions", e)
            }
        }
    }

    private func sendSchedule(_ e: ScheduleDirectory.Entry, to s: AgentSession, have: UInt64?) {
        guard s.phase == .established else { return }
        if let have, have == e.version {
            stats.scheduleAnswers &+= 1
            s.send(.scheduleUnchanged(ScheduleUnchanged(version: e.version)))
            return
        }
        guard let agent = s.agentID else { return }
        store.lastMonitorRuns(project: s.projectName, agent: agent) { [weak self] result in
            guard let self, s.phase == .established else { return }
            let last: [String: Int64]
            switch result {
            case .success(let l): last = l
            case .failure(let err):
                // A schedule without last runs is still right, only less even.
                self.storeTrouble("reading last monitor runs", err)
                last = [:]
            }
            self.stats.schedulesSent &+= 1
            for record in ScheduleDirectory.records(e, groups: s.groups, lastRuns: last) {
                guard s.send(.schedule(record)) else { return }
            }
        }
    }

    /// New definitions committed: every connected agent of the project
    /// gets its schedule now, a slice of sessions per loop iteration.
    public func pushSchedules(project: String, stored: MonitorDefinitions) {
        let e = schedules.replaced(project: project, with: stored)
        let targets = agents.values.filter { $0.projectName == project }
        pushScheduleSlice(targets[...], e)
    }

    private func pushScheduleSlice(_ targets: ArraySlice<AgentSession>, _ e: ScheduleDirectory.Entry) {
        for s in targets.prefix(SessionManager.pushSlice) {
            stats.schedulesPushed &+= 1
            sendSchedule(e, to: s, have: nil)
        }
        let rest = targets.dropFirst(SessionManager.pushSlice)
        if !rest.isEmpty { loop.defer { [weak self] in self?.pushScheduleSlice(rest, e) } }
    }

    // MARK: configuration convergence

    /// After a connect: the stored overrides (project, then agent) go to
    /// the agent as one configuration update, so it converges.
    private func converge(_ s: AgentSession) {
        guard let id = s.agentID else { return }
        let project = s.projectName
        store.configOverrides(project: project, agent: nil) { [weak self] p in
            self?.store.configOverrides(project: project, agent: id) { [weak self] a in
                guard let self, s.phase == .established, case .success(let pv) = p, case .success(let av) = a else { return }
                let merged = pv.merging(av) { $1 }
                let values = AgentConfigView.remotelySettable(merged)
                guard !values.isEmpty else { return }
                self.control.send(to: s, kind: .configUpdate, values: values, timeout: 30,
                                  audit: AuditContext(actor: "collector", action: "config.converge", target: id,
                                                      detail: values.map(\.key).joined(separator: ","))) { _ in }
            }
        }
    }

    // MARK: lookups for the API

    func session(forAgent id: String) -> AgentSession? { agents[id] }
    public var connectedAgents: Int { agents.count }

    /// Established agent sessions in `state`.
    public func count(_ state: CollectorStore.AgentState) -> Int { stateCounts[index(of: state)] }

    private func index(of state: CollectorStore.AgentState) -> Int {
        CollectorStore.AgentState.allCases.firstIndex(of: state)!
    }

    // MARK: shutdown

    /// Stops taking sessions; each one finishes its batches in flight, is
    /// acknowledged and closed. `done` runs once every connection is gone.
    public func shutdown(_ done: @escaping () -> Void) {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        drained = done
        control.cancelAll()
        for s in Array(sessions.values) { s.drain() }
        if open == 0, let d = drained {
            drained = nil
            loop.defer { d() }
        }
    }

    /// The shutdown bound passed: drop what is left.
    public func abortAll() {
        for s in Array(sessions.values) { s.abort() }
    }

    // MARK: logging, rate-limited

    private func logFailure(_ f: HandshakeFailure, peer: SocketAddress, project: String?) {
        switch f {
        case .peerClosed, .shuttingDown: return
        default: break
        }
        guard failureLog.allow(peer.ip, now: loop.now) else { return }
        Log.warn("handshake failed", ["reason": f.description, "source": peer.ip, "project": project ?? "-",
                                      "failures": "\(stats.totalHandshakeFailures)", "suppressed": "\(failureLog.suppressed)"])
    }

    func storeTrouble(_ what: String, _ e: StoreError) {
        guard troubleLog.allow(what, now: loop.now) else { return }
        Log.warn("store: \(what) failed", ["error": "\(e)", "suppressed": "\(troubleLog.suppressed)"])
    }

    private func stateWriteFailed(_ what: String, _ e: StoreError) {
        stats.stateWritesFailed &+= 1
        storeTrouble(what, e)
    }
}
