// SQLiteStore, retention: old rows are deleted explicitly, a chunk of at
// most `retentionChunkRows` rows per transaction, each chunk queued as an
// ordinary write so it shares the slicing and group commit of the write
// path; the next chunk is queued from the previous one's completion, so
// it runs on a later loop iteration. No reliance on expiry magic.
// Loop thread, but for the DELETE itself (a write job on the writer).
import Reactor

extension SQLiteStore {
    /// Tables with a time column, and the column (ms since the epoch).
    static let retainedTables: [(table: String, column: String)] = [
        ("measurements", "ts_ms"), ("events", "ts_ms"), ("agent_status", "ts_ms"), ("agent_states", "ts_ms"),
        ("monitor_runs", "ts_ms"), ("audit", "ts_ms"), ("batch_sequences", "updated_ms"),
    ]

    public func removeExpired(olderThan cutoff: Int64, completion: @escaping StoreCompletion<RetentionReport>) {
        retentionStep(table: 0, report: RetentionReport(cutoff: cutoff), completion: completion)
    }

    private func retentionStep(table index: Int, report: RetentionReport, completion: @escaping StoreCompletion<RetentionReport>) {
        guard index < SQLiteStore.retainedTables.count else { return emptySeriesStep(report: report, completion: completion) }
        let (table, column) = SQLiteStore.retainedTables[index]
        let chunk = options.retentionChunkRows
        // batch_sequences has no rowid (WITHOUT ROWID); its key is (agent_id, boot_id).
        let (key, columns) = table == "batch_sequences" ? ("(agent_id, boot_id)", "agent_id, boot_id") : ("rowid", "rowid")
        let sql = "DELETE FROM \(table) WHERE \(key) IN (SELECT \(columns) FROM \(table) WHERE \(column) < ?1 LIMIT ?2)"
        enqueueWrite(rows: chunk, { writer in
            try writer.db.run(sql, [.integer(report.cutoff), .integer(Int64(chunk))])
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e):
                completion(.failure(e))
            case .success(let deleted):
                var next = report
                next.chunks += 1
                next.deleted[table, default: 0] += deleted
                self.loopStats.retentionDeleted &+= UInt64(deleted)
                self.retentionStep(table: deleted < chunk ? index + 1 : index, report: next, completion: completion)
            }
        }
    }

    /// After the time tables: series without a measurement, a chunk per
    /// transaction. The writer's series cache is cleared with each chunk,
    /// so a later measurement of the same key makes its series anew.
    private func emptySeriesStep(report: RetentionReport, completion: @escaping StoreCompletion<RetentionReport>) {
        let chunk = options.retentionChunkRows
        let sql = """
            DELETE FROM series WHERE id IN (SELECT s.id FROM series s
                WHERE NOT EXISTS (SELECT 1 FROM measurements m WHERE m.series_id = s.id) LIMIT ?1)
            """
        enqueueWrite(rows: chunk, { writer -> Int in
            let n = try writer.db.run(sql, [.integer(Int64(chunk))])
            if n > 0 { writer.seriesCache.removeAll() }
            return n
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e):
                completion(.failure(e))
            case .success(let deleted):
                var next = report
                next.chunks += 1
                if deleted > 0 { next.deleted["series", default: 0] += deleted }
                self.loopStats.retentionDeleted &+= UInt64(deleted)
                if deleted < chunk { completion(.success(next)) } else { self.emptySeriesStep(report: next, completion: completion) }
            }
        }
    }

    public func removeStaleAgents(notSeenSince cutoff: Int64, completion: @escaping StoreCompletion<[String]>) {
        staleAgentStep(cutoff: cutoff, removed: [], completion: completion)
    }

    private func staleAgentStep(cutoff: Int64, removed: [String], completion: @escaping StoreCompletion<[String]>) {
        let chunk = max(1, options.retentionChunkRows / 10)   // each agent takes several tables' rows
        enqueueWrite(rows: chunk, { writer -> [String] in
            let select = try writer.db.statement(
                "SELECT id FROM agents WHERE state = 'not_visible' AND last_seen_ms < ?1 ORDER BY last_seen_ms LIMIT ?2")
            select.bind(1, cutoff)
            select.bind(2, chunk)
            var ids: [String] = []
            while try select.step() { ids.append(select.text(0)) }
            for id in ids {
                for sql in ["DELETE FROM agent_states WHERE agent_id = ?1", "DELETE FROM agent_status WHERE agent_id = ?1",
                            "DELETE FROM config_overrides WHERE agent_id = ?1", "DELETE FROM batch_sequences WHERE agent_id = ?1",
                            "DELETE FROM agents WHERE id = ?1"] {
                    _ = try writer.db.run(sql, [.text(id)])
                }
            }
            return ids
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e):
                completion(.failure(e))
            case .success(let ids):
                if ids.count < chunk { completion(.success(removed + ids)) } else {
                    self.staleAgentStep(cutoff: cutoff, removed: removed + ids, completion: completion)
                }
            }
        }
    }

    /// Runs `removeExpired` every `interval` seconds with a cutoff of
    /// `retentionDays` before the wall clock (skipped while 0 or while a pass
    /// is still running), then `removeStaleAgents` with `agentRetentionDays`
    /// (skipped while 0), reporting forgotten agents to `agentsForgotten`,
    /// then `removeExpiredCollectorSamples` with `selfMetricsRetentionDays`
    /// (skipped while 0). The first pass runs after `firstAfter` seconds.
    public func startRetention(days: Int, agentDays: Int = 0, selfMetricsDays: Int = 0, every interval: Double,
                               firstAfter: Double = 5) {
        retentionDays = days
        agentRetentionDays = agentDays
        selfMetricsRetentionDays = selfMetricsDays
        retentionTimer?.stop()
        let t = TimerWatcher(loop: loop, label: "store retention") { [weak self] _ in self?.retentionTick() }
        t.start(after: firstAfter, repeat: interval)
        retentionTimer = t
    }

    public func stopRetention() {
        retentionTimer?.stop()
        retentionTimer = nil
    }

    private func retentionTick() {
        pruneChangeLog()
        guard !retentionRunning, !isClosed, retentionDays > 0 || agentRetentionDays > 0 || selfMetricsRetentionDays > 0 else {
            return
        }
        retentionRunning = true
        let now = Clock.wallMillis()
        let collectorSamples: () -> Void = { [weak self] in
            guard let self, self.selfMetricsRetentionDays > 0, !self.isClosed else { self?.retentionRunning = false; return }
            let days = self.selfMetricsRetentionDays
            self.removeExpiredCollectorSamples(olderThan: now - Int64(days) * 86_400_000) { [weak self] result in
                self?.retentionRunning = false
                switch result {
                case .success(let n) where n > 0:
                    Log.info("store: retention removed \(n) collector health samples older than \(days) days")
                case .success: break
                case .failure(let e):
                    Log.warn("store: collector history retention failed: \(e)")
                }
            }
        }
        let forgetAgents: () -> Void = { [weak self] in
            guard let self, self.agentRetentionDays > 0, !self.isClosed else { return collectorSamples() }
            let days = self.agentRetentionDays
            self.removeStaleAgents(notSeenSince: now - Int64(days) * 86_400_000) { [weak self] result in
                defer { collectorSamples() }
                switch result {
                case .success(let ids) where !ids.isEmpty:
                    Log.info("store: retention forgot \(ids.count) agents not seen for \(days) days")
                    self?.agentsForgotten?(ids)
                case .success: break
                case .failure(let e):
                    Log.warn("store: agent retention failed: \(e)")
                }
            }
        }
        guard retentionDays > 0 else { return forgetAgents() }
        let cutoff = now - Int64(retentionDays) * 86_400_000
        removeExpired(olderThan: cutoff) { [weak self] result in
            switch result {
            case .success(let r) where r.total > 0:
                Log.info("store: retention removed \(r.total) rows older than \(self?.retentionDays ?? 0) days in \(r.chunks) chunks")
            case .success: break
            case .failure(let e):
                Log.warn("store: retention failed: \(e)")
            }
            forgetAgents()
        }
    }

    /// The change log keeps `ChangeLog.retentionMs` whatever the other
    /// retention settings say (it is not data anyone reads back later).
    private func pruneChangeLog() {
        guard !isClosed else { return }
        removeExpiredChanges(olderThan: Clock.wallMillis() - ChangeLog.retentionMs) { result in
            switch result {
            case .success(let n) where n > 0: Log.info("store: retention removed \(n) change-log rows older than a day")
            case .success: break
            case .failure(let e): Log.warn("store: change-log retention failed: \(e)")
            }
        }
    }
}
