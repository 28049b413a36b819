// SQLiteStore, change log: reading it for followers and trimming it. The
// rows are written by the registry methods (SQLiteStore+Registry.swift) in
// the transaction of the change; one writer makes seq order commit order.
// Loop thread; the bodies run on the writer thread.
import Reactor

extension SQLiteStore {
    public func latestChange(completion: @escaping StoreCompletion<Int64>) {
        enqueueRead({ writer in try writer.db.scalar("SELECT max(seq) FROM change_log") ?? 0 }, completion: completion)
    }

    public func changes(from: Int64, limit: Int, completion: @escaping StoreCompletion<[ChangeRecord]>) {
        let limit = max(1, min(limit, options.limits.maxQueryRows))
        enqueueRead({ writer in
            let s = try writer.db.statement("""
                SELECT seq, project, kind, agent, detail, origin, at_ms FROM change_log WHERE seq >= ? ORDER BY seq LIMIT ?
                """)
            defer { s.reset() }
            s.bind(1, from); s.bind(2, limit)
            var out: [ChangeRecord] = []
            while try s.step() {
                // A kind this program does not know (a newer writer) is skipped, not fatal.
                guard let kind = ChangeKind(rawValue: s.text(2)) else { continue }
                out.append(ChangeRecord(seq: s.int64(0), project: s.text(1), kind: kind, agent: s.text(3), detail: s.text(4),
                                        origin: s.text(5), at: s.int64(6)))
            }
            return out
        }, completion: completion)
    }

    public func removeExpiredChanges(olderThan cutoff: Int64, completion: @escaping StoreCompletion<Int>) {
        changeRetentionStep(cutoff: cutoff, removed: 0, completion: completion)
    }

    private func changeRetentionStep(cutoff: Int64, removed: Int, completion: @escaping StoreCompletion<Int>) {
        let chunk = ChangeLog.retentionChunk
        enqueueWrite(rows: chunk, { writer in
            try writer.db.run("""
                DELETE FROM change_log WHERE seq IN (SELECT seq FROM change_log
                    WHERE at_ms < ?1 AND seq < (SELECT max(seq) FROM change_log) ORDER BY seq LIMIT ?2)
                """, [.integer(cutoff), .integer(Int64(chunk))])
        }) { [weak self] result in
            switch result {
            case .failure(let e): completion(.failure(e))
            case .success(let n):
                if n < chunk || self == nil { return completion(.success(removed + n)) }
                self!.changeRetentionStep(cutoff: cutoff, removed: removed + n, completion: completion)
            }
        }
    }
}
