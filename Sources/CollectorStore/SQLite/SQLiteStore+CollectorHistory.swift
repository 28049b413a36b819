// SQLiteStore, the collector's health history: one row per sample in
// `collector_samples` (keyed by time), read back in buckets that SQL forms
// (GROUP BY the bucket number), so an answer's size depends on the range
// and the step, never on how many samples lie in it; and removed by age in
// chunks, from the retention timer. Loop thread, but for the statements
// (jobs on the writer).
import Reactor

extension SQLiteStore {
    public func appendCollectorSample(_ s: CollectorSample, completion: @escaping StoreCompletion<Void>) {
        enqueueWrite(rows: 1, { writer in
            // REPLACE: a second sample in the same millisecond (a clock step
            // back) takes the place of the first rather than failing.
            _ = try writer.db.run("""
                INSERT OR REPLACE INTO collector_samples(ts_ms, interval_ms, sessions_handshake, sessions_established,
                    sessions_closing, agents_connecting, agents_stopped, agents_capturing, agents_wrong_configuration,
                    handshakes, handshake_failures, records_in, rows_stored, commit_p99_us, commit_max_us, lag_p99_us,
                    lag_max_us, dropped, store_failures, pending_rows)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [s.ts, s.intervalMs, s.sessionsHandshake, s.sessionsEstablished, s.sessionsClosing, s.agentsConnecting,
                      s.agentsStopped, s.agentsCapturing, s.agentsWrongConfiguration, s.handshakes, s.handshakeFailures,
                      s.recordsIn, s.rowsStored, s.commitP99Us, s.commitMaxUs, s.lagP99Us, s.lagMaxUs, s.dropped,
                      s.storeFailures, s.pendingRows].map { .integer($0) })
        }, completion: completion)
    }

    public func collectorHistory(_ q: CollectorHistoryQuery, completion: @escaping StoreCompletion<[CollectorSample]>) {
        guard q.stepMs > 0, q.until > q.since else {
            return deliverLater(completion, .failure(.invalid("a history query needs step > 0 and until > since")))
        }
        enqueueRead({ writer in
            var out: [CollectorSample] = []
            // Gauges: the mean over the bucket; counts: the sum; latencies
            // and the queue: the largest sample.
            let s = try writer.db.statement("""
                SELECT (ts_ms - ?1) / ?2 AS bucket, SUM(interval_ms),
                       ROUND(AVG(sessions_handshake)), ROUND(AVG(sessions_established)), ROUND(AVG(sessions_closing)),
                       ROUND(AVG(agents_connecting)), ROUND(AVG(agents_stopped)), ROUND(AVG(agents_capturing)),
                       ROUND(AVG(agents_wrong_configuration)),
                       SUM(handshakes), SUM(handshake_failures), SUM(records_in), SUM(rows_stored),
                       MAX(commit_p99_us), MAX(commit_max_us), MAX(lag_p99_us), MAX(lag_max_us),
                       SUM(dropped), SUM(store_failures), MAX(pending_rows)
                FROM collector_samples WHERE ts_ms >= ?1 AND ts_ms < ?3
                GROUP BY bucket ORDER BY bucket LIMIT ?4
                """)
            defer { s.reset() }
            s.bind(1, q.since)
            s.bind(2, q.stepMs)
            s.bind(3, q.until)
            s.bind(4, writer.options.limits.clamp(q.limit))
            while try s.step() {
                var c = CollectorSample(ts: q.since + s.int64(0) * q.stepMs, intervalMs: s.int64(1))
                c.sessionsHandshake = s.int64(2); c.sessionsEstablished = s.int64(3); c.sessionsClosing = s.int64(4)
                c.agentsConnecting = s.int64(5); c.agentsStopped = s.int64(6); c.agentsCapturing = s.int64(7)
                c.agentsWrongConfiguration = s.int64(8)
                c.handshakes = s.int64(9); c.handshakeFailures = s.int64(10); c.recordsIn = s.int64(11); c.rowsStored = s.int64(12)
                c.commitP99Us = s.int64(13); c.commitMaxUs = s.int64(14); c.lagP99Us = s.int64(15); c.lagMaxUs = s.int64(16)
                c.dropped = s.int64(17); c.storeFailures = s.int64(18); c.pendingRows = s.int64(19)
                out.append(c)
            }
            return out
        }, completion: completion)
    }

    public func removeExpiredCollectorSamples(olderThan cutoff: Int64, completion: @escaping StoreCompletion<Int>) {
        collectorSampleStep(cutoff: cutoff, removed: 0, completion: completion)
    }

    private func collectorSampleStep(cutoff: Int64, removed: Int, completion: @escaping StoreCompletion<Int>) {
        let chunk = options.retentionChunkRows
        enqueueWrite(rows: chunk, { writer in
            try writer.db.run("DELETE FROM collector_samples WHERE ts_ms IN (SELECT ts_ms FROM collector_samples WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
                              [.integer(cutoff), .integer(Int64(chunk))])
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e):
                completion(.failure(e))
            case .success(let deleted):
                self.loopStats.retentionDeleted &+= UInt64(deleted)
                if deleted < chunk { completion(.success(removed + deleted)) } else {
                    self.collectorSampleStep(cutoff: cutoff, removed: removed + deleted, completion: completion)
                }
            }
        }
    }
}
