// ClusterStore: what collectors sharing one database need of it to work as
// a cluster (docs/COLLECTOR.md, "Cluster") — who is alive (the `collectors`
// table and its heartbeats), who holds each agent's session (the
// `agent_sessions` table: collector, epoch, lease), and control requests
// handed from the collector that was asked to the one that holds the agent
// (the `control_commands` table, with a NOTIFY to each side).
//
// PostgreSQLStore implements it for real. SQLiteStore is one collector's
// database: it answers as a cluster of one (its own heartbeat remembered
// in memory, nobody else ever owning an agent, no commands to relay).
//
// Times that decide who owns what (leases, heartbeats, deadlines) are the
// database server's clock, so collectors with skewed clocks still agree.
//
// Same contract as MeasurementStore: loop thread, completions on a later
// iteration, never from an ingest transaction.

/// A collector's heartbeat: what `cluster status` shows of it.
public struct CollectorPresence: Equatable, Sendable {
    public var id: String
    /// When the process started (epoch ms, its own clock).
    public var startedMs: Int64
    /// The agent session and HTTP API addresses.
    public var listen: String
    public var httpListen: String
    /// Established agent sessions.
    public var sessions: Int
    /// The loop's lag, 99th percentile (µs).
    public var lagP99Us: Int64
    public var version: String
    /// This run of the process (`host/pid/random`, new at every start): two
    /// processes configured with one collector id are told apart by it.
    public var instance: String

    public init(id: String, startedMs: Int64, listen: String, httpListen: String, sessions: Int, lagP99Us: Int64, version: String,
                instance: String = "") {
        self.id = id
        self.instance = instance
        self.startedMs = startedMs
        self.listen = listen
        self.httpListen = httpListen
        self.sessions = sessions
        self.lagP99Us = lagP99Us
        self.version = version
    }
}

/// A collector as the cluster sees it.
public struct ClusterMember: Equatable, Sendable {
    public var presence: CollectorPresence
    /// The last heartbeat (epoch ms, the database's clock) and its age then.
    public var heartbeatMs: Int64
    public var heartbeatAgeMs: Int64
    /// Agents whose lease it holds now.
    public var leasesHeld: Int

    public init(presence: CollectorPresence, heartbeatMs: Int64, heartbeatAgeMs: Int64, leasesHeld: Int) {
        self.presence = presence
        self.heartbeatMs = heartbeatMs
        self.heartbeatAgeMs = heartbeatAgeMs
        self.leasesHeld = leasesHeld
    }
}

/// One session this collector holds: the agent and the epoch its claim got.
public struct SessionLease: Hashable, Sendable {
    public var agent: String
    public var epoch: Int64

    public init(agent: String, epoch: Int64) {
        self.agent = agent
        self.epoch = epoch
    }
}

/// Who holds an agent while its lease runs.
public struct AgentOwner: Equatable, Sendable {
    public var collector: String
    public var epoch: Int64
    public var leaseUntilMs: Int64

    public init(collector: String, epoch: Int64, leaseUntilMs: Int64) {
        self.collector = collector
        self.epoch = epoch
        self.leaseUntilMs = leaseUntilMs
    }
}

/// The process that holds a collector id's row: another instance when a
/// start is refused or a heartbeat finds the row taken.
public struct CollectorHolder: Equatable, Sendable {
    public var id: String
    public var instance: String
    public var listen: String
    public var httpListen: String
    /// Age of its last heartbeat (ms, the database's clock).
    public var heartbeatAgeMs: Int64

    public init(id: String, instance: String, listen: String, httpListen: String, heartbeatAgeMs: Int64) {
        self.id = id
        self.instance = instance
        self.listen = listen
        self.httpListen = httpListen
        self.heartbeatAgeMs = heartbeatAgeMs
    }
}

/// What a heartbeat learnt.
public struct HeartbeatAnswer: Equatable, Sendable {
    /// Sessions of this collector whose agent another claim took (a newer
    /// epoch), with the epoch this collector held: to close. Each is
    /// reported again by every heartbeat until one acknowledges it, so
    /// handling one must be idempotent.
    public var lost: [SessionLease]
    /// Control commands for this collector not taken yet (a NOTIFY missed).
    public var pendingCommands: Int
    /// Another instance holds this collector id's row (the heartbeat left
    /// the row alone); nil while the row is this instance's.
    public var displacedBy: CollectorHolder?

    public init(lost: [SessionLease], pendingCommands: Int, displacedBy: CollectorHolder? = nil) {
        self.lost = lost
        self.pendingCommands = pendingCommands
        self.displacedBy = displacedBy
    }
}

/// A control request relayed through the database to the agent's owner.
public struct ControlCommand: Equatable, Sendable {
    public var id: Int64
    public var agent: String
    /// The collector that holds the agent, and the epoch it held it with.
    public var owner: String
    public var epoch: Int64
    /// `capture_start`, `capture_stop`, `config_update`.
    public var kind: String
    /// The request's values, encoded by the collector (JSON).
    public var payload: String
    /// The audit row's detail, as the asking collector formed it.
    public var detail: String
    /// The audit actor, and the collector that was asked.
    public var requestedBy: String
    public var asker: String
    /// Milliseconds left until the deadline when read (≤ 0: expired).
    public var remainingMs: Int64
    /// nil until answered: `ok`, `rejected`, `timeout`, `disconnected`, `shutting_down`.
    public var result: String?
    public var message: String
    /// Per-key errors of a rejection, encoded by the collector (JSON).
    public var errors: String

    public init(id: Int64 = 0, agent: String, owner: String, epoch: Int64, kind: String, payload: String, detail: String,
                requestedBy: String, asker: String, remainingMs: Int64, result: String? = nil, message: String = "", errors: String = "") {
        self.id = id
        self.agent = agent
        self.owner = owner
        self.epoch = epoch
        self.kind = kind
        self.payload = payload
        self.detail = detail
        self.requestedBy = requestedBy
        self.asker = asker
        self.remainingMs = remainingMs
        self.result = result
        self.message = message
        self.errors = errors
    }
}

/// A LISTEN kept open for a collector; `close()` ends it.
public protocol ControlListening: AnyObject {
    /// Whether the LISTEN is in place now.
    var isListening: Bool { get }
    /// Reconnections after a lost connection.
    var reconnects: UInt64 { get }
    func close()
}

public protocol ClusterStore: AnyObject {
    /// Whether other collectors can share this database (false: SQLite).
    var isShared: Bool { get }
    /// Collector start, blocking (before the loop serves): takes the row of
    /// `presence.id` for `presence.instance` unless another instance holds
    /// it with a heartbeat younger than `leaseMs` — then leaves it and
    /// returns that holder. `replacing`: an instance known to be dead (its
    /// process is gone from this host), taken over whatever its heartbeat.
    /// A row taken releases every lease an earlier process of this id left
    /// (a fresh process holds no sessions).
    func registerCollector(_ presence: CollectorPresence, leaseMs: Int64, replacing: String?) throws(StoreError) -> CollectorHolder?
    /// Upserts the collector's row (heartbeat now) — unless another
    /// instance holds it (`HeartbeatAnswer.displacedBy`): then nothing else
    /// is done — and, in one statement, renews to now + `leaseMs` every
    /// lease this collector id holds (claimed and not released: no list is
    /// sent, so a beat costs the caller the same at any number of
    /// sessions), forgets the taken sessions in `handled` (what the caller
    /// handled from its previous answer's `lost`, at most as many as one
    /// answer holds), reports the sessions other claims took from it and not
    /// acknowledged yet (`lost`, oldest first, a bounded number a beat — an
    /// answer that never arrived is reported again by the next heartbeat)
    /// and deletes relayed commands older than an hour (a bounded number).
    func heartbeat(_ presence: CollectorPresence, leaseMs: Int64, acknowledging handled: [SessionLease],
                   completion: @escaping (Result<HeartbeatAnswer, StoreError>) -> Void)
    /// The collector took the agent's session: epoch = previous + 1, lease
    /// now + `leaseMs`, at once whoever held it; the collector that held it
    /// finds it in its next heartbeat's `lost`. Completes with the epoch.
    func claimAgent(_ agent: String, collector: String, leaseMs: Int64,
                    completion: @escaping (Result<Int64, StoreError>) -> Void)
    /// The session ended: its lease ends now and belongs to no one (no
    /// heartbeat renews it) unless a newer claim took it.
    func releaseAgent(_ lease: SessionLease, collector: String, completion: @escaping (Result<Void, StoreError>) -> Void)
    /// Collector start: every agent no collector holds (no running lease)
    /// becomes `not_visible`, as `markAllAgentsNotVisible` does for all —
    /// the agents other collectors hold keep their state. Completes with
    /// the number changed.
    func markUnheldAgentsNotVisible(at: Int64, completion: @escaping (Result<Int, StoreError>) -> Void)
    /// Agents whose lease expired without a release (their collector died or
    /// was cut off) become `not_visible` and their lease is marked handled;
    /// at most 1,000 a call. Completes with how many were handled.
    func reapExpiredLeases(completion: @escaping (Result<Int, StoreError>) -> Void)
    /// The live owners (lease not expired) of the agents among `agents`.
    func agentOwners(_ agents: [String], completion: @escaping (Result<[String: AgentOwner], StoreError>) -> Void)
    /// Every collector that ever heartbeated, in id order.
    func clusterMembers(completion: @escaping (Result<[ClusterMember], StoreError>) -> Void)
    /// Stores `command` (deadline now + `timeoutMs`) and notifies its owner
    /// (`vigil_control_<owner>`, payload: the id) when it commits.
    /// Completes with the id.
    func submitControlCommand(_ command: ControlCommand, timeoutMs: Int64,
                              completion: @escaping (Result<Int64, StoreError>) -> Void)
    /// Marks taken and returns the commands for `owner` nobody took yet
    /// (oldest first, at most 256).
    func takeControlCommands(owner: String, completion: @escaping (Result<[ControlCommand], StoreError>) -> Void)
    /// Records the command's outcome unless it has one; with `notifyAsker`,
    /// tells the asker (`vigil_control_<asker>`) when it commits.
    /// Completes with the command as stored afterwards (the first outcome wins).
    func finishControlCommand(id: Int64, result: String, message: String, errors: String, notifyAsker: Bool,
                              completion: @escaping (Result<ControlCommand, StoreError>) -> Void)
    /// A command as stored; `.notFound` for an unknown id.
    func controlCommand(id: Int64, completion: @escaping (Result<ControlCommand, StoreError>) -> Void)
    /// Keeps a LISTEN on `vigil_control_<collector>` on a connection of its
    /// own: `notified` with each payload; `listening` each time the LISTEN
    /// is (again) in place, so the caller can look for what it missed.
    /// Lost connections come back with backoff. nil when not shared.
    func listenControl(collector: String, notified: @escaping (String) -> Void,
                       listening: @escaping () -> Void) -> ControlListening?
}

extension ClusterStore {
    /// A database of one collector has nobody to share an id with.
    public func registerCollector(_ presence: CollectorPresence, leaseMs: Int64, replacing: String?) throws(StoreError) -> CollectorHolder? {
        nil
    }
}

public enum ClusterNames {
    /// The NOTIFY channel of a collector (a quoted identifier).
    public static func channel(_ collector: String) -> String { "vigil_control_" + collector }

    /// Collector ids: 1 to 48 of A-Z a-z 0-9 . _ - (a channel name stays
    /// within PostgreSQL's 63 bytes).
    public static func isValidCollectorID(_ id: String) -> Bool {
        let u = Array(id.utf8)
        guard (1...48).contains(u.count) else { return false }
        return u.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }

    /// `text` made into a collector id: other characters become `-`, cut to 48.
    public static func collectorID(from text: String) -> String {
        var out = ""
        for ch in text.unicodeScalars {
            let ok = ch.isASCII && (ch.properties.isAlphabetic || ("0"..."9").contains(ch) || ch == "." || ch == "_" || ch == "-")
            out.unicodeScalars.append(ok ? ch : "-")
        }
        let cut = String(out.prefix(48))
        return cut.isEmpty ? "collector" : cut
    }
}
