// PostgreSQLStore, ingest: batches with de-duplication (the sequence row
// locked, rows by COPY), agent registration and state. Loop thread; each
// public method queues one write transaction (PostgreSQLStore).
//
// A group of batches (everything queued while the write connection was
// busy) normally goes in with `storeGroup`: a fixed number of exchanges
// with the server whatever the group's size — a pipeline (BEGIN, every
// sequence row of the group locked in one statement, the new series made),
// one COPY per table for the whole group, and a pipeline (the sequence
// rows, the agents' last-seen and latest status, COMMIT). A group the
// server refuses is rolled back and run again batch by batch in savepoints
// (`writeBatch`), so one bad batch fails alone.
import Reactor

extension PostgreSQLStore {
    public func submitBatch(_ batch: Batch, completion: @escaping StoreCompletion<BatchOutcome>) {
        guard batch.sequence >= 0, !batch.agentId.isEmpty else {
            let refused = Result<BatchOutcome, StoreError>.failure(.invalid("batch needs an agent id and a sequence >= 0"))
            counters.refusedInvalid &+= 1
            counters.countBatch(refused)
            return deliverLater(completion, refused)
        }
        enqueueWrite(rows: max(batch.rowCount, 1), batch: batch, { [weak self] tx in self?.writeBatch(batch, tx) }) { [weak self] result in
            self?.counters.countBatch(result)
            completion(result)
        }
    }

    /// Stores `batches` in one transaction on `conn` with a fixed number of
    /// round trips; `done` after COMMIT returned with each batch's outcome,
    /// in order, or with the first failure (the transaction is then open
    /// and aborted, or gone with the connection: the caller rolls back).
    func storeGroup(_ batches: [Batch], _ conn: PGConnection,
                    _ done: @escaping (Result<[BatchOutcome], StoreError>) -> Void) {
        // Every (agent, boot) of the group once, sorted: collectors lock
        // the rows they share in the same order, so they cannot deadlock.
        var firstSeen: [SeqKey: Int64] = [:]
        for b in batches where firstSeen[SeqKey(agent: b.agentId, boot: b.bootId)] == nil {
            firstSeen[SeqKey(agent: b.agentId, boot: b.bootId)] = b.receivedAt
        }
        let keys = firstSeen.keys.sorted()
        var statements: [(String, [String?])] = [("BEGIN", [])]
        statements.append(("""
            INSERT INTO batch_sequences(agent_id, boot_id, high_seq, gaps, batches, updated_ms)
            SELECT u.a, u.b, -1, '', 0, u.t FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(a, b, t) ORDER BY u.a, u.b
            ON CONFLICT (agent_id, boot_id) DO UPDATE SET agent_id = excluded.agent_id
            RETURNING agent_id, boot_id, high_seq, gaps
            """, [PGText.array(keys.map(\.agent)), PGText.array(keys.map(\.boot)),
                  PGText.intArray(keys.map { firstSeen[$0] ?? 0 })]))
        var missing: [SeriesKey] = []
        var missingProject: [Int64] = []
        var seen = Set<SeriesKey>()
        for b in batches {
            for m in b.measurements {
                let k = SeriesKey(agent: b.agentId, monitor: m.monitor, check: m.check, source: m.source)
                if seriesCache[k] == nil, seen.insert(k).inserted { missing.append(k); missingProject.append(b.projectId) }
            }
        }
        if !missing.isEmpty {
            statements.append(("""
                INSERT INTO series(project_id, agent_id, monitor, check_name, source)
                SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
                ON CONFLICT (agent_id, monitor, check_name, source) DO UPDATE SET source = excluded.source
                RETURNING id, agent_id, monitor, check_name, source
                """, [PGText.intArray(missingProject), PGText.array(missing.map(\.agent)), PGText.array(missing.map(\.monitor)),
                      PGText.array(missing.map(\.check)), PGText.array(missing.map(\.source))]))
        }
        conn.run(.pipeline(statements)) { [self] r in
            let results: [PGRows]
            switch r {
            case .success(let rows) where rows.count == statements.count: results = rows
            case .success: return done(.failure(.backend("PostgreSQL: a result is missing")))
            case .failure(let e): return done(.failure(e))
            }
            var seqs: [SeqKey: ReceivedSequences] = [:]
            let locked = results[1]
            for i in 0..<locked.count {
                seqs[SeqKey(agent: locked.text(i, 0) ?? "", boot: locked.text(i, 1) ?? "")] =
                    ReceivedSequences(high: locked.int(i, 2) ?? -1, encodedGaps: locked.text(i, 3) ?? "")
            }
            var newIds: [SeriesKey: Int64] = [:]
            if results.count > 2 {
                let made = results[2]
                for i in 0..<made.count {
                    newIds[SeriesKey(agent: made.text(i, 1) ?? "", monitor: made.text(i, 2) ?? "", check: made.text(i, 3) ?? "",
                                     source: made.text(i, 4) ?? "")] = made.int(i, 0)
                }
            }
            // De-duplication against the locked rows, and within the group.
            var outcomes: [BatchOutcome] = []
            var copies = CopyBuffers()
            var gapsForgotten = 0
            var stored: [SeqKey: (count: Int, at: Int64)] = [:]
            var lastSeen: [String: Int64] = [:]
            var latestStatus: [String: StatusSnapshot] = [:]
            for b in batches {
                let key = SeqKey(agent: b.agentId, boot: b.bootId)
                if seqs[key, default: ReceivedSequences()].contains(b.sequence) { outcomes.append(.duplicate); continue }
                gapsForgotten += seqs[key, default: ReceivedSequences()].insert(b.sequence, maxGaps: options.maxSequenceGaps)
                copies.add(b) { seriesCache[$0] ?? newIds[$0] ?? 0 }
                stored[key, default: (0, 0)].count += 1
                stored[key]!.at = b.receivedAt
                lastSeen[b.agentId] = max(lastSeen[b.agentId] ?? b.receivedAt, b.receivedAt)
                // The newest status becomes the agent's latest (the last of equal times).
                for st in b.statuses where latestStatus[b.agentId].map({ $0.ts <= st.ts }) ?? true { latestStatus[b.agentId] = st }
                outcomes.append(.stored(rows: b.rowCount))
            }
            var last: [(String, [String?])] = []
            if !stored.isEmpty {
                let ks = stored.keys.sorted()
                last.append(("""
                    UPDATE batch_sequences s SET high_seq = u.h, gaps = u.g, batches = s.batches + u.n, updated_ms = u.t
                    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) AS u(a, b, h, g, n, t)
                    WHERE s.agent_id = u.a AND s.boot_id = u.b
                    """, [PGText.array(ks.map(\.agent)), PGText.array(ks.map(\.boot)),
                          PGText.intArray(ks.map { seqs[$0]?.high ?? -1 }), PGText.array(ks.map { seqs[$0]?.encodedGaps ?? "" }),
                          PGText.intArray(ks.map { Int64(stored[$0]?.count ?? 0) }), PGText.intArray(ks.map { stored[$0]?.at ?? 0 })]))
                let agents = lastSeen.keys.sorted()
                last.append(("""
                    UPDATE agents a SET last_seen_ms = greatest(a.last_seen_ms, u.t)
                    FROM unnest($1::text[], $2::bigint[]) AS u(id, t) WHERE a.id = u.id
                    """, [PGText.array(agents), PGText.intArray(agents.map { lastSeen[$0] ?? 0 })]))
            }
            if !latestStatus.isEmpty {
                let agents = latestStatus.keys.sorted()
                last.append(("""
                    UPDATE agents a SET status = u.s, status_ms = u.t
                    FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, s, t)
                    WHERE a.id = u.id AND (a.status_ms IS NULL OR a.status_ms <= u.t)
                    """, [PGText.array(agents), PGText.array(agents.map { latestStatus[$0]?.json ?? "" }),
                          PGText.intArray(agents.map { latestStatus[$0]?.ts ?? 0 })]))
            }
            last.append(("COMMIT", []))
            let commands = copies.takeCommands()
            func step(_ i: Int) {
                guard i < commands.count else {
                    let commitStarted = Clock.monotonicNanos()
                    return conn.run(.pipeline(last)) { [self] r in
                        if case .failure(let e) = r { return done(.failure(e)) }
                        counters.commitMicros.record((Clock.monotonicNanos() - commitStarted) / 1_000)
                        counters.sequenceGapsForgotten &+= UInt64(gapsForgotten)
                        if seriesCache.count + newIds.count > options.seriesCacheLimit { seriesCache.removeAll(keepingCapacity: true) }
                        seriesCache.merge(newIds) { a, _ in a }
                        done(.success(outcomes))
                    }
                }
                conn.run(commands[i]) { r in
                    if case .failure(let e) = r { return done(.failure(e)) }
                    step(i + 1)
                }
            }
            step(0)
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
        var copies = CopyBuffers()
        copies.add(b) { ids[$0] ?? 0 }
        let steps = copies.takeCommands().compactMap { c -> (String, [UInt8])? in
            guard case .copy(let sql, let data) = c else { return nil }
            return (sql, data)
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
        // Ingest lane: its project came from a key read that completed.
        enqueueWrite(rows: 2, lane: .ingest, { [weak self] (tx: PGTransaction<AgentRecord>) in
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
        enqueueWrite(rows: 1, lane: .ingest, { [weak self] (tx: PGTransaction<Bool>) in
            self?.applyState(agent: agent, state: state, messages: messages, at: at, tx) { tx.done($0) }
        }, completion: completion)
    }

    public func recordAgentStatus(agent: String, state: AgentState, messages: [String], snapshot: StatusSnapshot,
                                  completion: @escaping StoreCompletion<Bool>) {
        enqueueWrite(rows: 2, lane: .ingest, { [weak self] (tx: PGTransaction<Bool>) in
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

/// An (agent, boot): the key of a sequence row.
struct SeqKey: Hashable, Comparable {
    let agent: String
    let boot: String
    static func < (a: SeqKey, b: SeqKey) -> Bool { (a.agent, a.boot) < (b.agent, b.boot) }
}

/// The COPY data of a group's rows, one buffer per table, and the commands
/// that load them. Measurements — most of the rows — go in COPY's binary
/// format (PGBinaryCopy: no number parsing on the server, the bytea as it
/// is), written straight into the buffer; the other tables in the text format.
struct CopyBuffers {
    /// Binary COPY data: the header once the first row is added; the
    /// trailer is added by `commands`.
    var measurements: [UInt8] = []
    var events: [UInt8] = []
    var statuses: [UInt8] = []
    var runs: [UInt8] = []

    mutating func add(_ b: Batch, seriesId: (SeriesKey) -> Int64) {
        if !b.measurements.isEmpty {
            if measurements.isEmpty { measurements = PGBinaryCopy.header }
            // 2 + 16 × 12 + 4 bytes a row, and the histogram. Grown by
            // doubling: reserveCapacity allocates exactly what it is asked
            // for, so asking it for each batch's rows copied the whole
            // group's buffer once per batch.
            let need = measurements.count + b.measurements.count * 256
            if need > measurements.capacity { measurements.reserveCapacity(max(need, 2 * measurements.capacity)) }
        }
        for m in b.measurements {
            let id = seriesId(SeriesKey(agent: b.agentId, monitor: m.monitor, check: m.check, source: m.source))
            PGBinaryCopy.beginRow(fields: 17, into: &measurements)
            PGBinaryCopy.appendInt8(id, into: &measurements)
            PGBinaryCopy.appendInt8(m.ts, into: &measurements)
            PGBinaryCopy.appendInt8(m.windowMs, into: &measurements)
            PGBinaryCopy.appendInt8(m.count, into: &measurements)
            PGBinaryCopy.appendInt8(m.errors, into: &measurements)
            PGBinaryCopy.appendInt8(m.sumUs, into: &measurements)
            PGBinaryCopy.appendInt8(m.minUs, into: &measurements)
            PGBinaryCopy.appendInt8(m.maxUs, into: &measurements)
            PGBinaryCopy.appendInt8(m.p50Us, into: &measurements)
            PGBinaryCopy.appendInt8(m.p95Us, into: &measurements)
            PGBinaryCopy.appendInt8(m.p99Us, into: &measurements)
            PGBinaryCopy.appendInt8(m.outcomes.s2xx, into: &measurements)
            PGBinaryCopy.appendInt8(m.outcomes.s3xx, into: &measurements)
            PGBinaryCopy.appendInt8(m.outcomes.s4xx, into: &measurements)
            PGBinaryCopy.appendInt8(m.outcomes.s5xx, into: &measurements)
            PGBinaryCopy.appendInt8(m.outcomes.error, into: &measurements)
            PGBinaryCopy.appendBytea(m.histogram, into: &measurements)
        }
        for e in b.events {
            PGText.copyRow([String(e.ts), String(b.projectId), b.agentId, e.monitor, e.check, e.method, e.host, e.path,
                            String(e.status), String(e.durationUs), e.errorClass], into: &events)
        }
        for s in b.statuses { PGText.copyRow([b.agentId, String(s.ts), s.json], into: &statuses) }
        for r in b.monitorRuns {
            PGText.copyRow([String(r.ts), String(b.projectId), b.agentId, r.monitor, r.check, r.ok ? "t" : "f",
                            String(r.durationUs), r.detail], into: &runs)
        }
    }

    /// One COPY per table with rows, each with its data. The buffers are
    /// handed over, not copied: they are left empty.
    mutating func takeCommands() -> [PGConnection.Command] {
        var c: [PGConnection.Command] = []
        if !measurements.isEmpty {
            measurements.append(contentsOf: PGBinaryCopy.trailer)
            c.append(.copy("""
                COPY measurements (series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us,
                                   outcome_2xx, outcome_3xx, outcome_4xx, outcome_5xx, outcome_error, histogram)
                FROM STDIN (FORMAT binary)
                """, measurements))
            measurements = []
        }
        if !events.isEmpty {
            c.append(.copy("""
                COPY events (ts_ms, project_id, agent_id, monitor, check_name, method, host, path, status, duration_us, error_class)
                FROM STDIN
                """, events))
            events = []
        }
        if !statuses.isEmpty {
            c.append(.copy("COPY agent_status (agent_id, ts_ms, status) FROM STDIN", statuses))
            statuses = []
        }
        if !runs.isEmpty {
            c.append(.copy("COPY monitor_runs (ts_ms, project_id, agent_id, monitor, check_name, ok, duration_us, detail) FROM STDIN",
                           runs))
            runs = []
        }
        return c
    }
}
