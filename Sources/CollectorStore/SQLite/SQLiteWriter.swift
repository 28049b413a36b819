// SQLiteWriter: the writer-thread half of SQLiteStore — the connection, its
// cache of prepared statements, the series cache, the read deadline and the
// writer's counters. Everything SQL runs here; SQLiteStore (the loop half)
// only queues jobs and runs completions.
//
// Why a thread. A durable COMMIT is an fsync (5–15 ms here), and keeping
// the measurement index current costs page writes; on the loop thread both
// showed up as loop lag for every session. Reactor's WorkerThread carries
// the jobs over and back (one lock per loop iteration each way), the way
// Redis's bio threads take fsync off its event loop.
//
// Transactions. The jobs taken together are cut into transactions of up to
// `maxRowsPerTransaction` rows (group commit); each write runs inside a
// SAVEPOINT so one bad write fails alone. While the writer is busy with a
// COMMIT the loop keeps queueing, so under load transactions grow by
// themselves and the fsync and index pages are paid per many rows. Reads run
// after the COMMITs of every write handed over with them, so a slow read
// never delays a commit handed over before it finished. Finished writes go
// back transaction by transaction, right after COMMIT (that is when the
// loop may acknowledge); the reads go back after them.
//
// Checkpoints run here too, between transactions (never between a COMMIT and
// its hand-back), once the WAL holds `checkpointPages` pages.
//
// Threading contract: after SQLiteStore.open hands it to the worker thread,
// only that thread uses a writer — except `publishedStatsIfNewer(than:)`, which any
// thread may call (a mutex-guarded copy), and `close()` once the thread has
// been joined. Jobs bodies get the writer as their argument and capture no
// loop-thread object.
import CSQLite
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// One unit of store work: runs on the writer thread, finishes on the loop.
final class StoreJob {
    enum Kind { case write(rows: Int), read, close }

    let kind: Kind
    /// Writer thread. A write runs inside a savepoint of a transaction.
    /// Released on the loop, by `complete` (what it captured — a batch's
    /// rows — was allocated there: see WorkerThread, "Memory").
    var execute: ((SQLiteWriter) throws -> Void)?
    /// Loop thread, after the job ran (`error` nil on success). It holds
    /// the store; `complete` lets go of it, so a job the writer thread has
    /// not dropped yet keeps nothing alive.
    private var finish: ((StoreError?) -> Void)?
    /// Set by the writer before the job is handed back.
    var error: StoreError?

    init(kind: Kind, execute: ((SQLiteWriter) throws -> Void)?, finish: @escaping (StoreError?) -> Void) {
        self.kind = kind
        self.execute = execute
        self.finish = finish
    }

    /// Loop thread: runs `finish` once and releases it, the body and the
    /// error, so that the writer's last reference, if it is the last,
    /// frees only the job itself.
    func complete(_ error: StoreError?) {
        let f = finish
        finish = nil
        execute = nil
        self.error = nil
        f?(error)
    }
}

/// (agent, monitor, check, source): what a measurement's series is.
struct SeriesKey: Hashable {
    let agent: String
    let monitor: String
    let check: String
    let source: String
}

final class SQLiteWriter {
    let db: SQLiteConnection
    let options: StoreOptions
    /// (agent, monitor, check, source) → series id, bounded by
    /// `seriesCacheLimit`; cleared when a rollback may have removed ids.
    var seriesCache: [SeriesKey: Int64] = [:]
    private var stats = StoreStats()
    private let published = PublishedStats()
    private var checkpointAt: Int32
    /// Monotonic deadline (ns) of the read being run; 0 while none is.
    private var readDeadline: UInt64 = 0
    private(set) var isClosed = false

    init(db: SQLiteConnection, options: StoreOptions) {
        self.db = db
        self.options = options
        checkpointAt = options.checkpointPages
        // Every 10,000 virtual-machine steps SQLite asks whether to go on;
        // a read past its deadline is interrupted (SQLITE_INTERRUPT). The
        // handler runs on whichever thread steps, i.e. the writer's.
        sqlite3_progress_handler(db.handle, 10_000, { ctx in
            let w = Unmanaged<SQLiteWriter>.fromOpaque(ctx!).takeUnretainedValue()
            return w.readDeadline != 0 && Clock.monotonicNanos() > w.readDeadline ? 1 : 0
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// The writer's counters as of its latest hand-back if they are newer
    /// than version `seen`, or nil (also while the writer is publishing
    /// them: the loop never waits for the writer; WorkerThread). Any thread.
    func publishedStatsIfNewer(than seen: UInt64) -> (stats: StoreStats, version: UInt64)? {
        published.tryGet(newerThan: seen)
    }

    /// Folds the WAL into the database (so the directory holds one file)
    /// and closes the connection. Idempotent.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        sqlite3_progress_handler(db.handle, 0, nil, nil)
        _ = try? db.checkpoint(truncate: true)
        db.close()
    }

    /// Writer thread: counts sequence gaps forgotten by a batch write.
    func countGapsForgotten(_ n: Int) {
        stats.sequenceGapsForgotten &+= UInt64(n)
    }

    // MARK: running jobs

    /// Runs `jobs`: their writes in transactions, in order, each handed to
    /// `finish` right after its COMMIT; then the reads met on the way.
    /// Reads thereby never delay a commit or its acknowledgements, and each
    /// still sees every write queued before it (and perhaps later ones).
    /// A close job ends the list: what came before it runs first.
    func process(_ jobs: [StoreJob], finish: ([StoreJob]) -> Void) {
        var i = 0
        var reads: [StoreJob] = []
        func runReads() {
            guard !reads.isEmpty else { return }
            for r in reads { runRead(r) }
            published.set(stats)
            finish(reads)
            reads = []
        }
        while i < jobs.count {
            if isClosed {
                // The loop queues nothing after `.close`; should it, refuse.
                let rest = reads + Array(jobs[i...])
                reads = []
                for job in rest { job.error = .closed }
                return finish(rest)
            }
            if db.walPages >= checkpointAt { checkpoint() }
            // Gather one transaction's writes; reads met on the way wait
            // until the writes of the whole list committed.
            var writes: [StoreJob] = []
            var rows = 0
            var closeJob: StoreJob?
            while i < jobs.count {
                let job = jobs[i]
                if case .write(let n) = job.kind {
                    if !writes.isEmpty && rows + n > options.maxRowsPerTransaction { break }
                    writes.append(job)
                    rows += n
                } else if case .read = job.kind {
                    reads.append(job)
                } else {
                    closeJob = job
                    i += 1
                    break
                }
                i += 1
            }
            if !writes.isEmpty {
                runTransaction(writes, rows: rows)
                published.set(stats)
                finish(writes)
            }
            if let closeJob {
                runReads()
                close()
                published.set(stats)
                finish([closeJob])
            }
        }
        runReads()
    }

    private func runTransaction(_ writes: [StoreJob], rows: Int) {
        let start = Clock.monotonicNanos()
        while true {
            do {
                try db.exec("BEGIN IMMEDIATE")
                break
            } catch let e where e.isBusy {
                // Another process (e.g. `keys create`) holds the write lock
                // beyond SQLite's own busy timeout: wait and try again.
                stats.busyRetries &+= 1
                published.set(stats)
                usleep(UInt32(max(1_000, options.busyRetryDelay * 1e6)))
            } catch {
                for w in writes { w.error = .from(error) }
                stats.writesFailed &+= UInt64(writes.count)
                return
            }
        }
        for w in writes { w.error = runInSavepoint(w) }
        let commitStart = Clock.monotonicNanos()
        do {
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            seriesCache.removeAll()
            stats.transactionsFailed &+= 1
            stats.writesFailed &+= UInt64(writes.count)
            for w in writes { w.error = .from(error) }
            return
        }
        let end = Clock.monotonicNanos()
        stats.commitMicros.record((end &- commitStart) / 1000)
        stats.transactionMicros.record((end &- start) / 1000)
        stats.transactionRows.record(UInt64(rows))
        stats.transactions &+= 1
        for w in writes where w.error != nil && !w.error!.isAnswer { stats.writesFailed &+= 1 }
    }

    private func runInSavepoint(_ w: StoreJob) -> StoreError? {
        do {
            try step("SAVEPOINT w")
        } catch {
            return .from(error)
        }
        do {
            try w.execute?(self)
            try step("RELEASE w")
            return nil
        } catch {
            try? step("ROLLBACK TO w")
            try? step("RELEASE w")
            seriesCache.removeAll()       // ids created inside the savepoint are gone
            return .from(error)
        }
    }

    /// Runs a cached statement without parameters: the savepoint statements
    /// run twice per write, and `exec` would parse them every time.
    private func step(_ sql: String) throws(SQLiteError) {
        let s = try db.statement(sql)
        defer { s.reset() }
        try s.run()
    }

    private func runRead(_ r: StoreJob) {
        let t0 = Clock.monotonicNanos()
        let limit = options.limits.maxReadMillis
        stats.reads &+= 1
        readDeadline = t0 &+ UInt64(max(1, limit)) * 1_000_000
        do { try r.execute?(self) } catch let e as SQLiteError where e.primaryCode == SQLITE_INTERRUPT {
            r.error = .readTooLong(millis: limit)
            stats.readsFailed &+= 1
            stats.readsInterrupted &+= 1
        } catch {
            r.error = .from(error)
            // "No such agent" is an answer, not a failure of the store.
            if !(r.error?.isAnswer ?? false) { stats.readsFailed &+= 1 }
        }
        readDeadline = 0
        stats.readMicros.record((Clock.monotonicNanos() &- t0) / 1000)
    }

    private func checkpoint() {
        let t0 = Clock.monotonicNanos()
        do {
            let (log, done) = try db.checkpoint()
            stats.checkpoints &+= 1
            // A reader in another process kept frames from being copied. Try
            // again once the WAL has grown by another threshold, so writes
            // are never starved by checkpoints that cannot finish.
            checkpointAt = done < log ? db.walPages + options.checkpointPages : options.checkpointPages
        } catch {
            Log.warn("store: checkpoint failed: \(error)")
            checkpointAt = db.walPages + options.checkpointPages
        }
        stats.checkpointMicros.record((Clock.monotonicNanos() &- t0) / 1000)
    }
}

/// The writer's counters as the loop may read them: a copy behind a mutex,
/// replaced at every hand-back (and at every busy retry, so a writer waiting
/// for another process's lock still shows it).
private final class PublishedStats: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value = StoreStats()
    /// How many times `value` was replaced: a reader that has the latest
    /// copies nothing.
    private var version: UInt64 = 0

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func set(_ stats: StoreStats) {
        pthread_mutex_lock(mutex)
        value = stats
        version &+= 1
        pthread_mutex_unlock(mutex)
    }

    /// The counters published since version `seen`, with their version, in
    /// a copy whose histograms are the caller's own, made while the lock
    /// keeps the writer from replacing `value`: the caller never holds the
    /// last reference to storage the writer allocated, and so never frees
    /// it (WorkerThread, "Memory"). Nil when nothing newer was published
    /// or the writer holds the lock.
    func tryGet(newerThan seen: UInt64) -> (stats: StoreStats, version: UInt64)? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return version == seen ? nil : (value.ownCopy(), version)
    }
}
