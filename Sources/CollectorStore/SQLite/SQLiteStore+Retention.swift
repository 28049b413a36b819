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
        guard index < SQLiteStore.retainedTables.count else { return deliverLater(completion, .success(report)) }
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

    /// Runs `removeExpired` every `interval` seconds with a cutoff of
    /// `retentionDays` before the wall clock (skipped while 0 or while a pass
    /// is still running). The first pass runs after `firstAfter` seconds.
    public func startRetention(days: Int, every interval: Double, firstAfter: Double = 5) {
        retentionDays = days
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
        guard retentionDays > 0, !retentionRunning, !isClosed else { return }
        retentionRunning = true
        let cutoff = Clock.wallMillis() - Int64(retentionDays) * 86_400_000
        removeExpired(olderThan: cutoff) { [weak self] result in
            self?.retentionRunning = false
            switch result {
            case .success(let r) where r.total > 0:
                Log.info("store: retention removed \(r.total) rows older than \(self?.retentionDays ?? 0) days in \(r.chunks) chunks")
            case .success: break
            case .failure(let e):
                Log.warn("store: retention failed: \(e)")
            }
        }
    }
}
