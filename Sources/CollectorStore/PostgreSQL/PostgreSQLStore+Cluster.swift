// PostgreSQLStore as a ClusterStore: collectors sharing this database see
// each other (`collectors`), hold agents by lease (`agent_sessions`) and
// relay control requests to the holder (`control_commands` + NOTIFY).
//
// Every cluster write is one statement in a transaction of its own on the
// write connection — never inside a batch's (ingest) transaction, so a
// NOTIFY here cannot ride on, or wait for, an ingest commit's fate. The
// claim made at every handshake runs on the handshake lane instead, so it
// does not wait behind the ingest backlog either — and so do the release,
// the heartbeat (lease renewal) and a control request's owner lookup, which
// depend on no ingest write. A
// NOTIFY (pg_notify) is sent when its transaction commits, so the other
// side never reads a row before it exists.
//
// Collector ids: each run of a process has an instance token (host/pid/
// random). At start the id's row is taken only when no other live instance
// holds it (`registerCollector`, blocking, before the loop serves); a
// heartbeat writes the row only while it is this instance's (or the other
// instance's heartbeat is older than a lease), and otherwise reports who
// holds it, so two processes configured with one id do not pass for one.
//
// Ownership: a claim sets epoch = previous + 1 in one upsert, whoever held
// the agent — the newer epoch wins at once, without waiting for the old
// lease — and, when it took the agent from a collector, leaves that
// collector a row in `agent_sessions_taken` (agent, the epoch it held). A
// release sets the lease to 0 and the holder to '' (no one). The heartbeat
// sends no list of leases: it renews every lease whose holder is this
// collector id (`WHERE collector_id = $1`, only while the id's row is this
// instance's) and reports this collector's rows of `agent_sessions_taken`
// ("lost", oldest first, a bounded number), so what it encodes and parses
// does not grow with the sessions held. A row is deleted only when a later
// heartbeat acknowledges it (the collector sends back the sessions it
// handled from its previous answer): an answer lost with its connection
// after the commit loses nothing — the next beat reports the same rows.
// A new process of an id releases at start
// what an earlier process of that id left (`registerCollector`), so the
// renewal by id never keeps a lease alive for a session nobody has. The
// lease and heartbeat times are the server's clock (`clock_timestamp()`).
//
// Loop thread only, like the store.
internal import CPQ

extension PostgreSQLStore: ClusterStore {
    /// The server's clock in epoch milliseconds, in SQL.
    static let serverNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    public var isShared: Bool { true }

    public func registerCollector(_ p: CollectorPresence, leaseMs: Int64, replacing: String?) throws(StoreError) -> CollectorHolder? {
        let now = Self.serverNowMs
        return try Self.withBlockingConnection(options) { conn throws(StoreError) -> CollectorHolder? in
            // The row is taken when it is free ('': written before instances
            // existed), this instance's, a dead instance's, or its heartbeat
            // is older than a lease; otherwise it stays as it is.
            let taken = try Self.blockingRows(conn, """
                INSERT INTO collectors(id, started_ms, heartbeat_ms, listen, http_listen, sessions, lag_p99_us, version, instance)
                VALUES ($1, $2, \(now), $3, $4, 0, 0, $5, $6)
                ON CONFLICT (id) DO UPDATE SET started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms,
                    listen = excluded.listen, http_listen = excluded.http_listen, sessions = 0, lag_p99_us = 0,
                    version = excluded.version, instance = excluded.instance
                WHERE collectors.instance IN ('', excluded.instance, $7) OR collectors.heartbeat_ms <= \(now) - $8::bigint
                RETURNING id
                """, [p.id, PGText.int(p.startedMs), p.listen, p.httpListen, p.version, p.instance, replacing ?? "", PGText.int(leaseMs)])
            guard taken.isEmpty else {
                // A fresh process holds no sessions: what an earlier process
                // of this id held is released (its agents are unheld, and
                // `markUnheldAgentsNotVisible` finds them), and the sessions
                // taken from it are nobody's to close any more.
                _ = try Self.blockingRows(conn, """
                    UPDATE agent_sessions SET collector_id = '', lease_until_ms = 0 WHERE collector_id = $1
                    """, [p.id])
                _ = try Self.blockingRows(conn, "DELETE FROM agent_sessions_taken WHERE collector_id = $1", [p.id])
                return nil
            }
            let r = try Self.blockingRows(conn, """
                SELECT instance, listen, http_listen, \(now) - heartbeat_ms FROM collectors WHERE id = $1
                """, [p.id])
            guard let row = r.first else { throw .unavailable("collector '\(p.id)': its row went while starting") }
            return CollectorHolder(id: p.id, instance: row[0] ?? "", listen: row[1] ?? "", httpListen: row[2] ?? "",
                                   heartbeatAgeMs: Int64(row[3] ?? "") ?? 0)
        }
    }

    /// One statement with text parameters on a blocking connection; its rows as text.
    static func blockingRows(_ conn: OpaquePointer, _ sql: String, _ params: [String?]) throws(StoreError) -> [[String?]] {
        let r = withOptionalCStrings(params) { values in PQexecParams(conn, sql, Int32(params.count), nil, values, nil, nil, 0) }
        defer { PQclear(r) }
        let st = PQresultStatus(r)
        guard st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK else {
            throw .backend("PostgreSQL: \(String(cString: PQresultErrorMessage(r)).split(separator: "\n").joined(separator: " "))")
        }
        var rows: [[String?]] = []
        for i in 0..<PQntuples(r) {
            var row: [String?] = []
            for j in 0..<PQnfields(r) { row.append(PQgetisnull(r, i, j) == 0 ? String(cString: PQgetvalue(r, i, j)) : nil) }
            rows.append(row)
        }
        return rows
    }

    /// Sessions taken from this collector that one heartbeat reports at
    /// most (the rest at the next ones).
    static let lostPerHeartbeat = 2_000

    public func heartbeat(_ p: CollectorPresence, leaseMs: Int64, acknowledging handled: [SessionLease],
                          completion: @escaping (Result<HeartbeatAnswer, StoreError>) -> Void) {
        let now = Self.serverNowMs
        let acked = handled.prefix(Self.lostPerHeartbeat)
        let params: [String?] = [p.id, PGText.int(p.startedMs), p.listen, p.httpListen, String(p.sessions), PGText.int(p.lagP99Us),
                                 p.version, PGText.int(leaseMs), p.instance,
                                 PGText.array(acked.map(\.agent)), PGText.intArray(acked.map(\.epoch))]
        // rows: 0 — a heartbeat is never refused for a full ingest queue
        // (its leases would lapse under load); and on the handshake lane,
        // not behind the ingest backlog: after a failover the new holder's
        // write queue is deep with re-sent batches, and a renewal waiting
        // there let leases expire, so the agents it held showed unowned.
        enqueueWrite(rows: 0, lane: .handshake, { (tx: PGTransaction<HeartbeatAnswer>) in
            tx.query("""
                WITH me AS (
                    INSERT INTO collectors(id, started_ms, heartbeat_ms, listen, http_listen, sessions, lag_p99_us, version, instance)
                    VALUES ($1, $2, \(now), $3, $4, $5, $6, $7, $9)
                    ON CONFLICT (id) DO UPDATE SET started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms,
                        listen = excluded.listen, http_listen = excluded.http_listen, sessions = excluded.sessions,
                        lag_p99_us = excluded.lag_p99_us, version = excluded.version, instance = excluded.instance
                    WHERE collectors.instance IN (excluded.instance, '') OR collectors.heartbeat_ms <= \(now) - $8::bigint
                    RETURNING id),
                renewed AS (
                    UPDATE agent_sessions SET lease_until_ms = \(now) + $8::bigint
                    WHERE collector_id = $1 AND EXISTS (SELECT 1 FROM me)),
                acked AS (
                    SELECT * FROM unnest($10::text[], $11::bigint[]) AS a(agent_id, epoch)),
                handled AS (
                    DELETE FROM agent_sessions_taken t USING acked
                    WHERE t.collector_id = $1 AND t.agent_id = acked.agent_id AND t.epoch = acked.epoch
                        AND EXISTS (SELECT 1 FROM me)),
                lost AS (
                    SELECT agent_id, epoch, taken_ms FROM agent_sessions_taken t
                    WHERE collector_id = $1 AND EXISTS (SELECT 1 FROM me)
                        AND NOT EXISTS (SELECT 1 FROM acked WHERE acked.agent_id = t.agent_id AND acked.epoch = t.epoch)
                    ORDER BY taken_ms, agent_id, epoch LIMIT \(Self.lostPerHeartbeat)),
                forgotten AS (
                    DELETE FROM agent_sessions_taken WHERE ctid IN (
                        SELECT ctid FROM agent_sessions_taken WHERE taken_ms < \(now) - 3600000 ORDER BY taken_ms LIMIT 1000)),
                expired AS (
                    DELETE FROM control_commands WHERE id IN (
                        SELECT id FROM control_commands WHERE created_ms < \(now) - 3600000 ORDER BY created_ms LIMIT 1000)
                    RETURNING id)
                (SELECT 'lost', agent_id, epoch FROM lost ORDER BY taken_ms, agent_id, epoch)
                UNION ALL
                SELECT 'pending', NULL, count(*) FROM control_commands WHERE owner = $1 AND result IS NULL AND taken_ms IS NULL
                UNION ALL
                SELECT 'holder', instance || ' ' || listen || ' ' || http_listen, \(now) - heartbeat_ms FROM collectors
                WHERE id = $1 AND instance <> $9 AND instance <> '' AND heartbeat_ms > \(now) - $8::bigint
                """, params) { r in
                var lost: [SessionLease] = []
                var pending = 0
                var holder: CollectorHolder?
                for i in 0..<r.count {
                    if r.text(i, 0) == "lost", let a = r.text(i, 1), let e = r.int(i, 2) { lost.append(SessionLease(agent: a, epoch: e)) }
                    if r.text(i, 0) == "pending" { pending = Int(r.int(i, 2) ?? 0) }
                    if r.text(i, 0) == "holder" {
                        // Instance and addresses hold no spaces.
                        let f = (r.text(i, 1) ?? "").split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                        holder = CollectorHolder(id: p.id, instance: f.first ?? "", listen: f.count > 1 ? f[1] : "",
                                                 httpListen: f.count > 2 ? f[2] : "", heartbeatAgeMs: r.int(i, 2) ?? 0)
                    }
                }
                tx.done(HeartbeatAnswer(lost: lost, pendingCommands: pending, displacedBy: holder))
            }
        }, completion: completion)
    }

    public func claimAgent(_ agent: String, collector: String, leaseMs: Int64,
                           completion: @escaping (Result<Int64, StoreError>) -> Void) {
        let now = Self.serverNowMs
        // On the handshake lane: a claim is made at every handshake and must
        // not wait behind the ingest backlog (it depends on no other write).
        // The holder it replaces (prev_*, the row's values before this
        // update, also under a concurrent claim) learns it at its next
        // heartbeat through `agent_sessions_taken`.
        enqueueWrite(rows: 0, lane: .handshake, { (tx: PGTransaction<Int64>) in
            tx.query("""
                WITH c AS (
                    INSERT INTO agent_sessions(agent_id, collector_id, epoch, lease_until_ms, since_ms)
                    VALUES ($1, $2, 1, \(now) + $3::bigint, \(now))
                    ON CONFLICT (agent_id) DO UPDATE SET collector_id = excluded.collector_id, epoch = agent_sessions.epoch + 1,
                        lease_until_ms = excluded.lease_until_ms, since_ms = excluded.since_ms,
                        prev_collector_id = agent_sessions.collector_id, prev_epoch = agent_sessions.epoch
                    RETURNING agent_id, epoch, prev_collector_id, prev_epoch, since_ms),
                t AS (
                    INSERT INTO agent_sessions_taken(collector_id, agent_id, epoch, taken_ms)
                    SELECT prev_collector_id, agent_id, prev_epoch, since_ms FROM c WHERE prev_collector_id <> '')
                SELECT epoch FROM c
                """, [agent, collector, PGText.int(leaseMs)]) { r in tx.done(r.count > 0 ? (r.int(0, 0) ?? 0) : 0) }
        }, completion: completion)
    }

    public func releaseAgent(_ lease: SessionLease, collector: String, completion: @escaping (Result<Void, StoreError>) -> Void) {
        // On the claims' lane, in order with them.
        enqueueWrite(rows: 0, lane: .handshake, { (tx: PGTransaction<Void>) in
            tx.query("""
                UPDATE agent_sessions SET lease_until_ms = 0, collector_id = '' WHERE agent_id = $1 AND collector_id = $2 AND epoch = $3
                """, [lease.agent, collector, PGText.int(lease.epoch)]) { _ in tx.done(()) }
        }, completion: completion)
    }

    public func markUnheldAgentsNotVisible(at: Int64, completion: @escaping (Result<Int, StoreError>) -> Void) {
        let unheld = """
            NOT EXISTS (SELECT 1 FROM agent_sessions s WHERE s.agent_id = agents.id AND s.lease_until_ms > \(Self.serverNowMs))
            """
        enqueueWrite(rows: 1, { (tx: PGTransaction<Int>) in
            tx.query("""
                INSERT INTO agent_states(agent_id, ts_ms, state, messages)
                SELECT id, $1, 'not_visible', '' FROM agents WHERE state <> 'not_visible' AND \(unheld) ORDER BY id
                """, [PGText.int(at)]) { _ in
                tx.query("""
                    UPDATE agents SET state = 'not_visible', state_messages = '', state_since_ms = $1
                    WHERE state <> 'not_visible' AND \(unheld)
                    """, [PGText.int(at)]) { r in tx.done(r.affected) }
            }
        }, completion: completion)
    }

    public func reapExpiredLeases(completion: @escaping (Result<Int, StoreError>) -> Void) {
        let now = Self.serverNowMs
        enqueueWrite(rows: 0, { (tx: PGTransaction<Int>) in
            // lease_until 0: released or already handled. SKIP LOCKED: collectors
            // reaping at once take different rows.
            tx.query("""
                WITH gone AS (
                    UPDATE agent_sessions SET lease_until_ms = 0 WHERE agent_id IN (
                        SELECT agent_id FROM agent_sessions WHERE lease_until_ms > 0 AND lease_until_ms <= \(now)
                        ORDER BY lease_until_ms LIMIT 1000 FOR UPDATE SKIP LOCKED)
                    RETURNING agent_id),
                u AS (
                    UPDATE agents a SET state = 'not_visible', state_messages = '', state_since_ms = \(now)
                    FROM gone WHERE a.id = gone.agent_id AND a.state <> 'not_visible' RETURNING a.id),
                h AS (
                    INSERT INTO agent_states(agent_id, ts_ms, state, messages)
                    SELECT id, \(now), 'not_visible', '' FROM u RETURNING 1)
                SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM h)
                """) { r in tx.done(Int(r.int(0, 0) ?? 0)) }
        }, completion: completion)
    }

    public func agentOwners(_ agents: [String], completion: @escaping (Result<[String: AgentOwner], StoreError>) -> Void) {
        guard !agents.isEmpty else { return deliverLater(completion, .success([:])) }
        // On the handshake lane, where claims are written: a control request
        // does not wait behind this collector's ingest backlog to find an owner.
        enqueueRead(lane: .handshake, { (tx: PGTransaction<[String: AgentOwner]>) in
            tx.query("""
                SELECT agent_id, collector_id, epoch, lease_until_ms FROM agent_sessions
                WHERE agent_id = ANY($1::text[]) AND lease_until_ms > \(Self.serverNowMs)
                """, [PGText.array(agents)]) { r in
                var out: [String: AgentOwner] = [:]
                for i in 0..<r.count {
                    guard let a = r.text(i, 0), let c = r.text(i, 1) else { continue }
                    out[a] = AgentOwner(collector: c, epoch: r.int(i, 2) ?? 0, leaseUntilMs: r.int(i, 3) ?? 0)
                }
                tx.done(out)
            }
        }, completion: completion)
    }

    public func clusterMembers(completion: @escaping (Result<[ClusterMember], StoreError>) -> Void) {
        let now = Self.serverNowMs
        enqueueRead({ (tx: PGTransaction<[ClusterMember]>) in
            tx.query("""
                SELECT c.id, c.started_ms, c.heartbeat_ms, \(now) - c.heartbeat_ms, c.listen, c.http_listen, c.sessions,
                       c.lag_p99_us, c.version,
                       (SELECT count(*) FROM agent_sessions s WHERE s.collector_id = c.id AND s.lease_until_ms > \(now))
                FROM collectors c ORDER BY c.id
                """) { r in
                tx.done((0..<r.count).map { i in
                    let p = CollectorPresence(id: r.text(i, 0) ?? "", startedMs: r.int(i, 1) ?? 0, listen: r.text(i, 4) ?? "",
                                              httpListen: r.text(i, 5) ?? "", sessions: Int(r.int(i, 6) ?? 0),
                                              lagP99Us: r.int(i, 7) ?? 0, version: r.text(i, 8) ?? "")
                    return ClusterMember(presence: p, heartbeatMs: r.int(i, 2) ?? 0, heartbeatAgeMs: r.int(i, 3) ?? 0,
                                         leasesHeld: Int(r.int(i, 9) ?? 0))
                })
            }
        }, completion: completion)
    }

    public func submitControlCommand(_ c: ControlCommand, timeoutMs: Int64, completion: @escaping (Result<Int64, StoreError>) -> Void) {
        let now = Self.serverNowMs
        enqueueWrite(rows: 0, { (tx: PGTransaction<Int64>) in
            tx.query("""
                WITH c AS (
                    INSERT INTO control_commands(agent_id, owner, epoch, kind, payload, detail, requested_by, asker, created_ms, deadline_ms)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \(now), \(now) + $9::bigint)
                    RETURNING id, owner)
                SELECT id, pg_notify('vigil_control_' || owner, id::text) FROM c
                """, [c.agent, c.owner, PGText.int(c.epoch), c.kind, c.payload, c.detail, c.requestedBy, c.asker,
                      PGText.int(timeoutMs)]) { r in tx.done(r.count > 0 ? (r.int(0, 0) ?? 0) : 0) }
        }, completion: completion)
    }

    static let commandColumns = """
        id, agent_id, owner, epoch, kind, payload, detail, requested_by, asker, deadline_ms - \(serverNowMs), result, message, errors
        """

    static func commands(_ r: PGRows) -> [ControlCommand] {
        (0..<r.count).map { i in
            ControlCommand(id: r.int(i, 0) ?? 0, agent: r.text(i, 1) ?? "", owner: r.text(i, 2) ?? "", epoch: r.int(i, 3) ?? 0,
                           kind: r.text(i, 4) ?? "", payload: r.text(i, 5) ?? "", detail: r.text(i, 6) ?? "",
                           requestedBy: r.text(i, 7) ?? "", asker: r.text(i, 8) ?? "", remainingMs: r.int(i, 9) ?? 0,
                           result: r.text(i, 10), message: r.text(i, 11) ?? "", errors: r.text(i, 12) ?? "")
        }
    }

    public func takeControlCommands(owner: String, completion: @escaping (Result<[ControlCommand], StoreError>) -> Void) {
        enqueueWrite(rows: 0, { (tx: PGTransaction<[ControlCommand]>) in
            tx.query("""
                UPDATE control_commands SET taken_ms = \(Self.serverNowMs)
                WHERE id IN (SELECT id FROM control_commands WHERE owner = $1 AND result IS NULL AND taken_ms IS NULL
                             ORDER BY id LIMIT 256 FOR UPDATE SKIP LOCKED)
                RETURNING \(Self.commandColumns)
                """, [owner]) { r in tx.done(Self.commands(r).sorted { $0.id < $1.id }) }
        }, completion: completion)
    }

    public func finishControlCommand(id: Int64, result: String, message: String, errors: String, notifyAsker: Bool,
                                     completion: @escaping (Result<ControlCommand, StoreError>) -> Void) {
        let notify = notifyAsker ? "pg_notify('vigil_control_' || asker, id::text)" : "NULL"
        enqueueWrite(rows: 0, { (tx: PGTransaction<ControlCommand>) in
            tx.query("""
                WITH u AS (
                    UPDATE control_commands SET result = $2, message = $3, errors = $4, done_ms = \(Self.serverNowMs)
                    WHERE id = $1 AND result IS NULL RETURNING id, asker)
                SELECT \(notify) FROM u
                """, [PGText.int(id), result, message, errors]) { _ in
                tx.query("SELECT \(Self.commandColumns) FROM control_commands WHERE id = $1", [PGText.int(id)]) { r in
                    guard let c = Self.commands(r).first else { return tx.fail(.notFound("control command \(id)")) }
                    tx.done(c)
                }
            }
        }, completion: completion)
    }

    public func controlCommand(id: Int64, completion: @escaping (Result<ControlCommand, StoreError>) -> Void) {
        enqueueRead({ (tx: PGTransaction<ControlCommand>) in
            tx.query("SELECT \(Self.commandColumns) FROM control_commands WHERE id = $1", [PGText.int(id)]) { r in
                guard let c = Self.commands(r).first else { return tx.fail(.notFound("control command \(id)")) }
                tx.done(c)
            }
        }, completion: completion)
    }

    public func listenControl(collector: String, notified: @escaping (String) -> Void,
                              listening: @escaping () -> Void) -> ControlListening? {
        PGListener(loop: loop, options: options, channel: ClusterNames.channel(collector), notified: notified, listening: listening)
    }
}
