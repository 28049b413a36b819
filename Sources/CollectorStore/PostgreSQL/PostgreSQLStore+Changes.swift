// PostgreSQLStore, change log: appending inside a change's transaction,
// reading for followers, trimming.
//
// Several collectors write at once, and an identity's value is taken when
// the row is inserted, not when its transaction commits: without care a row
// with seq 7 could become visible after a follower already read 8 and moved
// past 7 for good. So each append first takes a transaction-level advisory
// lock (`changeLogLock`) and holds it until COMMIT: seq order is commit
// order, and `seq >= last` misses nothing. The lock is taken as the last
// step of a change (after its row locks), so a change waits only for
// another's COMMIT; changes are operator actions and enrollments, not
// ingest, so the serialisation costs nothing measurable. A transaction that
// rolls back after taking a seq leaves a hole; holes are harmless (a
// follower looks for the row it saw last, not for consecutive numbers).
//
// Loop thread; each public method queues one transaction or one read.
import Reactor

extension PostgreSQLStore {
    /// Any fixed number (distinct from PGMigrations.lockKey).
    static let changeLogLock = 7_426_331_009

    /// Appends a change-log row inside `tx`, then `next`.
    static func appendChange<T>(_ tx: PGTransaction<T>, _ kind: ChangeKind, project: String, agent: String = "",
                                detail: String = "", origin: String, at: Int64, _ next: @escaping () -> Void) {
        tx.query("SELECT pg_advisory_xact_lock(\(changeLogLock))") { _ in
            tx.query("INSERT INTO change_log(project, kind, agent, detail, origin, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                     [project, kind.rawValue, agent, detail, origin, PGText.int(at)]) { _ in next() }
        }
    }

    /// The same, naming the project by id.
    static func appendChange<T>(_ tx: PGTransaction<T>, _ kind: ChangeKind, projectId: Int64, agent: String,
                                origin: String, at: Int64, _ next: @escaping () -> Void) {
        tx.query("SELECT pg_advisory_xact_lock(\(changeLogLock))") { _ in
            tx.query("""
                INSERT INTO change_log(project, kind, agent, detail, origin, at_ms) SELECT name, $1, $2, '', $3, $4 FROM projects WHERE id = $5
                """, [kind.rawValue, agent, origin, PGText.int(at), PGText.int(projectId)]) { _ in next() }
        }
    }

    public func latestChange(completion: @escaping StoreCompletion<Int64>) {
        enqueueRead({ (tx: PGTransaction<Int64>) in
            tx.query("SELECT COALESCE(max(seq), 0) FROM change_log") { r in tx.done(r.int(0, 0) ?? 0) }
        }, completion: completion)
    }

    public func changes(from: Int64, limit: Int, completion: @escaping StoreCompletion<[ChangeRecord]>) {
        let limit = max(1, min(limit, limits.maxQueryRows))
        enqueueRead({ (tx: PGTransaction<[ChangeRecord]>) in
            tx.query("""
                SELECT seq, project, kind, agent, detail, origin, at_ms FROM change_log WHERE seq >= $1 ORDER BY seq LIMIT $2
                """, [PGText.int(from), String(limit)]) { r in
                tx.done((0..<r.count).compactMap { i in
                    // A kind this program does not know (a newer writer) is skipped, not fatal.
                    guard let kind = ChangeKind(rawValue: r.text(i, 2) ?? "") else { return nil }
                    return ChangeRecord(seq: r.int(i, 0)!, project: r.text(i, 1)!, kind: kind, agent: r.text(i, 3)!,
                                        detail: r.text(i, 4)!, origin: r.text(i, 5)!, at: r.int(i, 6)!)
                })
            }
        }, completion: completion)
    }

    public func removeExpiredChanges(olderThan cutoff: Int64, completion: @escaping StoreCompletion<Int>) {
        changeRetentionStep(cutoff: cutoff, removed: 0, completion: completion)
    }

    private func changeRetentionStep(cutoff: Int64, removed: Int, completion: @escaping StoreCompletion<Int>) {
        let chunk = ChangeLog.retentionChunk
        enqueueWrite(rows: chunk, { (tx: PGTransaction<Int>) in
            tx.query("""
                DELETE FROM change_log WHERE seq IN (SELECT seq FROM change_log
                    WHERE at_ms < $1 AND seq < (SELECT max(seq) FROM change_log) ORDER BY seq LIMIT $2)
                """, [PGText.int(cutoff), String(chunk)]) { r in tx.done(r.affected) }
        }) { [weak self] result in
            switch result {
            case .failure(let e): completion(.failure(e))
            case .success(let n):
                guard n == chunk, let self else { return completion(.success(removed + n)) }
                self.changeRetentionStep(cutoff: cutoff, removed: removed + n, completion: completion)
            }
        }
    }
}
