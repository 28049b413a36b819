// PostgreSQLStore, queries for the HTTP API: newest first (ties by id, the
// insertion order), filters as present, `limit` clamped to
// 1...limits.maxQueryRows. Single-series and agent queries use the
// (series_id, ts_ms, id) and (agent_id, ts_ms, id) indexes; broad ones the
// (ts_ms, id) ones. Loop thread; each method queues one read.
//
// Two things keep a page's plan right whatever the statistics say
// (docs/PERFORMANCE.md, "Deep pages of measurements"): a cursor also bounds
// the time column alone, so the measurement partitions newer than it are
// pruned when the statement is planned; and a project's measurements are
// asked for by the project's id, looked up first, so the planner estimates
// the project's share of the series from `series`' statistics instead of
// guessing from a `projects` table that autovacuum never analyzes (it has
// fewer rows than autovacuum's threshold of 50 changes).

/// A WHERE clause with numbered parameters ($1 …), built from the filters present.
struct PGFilter {
    var clauses: [String] = []
    var values: [String?] = []

    mutating func param(_ v: String?) -> String {
        values.append(v)
        return "$\(values.count)"
    }

    mutating func add(_ column: String, _ value: String?) { add(column, "=", value) }

    mutating func add(_ column: String, _ op: String, _ value: String?) {
        guard let value else { return }
        clauses.append("\(column) \(op) \(param(value))")
    }

    mutating func add(_ column: String, _ op: String, _ value: Int64?) {
        guard let value else { return }
        clauses.append("\(column) \(op) \(param(String(value)))")
    }

    /// Rows after `p` in newest-first (ts, id) order. The row comparison
    /// alone is what selects the rows; `ts <= p.ts` beside it is implied by
    /// it and lets the planner prune partitions newer than the cursor (it
    /// cannot from a row comparison).
    mutating func add(after p: ListPosition?, ts: String, id: String) {
        guard let p else { return }
        let t = param(String(p.ts))
        clauses.append("\(ts) <= \(t)")
        clauses.append("(\(ts), \(id)) < (\(t), \(param(String(p.id))))")
    }

    var sql: String { clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ") }
}

extension PostgreSQLStore {
    private func select<R>(_ sql: String, _ f: PGFilter, limit: Int, completion: @escaping StoreCompletion<[R]>,
                           _ row: @escaping (PGRows, Int) -> R) {
        var f = f
        let full = sql + f.sql + " LIMIT " + f.param(String(limits.clamp(limit)))
        let values = f.values
        enqueueRead({ (tx: PGTransaction<[R]>) in
            tx.query(full, values) { r in tx.done((0..<r.count).map { row(r, $0) }) }
        }, completion: completion)
    }

    public func measurements(_ q: MeasurementQuery, completion: @escaping StoreCompletion<[MeasurementRecord]>) {
        let limit = limits.clamp(q.limit)
        enqueueRead({ (tx: PGTransaction<[MeasurementRecord]>) in
            func page(projectId: Int64?) {
                let (sql, values) = Self.measurementsSQL(q, projectId: projectId, limit: limit)
                tx.query(sql, values) { r in tx.done((0..<r.count).map { Self.measurementRecord(r, $0) }) }
            }
            guard let project = q.project else { return page(projectId: nil) }
            tx.query("SELECT id FROM projects WHERE name = $1", [project]) { r in
                guard r.count > 0, let id = r.int(0, 0) else { return tx.done([]) }
                page(projectId: id)
            }
        }, completion: completion)
    }

    /// The measurements page as sent: `q`'s filters, its project as
    /// `projectId` (the caller looked the name up), `limit` already clamped.
    static func measurementsSQL(_ q: MeasurementQuery, projectId: Int64?, limit: Int) -> (String, [String?]) {
        var f = PGFilter()
        f.add("s.project_id", "=", projectId); f.add("s.agent_id", q.agent); f.add("s.monitor", q.monitor)
        f.add("s.check_name", q.check); f.add("s.source", q.source)
        f.add("m.ts_ms", ">=", q.since); f.add("m.ts_ms", "<", q.until)
        f.add(after: q.after, ts: "m.ts_ms", id: "m.id")
        let sql = """
            SELECT m.ts_ms, p.name, s.agent_id, s.monitor, s.check_name, s.source, m.window_ms, m.count, m.errors,
                   m.sum_us, m.min_us, m.max_us, m.p50_us, m.p95_us, m.p99_us, m.id,
                   m.outcome_2xx, m.outcome_3xx, m.outcome_4xx, m.outcome_5xx, m.outcome_error, m.histogram
            FROM measurements m JOIN series s ON s.id = m.series_id JOIN projects p ON p.id = s.project_id
            """ + f.sql + " ORDER BY m.ts_ms DESC, m.id DESC LIMIT " + f.param(String(limit))
        return (sql, f.values)
    }

    private static func measurementRecord(_ r: PGRows, _ i: Int) -> MeasurementRecord {
        let v = { (c: Int) in r.int(i, c) ?? 0 }
        return MeasurementRecord(project: r.text(i, 1) ?? "", agent: r.text(i, 2) ?? "", measurement: MeasurementRow(
            ts: v(0), windowMs: v(6), monitor: r.text(i, 3) ?? "", check: r.text(i, 4) ?? "", source: r.text(i, 5) ?? "",
            count: v(7), errors: v(8), sumUs: v(9), minUs: v(10), maxUs: v(11), p50Us: v(12), p95Us: v(13), p99Us: v(14),
            outcomes: Outcomes(s2xx: v(16), s3xx: v(17), s4xx: v(18), s5xx: v(19), error: v(20)),
            histogram: PGText.bytea(r.text(i, 21))), id: v(15))
    }

    public func events(_ q: EventQuery, completion: @escaping StoreCompletion<[EventRecord]>) {
        var f = PGFilter()
        f.add("p.name", q.project); f.add("e.agent_id", q.agent); f.add("e.monitor", q.monitor)
        f.add("e.check_name", q.check); f.add("e.ts_ms", ">=", q.since); f.add("e.ts_ms", "<", q.until)
        f.add(after: q.after, ts: "e.ts_ms", id: "e.id")
        f.clauses.append("true ORDER BY e.ts_ms DESC, e.id DESC")
        select("""
            SELECT e.id, p.name, e.agent_id, e.ts_ms, e.monitor, e.check_name, e.method, e.host, e.path,
                   e.status, e.duration_us, e.error_class
            FROM events e JOIN projects p ON p.id = e.project_id
            """, f, limit: q.limit, completion: completion) { r, i in
            EventRecord(id: r.int(i, 0) ?? 0, project: r.text(i, 1) ?? "", agent: r.text(i, 2) ?? "", event: RawEvent(
                ts: r.int(i, 3) ?? 0, monitor: r.text(i, 4) ?? "", check: r.text(i, 5) ?? "", method: r.text(i, 6) ?? "",
                host: r.text(i, 7) ?? "", path: r.text(i, 8) ?? "", status: r.int(i, 9) ?? 0, durationUs: r.int(i, 10) ?? 0,
                errorClass: r.text(i, 11) ?? ""))
        }
    }

    public func monitorRuns(_ q: MonitorRunQuery, completion: @escaping StoreCompletion<[MonitorRunRecord]>) {
        var f = PGFilter()
        f.add("p.name", q.project); f.add("r.agent_id", q.agent); f.add("r.monitor", q.monitor)
        f.add("r.ts_ms", ">=", q.since); f.add("r.ts_ms", "<", q.until)
        f.add(after: q.after, ts: "r.ts_ms", id: "r.id")
        f.clauses.append("true ORDER BY r.ts_ms DESC, r.id DESC")
        select("""
            SELECT p.name, r.agent_id, r.ts_ms, r.monitor, r.check_name, r.ok, r.duration_us, r.detail, r.id
            FROM monitor_runs r JOIN projects p ON p.id = r.project_id
            """, f, limit: q.limit, completion: completion) { r, i in
            MonitorRunRecord(project: r.text(i, 0) ?? "", agent: r.text(i, 1) ?? "", run: MonitorRun(
                ts: r.int(i, 2) ?? 0, monitor: r.text(i, 3) ?? "", check: r.text(i, 4) ?? "", ok: r.text(i, 5) == "t",
                durationUs: r.int(i, 6) ?? 0, detail: r.text(i, 7)), id: r.int(i, 8) ?? 0)
        }
    }

    public func lastMonitorRuns(project: String, agent: String?, completion: @escaping StoreCompletion<[String: Int64]>) {
        var f = PGFilter()
        f.add("p.name", project); f.add("r.agent_id", agent)
        f.clauses.append("true GROUP BY r.monitor")
        select("SELECT r.monitor, max(r.ts_ms) FROM monitor_runs r JOIN projects p ON p.id = r.project_id", f,
               limit: .max, completion: { (result: Result<[(String, Int64)], StoreError>) in
            completion(result.map { Dictionary($0, uniquingKeysWith: { a, _ in a }) })
        }) { r, i in (r.text(i, 0) ?? "", r.int(i, 1) ?? 0) }
    }

    public func statusHistory(agent: String, since: Int64?, until: Int64?, limit: Int, after: ListPosition?,
                              completion: @escaping StoreCompletion<[StatusRecord]>) {
        var f = PGFilter()
        f.add("agent_id", agent); f.add("ts_ms", ">=", since); f.add("ts_ms", "<", until)
        f.add(after: after, ts: "ts_ms", id: "id")
        f.clauses.append("true ORDER BY ts_ms DESC, id DESC")
        select("SELECT ts_ms, status, id FROM agent_status", f, limit: limit, completion: completion) { r, i in
            StatusRecord(ts: r.int(i, 0) ?? 0, json: r.text(i, 1) ?? "", id: r.int(i, 2) ?? 0)
        }
    }

    public func stateHistory(agent: String, since: Int64?, until: Int64?, limit: Int, after: ListPosition?,
                             completion: @escaping StoreCompletion<[StateChange]>) {
        var f = PGFilter()
        f.add("agent_id", agent); f.add("ts_ms", ">=", since); f.add("ts_ms", "<", until)
        f.add(after: after, ts: "ts_ms", id: "id")
        f.clauses.append("true ORDER BY ts_ms DESC, id DESC")
        select("SELECT ts_ms, state, messages, id FROM agent_states", f, limit: limit, completion: completion) { r, i in
            StateChange(ts: r.int(i, 0) ?? 0, state: AgentState(rawValue: r.text(i, 1) ?? "") ?? .notVisible,
                        messages: MessageList.decode(r.text(i, 2) ?? ""), id: r.int(i, 3) ?? 0)
        }
    }

    public func audit(_ q: AuditQuery, completion: @escaping StoreCompletion<[AuditRecord]>) {
        var f = PGFilter()
        f.add("target", q.target); f.add("action", q.action); f.add("ts_ms", ">=", q.since); f.add("ts_ms", "<", q.until)
        f.add(after: q.after, ts: "ts_ms", id: "id")
        f.clauses.append("true ORDER BY ts_ms DESC, id DESC")
        select("SELECT id, ts_ms, actor, action, target, detail, result FROM audit", f, limit: q.limit, completion: completion) { r, i in
            AuditRecord(id: r.int(i, 0) ?? 0, entry: AuditEntry(ts: r.int(i, 1) ?? 0, actor: r.text(i, 2) ?? "", action: r.text(i, 3) ?? "",
                                                              target: r.text(i, 4) ?? "", detail: r.text(i, 5) ?? "", result: r.text(i, 6) ?? ""))
        }
    }

    public func agents(project: String?, after: String?, limit: Int?, completion: @escaping StoreCompletion<[AgentRecord]>) {
        agents(project: project, state: nil, search: nil, after: after, limit: limit, completion: completion)
    }

    public func agents(project: String?, state: AgentState?, search: String?, after: String?, limit: Int?,
                       completion: @escaping StoreCompletion<[AgentRecord]>) {
        enqueueRead({ (tx: PGTransaction<[AgentRecord]>) in
            Self.readAgents(tx, id: nil, project: project, state: state, search: search, after: after, limit: limit) { tx.done($0) }
        }, completion: completion)
    }

    public func agentsByName(project: String?, state: AgentState?, search: String?, after: AgentNamePosition?, limit: Int?,
                             completion: @escaping StoreCompletion<[AgentRecord]>) {
        enqueueRead({ (tx: PGTransaction<[AgentRecord]>) in
            Self.readAgents(tx, id: nil, project: project, state: state, search: search, afterName: after, byName: true,
                            limit: limit) { tx.done($0) }
        }, completion: completion)
    }

    public func agentStateCounts(project: String?, search: String?, completion: @escaping StoreCompletion<[AgentState: Int]>) {
        var f = PGFilter()
        f.add("p.name", project)
        Self.addSearch(search, to: &f)
        let sql = "SELECT a.state, count(*) FROM agents a JOIN projects p ON p.id = a.project_id" + f.sql + " GROUP BY a.state"
        let values = f.values
        enqueueRead({ (tx: PGTransaction<[AgentState: Int]>) in
            tx.query(sql, values) { r in
                var out: [AgentState: Int] = [:]
                for i in 0..<r.count { out[AgentState(rawValue: r.text(i, 0) ?? "") ?? .notVisible, default: 0] += Int(r.int(i, 1) ?? 0) }
                tx.done(out)
            }
        }, completion: completion)
    }

    public func agent(id: String, completion: @escaping StoreCompletion<AgentRecord>) {
        enqueueRead({ (tx: PGTransaction<AgentRecord>) in
            Self.readAgents(tx, id: id, project: nil) { a in
                guard let a = a.first else { return tx.fail(.notFound("agent '\(id)'")) }
                tx.done(a)
            }
        }, completion: completion)
    }

    static func readAgents<T>(_ tx: PGTransaction<T>, id: String?, project: String?, state: AgentState? = nil, search: String? = nil,
                              after: String? = nil, afterName: AgentNamePosition? = nil, byName: Bool = false,
                              limit: Int? = nil, _ next: @escaping ([AgentRecord]) -> Void) {
        var f = PGFilter()
        f.add("a.id", id); f.add("p.name", project); f.add("a.id COLLATE \"C\"", ">", after); f.add("a.state", state?.rawValue)
        addSearch(search, to: &f)
        if let p = afterName {
            f.clauses.append("(p.name COLLATE \"C\", a.name COLLATE \"C\", a.id COLLATE \"C\") > (\(f.param(p.project)), \(f.param(p.name)), \(f.param(p.id)))")
        }
        let order = afterName != nil || byName ? "p.name COLLATE \"C\", a.name COLLATE \"C\", a.id COLLATE \"C\"" : "a.id COLLATE \"C\""
        tx.query("""
            SELECT a.id, a.project_id, p.name, a.name, a.hostname, a.version, a.boot_id, a.state, a.state_messages,
                   a.state_since_ms, a.first_seen_ms, a.last_seen_ms, a.status, a.status_ms, a.mode
            FROM agents a JOIN projects p ON p.id = a.project_id
            """ + f.sql + " ORDER BY " + order + (limit.map { " LIMIT \(max(0, $0))" } ?? ""), f.values) { r in
            next((0..<r.count).map { i in
                AgentRecord(id: r.text(i, 0) ?? "", projectId: r.int(i, 1) ?? 0, project: r.text(i, 2) ?? "", name: r.text(i, 3) ?? "",
                            hostname: r.text(i, 4) ?? "", version: r.text(i, 5) ?? "", bootId: r.text(i, 6) ?? "",
                            state: AgentState(rawValue: r.text(i, 7) ?? "") ?? .notVisible,
                            stateMessages: MessageList.decode(r.text(i, 8) ?? ""), stateSince: r.int(i, 9) ?? 0,
                            firstSeen: r.int(i, 10) ?? 0, lastSeen: r.int(i, 11) ?? 0, status: r.text(i, 12), statusTs: r.int(i, 13),
                            mode: r.text(i, 14) ?? AgentRecord.agentMode)
            })
        }
    }

    /// Name or id contains `search`: an ASCII case-insensitive substring,
    /// LIKE's wildcards escaped.
    static func addSearch(_ search: String?, to f: inout PGFilter) {
        guard let search, !search.isEmpty else { return }
        var pattern = "%"
        for ch in search {
            if ch == "%" || ch == "_" || ch == "\\" { pattern.append("\\") }
            pattern.append(ch)
        }
        pattern += "%"
        let p = f.param(pattern)
        f.clauses.append("(a.name ILIKE \(p) OR a.id ILIKE \(p))")
    }
}
