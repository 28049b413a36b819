// AlertEvaluator: evaluates every enabled rule on the collector's loop, on
// a schedule, in bounded slices, from the store.
//
// Every `interval` a round starts (a TimerWatcher): the evaluator takes or
// renews the store's evaluation lease (`alerts`, holder = this collector's
// id, for three intervals); while another collector holds it, this one
// stands by and evaluates nothing. Holding it, it reads the rules and their
// states, then evaluates at most `slice` rules at a time — each reading
// its rows from the store asynchronously — and starts the next slice on a
// later loop iteration once the slice is done, so a thousand rules never
// make one long loop turn. A round still running when the timer fires
// again is not doubled (counted as an overrun).
//
// A rule's new state is written with the lease (holder, epoch) it was
// computed under; the store refuses the write once the lease moved on, so
// after a failover only the new holder writes transitions. A notified
// transition is written with its notification rows (`pending`, one per
// receiver: the outbox) and handed to the notifier by the collector that
// wrote it; each round holding the lease also tells the notifier so, and it
// delivers what is pending in the store — what a predecessor that died
// left undelivered. On SQLite one collector uses the database and
// trivially holds the lease.
//
// Thread: the loop thread. Store completions arrive there too.
import CollectorStore
import JSON
import MonitorModel
import Reactor

/// Where transitions go once they are stored (the notifier).
public protocol AlertTransitionSink: AnyObject {
    func alertChanged(rule: AlertRuleRecord, document: AlertRule, transition: AlertTransition)
    /// A round holds `lease`, or (nil) this collector does not hold it.
    func alertLease(_ lease: AlertLease?)
}

extension AlertTransitionSink {
    public func alertLease(_ lease: AlertLease?) {}
}

public struct AlertEvaluatorSettings: Sendable {
    /// Seconds between rounds.
    public var interval: Double
    /// Rules evaluated at a time (one slice per loop iteration at most).
    public var slice: Int
    /// This collector's id, as the lease names its holder.
    public var holder: String
    public var leaseName = "alerts"
    /// Agents one `agent_drops` rule without an `agent` reads the status of.
    public var maxAgentsPerRule = 100

    public init(interval: Double, slice: Int, holder: String) {
        self.interval = interval; self.slice = slice; self.holder = holder
    }
}

public final class AlertEvaluator {
    public struct Stats: Sendable {
        public var rounds: UInt64 = 0
        /// Rounds in which another collector held the lease.
        public var standby: UInt64 = 0
        public var evaluations: UInt64 = 0
        /// Evaluations whose reads or write failed (the rule keeps its state).
        public var failures: UInt64 = 0
        public var transitions: UInt64 = 0
        /// Timer ticks that found the previous round still running.
        public var overruns: UInt64 = 0
        /// State writes refused because the lease had moved on.
        public var leaseLost: UInt64 = 0
        /// The last round's length (µs).
        public var lastRoundMicros: UInt64 = 0
        public init() {}
    }

    public private(set) var stats = Stats()
    /// Whether this collector held the lease at its last round.
    public private(set) var holdsLease = false

    private let loop: EventLoop
    private let store: MeasurementStore
    public var settings: AlertEvaluatorSettings
    public weak var sink: AlertTransitionSink?
    private var timer: TimerWatcher?
    private var running = false
    private var lease: AlertLease?
    private var queue: [(AlertRuleRecord, AlertRule)] = []
    private var states: [Int64: AlertStateRecord] = [:]
    private var next = 0
    private var inFlight = 0
    private var roundStarted: UInt64 = 0
    private var roundAborted = false

    public init(loop: EventLoop, store: MeasurementStore, settings: AlertEvaluatorSettings) {
        self.loop = loop
        self.store = store
        self.settings = settings
    }

    /// Rounds every `settings.interval` from now on (restarts the timer).
    public func start() {
        timer?.stop()
        let t = TimerWatcher(loop: loop) { [weak self] _ in self?.round() }
        t.start(after: settings.interval, repeat: settings.interval)
        timer = t
    }

    public func stop() {
        timer?.stop()
        timer = nil
    }

    /// One round now (the timer calls it; tests may too).
    public func round() {
        guard !running else { stats.overruns &+= 1; return }
        running = true
        roundAborted = false
        roundStarted = Clock.monotonicNanos()
        let ttl = max(100, Int64(settings.interval * 3 * 1000))
        store.acquireAlertLease(name: settings.leaseName, holder: settings.holder, ttlMs: ttl, at: Clock.wallMillis()) { [weak self] r in
            guard let self else { return }
            switch r {
            case .failure(let e):
                Log.warn("alerts: cannot take the evaluation lease", ["error": "\(e)"])
                self.endRound()
            case .success(let l) where l.holder != self.settings.holder:
                if self.holdsLease { Log.info("alerts: another collector evaluates", ["holder": l.holder, "epoch": "\(l.epoch)"]) }
                self.holdsLease = false
                self.lease = nil
                self.stats.standby &+= 1
                self.sink?.alertLease(nil)
                self.endRound()
            case .success(let l):
                if !self.holdsLease || self.lease?.epoch != l.epoch {
                    Log.info("alerts: evaluating", ["holder": l.holder, "epoch": "\(l.epoch)"])
                }
                self.holdsLease = true
                self.lease = l
                self.sink?.alertLease(l)
                self.loadRules()
            }
        }
    }

    private func loadRules() {
        store.alertRules(project: nil) { [weak self] rules in
            guard let self else { return }
            guard case .success(let list) = rules else {
                Log.warn("alerts: cannot read the rules", ["error": "\(rules)"])
                return self.endRound()
            }
            self.store.alertStates(project: nil) { [weak self] states in
                guard let self else { return }
                guard case .success(let all) = states else {
                    Log.warn("alerts: cannot read the rules' states", ["error": "\(states)"])
                    return self.endRound()
                }
                self.states = [:]
                for s in all { self.states[s.ruleId] = s }
                self.queue = list.compactMap { rec in
                    guard let doc = AlertRuleDocument.decode(rec.body), doc.enabled else { return nil }
                    return (rec, doc)
                }
                self.next = 0
                self.runSlice()
            }
        }
    }

    private func runSlice() {
        guard !roundAborted, next < queue.count else { return endRound() }
        let end = min(next + max(1, settings.slice), queue.count)
        let slice = queue[next..<end]
        next = end
        inFlight = slice.count
        for (rec, doc) in slice {
            evaluate(rec, doc) { [weak self] in
                guard let self else { return }
                self.inFlight -= 1
                if self.inFlight == 0 { self.loop.defer { [weak self] in self?.runSlice() } }
            }
        }
    }

    private func endRound() {
        stats.rounds &+= 1
        if roundStarted > 0 { stats.lastRoundMicros = (Clock.monotonicNanos() &- roundStarted) / 1000 }
        queue = []
        running = false
    }

    // MARK: one rule

    private func evaluate(_ rec: AlertRuleRecord, _ doc: AlertRule, done: @escaping () -> Void) {
        let now = Clock.wallMillis()
        observe(rec, doc, now: now) { [weak self] result in
            guard let self else { return done() }
            self.stats.evaluations &+= 1
            guard case .success(let o) = result, let lease = self.lease else {
                self.stats.failures &+= 1
                if case .failure(let e) = result { Log.debug("alerts: a rule was not evaluated", ["rule": "\(rec.id)", "error": "\(e)"]) }
                return done()
            }
            let current = self.states[rec.id]
            let was = current.flatMap { AlertStateName(rawValue: $0.state) } ?? .ok
            let (state, since) = AlertStateMachine.next(state: was, since: current?.since ?? now, observation: o,
                                                        forMs: doc.forSecs * 1000, now: now)
            let record = AlertStateRecord(ruleId: rec.id, state: state.rawValue, since: since, evaluated: now, value: o.value, detail: o.detail)
            self.store.recordAlertState(record, lease: lease, receivers: doc.receivers.map(\.redacted)) { [weak self] written in
                guard let self else { return done() }
                switch written {
                case .failure(.invalid(let why)) where why.hasPrefix("lease lost"):
                    self.stats.leaseLost &+= 1
                    self.holdsLease = false
                    self.lease = nil
                    self.roundAborted = true
                    self.sink?.alertLease(nil)
                    Log.warn("alerts: the evaluation lease moved on; standing by", ["rule": "\(rec.id)"])
                case .failure(let e):
                    self.stats.failures &+= 1
                    Log.debug("alerts: a rule's state was not stored", ["rule": "\(rec.id)", "error": "\(e)"])
                case .success(let transition):
                    self.states[rec.id] = record
                    if let transition {
                        self.stats.transitions &+= 1
                        Log.info("alert \(transition.to)", ["project": rec.project, "rule": rec.name, "from": transition.from,
                                                            "detail": transition.detail])
                        self.sink?.alertChanged(rule: rec, document: doc, transition: transition)
                    }
                }
                done()
            }
        }
    }

    /// Reads what the rule's condition needs and says what it sees.
    private func observe(_ rec: AlertRuleRecord, _ doc: AlertRule, now: Int64,
                         _ completion: @escaping (Result<AlertObservation, StoreError>) -> Void) {
        let rows = store.limits.maxQueryRows
        switch doc.condition {
        case .measurement(let monitor, let check, let source, let agent, let statistic, let window, let above, let threshold, let resolve):
            let q = MeasurementQuery(project: rec.project, agent: agent, monitor: monitor, check: check, source: source,
                                     since: now - window * 1000, limit: rows)
            store.measurements(q) { r in
                completion(r.map { list in
                    AlertConditions.measurement(list.map(\.measurement), statistic: statistic, above: above, threshold: threshold,
                                                resolve: resolve, label: monitor + (check.map { "/" + $0 } ?? ""))
                })
            }
        case .monitorFailing(let monitor, let runs):
            let q = MonitorRunQuery(project: rec.project, monitor: String(MonitorID.numeric(monitor)), limit: min(rows, runs * 64))
            store.monitorRuns(q) { r in
                completion(r.map { AlertConditions.monitorFailing($0.map(\.run), runs: runs, monitor: monitor) })
            }
        case .agentState(let agent, let state, let longer):
            let finish: (Result<[AgentRecord], StoreError>) -> Void = { r in
                completion(r.map { list in
                    AlertConditions.agentState(list.filter { $0.project == rec.project && $0.mode == AgentRecord.agentMode },
                                               state: state, longerThanMs: longer * 1000, now: now)
                })
            }
            if let agent {
                store.agent(id: agent) { r in
                    switch r {
                    case .failure(.notFound): finish(.success([]))
                    default: finish(r.map { [$0] })
                    }
                }
            } else {
                store.agents(project: rec.project, state: AgentState(rawValue: state), search: nil, after: nil, limit: rows, completion: finish)
            }
        case .agentDrops(let agent, let perSecond, let window):
            let since = now - window * 1000
            let read: ([String]) -> Void = { [weak self] ids in
                self?.statusHistories(ids, since: since, into: []) { r in
                    completion(r.map { AlertConditions.agentDrops($0, perSecond: perSecond) })
                }
            }
            if let agent { return read([agent]) }
            store.agents(project: rec.project, after: nil, limit: settings.maxAgentsPerRule) { r in
                switch r {
                case .failure(let e): completion(.failure(e))
                case .success(let list): read(list.filter { $0.mode == AgentRecord.agentMode }.map(\.id))
                }
            }
        case .collectorHealth(let metric, let window, let threshold, let resolve):
            let q = CollectorHistoryQuery(since: now - window * 1000, until: now + 1, stepMs: window * 1000, limit: 4)
            store.collectorHistory(q) { r in
                completion(r.map { AlertConditions.collectorHealth($0, metric: metric, threshold: threshold, resolve: resolve) })
            }
        }
    }

    /// Each agent's statuses since `since`, one read after another (a rule
    /// reads at most `maxAgentsPerRule` agents).
    private func statusHistories(_ ids: [String], since: Int64, into acc: [(agent: String, statuses: [StatusRecord])],
                                 _ completion: @escaping (Result<[(agent: String, statuses: [StatusRecord])], StoreError>) -> Void) {
        guard let id = ids.first else { return completion(.success(acc)) }
        store.statusHistory(agent: id, since: since, limit: store.limits.maxQueryRows) { [weak self] r in
            guard let self else { return }
            switch r {
            case .failure(.notFound): self.statusHistories(Array(ids.dropFirst()), since: since, into: acc, completion)
            case .failure(let e): completion(.failure(e))
            case .success(let list): self.statusHistories(Array(ids.dropFirst()), since: since, into: acc + [(id, list)], completion)
            }
        }
    }
}
