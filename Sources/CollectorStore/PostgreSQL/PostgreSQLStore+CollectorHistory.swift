// PostgreSQLStore, the collector's health history: as SQLite's — one row per
// sample in `collector_samples` (keyed by time), read back in buckets that
// SQL forms (GROUP BY the bucket number), so an answer's size depends on the
// range and the step, never on how many samples lie in it; and removed by
// age in chunks, one transaction each, from the retention timer. Loop
// thread; each public method queues one write transaction or one read.

extension PostgreSQLStore {
    public func appendCollectorSample(_ s: CollectorSample, completion: @escaping StoreCompletion<Void>) {
        let values = [s.ts, s.intervalMs, s.sessionsHandshake, s.sessionsEstablished, s.sessionsClosing, s.agentsConnecting,
                      s.agentsStopped, s.agentsCapturing, s.agentsWrongConfiguration, s.handshakes, s.handshakeFailures,
                      s.recordsIn, s.rowsStored, s.commitP99Us, s.commitMaxUs, s.lagP99Us, s.lagMaxUs, s.dropped,
                      s.storeFailures, s.pendingRows].map { PGText.int($0) }
        enqueueWrite(rows: 1, { (tx: PGTransaction<Void>) in
            // A second sample in the same millisecond (a clock step back)
            // takes the place of the first rather than failing, as SQLite's REPLACE.
            tx.query("""
                INSERT INTO collector_samples(ts_ms, interval_ms, sessions_handshake, sessions_established,
                    sessions_closing, agents_connecting, agents_stopped, agents_capturing, agents_wrong_configuration,
                    handshakes, handshake_failures, records_in, rows_stored, commit_p99_us, commit_max_us, lag_p99_us,
                    lag_max_us, dropped, store_failures, pending_rows)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
                ON CONFLICT (ts_ms) DO UPDATE SET interval_ms = excluded.interval_ms,
                    sessions_handshake = excluded.sessions_handshake, sessions_established = excluded.sessions_established,
                    sessions_closing = excluded.sessions_closing, agents_connecting = excluded.agents_connecting,
                    agents_stopped = excluded.agents_stopped, agents_capturing = excluded.agents_capturing,
                    agents_wrong_configuration = excluded.agents_wrong_configuration, handshakes = excluded.handshakes,
                    handshake_failures = excluded.handshake_failures, records_in = excluded.records_in,
                    rows_stored = excluded.rows_stored, commit_p99_us = excluded.commit_p99_us,
                    commit_max_us = excluded.commit_max_us, lag_p99_us = excluded.lag_p99_us, lag_max_us = excluded.lag_max_us,
                    dropped = excluded.dropped, store_failures = excluded.store_failures, pending_rows = excluded.pending_rows
                """, values) { _ in tx.done(()) }
        }, completion: completion)
    }

    public func collectorHistory(_ q: CollectorHistoryQuery, completion: @escaping StoreCompletion<[CollectorSample]>) {
        guard q.stepMs > 0, q.until > q.since else {
            return deliverLater(completion, .failure(.invalid("a history query needs step > 0 and until > since")))
        }
        let limit = limits.clamp(q.limit)
        enqueueRead({ (tx: PGTransaction<[CollectorSample]>) in
            // Gauges: the mean over the bucket (rounded half away from zero,
            // as SQLite's ROUND); counts: the sum; latencies and the queue:
            // the largest sample.
            tx.query("""
                SELECT (ts_ms - $1::bigint) / $2::bigint AS bucket, sum(interval_ms)::bigint,
                       round(avg(sessions_handshake))::bigint, round(avg(sessions_established))::bigint,
                       round(avg(sessions_closing))::bigint, round(avg(agents_connecting))::bigint,
                       round(avg(agents_stopped))::bigint, round(avg(agents_capturing))::bigint,
                       round(avg(agents_wrong_configuration))::bigint,
                       sum(handshakes)::bigint, sum(handshake_failures)::bigint, sum(records_in)::bigint, sum(rows_stored)::bigint,
                       max(commit_p99_us), max(commit_max_us), max(lag_p99_us), max(lag_max_us),
                       sum(dropped)::bigint, sum(store_failures)::bigint, max(pending_rows)
                FROM collector_samples WHERE ts_ms >= $1::bigint AND ts_ms < $3::bigint
                GROUP BY bucket ORDER BY bucket LIMIT $4
                """, [PGText.int(q.since), PGText.int(q.stepMs), PGText.int(q.until), String(limit)]) { r in
                tx.done((0..<r.count).map { i in
                    func v(_ c: Int) -> Int64 { r.int(i, c) ?? 0 }
                    var c = CollectorSample(ts: q.since + v(0) * q.stepMs, intervalMs: v(1))
                    c.sessionsHandshake = v(2); c.sessionsEstablished = v(3); c.sessionsClosing = v(4)
                    c.agentsConnecting = v(5); c.agentsStopped = v(6); c.agentsCapturing = v(7); c.agentsWrongConfiguration = v(8)
                    c.handshakes = v(9); c.handshakeFailures = v(10); c.recordsIn = v(11); c.rowsStored = v(12)
                    c.commitP99Us = v(13); c.commitMaxUs = v(14); c.lagP99Us = v(15); c.lagMaxUs = v(16)
                    c.dropped = v(17); c.storeFailures = v(18); c.pendingRows = v(19)
                    return c
                })
            }
        }, completion: completion)
    }

    public func removeExpiredCollectorSamples(olderThan cutoff: Int64, completion: @escaping StoreCompletion<Int>) {
        collectorSampleStep(cutoff: cutoff, removed: 0, completion: completion)
    }

    private func collectorSampleStep(cutoff: Int64, removed: Int, completion: @escaping StoreCompletion<Int>) {
        let chunk = options.retentionChunkRows
        enqueueWrite(rows: chunk, { (tx: PGTransaction<Int>) in
            tx.query("""
                DELETE FROM collector_samples WHERE ts_ms IN (SELECT ts_ms FROM collector_samples WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)
                """, [PGText.int(cutoff), String(chunk)]) { r in tx.done(r.affected) }
        }) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let e):
                completion(.failure(e))
            case .success(let deleted):
                self.counters.retentionDeleted &+= UInt64(deleted)
                if deleted < chunk { completion(.success(removed + deleted)) } else {
                    self.collectorSampleStep(cutoff: cutoff, removed: removed + deleted, completion: completion)
                }
            }
        }
    }
}
