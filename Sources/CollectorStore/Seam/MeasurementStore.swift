// MeasurementStore: the seam between the collector and its storage.
//
// Every operation is asynchronous: it takes a completion and returns at
// once. Contract for every implementation (SQLiteStore now, a PostgreSQL
// backend over libpq's nonblocking API later):
//   - call on the loop thread; completions run on the loop thread, always on
//     a later loop iteration than the call (never before the call returns);
//   - a write's completion runs only after its transaction committed
//     durably — that is when the collector may acknowledge a batch;
//   - completions of writes run in submission order; a read submitted after
//     a write sees that write;
//   - failures arrive as `StoreError` values, never as traps or throws;
//   - every query's `limit` is clamped to 1...limits.maxQueryRows, and the
//     other `limits` hold as documented on StoreLimits;
//   - batch outcomes are counted once, in `stats` (StoreStats.countBatch);
//   - latencies are integer microseconds in and out.
// Sessions and the HTTP API depend on this protocol only; the conformance
// suite (Tests/CollectorStoreTests/Conformance) holds every backend to it.

public typealias StoreCompletion<T> = (Result<T, StoreError>) -> Void

public protocol MeasurementStore: AnyObject {
    // MARK: ingest (sessions)

    /// Stores a batch once: a batch whose (agent, boot, sequence) was stored
    /// before completes as `.duplicate` without writing anything. Never
    /// writes the change log.
    func submitBatch(_ batch: Batch, completion: @escaping StoreCompletion<BatchOutcome>)
    /// Registers (or updates) an agent at handshake and sets it `connecting`.
    func agentConnected(_ hello: AgentHello, completion: @escaping StoreCompletion<AgentRecord>)
    /// Sets an agent's state; history gets a row only when state or messages
    /// change. Completes with whether they changed.
    func setAgentState(agent: String, state: AgentState, messages: [String], at: Int64,
                       completion: @escaping StoreCompletion<Bool>)
    /// A Status from the agent: stores the snapshot (and makes it the latest)
    /// and sets the state as `setAgentState` does, in one write. Completes
    /// with whether state or messages changed.
    func recordAgentStatus(agent: String, state: AgentState, messages: [String], snapshot: StatusSnapshot,
                           completion: @escaping StoreCompletion<Bool>)
    /// Many agents' Statuses in one write (PostgreSQL: one statement),
    /// each stored as `recordAgentStatus` stores it; an agent the store no
    /// longer holds is skipped. Completes with, per status in order, whether
    /// state or messages changed (false for a skipped agent).
    func recordAgentStatuses(_ statuses: [AgentStatusWrite], completion: @escaping StoreCompletion<[Bool]>)
    /// Agent sessions that ended, in order: for each, its last Status if one
    /// was still waiting (stored as `recordAgentStatus` stores it), then
    /// `not_visible` at `at` — all in one write, so a mass close costs the
    /// loop one job per slice of sessions, not two per session. An agent the
    /// store no longer holds (forgotten meanwhile) is skipped. Completes with
    /// the number of agents written. `ends` is not empty.
    func recordSessionsEnded(_ ends: [AgentSessionEnd], completion: @escaping StoreCompletion<Int>)
    /// Collector start: every agent becomes `not_visible` (no session yet).
    /// Completes with the number of agents that changed.
    func markAllAgentsNotVisible(at: Int64, completion: @escaping StoreCompletion<Int>)

    // MARK: projects and keys
    // Every write below that changes rules, monitors, overrides, keys or an
    // agent's identity appends a change-log row in its own transaction.

    /// Creates the project if needed and stores a new key with `secret`.
    func createKey(project: String, secret: String, at: Int64, completion: @escaping StoreCompletion<KeyInfo>)
    func keys(project: String?, completion: @escaping StoreCompletion<[KeyInfo]>)
    /// Revoking a revoked key succeeds and keeps the first revocation time.
    func revokeKey(id: Int64, at: Int64, completion: @escaping StoreCompletion<KeyInfo>)
    /// The unrevoked secrets of a project, for a handshake; `.notFound` for
    /// an unknown project. Read at each handshake, so keys created or revoked
    /// by another process apply without a restart.
    func activeKeys(project: String, completion: @escaping StoreCompletion<ProjectKeys>)
    /// Every key of a project for a handshake: the active secrets, and the
    /// revoked ones in `revoked` so a session presenting a revoked key can
    /// be told so. `.notFound` for an unknown project.
    func handshakeKeys(project: String, completion: @escaping StoreCompletion<ProjectKeys>)
    /// Keys revoked at or after `since` (epoch ms), by anyone — this process
    /// or `keys revoke` in another: the collector closes their sessions.
    func keysRevoked(since: Int64, completion: @escaping StoreCompletion<[KeyInfo]>)
    func projects(completion: @escaping StoreCompletion<[ProjectInfo]>)

    // MARK: project configuration

    func patterns(project: String, completion: @escaping StoreCompletion<PatternSet>)
    /// Replaces the whole ordered list and bumps its version.
    func replacePatterns(project: String, patterns: [FilterPattern], at: Int64,
                         completion: @escaping StoreCompletion<PatternSet>)
    func monitorDefinitions(project: String, completion: @escaping StoreCompletion<MonitorDefinitions>)
    func replaceMonitorDefinitions(project: String, json: String, at: Int64,
                                   completion: @escaping StoreCompletion<MonitorDefinitions>)
    /// Overrides for a project (`agent` nil) or one agent of it.
    func configOverrides(project: String, agent: String?, completion: @escaping StoreCompletion<[String: String]>)
    /// Sets (value) or removes (nil) overrides; completes with the resulting set.
    func setConfigOverrides(project: String, agent: String?, values: [String: String?], at: Int64,
                            completion: @escaping StoreCompletion<[String: String]>)

    /// Forgets an agent: its registry row, state and status history and its
    /// own configuration overrides go; what it measured (measurements,
    /// events, monitor runs) stays until retention removes it, as for any
    /// agent, and so does its de-duplication state, so batches it re-sends
    /// should it come back are not stored twice. `.notFound` for an unknown agent.
    func forgetAgent(id: String, completion: @escaping StoreCompletion<Void>)

    // MARK: agent identity

    /// Binds `agent` to (project, static public key) if it is not bound yet
    /// (or was reset), in one write; otherwise compares without writing.
    /// Called once a handshake has completed, before anything else about
    /// the agent is written.
    func enrollAgent(id: String, projectId: Int64, publicKey: String, at: Int64, completion: @escaping StoreCompletion<Enrollment>)
    /// Forgets the agent's key (keeping its project): its next completed
    /// handshake enrolls whatever key it proves. `.notFound` for an id
    /// never enrolled.
    func resetAgentIdentity(id: String, completion: @escaping StoreCompletion<Void>)
    /// The enrolled public key (base64url), nil while reset; `.notFound`
    /// for an id never enrolled.
    func agentIdentity(id: String, completion: @escaping StoreCompletion<String?>)

    // MARK: change log (ChangeLog.swift)

    /// Written as the origin of every change-log row this store appends; a
    /// collector sets one of its own, so it can tell its own changes from
    /// those of other processes on the same database.
    var changeOrigin: String { get set }
    /// The highest seq in the change log; 0 while it is empty.
    func latestChange(completion: @escaping StoreCompletion<Int64>)
    /// Change-log rows with seq >= `from`, ascending, at most `limit`
    /// (clamped). One probe of the log's primary key.
    func changes(from: Int64, limit: Int, completion: @escaping StoreCompletion<[ChangeRecord]>)
    /// Deletes change-log rows written before `cutoff` (ms), except the
    /// newest row, in chunks of `ChangeLog.retentionChunk`; completes with
    /// how many went.
    func removeExpiredChanges(olderThan cutoff: Int64, completion: @escaping StoreCompletion<Int>)

    // MARK: audit

    func appendAudit(_ entry: AuditEntry, completion: @escaping StoreCompletion<Int64>)

    // MARK: alerts (docs/ALERTS.md)

    /// The rules of a project, or (nil) of every project, in id order.
    /// `.notFound` for an unknown project.
    func alertRules(project: String?, completion: @escaping StoreCompletion<[AlertRuleRecord]>)
    /// Stores a new rule (version 1). `.notFound` for an unknown project,
    /// `.invalid` when the project has a rule of that name.
    func createAlertRule(project: String, name: String, body: String, at: Int64,
                         completion: @escaping StoreCompletion<AlertRuleRecord>)
    /// Replaces a rule's name and document and bumps its version; its state
    /// and history stay. `.notFound` for an unknown project or rule.
    func updateAlertRule(project: String, id: Int64, name: String, body: String, at: Int64,
                         completion: @escaping StoreCompletion<AlertRuleRecord>)
    /// Removes a rule with its state, history and notification records.
    func deleteAlertRule(project: String, id: Int64, completion: @escaping StoreCompletion<Void>)
    /// The state of each rule that was evaluated (of a project, or all).
    func alertStates(project: String?, completion: @escaping StoreCompletion<[AlertStateRecord]>)
    /// Takes or renews the lease `name` for `holder` until `at + ttlMs` if it
    /// is free, expired or already the holder's; otherwise changes nothing.
    /// Completes with the lease as it now stands (check its holder). The
    /// epoch grows when the holder changes.
    func acquireAlertLease(name: String, holder: String, ttlMs: Int64, at: Int64,
                           completion: @escaping StoreCompletion<AlertLease>)
    /// Writes a rule's state, and a transition into its history when the
    /// state changed, in one write — only while `lease` (holder and epoch)
    /// is still the stored one: `.invalid("lease lost")` otherwise. A
    /// transition that is notified (AlertTransition.notifies) is written
    /// with one `pending` notification row per entry of `receivers` (the
    /// rule's receivers, redacted, in order) in the same write.
    /// Completes with the transition written (with its notification ids),
    /// or nil when the state stayed.
    func recordAlertState(_ state: AlertStateRecord, lease: AlertLease, receivers: [String],
                          completion: @escaping StoreCompletion<AlertTransition?>)
    /// Starts a delivery attempt of the `pending` rows among `ids`: counts
    /// the attempt on each and completes with their ids and attempts so far
    /// — only while `lease` is the stored one (`.invalid("lease lost")`
    /// otherwise), so a collector that lost the lease starts no delivery.
    /// Rows no longer pending are left out.
    func claimAlertNotifications(ids: [Int64], lease: AlertLease, at: Int64,
                                 completion: @escaping StoreCompletion<[Int64: Int64]>)
    /// Records the outcome of the `pending` rows among `ids`: `result`
    /// (`sent`, `failed`, `silenced`, `rate_limited`), or `pending` again
    /// with `due` (a retry's time). Not fenced: what happened is recorded
    /// by whoever saw it. Completes with the rows changed.
    func finishAlertNotifications(ids: [Int64], result: String, detail: String, at: Int64, due: Int64,
                                  completion: @escaping StoreCompletion<Int>)
    /// Pending notification rows due by `dueBy` (ms), oldest first, at
    /// most `limit` (clamped), with their transitions and rules.
    func pendingAlertNotifications(dueBy: Int64, limit: Int, completion: @escaping StoreCompletion<[AlertOutboxEntry]>)
    /// A rule's transitions, newest first, at most `limit` (clamped).
    func alertHistory(ruleId: Int64, limit: Int, completion: @escaping StoreCompletion<[AlertTransition]>)
    /// Stores a silence (its id is assigned). `.notFound` for an unknown project.
    func createAlertSilence(_ silence: AlertSilence, completion: @escaping StoreCompletion<AlertSilence>)
    /// A project's silences that end after `endingAfter` (ms), in id order.
    func alertSilences(project: String, endingAfter: Int64, completion: @escaping StoreCompletion<[AlertSilence]>)
    /// Ends a silence now (`ends` = `at` if later). `.notFound` for an unknown one.
    func endAlertSilence(project: String, id: Int64, at: Int64, completion: @escaping StoreCompletion<AlertSilence>)
    /// Records one notification as it is (its id is assigned).
    func appendAlertNotification(_ n: AlertNotification, completion: @escaping StoreCompletion<Int64>)
    /// A project's notification records, newest first, at most `limit`
    /// (clamped); `ruleId` narrows to one rule.
    func alertNotifications(project: String, ruleId: Int64?, limit: Int,
                            completion: @escaping StoreCompletion<[AlertNotification]>)

    // MARK: the collector's own health history

    /// Stores one sample of the collector's health (CollectorSample).
    func appendCollectorSample(_ sample: CollectorSample, completion: @escaping StoreCompletion<Void>)
    /// The samples in `since` <= ts < `until` in buckets of `stepMs` from
    /// `since` on, oldest first, empty buckets left out, at most `limit`
    /// (clamped). Gauges are a bucket's mean, counts its sum, latencies and
    /// pending rows its largest sample; `ts` is the bucket's start.
    /// `.invalid` unless stepMs > 0 and until > since.
    func collectorHistory(_ query: CollectorHistoryQuery, completion: @escaping StoreCompletion<[CollectorSample]>)
    /// Deletes samples older than `cutoff` (ms) in bounded chunks, as
    /// `removeExpired` does; completes with how many went.
    func removeExpiredCollectorSamples(olderThan cutoff: Int64, completion: @escaping StoreCompletion<Int>)

    // MARK: queries (HTTP API), newest first, bounded

    func measurements(_ query: MeasurementQuery, completion: @escaping StoreCompletion<[MeasurementRecord]>)
    func events(_ query: EventQuery, completion: @escaping StoreCompletion<[EventRecord]>)
    func monitorRuns(_ query: MonitorRunQuery, completion: @escaping StoreCompletion<[MonitorRunRecord]>)
    /// The latest run time (ms) per monitor name, for one agent of a
    /// project or (agent nil) any agent: the Schedule's last runs and the
    /// API's staleness.
    func lastMonitorRuns(project: String, agent: String?, completion: @escaping StoreCompletion<[String: Int64]>)
    /// Newest first, `since` <= ts < `until` (ms; nil: unbounded), only
    /// rows after `after` (the previous page's last row) when given.
    func statusHistory(agent: String, since: Int64?, until: Int64?, limit: Int, after: ListPosition?,
                       completion: @escaping StoreCompletion<[StatusRecord]>)
    func stateHistory(agent: String, since: Int64?, until: Int64?, limit: Int, after: ListPosition?,
                      completion: @escaping StoreCompletion<[StateChange]>)
    func audit(_ query: AuditQuery, completion: @escaping StoreCompletion<[AuditRecord]>)
    /// Agents (of a project) in ascending id order — a stable order, since an
    /// id never changes — only those with an id after `after` (the last id of
    /// the previous page: cursor paging), at most `limit` (nil: all).
    func agents(project: String?, after: String?, limit: Int?, completion: @escaping StoreCompletion<[AgentRecord]>)
    /// The same, narrowed: only agents in `state` (the stored state) and
    /// whose name or id contains `search` (case-insensitive for ASCII).
    func agents(project: String?, state: AgentState?, search: String?, after: String?, limit: Int?,
                completion: @escaping StoreCompletion<[AgentRecord]>)
    /// The same agents in name order — project name, then agent name, then
    /// id (names need not be unique) — those after `after` in that order
    /// (the last row of the previous page), at most `limit`. Backed by an
    /// index on (project, name, id), so a page costs its rows.
    func agentsByName(project: String?, state: AgentState?, search: String?, after: AgentNamePosition?, limit: Int?,
                      completion: @escaping StoreCompletion<[AgentRecord]>)
    /// How many agents (of a project, whose name or id contains `search`)
    /// are in each stored state; states without agents are left out.
    func agentStateCounts(project: String?, search: String?, completion: @escaping StoreCompletion<[AgentState: Int]>)
    /// `.notFound` for an unknown agent.
    func agent(id: String, completion: @escaping StoreCompletion<AgentRecord>)

    // MARK: retention and lifecycle

    /// The bounds this store enforces (query rows, read time, queued rows).
    var limits: StoreLimits { get }

    /// Deletes rows older than `cutoff` (ms) in bounded chunks, one
    /// transaction per chunk, spread over loop iterations.
    func removeExpired(olderThan cutoff: Int64, completion: @escaping StoreCompletion<RetentionReport>)
    /// Also removes, after the rows, every series that has no measurement
    /// left (`deleted["series"]`), so ended monitors and checks do not
    /// pile up for ever.
    ///
    /// Forgets agents last seen before `cutoff` (ms) that have no session
    /// (`not_visible`): the agent row, its state and status history, its own
    /// configuration overrides and its batch sequences, in bounded chunks.
    /// Its measurements stay until data retention removes them. Completes
    /// with the ids removed.
    func removeStaleAgents(notSeenSince cutoff: Int64, completion: @escaping StoreCompletion<[String]>)
    /// Counters and latency histograms for /metrics.
    var stats: StoreStats { get }
    /// Finishes every queued operation (their completions run), then closes.
    /// Later calls fail with `.closed`.
    func close(completion: @escaping () -> Void)
}

extension MeasurementStore {
    /// A rule's state without notification rows (a rule without receivers).
    public func recordAlertState(_ state: AlertStateRecord, lease: AlertLease, completion: @escaping StoreCompletion<AlertTransition?>) {
        recordAlertState(state, lease: lease, receivers: [], completion: completion)
    }

    /// The history from `since` on, without an upper bound.
    public func statusHistory(agent: String, since: Int64?, limit: Int, completion: @escaping StoreCompletion<[StatusRecord]>) {
        statusHistory(agent: agent, since: since, until: nil, limit: limit, after: nil, completion: completion)
    }

    public func stateHistory(agent: String, since: Int64?, limit: Int, completion: @escaping StoreCompletion<[StateChange]>) {
        stateHistory(agent: agent, since: since, until: nil, limit: limit, after: nil, completion: completion)
    }

    /// The first page of the history in a range.
    public func statusHistory(agent: String, since: Int64?, until: Int64?, limit: Int,
                              completion: @escaping StoreCompletion<[StatusRecord]>) {
        statusHistory(agent: agent, since: since, until: until, limit: limit, after: nil, completion: completion)
    }

    public func stateHistory(agent: String, since: Int64?, until: Int64?, limit: Int,
                             completion: @escaping StoreCompletion<[StateChange]>) {
        stateHistory(agent: agent, since: since, until: until, limit: limit, after: nil, completion: completion)
    }
}

extension MeasurementStore {
    /// Every agent (of a project), in ascending id order.
    public func agents(project: String?, completion: @escaping StoreCompletion<[AgentRecord]>) {
        agents(project: project, after: nil, limit: nil, completion: completion)
    }
}

/// Where a page of agents in name order ended: the last row's project
/// name, agent name and id.
public struct AgentNamePosition: Equatable, Sendable {
    public let project: String
    public let name: String
    public let id: String

    public init(project: String, name: String, id: String) {
        self.project = project
        self.name = name
        self.id = id
    }
}

/// One agent session that ended (`recordSessionsEnded`).
/// One agent's Status, for `recordAgentStatuses`.
public struct AgentStatusWrite: Sendable {
    public var agent: String
    public var state: AgentState
    public var messages: [String]
    public var snapshot: StatusSnapshot

    public init(agent: String, state: AgentState, messages: [String], snapshot: StatusSnapshot) {
        self.agent = agent
        self.state = state
        self.messages = messages
        self.snapshot = snapshot
    }
}

public struct AgentSessionEnd: Sendable {
    public var agent: String
    /// The session's last Status, not yet stored when it ended.
    public var status: (state: AgentState, messages: [String], snapshot: StatusSnapshot)?
    /// When it ended (epoch ms): the `not_visible` state's time.
    public var at: Int64

    public init(agent: String, status: (state: AgentState, messages: [String], snapshot: StatusSnapshot)? = nil, at: Int64) {
        self.agent = agent
        self.status = status
        self.at = at
    }
}

extension MeasurementStore {
    /// A backend without a one-write form: each end as the two writes it
    /// stands for, in order; completes once, after the last of them.
    public func recordSessionsEnded(_ ends: [AgentSessionEnd], completion: @escaping StoreCompletion<Int>) {
        precondition(!ends.isEmpty, "recordSessionsEnded needs at least one session")
        let last = ends.count - 1
        var written = 0
        var failure: StoreError?
        func settle(_ r: Result<Bool, StoreError>, _ final: Bool, _ i: Int) {
            switch r {
            case .success: if final { written += 1 }
            case .failure(.notFound): break
            case .failure(let e): failure = failure ?? e
            }
            guard final, i == last else { return }
            if let failure { completion(.failure(failure)) } else { completion(.success(written)) }
        }
        for (i, e) in ends.enumerated() {
            if let st = e.status {
                recordAgentStatus(agent: e.agent, state: st.state, messages: st.messages, snapshot: st.snapshot) { settle($0, false, i) }
            }
            setAgentState(agent: e.agent, state: .notVisible, messages: [], at: e.at) { settle($0, true, i) }
        }
    }
}
