// SQLiteStore, queries for the HTTP API. Each builds its WHERE clause from
// the filters present; the statement cache keys on the SQL text, so each
// combination of filters is prepared once. Lists are newest first, ties
// broken by insertion order, and `limit` is clamped to
// 1...limits.maxQueryRows. The public methods run on the loop thread and
// queue a read; their bodies and the SQLiteWriter helpers run on the writer.

extension SQLiteWriter {
    /// Appends `column = ?` (or `op`) for each present value.
    struct Filter {
        var clauses: [String] = []
        var values: [SQLiteValue] = []

        mutating func add(_ clause: String, _ value: String?) {
            guard let value else { return }
            clauses.append(clause); values.append(.text(value))
        }

        mutating func add(_ clause: String, _ value: Int64?) {
            guard let value else { return }
            clauses.append(clause); values.append(.integer(value))
        }

        /// Rows after `p` in newest-first (ts, id) order.
        mutating func add(after p: ListPosition?, ts: String, id: String) {
            guard let p else { return }
            clauses.append("(\(ts) < ? OR (\(ts) = ? AND \(id) < ?))")
            values += [.integer(p.ts), .integer(p.ts), .integer(p.id)]
        }

        var sql: String { clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ") }
    }

    /// Runs `sql` with the filter's values and the clamped `limit` bound
    /// last; `row` for each row.
    func select(_ sql: String, _ f: Filter, limit: Int, _ row: (SQLiteStatement) -> Void) throws {
        let s = try db.statement(sql)
        defer { s.reset() }
        for (i, v) in f.values.enumerated() { s.bind(Int32(i + 1), value: v) }
        s.bind(Int32(f.values.count + 1), options.limits.clamp(limit))
        while try s.step() { row(s) }
    }
}

extension SQLiteStore {
    public func measurements(_ q: MeasurementQuery, completion: @escaping StoreCompletion<[MeasurementRecord]>) {
        enqueueRead({ writer in
            // The series filters pick a set of series ids first; the scan of
            // the time-ordered index then tests each entry's series_id against
            // that set without joining every row (docs/STORAGE.md, "Indexes").
            var series = SQLiteWriter.Filter()
            series.add("p2.name = ?", q.project); series.add("s2.agent_id = ?", q.agent); series.add("s2.monitor = ?", q.monitor)
            series.add("s2.check_name = ?", q.check); series.add("s2.source = ?", q.source)
            var f = SQLiteWriter.Filter()
            if !series.clauses.isEmpty {
                f.clauses.append("m.series_id IN (SELECT s2.id FROM series s2 JOIN projects p2 ON p2.id = s2.project_id"
                                 + series.sql + ")")
                f.values = series.values
            }
            f.add("m.ts_ms >= ?", q.since); f.add("m.ts_ms < ?", q.until)
            f.add(after: q.after, ts: "m.ts_ms", id: "m.rowid")
            var out: [MeasurementRecord] = []
            try writer.select("""
                SELECT m.ts_ms, p.name, s.agent_id, s.monitor, s.check_name, s.source, m.window_ms, m.count, m.errors,
                       m.sum_us, m.min_us, m.max_us, m.p50_us, m.p95_us, m.p99_us, m.rowid,
                       m.outcome_2xx, m.outcome_3xx, m.outcome_4xx, m.outcome_5xx, m.outcome_error, m.histogram
                FROM measurements m JOIN series s ON s.id = m.series_id JOIN projects p ON p.id = s.project_id
                """ + f.sql + " ORDER BY m.ts_ms DESC, m.rowid DESC LIMIT ?", f, limit: q.limit) { s in
                out.append(MeasurementRecord(project: s.text(1), agent: s.text(2), measurement: MeasurementRow(
                    ts: s.int64(0), windowMs: s.int64(6), monitor: s.text(3), check: s.text(4), source: s.text(5),
                    count: s.int64(7), errors: s.int64(8), sumUs: s.int64(9), minUs: s.int64(10), maxUs: s.int64(11),
                    p50Us: s.int64(12), p95Us: s.int64(13), p99Us: s.int64(14),
                    outcomes: Outcomes(s2xx: s.int64(16), s3xx: s.int64(17), s4xx: s.int64(18), s5xx: s.int64(19),
                                       error: s.int64(20)), histogram: s.optionalBlob(21)), id: s.int64(15)))
            }
            return out
        }, completion: completion)
    }

    public func events(_ q: EventQuery, completion: @escaping StoreCompletion<[EventRecord]>) {
        enqueueRead({ writer in
            var f = SQLiteWriter.Filter()
            f.add("p.name = ?", q.project); f.add("e.agent_id = ?", q.agent); f.add("e.monitor = ?", q.monitor)
            f.add("e.check_name = ?", q.check); f.add("e.ts_ms >= ?", q.since); f.add("e.ts_ms < ?", q.until)
            f.add(after: q.after, ts: "e.ts_ms", id: "e.id")
            var out: [EventRecord] = []
            try writer.select("""
                SELECT e.id, p.name, e.agent_id, e.ts_ms, e.monitor, e.check_name, e.method, e.host, e.path,
                       e.status, e.duration_us, e.error_class
                FROM events e JOIN projects p ON p.id = e.project_id
                """ + f.sql + " ORDER BY e.ts_ms DESC, e.id DESC LIMIT ?", f, limit: q.limit) { s in
                out.append(EventRecord(id: s.int64(0), project: s.text(1), agent: s.text(2), event: RawEvent(
                    ts: s.int64(3), monitor: s.text(4), check: s.text(5), method: s.text(6), host: s.text(7),
                    path: s.text(8), status: s.int64(9), durationUs: s.int64(10), errorClass: s.text(11))))
            }
            return out
        }, completion: completion)
    }

    public func monitorRuns(_ q: MonitorRunQuery, completion: @escaping StoreCompletion<[MonitorRunRecord]>) {
        enqueueRead({ writer in
            var f = SQLiteWriter.Filter()
            f.add("p.name = ?", q.project); f.add("r.agent_id = ?", q.agent); f.add("r.monitor = ?", q.monitor)
            f.add("r.ts_ms >= ?", q.since); f.add("r.ts_ms < ?", q.until)
            f.add(after: q.after, ts: "r.ts_ms", id: "r.id")
            var out: [MonitorRunRecord] = []
            try writer.select("""
                SELECT p.name, r.agent_id, r.ts_ms, r.monitor, r.check_name, r.ok, r.duration_us, r.detail, r.id
                FROM monitor_runs r JOIN projects p ON p.id = r.project_id
                """ + f.sql + " ORDER BY r.ts_ms DESC, r.id DESC LIMIT ?", f, limit: q.limit) { s in
                out.append(MonitorRunRecord(project: s.text(0), agent: s.text(1), run: MonitorRun(
                    ts: s.int64(2), monitor: s.text(3), check: s.text(4), ok: s.int64(5) != 0,
                    durationUs: s.int64(6), detail: s.optionalText(7)), id: s.int64(8)))
            }
            return out
        }, completion: completion)
    }

    public func lastMonitorRuns(project: String, agent: String?, completion: @escaping StoreCompletion<[String: Int64]>) {
        enqueueRead({ writer in
            var f = SQLiteWriter.Filter()
            f.add("p.name = ?", project); f.add("r.agent_id = ?", agent)
            var out: [String: Int64] = [:]
            // One row per monitor name, at most limits.maxQueryRows of them.
            try writer.select("""
                SELECT r.monitor, MAX(r.ts_ms) FROM monitor_runs r JOIN projects p ON p.id = r.project_id
                """ + f.sql + " GROUP BY r.monitor LIMIT ?", f, limit: .max) { s in
                out[s.text(0)] = s.int64(1)
            }
            return out
        }, completion: completion)
    }

    public func statusHistory(agent: String, since: Int64?, until: Int64?, limit: Int, after: ListPosition?,
                              completion: @escaping StoreCompletion<[StatusRecord]>) {
        enqueueRead({ writer in
            var f = SQLiteWriter.Filter()
            f.add("agent_id = ?", agent); f.add("ts_ms >= ?", since); f.add("ts_ms < ?", until)
            f.add(after: after, ts: "ts_ms", id: "id")
            var out: [StatusRecord] = []
            try writer.select("SELECT ts_ms, status, id FROM agent_status" + f.sql + " ORDER BY ts_ms DESC, id DESC LIMIT ?",
                             f, limit: limit) { s in out.append(StatusRecord(ts: s.int64(0), json: s.text(1), id: s.int64(2))) }
            return out
        }, completion: completion)
    }

    public func stateHistory(agent: String, since: Int64?, until: Int64?, limit: Int, after: ListPosition?,
                             completion: @escaping StoreCompletion<[StateChange]>) {
        enqueueRead({ writer in
            var f = SQLiteWriter.Filter()
            f.add("agent_id = ?", agent); f.add("ts_ms >= ?", since); f.add("ts_ms < ?", until)
            f.add(after: after, ts: "ts_ms", id: "id")
            var out: [StateChange] = []
            try writer.select("SELECT ts_ms, state, messages, id FROM agent_states" + f.sql + " ORDER BY ts_ms DESC, id DESC LIMIT ?",
                             f, limit: limit) { s in
                out.append(StateChange(ts: s.int64(0), state: AgentState(rawValue: s.text(1)) ?? .notVisible,
                                       messages: MessageList.decode(s.text(2)), id: s.int64(3)))
            }
            return out
        }, completion: completion)
    }

    public func audit(_ q: AuditQuery, completion: @escaping StoreCompletion<[AuditRecord]>) {
        enqueueRead({ writer in
            var f = SQLiteWriter.Filter()
            f.add("target = ?", q.target); f.add("action = ?", q.action); f.add("ts_ms >= ?", q.since); f.add("ts_ms < ?", q.until)
            f.add(after: q.after, ts: "ts_ms", id: "id")
            var out: [AuditRecord] = []
            try writer.select("SELECT id, ts_ms, actor, action, target, detail, result FROM audit" + f.sql
                             + " ORDER BY ts_ms DESC, id DESC LIMIT ?", f, limit: q.limit) { s in
                out.append(AuditRecord(id: s.int64(0), entry: AuditEntry(ts: s.int64(1), actor: s.text(2), action: s.text(3),
                                                                         target: s.text(4), detail: s.text(5), result: s.text(6))))
            }
            return out
        }, completion: completion)
    }

    public func agents(project: String?, after: String?, limit: Int?, completion: @escaping StoreCompletion<[AgentRecord]>) {
        enqueueRead({ writer in try writer.readAgents(id: nil, project: project, after: after, limit: limit) },
                    completion: completion)
    }

    public func agents(project: String?, state: AgentState?, search: String?, after: String?, limit: Int?,
                       completion: @escaping StoreCompletion<[AgentRecord]>) {
        enqueueRead({ writer in
            try writer.readAgents(id: nil, project: project, state: state, search: search, after: after, limit: limit)
        }, completion: completion)
    }

    public func agentsByName(project: String?, state: AgentState?, search: String?, after: AgentNamePosition?, limit: Int?,
                             completion: @escaping StoreCompletion<[AgentRecord]>) {
        enqueueRead({ writer in
            try writer.readAgents(id: nil, project: project, state: state, search: search, afterName: after, byName: true, limit: limit)
        }, completion: completion)
    }

    public func agentStateCounts(project: String?, search: String?, completion: @escaping StoreCompletion<[AgentState: Int]>) {
        enqueueRead({ writer in try writer.countAgentStates(project: project, search: search) }, completion: completion)
    }

    public func agent(id: String, completion: @escaping StoreCompletion<AgentRecord>) {
        enqueueRead({ writer in
            guard let a = try writer.readAgents(id: id, project: nil).first else { throw StoreError.notFound("agent '\(id)'") }
            return a
        }, completion: completion)
    }
}

extension SQLiteWriter {
    /// Agents (of a project) in id order (the primary key's), those after
    /// `after`, at most `limit` (nil: all); with `afterName` given, or
    /// `byName`, in (project name, name, id) order — the projects' unique
    /// name index and agents_project_name walk it without a sort.
    func readAgents(id: String?, project: String?, state: AgentState? = nil, search: String? = nil,
                    after: String? = nil, afterName: AgentNamePosition? = nil, byName: Bool = false,
                    limit: Int? = nil) throws -> [AgentRecord] {
        var f = SQLiteWriter.Filter()
        f.add("a.id = ?", id); f.add("p.name = ?", project); f.add("a.id > ?", after)
        f.add("a.state = ?", state?.rawValue)
        addSearch(search, to: &f)
        if let p = afterName {
            f.clauses.append("(p.name, a.name, a.id) > (?, ?, ?)")
            f.values += [.text(p.project), .text(p.name), .text(p.id)]
        }
        let order = afterName != nil || byName ? "p.name, a.name, a.id" : "a.id"
        let s = try db.statement("""
            SELECT a.id, a.project_id, p.name, a.name, a.hostname, a.version, a.boot_id, a.state, a.state_messages,
                   a.state_since_ms, a.first_seen_ms, a.last_seen_ms, a.status, a.status_ms, a.mode
            FROM agents a JOIN projects p ON p.id = a.project_id
            """ + f.sql + " ORDER BY \(order) LIMIT \(limit.map { max(0, $0) } ?? -1)")
        defer { s.reset() }
        for (i, v) in f.values.enumerated() { s.bind(Int32(i + 1), value: v) }
        var out: [AgentRecord] = []
        while try s.step() {
            out.append(AgentRecord(id: s.text(0), projectId: s.int64(1), project: s.text(2), name: s.text(3),
                                   hostname: s.text(4), version: s.text(5), bootId: s.text(6),
                                   state: AgentState(rawValue: s.text(7)) ?? .notVisible,
                                   stateMessages: MessageList.decode(s.text(8)), stateSince: s.int64(9),
                                   firstSeen: s.int64(10), lastSeen: s.int64(11), status: s.optionalText(12),
                                   statusTs: s.optionalInt64(13), mode: s.text(14)))
        }
        return out
    }

    /// Agents per stored state: one pass over the project's agents (its
    /// index) or over all of them, grouped.
    func countAgentStates(project: String?, search: String?) throws -> [AgentState: Int] {
        var f = SQLiteWriter.Filter()
        f.add("p.name = ?", project)
        addSearch(search, to: &f)
        let s = try db.statement("SELECT a.state, COUNT(*) FROM agents a JOIN projects p ON p.id = a.project_id"
                                 + f.sql + " GROUP BY a.state")
        defer { s.reset() }
        for (i, v) in f.values.enumerated() { s.bind(Int32(i + 1), value: v) }
        var out: [AgentState: Int] = [:]
        while try s.step() {
            out[AgentState(rawValue: s.text(0)) ?? .notVisible, default: 0] += Int(s.int64(1))
        }
        return out
    }

    /// Name or id contains `search`: LIKE with its wildcards escaped, so the
    /// search is a plain substring (case-insensitive for ASCII).
    private func addSearch(_ search: String?, to f: inout SQLiteWriter.Filter) {
        if let search, !search.isEmpty {
            // LIKE with its wildcards escaped: the search is a plain substring.
            var pattern = "%"
            for ch in search {
                if ch == "%" || ch == "_" || ch == "\\" { pattern.append("\\") }
                pattern.append(ch)
            }
            pattern += "%"
            f.clauses.append("(a.name LIKE ? ESCAPE '\\' OR a.id LIKE ? ESCAPE '\\')")
            f.values += [.text(pattern), .text(pattern)]
        }
    }
}
