// PostgreSQLStore, retention and partitions: measurement partitions wholly
// older than the cutoff are dropped (one transaction each, rows counted
// first); what is left older than the cutoff — in the partition holding
// the cutoff, in the DEFAULT partition, in the other tables — is deleted in
// chunks of `retentionChunkRows`, one transaction per chunk, the next chunk
// queued from the previous one's completion. Then empty series, as SQLite.
// Loop thread.
import Reactor

extension PostgreSQLStore {
    static let retainedTables: [(table: String, column: String, key: String)] = [
        ("measurements", "ts_ms", "id"), ("events", "ts_ms", "id"), ("agent_status", "ts_ms", "id"),
        ("agent_states", "ts_ms", "id"), ("monitor_runs", "ts_ms", "id"), ("audit", "ts_ms", "id"),
        ("batch_sequences", "updated_ms", "ctid"),
    ]

    public func removeExpired(olderThan cutoff: Int64, completion: @escaping StoreCompletion<RetentionReport>) {
        dropPartitions(report: RetentionReport(cutoff: cutoff), completion: completion)
    }

    /// Drops the first daily partition that ends at or before the cutoff, repeatedly.
    private func dropPartitions(report: RetentionReport, completion: @escaping StoreCompletion<RetentionReport>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<Int?>) in
            tx.query("""
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'measurements'::regclass AND c.relname LIKE 'measurements\\_d%'
                """) { r in
                let days = (0..<r.count).compactMap { r.text($0, 0).flatMap(PGPartitions.day(ofPartition:)) }
                guard let day = days.filter({ ($0 + 1) * PGPartitions.dayMillis <= report.cutoff }).min() else { return tx.done(nil) }
                let name = PGPartitions.name(day: day)
                tx.query("SELECT count(*) FROM \(name)") { n in
                    tx.query("DROP TABLE \(name)") { _ in tx.done(Int(n.int(0, 0) ?? 0)) }
                }
            }
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e): completion(.failure(e))
            case .success(nil): self.retentionStep(table: 0, report: report, completion: completion)
            case .success(let n?):
                var next = report
                next.chunks += 1
                next.deleted["measurements", default: 0] += n
                self.counters.retentionDeleted &+= UInt64(n)
                self.dropPartitions(report: next, completion: completion)
            }
        }
    }

    private func retentionStep(table index: Int, report: RetentionReport, completion: @escaping StoreCompletion<RetentionReport>) {
        guard index < Self.retainedTables.count else { return emptySeriesStep(report: report, completion: completion) }
        let (table, column, key) = Self.retainedTables[index]
        let chunk = options.retentionChunkRows
        let sql = "DELETE FROM \(table) WHERE \(column) < $1 AND \(key) IN (SELECT \(key) FROM \(table) WHERE \(column) < $1 LIMIT $2)"
        enqueueWrite(rows: chunk, { (tx: PGTransaction<Int>) in
            tx.query(sql, [String(report.cutoff), String(chunk)]) { r in tx.done(r.affected) }
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e): completion(.failure(e))
            case .success(let deleted):
                var next = report
                next.chunks += 1
                if deleted > 0 { next.deleted[table, default: 0] += deleted }
                self.counters.retentionDeleted &+= UInt64(deleted)
                self.retentionStep(table: deleted < chunk ? index + 1 : index, report: next, completion: completion)
            }
        }
    }

    private func emptySeriesStep(report: RetentionReport, completion: @escaping StoreCompletion<RetentionReport>) {
        let chunk = options.retentionChunkRows
        enqueueWrite(rows: chunk, { (tx: PGTransaction<Int>) in
            tx.query("""
                DELETE FROM series WHERE id IN (SELECT s.id FROM series s
                    WHERE NOT EXISTS (SELECT 1 FROM measurements m WHERE m.series_id = s.id) LIMIT $1)
                """, [String(chunk)]) { r in tx.done(r.affected) }
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e): completion(.failure(e))
            case .success(let deleted):
                if deleted > 0 { self.seriesCache.removeAll() }
                var next = report
                next.chunks += 1
                if deleted > 0 { next.deleted["series", default: 0] += deleted }
                self.counters.retentionDeleted &+= UInt64(deleted)
                if deleted < chunk { completion(.success(next)) } else { self.emptySeriesStep(report: next, completion: completion) }
            }
        }
    }

    public func removeStaleAgents(notSeenSince cutoff: Int64, completion: @escaping StoreCompletion<[String]>) {
        staleAgentStep(cutoff: cutoff, removed: [], completion: completion)
    }

    private func staleAgentStep(cutoff: Int64, removed: [String], completion: @escaping StoreCompletion<[String]>) {
        let chunk = max(1, options.retentionChunkRows / 10)
        enqueueWrite(rows: chunk, { (tx: PGTransaction<[String]>) in
            tx.query("""
                WITH gone AS (DELETE FROM agents WHERE id IN (SELECT id FROM agents WHERE state = 'not_visible' AND last_seen_ms < $1
                                                              ORDER BY last_seen_ms LIMIT $2) RETURNING id),
                     a AS (DELETE FROM agent_states WHERE agent_id IN (SELECT id FROM gone)),
                     b AS (DELETE FROM agent_status WHERE agent_id IN (SELECT id FROM gone)),
                     c AS (DELETE FROM config_overrides WHERE agent_id IN (SELECT id FROM gone)),
                     d AS (DELETE FROM batch_sequences WHERE agent_id IN (SELECT id FROM gone))
                SELECT id FROM gone
                """, [String(cutoff), String(chunk)]) { r in tx.done((0..<r.count).compactMap { r.text($0, 0) }) }
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e): completion(.failure(e))
            case .success(let ids):
                if ids.count < chunk { completion(.success(removed + ids)) } else {
                    self.staleAgentStep(cutoff: cutoff, removed: removed + ids, completion: completion)
                }
            }
        }
    }

    /// As SQLiteStore's: `removeExpired` every `interval` s with a cutoff
    /// of `retentionDays` (skipped while 0 or while a pass runs), then
    /// `removeStaleAgents` with `agentRetentionDays`, then
    /// `removeExpiredCollectorSamples` with `selfMetricsRetentionDays`.
    public func startRetention(days: Int, agentDays: Int, selfMetricsDays: Int, every interval: Double, firstAfter: Double) {
        retentionDays = days
        agentRetentionDays = agentDays
        selfMetricsRetentionDays = selfMetricsDays
        retentionTimer?.stop()
        let t = TimerWatcher(loop: loop) { [weak self] _ in self?.retentionTick() }
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
                case .failure(let e): Log.warn("store: collector history retention failed: \(e)")
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
                case .failure(let e): Log.warn("store: agent retention failed: \(e)")
                }
            }
        }
        guard retentionDays > 0 else { return forgetAgents() }
        let days = retentionDays
        removeExpired(olderThan: now - Int64(days) * 86_400_000) { result in
            switch result {
            case .success(let r) where r.total > 0:
                Log.info("store: retention removed \(r.total) rows older than \(days) days in \(r.chunks) chunks")
            case .success: break
            case .failure(let e): Log.warn("store: retention failed: \(e)")
            }
            forgetAgents()
        }
    }

    /// Creates the daily partitions ahead now and then every hour.
    public func startPartitionMaintenance(every interval: Double = 3_600) {
        partitionTimer?.stop()
        let t = TimerWatcher(loop: loop) { [weak self] _ in self?.ensurePartitions() }
        t.start(after: interval, repeat: interval)
        partitionTimer = t
    }

    func ensurePartitions(now: Int64 = Clock.wallMillis()) {
        for day in PGPartitions.days(now: now, daysAhead: options.partitionDaysAhead) {
            enqueueWrite(rows: 1, { (tx: PGTransaction<Void>) in
                tx.query(PGPartitions.createSQL(day: day)) { _ in tx.done(()) }
            }) { result in
                if case .failure(let e) = result { Log.warn("store: measurement partition \(PGPartitions.name(day: day)) not created: \(e)") }
            }
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
