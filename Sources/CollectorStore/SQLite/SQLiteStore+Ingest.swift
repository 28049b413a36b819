// SQLiteStore, ingest: batches with de-duplication, and agent registration
// and state. The public methods run on the loop thread and queue a write;
// the SQLiteWriter methods below run on the writer thread, inside a write's
// savepoint of a transaction.
import CSQLite
import Reactor

extension SQLiteStore {
    public func submitBatch(_ batch: Batch, completion: @escaping StoreCompletion<BatchOutcome>) {
        guard batch.sequence >= 0, !batch.agentId.isEmpty else {
            let refused = Result<BatchOutcome, StoreError>.failure(.invalid("batch needs an agent id and a sequence >= 0"))
            loopStats.refusedInvalid &+= 1
            loopStats.countBatch(refused)
            return deliverLater(completion, refused)
        }
        enqueueWrite(rows: max(batch.rowCount, 1), { writer in try writer.writeBatch(batch) }) { [weak self] result in
            self?.loopStats.countBatch(result)
            completion(result)
        }
    }

    // MARK: agents

    public func agentConnected(_ hello: AgentHello, completion: @escaping StoreCompletion<AgentRecord>) {
        guard !hello.id.isEmpty else {
            loopStats.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("agent id is empty")))
        }
        enqueueWrite(rows: 2, { writer in
            let s = try writer.db.statement("""
                INSERT INTO agents(id, project_id, name, hostname, version, boot_id, state, state_since_ms, first_seen_ms, last_seen_ms, mode)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'not_visible', ?7, ?7, ?7, ?8)
                ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, name = excluded.name,
                    hostname = excluded.hostname, version = excluded.version, boot_id = excluded.boot_id,
                    last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), mode = excluded.mode
                """)
            defer { s.reset() }
            s.bind(1, hello.id); s.bind(2, hello.projectId); s.bind(3, hello.name); s.bind(4, hello.hostname)
            s.bind(5, hello.version); s.bind(6, hello.bootId); s.bind(7, hello.at)
            s.bind(8, hello.mode)
            do { try s.run() } catch let e as SQLiteError where e.primaryCode == SQLITE_CONSTRAINT {  // no such project
                throw StoreError.notFound("project \(hello.projectId)")
            }
            _ = try writer.applyState(agent: hello.id, state: .connecting, messages: [], at: hello.at)
            guard let record = try writer.readAgents(id: hello.id, project: nil).first else {
                throw StoreError.notFound("agent '\(hello.id)'")
            }
            return record
        }, completion: completion)
    }

    public func setAgentState(agent: String, state: AgentState, messages: [String], at: Int64,
                              completion: @escaping StoreCompletion<Bool>) {
        enqueueWrite(rows: 1, { writer in try writer.applyState(agent: agent, state: state, messages: messages, at: at) },
                     completion: completion)
    }

    public func recordAgentStatus(agent: String, state: AgentState, messages: [String], snapshot: StatusSnapshot,
                                  completion: @escaping StoreCompletion<Bool>) {
        enqueueWrite(rows: 2, { writer in
            try writer.storeStatus(agent: agent, state: state, messages: messages, snapshot: snapshot)
        }, completion: completion)
    }

    /// One job for the whole slice; the writer thread commits it with the
    /// batches queued beside it.
    public func recordAgentStatuses(_ statuses: [AgentStatusWrite], completion: @escaping StoreCompletion<[Bool]>) {
        enqueueWrite(rows: max(1, 2 * statuses.count), { writer in
            try statuses.map { st in
                guard try writer.db.scalar("SELECT 1 FROM agents WHERE id = ?", [.text(st.agent)]) != nil else { return false }
                return try writer.storeStatus(agent: st.agent, state: st.state, messages: st.messages, snapshot: st.snapshot)
            }
        }, completion: completion)
    }

    /// One write for the whole slice: a job per session (two with a
    /// waiting Status) made a mass close cost the loop a job, a closure and
    /// a completion per write.
    public func recordSessionsEnded(_ ends: [AgentSessionEnd], completion: @escaping StoreCompletion<Int>) {
        precondition(!ends.isEmpty, "recordSessionsEnded needs at least one session")
        let rows = ends.reduce(0) { $0 + ($1.status == nil ? 2 : 5) }
        enqueueWrite(rows: rows, { writer in
            var written = 0
            for e in ends {
                guard try writer.db.scalar("SELECT 1 FROM agents WHERE id = ?", [.text(e.agent)]) != nil else { continue }
                if let st = e.status {
                    _ = try writer.storeStatus(agent: e.agent, state: st.state, messages: st.messages, snapshot: st.snapshot)
                }
                _ = try writer.applyState(agent: e.agent, state: .notVisible, messages: [], at: e.at)
                written += 1
            }
            return written
        }, completion: completion)
    }

    public func markAllAgentsNotVisible(at: Int64, completion: @escaping StoreCompletion<Int>) {
        enqueueWrite(rows: 1, { writer in
            try writer.db.run("""
                INSERT INTO agent_states(agent_id, ts_ms, state, messages)
                SELECT id, ?1, 'not_visible', '' FROM agents WHERE state <> 'not_visible'
                """, [.integer(at)])
            return try writer.db.run("""
                UPDATE agents SET state = 'not_visible', state_messages = '', state_since_ms = ?1 WHERE state <> 'not_visible'
                """, [.integer(at)])
        }, completion: completion)
    }
}

extension SQLiteWriter {
    func writeBatch(_ b: Batch) throws -> BatchOutcome {
        var seqs = ReceivedSequences()
        var known = false
        do {
            let s = try db.statement("SELECT high_seq, gaps FROM batch_sequences WHERE agent_id = ? AND boot_id = ?")
            defer { s.reset() }
            s.bind(1, b.agentId)
            s.bind(2, b.bootId)
            if try s.step() {
                seqs = ReceivedSequences(high: s.int64(0), encodedGaps: s.text(1))
                known = true
            }
        }
        if seqs.contains(b.sequence) { return .duplicate }
        countGapsForgotten(seqs.insert(b.sequence, maxGaps: options.maxSequenceGaps))

        if !b.measurements.isEmpty {
            let s = try db.statement("""
                INSERT INTO measurements(series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us,
                                         outcome_2xx, outcome_3xx, outcome_4xx, outcome_5xx, outcome_error, histogram)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for m in b.measurements {
                let series = try seriesId(SeriesKey(agent: b.agentId, monitor: m.monitor, check: m.check, source: m.source),
                                          project: b.projectId)
                defer { s.reset() }
                s.bind(1, series); s.bind(2, m.ts); s.bind(3, m.windowMs); s.bind(4, m.count); s.bind(5, m.errors)
                s.bind(6, m.sumUs); s.bind(7, m.minUs); s.bind(8, m.maxUs); s.bind(9, m.p50Us); s.bind(10, m.p95Us)
                s.bind(11, m.p99Us); s.bind(12, m.outcomes.s2xx); s.bind(13, m.outcomes.s3xx); s.bind(14, m.outcomes.s4xx)
                s.bind(15, m.outcomes.s5xx); s.bind(16, m.outcomes.error)
                s.bind(17, blob: m.histogram)
                try s.run()
            }
        }
        if !b.events.isEmpty {
            let s = try db.statement("""
                INSERT INTO events(ts_ms, project_id, agent_id, monitor, check_name, method, host, path, status, duration_us,
                                   error_class)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for e in b.events {
                defer { s.reset() }
                s.bind(1, e.ts); s.bind(2, b.projectId); s.bind(3, b.agentId); s.bind(4, e.monitor); s.bind(5, e.check)
                s.bind(6, e.method); s.bind(7, e.host); s.bind(8, e.path); s.bind(9, e.status); s.bind(10, e.durationUs)
                s.bind(11, e.errorClass)
                try s.run()
            }
        }
        if !b.statuses.isEmpty {
            let s = try db.statement("INSERT INTO agent_status(agent_id, ts_ms, status) VALUES (?, ?, ?)")
            let latest = try db.statement("""
                UPDATE agents SET status = ?, status_ms = ? WHERE id = ? AND (status_ms IS NULL OR status_ms <= ?)
                """)
            for st in b.statuses {
                defer { s.reset(); latest.reset() }
                s.bind(1, b.agentId); s.bind(2, st.ts); s.bind(3, st.json)
                try s.run()
                latest.bind(1, st.json); latest.bind(2, st.ts); latest.bind(3, b.agentId); latest.bind(4, st.ts)
                try latest.run()
            }
        }
        if !b.monitorRuns.isEmpty {
            let s = try db.statement("""
                INSERT INTO monitor_runs(ts_ms, project_id, agent_id, monitor, check_name, ok, duration_us, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for r in b.monitorRuns {
                defer { s.reset() }
                s.bind(1, r.ts); s.bind(2, b.projectId); s.bind(3, b.agentId); s.bind(4, r.monitor); s.bind(5, r.check)
                s.bind(6, r.ok); s.bind(7, r.durationUs); s.bind(8, r.detail)
                try s.run()
            }
        }

        let upsert = try db.statement(known
            ? "UPDATE batch_sequences SET high_seq = ?3, gaps = ?4, batches = batches + 1, updated_ms = ?5 WHERE agent_id = ?1 AND boot_id = ?2"
            : "INSERT INTO batch_sequences(agent_id, boot_id, high_seq, gaps, batches, updated_ms) VALUES (?1, ?2, ?3, ?4, 1, ?5)")
        defer { upsert.reset() }
        upsert.bind(1, b.agentId); upsert.bind(2, b.bootId); upsert.bind(3, seqs.high)
        upsert.bind(4, seqs.encodedGaps); upsert.bind(5, b.receivedAt)
        try upsert.run()

        let seen = try db.statement("UPDATE agents SET last_seen_ms = max(last_seen_ms, ?) WHERE id = ?")
        defer { seen.reset() }
        seen.bind(1, b.receivedAt); seen.bind(2, b.agentId)
        try seen.run()
        return .stored(rows: b.rowCount)
    }

    /// The id of a (agent, monitor, check, source) series, created on first
    /// use; cached, with the cache cleared when it reaches its limit.
    private func seriesId(_ key: SeriesKey, project: Int64) throws -> Int64 {
        if let id = seriesCache[key] { return id }
        let insert = try db.statement("""
            INSERT INTO series(project_id, agent_id, monitor, check_name, source) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (agent_id, monitor, check_name, source) DO NOTHING
            """)
        defer { insert.reset() }
        insert.bind(1, project); insert.bind(2, key.agent); insert.bind(3, key.monitor)
        insert.bind(4, key.check); insert.bind(5, key.source)
        try insert.run()
        var id = db.lastInsertRowID
        if db.changes == 0 {
            let s = try db.statement("SELECT id FROM series WHERE agent_id = ? AND monitor = ? AND check_name = ? AND source = ?")
            defer { s.reset() }
            s.bind(1, key.agent); s.bind(2, key.monitor); s.bind(3, key.check); s.bind(4, key.source)
            guard try s.step() else { throw StoreError.invalid("series vanished: \(key)") }
            id = s.int64(0)
        }
        if seriesCache.count >= options.seriesCacheLimit { seriesCache.removeAll(keepingCapacity: true) }
        seriesCache[key] = id
        return id
    }

    /// A Status: the snapshot into the history (and made the latest unless
    /// a newer one is stored), then its state.
    func storeStatus(agent: String, state: AgentState, messages: [String], snapshot: StatusSnapshot) throws -> Bool {
        try db.run("INSERT INTO agent_status(agent_id, ts_ms, status) VALUES (?, ?, ?)",
                   [.text(agent), .integer(snapshot.ts), .text(snapshot.json)])
        try db.run("""
            UPDATE agents SET status = ?1, status_ms = ?2, last_seen_ms = max(last_seen_ms, ?2)
            WHERE id = ?3 AND (status_ms IS NULL OR status_ms <= ?2)
            """, [.text(snapshot.json), .integer(snapshot.ts), .text(agent)])
        return try applyState(agent: agent, state: state, messages: messages, at: snapshot.ts)
    }

    /// Sets the state; a history row only when state or messages change.
    func applyState(agent: String, state: AgentState, messages: [String], at: Int64) throws -> Bool {
        let encoded = MessageList.encode(messages)
        let s = try db.statement("""
            UPDATE agents SET state = ?2, state_messages = ?3, state_since_ms = ?4
            WHERE id = ?1 AND (state <> ?2 OR state_messages <> ?3)
            """)
        defer { s.reset() }
        s.bind(1, agent); s.bind(2, state.rawValue); s.bind(3, encoded); s.bind(4, at)
        try s.run()
        if db.changes == 0 {
            guard try db.scalar("SELECT 1 FROM agents WHERE id = ?", [.text(agent)]) != nil else {
                throw StoreError.notFound("agent '\(agent)'")
            }
            return false
        }
        try db.run("INSERT INTO agent_states(agent_id, ts_ms, state, messages) VALUES (?, ?, ?, ?)",
                   [.text(agent), .integer(at), .text(state.rawValue), .text(encoded)])
        return true
    }
}
