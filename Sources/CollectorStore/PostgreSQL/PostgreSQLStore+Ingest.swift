// PostgreSQLStore, ingest: batches with de-duplication (the sequence row
// locked, rows by COPY), agent registration and state. Loop thread; each
// public method queues one write transaction (PostgreSQLStore).
import Reactor

extension PostgreSQLStore {
    public func submitBatch(_ batch: Batch, completion: @escaping StoreCompletion<BatchOutcome>) {
        guard batch.sequence >= 0, !batch.agentId.isEmpty else {
            let refused = Result<BatchOutcome, StoreError>.failure(.invalid("batch needs an agent id and a sequence >= 0"))
            counters.refusedInvalid &+= 1
            counters.countBatch(refused)
            return deliverLater(completion, refused)
        }
        enqueueWrite(rows: max(batch.rowCount, 1), retry: true, { [weak self] tx in self?.writeBatch(batch, tx) }) { [weak self] result in
            self?.counters.countBatch(result)
            completion(result)
        }
    }

    private func writeBatch(_ b: Batch, _ tx: PGTransaction<BatchOutcome>) {
        let key: [String?] = [b.agentId, b.bootId]
        // One round trip: the sequence row created if missing, locked
        // (DO UPDATE takes the row lock) and returned as it was.
        tx.query("""
            INSERT INTO batch_sequences(agent_id, boot_id, high_seq, gaps, batches, updated_ms) VALUES ($1, $2, -1, '', 0, $3)
            ON CONFLICT (agent_id, boot_id) DO UPDATE SET agent_id = excluded.agent_id
            RETURNING high_seq, gaps
            """, key + [PGText.int(b.receivedAt)]) { [self] r in
            var seqs = ReceivedSequences(high: r.int(0, 0) ?? -1, encodedGaps: r.text(0, 1) ?? "")
            if seqs.contains(b.sequence) { return tx.done(.duplicate) }
            counters.sequenceGapsForgotten &+= UInt64(seqs.insert(b.sequence, maxGaps: options.maxSequenceGaps))
            seriesIds(b, tx) { [self] ids in
                copyRows(b, ids, tx) {
                    tx.query("""
                        WITH s AS (UPDATE batch_sequences SET high_seq = $3, gaps = $4, batches = batches + 1, updated_ms = $5
                                   WHERE agent_id = $1 AND boot_id = $2)
                        UPDATE agents SET last_seen_ms = greatest(last_seen_ms, $5) WHERE id = $1
                        """, key + [PGText.int(seqs.high), seqs.encodedGaps, PGText.int(b.receivedAt)]) { _ in
                        tx.done(.stored(rows: b.rowCount))
                    }
                }
            }
        }
    }

    /// The series ids of a batch's measurements, made where missing (one
    /// statement for all the batch's new keys); cached.
    private func seriesIds(_ b: Batch, _ tx: PGTransaction<BatchOutcome>, _ next: @escaping ([SeriesKey: Int64]) -> Void) {
        var ids: [SeriesKey: Int64] = [:]
        var missing: [SeriesKey] = []
        for m in b.measurements {
            let k = SeriesKey(agent: b.agentId, monitor: m.monitor, check: m.check, source: m.source)
            if ids[k] != nil { continue }
            if let id = seriesCache[k] { ids[k] = id } else if !missing.contains(k) { missing.append(k) }
        }
        guard !missing.isEmpty else { return next(ids) }
        tx.query("""
            INSERT INTO series(project_id, agent_id, monitor, check_name, source)
            SELECT $1, $2, u.m, u.c, u.s FROM unnest($3::text[], $4::text[], $5::text[]) AS u(m, c, s)
            ON CONFLICT (agent_id, monitor, check_name, source) DO UPDATE SET source = excluded.source
            RETURNING id, monitor, check_name, source
            """, [PGText.int(b.projectId), b.agentId, PGText.array(missing.map(\.monitor)),
                  PGText.array(missing.map(\.check)), PGText.array(missing.map(\.source))]) { [self] r in
            if seriesCache.count + r.count > options.seriesCacheLimit { seriesCache.removeAll(keepingCapacity: true) }
            for i in 0..<r.count {
                let k = SeriesKey(agent: b.agentId, monitor: r.text(i, 1) ?? "", check: r.text(i, 2) ?? "", source: r.text(i, 3) ?? "")
                ids[k] = r.int(i, 0)
                seriesCache[k] = r.int(i, 0)
            }
            next(ids)
        }
    }

    private func copyRows(_ b: Batch, _ ids: [SeriesKey: Int64], _ tx: PGTransaction<BatchOutcome>, _ next: @escaping () -> Void) {
        var steps: [(String, [UInt8])] = []
        if !b.measurements.isEmpty {
            var data: [UInt8] = []
            data.reserveCapacity(b.measurements.count * 80)
            for m in b.measurements {
                let id = ids[SeriesKey(agent: b.agentId, monitor: m.monitor, check: m.check, source: m.source)] ?? 0
                PGText.copyRow([String(id), String(m.ts), String(m.windowMs), String(m.count), String(m.errors), String(m.sumUs),
                                String(m.minUs), String(m.maxUs), String(m.p50Us), String(m.p95Us), String(m.p99Us),
                                String(m.outcomes.s2xx), String(m.outcomes.s3xx), String(m.outcomes.s4xx),
                                String(m.outcomes.s5xx), String(m.outcomes.error), m.histogram.map(PGText.byteaHex)], into: &data)
            }
            steps.append(("""
                COPY measurements (series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us,
                                   outcome_2xx, outcome_3xx, outcome_4xx, outcome_5xx, outcome_error, histogram) FROM STDIN
                """, data))
        }
        if !b.events.isEmpty {
            var data: [UInt8] = []
            for e in b.events {
                PGText.copyRow([String(e.ts), String(b.projectId), b.agentId, e.monitor, e.check, e.method, e.host, e.path,
                                String(e.status), String(e.durationUs), e.errorClass], into: &data)
            }
            steps.append(("""
                COPY events (ts_ms, project_id, agent_id, monitor, check_name, method, host, path, status, duration_us, error_class)
                FROM STDIN
                """, data))
        }
        if !b.statuses.isEmpty {
            var data: [UInt8] = []
            for s in b.statuses { PGText.copyRow([b.agentId, String(s.ts), s.json], into: &data) }
            steps.append(("COPY agent_status (agent_id, ts_ms, status) FROM STDIN", data))
        }
        if !b.monitorRuns.isEmpty {
            var data: [UInt8] = []
            for r in b.monitorRuns {
                PGText.copyRow([String(r.ts), String(b.projectId), b.agentId, r.monitor, r.check, r.ok ? "t" : "f",
                                String(r.durationUs), r.detail], into: &data)
            }
            steps.append(("COPY monitor_runs (ts_ms, project_id, agent_id, monitor, check_name, ok, duration_us, detail) FROM STDIN",
                          data))
        }
        func step(_ i: Int) {
            guard i < steps.count else {
                // The newest status becomes the agent's latest (the last of equal times).
                guard let latest = b.statuses.enumerated().max(by: { $0.element.ts < $1.element.ts || ($0.element.ts == $1.element.ts && $0.offset < $1.offset) })?.element
                else { return next() }
                return tx.query("UPDATE agents SET status = $1, status_ms = $2 WHERE id = $3 AND (status_ms IS NULL OR status_ms <= $2)",
                                [latest.json, PGText.int(latest.ts), b.agentId]) { _ in next() }
            }
            tx.copy(steps[i].0, steps[i].1) { step(i + 1) }
        }
        step(0)
    }

    // MARK: agents

    public func agentConnected(_ hello: AgentHello, completion: @escaping StoreCompletion<AgentRecord>) {
        guard !hello.id.isEmpty else {
            counters.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("agent id is empty")))
        }
        enqueueWrite(rows: 2, { [weak self] (tx: PGTransaction<AgentRecord>) in
            tx.query("""
                INSERT INTO agents(id, project_id, name, hostname, version, boot_id, state, state_since_ms, first_seen_ms, last_seen_ms, mode)
                SELECT $1, $2, $3, $4, $5, $6, 'not_visible', $7, $7, $7, $8 WHERE EXISTS (SELECT 1 FROM projects WHERE id = $2)
                ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, name = excluded.name,
                    hostname = excluded.hostname, version = excluded.version, boot_id = excluded.boot_id,
                    last_seen_ms = greatest(agents.last_seen_ms, excluded.last_seen_ms), mode = excluded.mode
                RETURNING id
                """, [hello.id, PGText.int(hello.projectId), hello.name, hello.hostname, hello.version, hello.bootId,
                      PGText.int(hello.at), hello.mode]) { r in
                guard r.count == 1 else { return tx.fail(.notFound("project \(hello.projectId)")) }
                self?.applyState(agent: hello.id, state: .connecting, messages: [], at: hello.at, tx) { _ in
                    PostgreSQLStore.readAgents(tx, id: hello.id, project: nil) { agents in
                        guard let a = agents.first else { return tx.fail(.notFound("agent '\(hello.id)'")) }
                        tx.done(a)
                    }
                }
            }
        }, completion: completion)
    }

    public func setAgentState(agent: String, state: AgentState, messages: [String], at: Int64,
                              completion: @escaping StoreCompletion<Bool>) {
        enqueueWrite(rows: 1, { [weak self] (tx: PGTransaction<Bool>) in
            self?.applyState(agent: agent, state: state, messages: messages, at: at, tx) { tx.done($0) }
        }, completion: completion)
    }

    public func recordAgentStatus(agent: String, state: AgentState, messages: [String], snapshot: StatusSnapshot,
                                  completion: @escaping StoreCompletion<Bool>) {
        enqueueWrite(rows: 2, { [weak self] (tx: PGTransaction<Bool>) in
            tx.query("INSERT INTO agent_status(agent_id, ts_ms, status) VALUES ($1, $2, $3)",
                     [agent, PGText.int(snapshot.ts), snapshot.json]) { _ in
                tx.query("""
                    UPDATE agents SET status = $1, status_ms = $2, last_seen_ms = greatest(last_seen_ms, $2)
                    WHERE id = $3 AND (status_ms IS NULL OR status_ms <= $2)
                    """, [snapshot.json, PGText.int(snapshot.ts), agent]) { _ in
                    self?.applyState(agent: agent, state: state, messages: messages, at: snapshot.ts, tx) { tx.done($0) }
                }
            }
        }, completion: completion)
    }

    public func markAllAgentsNotVisible(at: Int64, completion: @escaping StoreCompletion<Int>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<Int>) in
            tx.query("""
                INSERT INTO agent_states(agent_id, ts_ms, state, messages)
                SELECT id, $1, 'not_visible', '' FROM agents WHERE state <> 'not_visible' ORDER BY id
                """, [PGText.int(at)]) { _ in
                tx.query("UPDATE agents SET state = 'not_visible', state_messages = '', state_since_ms = $1 WHERE state <> 'not_visible'",
                         [PGText.int(at)]) { r in tx.done(r.affected) }
            }
        }, completion: completion)
    }

    /// Sets the state; a history row only when state or messages change.
    /// `.notFound` (ending `tx`) for an unknown agent.
    func applyState<T>(agent: String, state: AgentState, messages: [String], at: Int64, _ tx: PGTransaction<T>,
                       _ next: @escaping (Bool) -> Void) {
        tx.query("""
            WITH u AS (UPDATE agents SET state = $2, state_messages = $3, state_since_ms = $4
                       WHERE id = $1 AND (state <> $2 OR state_messages <> $3) RETURNING id),
                 h AS (INSERT INTO agent_states(agent_id, ts_ms, state, messages) SELECT id, $4, $2, $3 FROM u RETURNING 1)
            SELECT (SELECT count(*) FROM h), EXISTS (SELECT 1 FROM agents WHERE id = $1)
            """, [agent, state.rawValue, MessageList.encode(messages), PGText.int(at)]) { r in
            guard r.text(0, 1) == "t" else { return tx.fail(.notFound("agent '\(agent)'")) }
            next((r.int(0, 0) ?? 0) > 0)
        }
    }
}
