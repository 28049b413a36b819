// StoreWriter: the one thread that runs SQLite for a SQLiteStore.
//
// Why a thread. A durable COMMIT is an fsync (5–15 ms here), and keeping
// the measurement indexes current costs page writes that grow with the
// table; on the loop thread both showed up as loop lag for every session.
// The writer takes that work off the loop, the way Redis's bio threads take
// fsync off its event loop: the loop only hands jobs over and runs
// completions.
//
// Hand-off. The loop appends jobs to `incoming` under the mutex (once per
// loop iteration) and signals; the writer takes everything queued, runs it,
// appends the finished jobs to `finished` and wakes the loop with an
// AsyncWatcher. Completions therefore run on the loop thread, in order.
//
// Transactions. Writes taken together share one transaction (group
// commit) up to `maxRowsPerTransaction` rows; each write runs inside a
// SAVEPOINT so one bad write fails alone. While the writer is busy with a
// COMMIT the loop keeps queueing, so under load transactions grow by
// themselves and the fsync and index pages are paid per many rows.
// Reads run after the COMMIT of the writes queued before them.
//
// Checkpoints run on this thread too, between transactions, once the WAL
// holds `checkpointPages` pages.
//
// Threading contract: `submit`, `takeFinished` and `requestStop` may be
// called from the loop thread; everything else runs on the writer thread,
// which alone uses the SQLiteConnection while it runs.
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
    /// Cleared before the job is handed back: what it captured (the store)
    /// must not be kept alive by a writer that still holds the job.
    var execute: (() throws -> Void)?
    /// Loop thread, after the job ran (`error` nil on success).
    let finish: (StoreError?) -> Void
    /// Set by the writer before the job is handed back.
    var error: StoreError?

    init(kind: Kind, execute: @escaping () throws -> Void, finish: @escaping (StoreError?) -> Void) {
        self.kind = kind
        self.execute = execute
        self.finish = finish
    }

    var rows: Int {
        if case .write(let rows) = kind { return rows }
        return 0
    }
}

final class StoreWriter: @unchecked Sendable {
    let db: SQLiteConnection
    let options: StoreOptions

    // Shared with the loop thread, under `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wakeWriter = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var incoming: [StoreJob] = []
    private var finished: [StoreJob] = []
    private var published = StoreStats()
    private var closed = false
    private var stopRequested = false
    /// Wakes the loop; the loop thread owns it (send is thread-safe).
    private let wakeLoop: AsyncWatcher

    // Writer thread only.
    private var stats = StoreStats()
    /// (agent, monitor, check, source) → series id, bounded by
    /// `seriesCacheLimit`; cleared when a rollback may have removed ids.
    var seriesCache: [SeriesKey: Int64] = [:]
    private lazy var checkpointAt: Int32 = options.checkpointPages
    /// Monotonic deadline (ns) of the read being run; 0 while none is.
    private var readDeadline: UInt64 = 0
    private var thread = pthread_t()
    private var started = false

    init(db: SQLiteConnection, options: StoreOptions, wakeLoop: AsyncWatcher) {
        self.db = db
        self.options = options
        self.wakeLoop = wakeLoop
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wakeWriter.initialize(to: pthread_cond_t())
        pthread_cond_init(wakeWriter, nil)
    }

    deinit {
        pthread_cond_destroy(wakeWriter)
        pthread_mutex_destroy(mutex)
        wakeWriter.deallocate()
        mutex.deallocate()
    }

    /// Starts the thread. The thread holds the writer until it exits.
    func start() throws(StoreError) {
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let writer = Unmanaged<StoreWriter>.fromOpaque(raw!).takeRetainedValue()
            writer.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<StoreWriter>.fromOpaque(context).release()
            throw .io(call: "pthread_create", path: db.path, errno: rc)
        }
        started = true
    }

    /// Waits for the thread to exit (after a `.close` job or `requestStop`).
    func join() {
        guard started else { return }
        started = false
        pthread_join(thread, nil)
    }

    // MARK: loop side

    func submit(_ jobs: [StoreJob]) {
        pthread_mutex_lock(mutex)
        incoming.append(contentsOf: jobs)
        pthread_cond_signal(wakeWriter)
        pthread_mutex_unlock(mutex)
    }

    /// Jobs finished since the last call, in order; the writer's statistics
    /// as of the last of them; whether the writer has closed the database.
    func takeFinished() -> (jobs: [StoreJob], stats: StoreStats, closed: Bool) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let jobs = finished
        finished = []
        return (jobs, published, closed)
    }

    /// Ends the thread without closing the database (the store was dropped
    /// without `close`); queued jobs are abandoned.
    func requestStop() {
        pthread_mutex_lock(mutex)
        stopRequested = true
        pthread_cond_signal(wakeWriter)
        pthread_mutex_unlock(mutex)
    }

    // MARK: writer thread

    private func run() {
        // Below the loop thread: when both are runnable on one core the loop
        // (sessions, timers, acknowledgements) wins and the writer takes
        // what is left, so its work shows up as throughput, not loop lag.
        if options.writerNice != 0 {
            do { try Syscalls.setThreadNice(options.writerNice) } catch {
                Log.warn("store: cannot lower the writer thread's priority: \(error)")
            }
        }
        // Every 10,000 virtual-machine steps SQLite asks whether to go on;
        // a read past its deadline is interrupted (SQLITE_INTERRUPT).
        sqlite3_progress_handler(db.handle, 10_000, { ctx in
            let w = Unmanaged<StoreWriter>.fromOpaque(ctx!).takeUnretainedValue()
            return w.readDeadline != 0 && Clock.monotonicNanos() > w.readDeadline ? 1 : 0
        }, Unmanaged.passUnretained(self).toOpaque())
        while true {
            pthread_mutex_lock(mutex)
            while incoming.isEmpty && !stopRequested { pthread_cond_wait(wakeWriter, mutex) }
            if stopRequested {
                pthread_mutex_unlock(mutex)
                return
            }
            let jobs = incoming
            incoming = []
            pthread_mutex_unlock(mutex)
            if process(jobs) { return }
        }
    }

    /// Runs `jobs` in order; returns true once a `.close` job closed the database.
    private func process(_ jobs: [StoreJob]) -> Bool {
        var i = 0
        while i < jobs.count {
            if db.walPages >= checkpointAt { checkpoint() }
            // Gather one transaction's writes; reads met on the way run after
            // its COMMIT, which holds every write queued before them.
            var writes: [StoreJob] = [], reads: [StoreJob] = []
            var rows = 0, close = false
            while i < jobs.count {
                let job = jobs[i]
                if case .write(let n) = job.kind {
                    if !writes.isEmpty && rows + n > options.maxRowsPerTransaction { break }
                    writes.append(job)
                    rows += n
                } else if case .read = job.kind {
                    reads.append(job)
                } else {
                    close = true
                }
                i += 1
            }
            if !writes.isEmpty { runTransaction(writes, rows: rows) }
            for r in reads { runRead(r) }
            if close {
                // The loop sends nothing after `.close`: fold the WAL into the
                // database so the directory holds one file, and close.
                _ = try? db.checkpoint(truncate: true)
                db.close()
                publish(writes + reads, closing: true)
                return true
            }
            publish(writes + reads)
        }
        return false
    }

    private func publish(_ jobs: [StoreJob], closing: Bool = false) {
        for job in jobs { job.execute = nil }
        pthread_mutex_lock(mutex)
        finished.append(contentsOf: jobs)
        published = stats
        if closing { closed = true }
        pthread_mutex_unlock(mutex)
        wakeLoop.send()
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
                publish([])
                usleep(UInt32(max(1_000, options.busyRetryDelay * 1e6)))
            } catch {
                for w in writes { w.error = .sqlite(error) }
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
            for w in writes { w.error = .sqlite(error) }
            return
        }
        let end = Clock.monotonicNanos()
        stats.commitMicros.record((end &- commitStart) / 1000)
        stats.transactionMicros.record((end &- start) / 1000)
        stats.transactionRows.record(UInt64(rows))
        stats.transactions &+= 1
        for w in writes where w.error != nil { stats.writesFailed &+= 1 }
    }

    private func runInSavepoint(_ w: StoreJob) -> StoreError? {
        do {
            try db.exec("SAVEPOINT w")
        } catch {
            return .sqlite(error)
        }
        do {
            try w.execute?()
            try db.exec("RELEASE w")
            return nil
        } catch {
            try? db.exec("ROLLBACK TO w")
            try? db.exec("RELEASE w")
            seriesCache.removeAll()       // ids created inside the savepoint are gone
            return SQLiteStore.storeError(error)
        }
    }

    private func runRead(_ r: StoreJob) {
        let t0 = Clock.monotonicNanos()
        stats.reads &+= 1
        readDeadline = t0 &+ UInt64(max(1, options.maxReadMillis)) * 1_000_000
        do { try r.execute?() } catch let e as SQLiteError where e.primaryCode == SQLITE_INTERRUPT {
            r.error = .readTooLong(millis: options.maxReadMillis)
            stats.readsFailed &+= 1
            stats.readsInterrupted &+= 1
        } catch {
            r.error = SQLiteStore.storeError(error)
            stats.readsFailed &+= 1
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

    /// Writer thread: counts a sequence gap forgotten by a batch write.
    func countGapsForgotten(_ n: Int) {
        stats.sequenceGapsForgotten &+= UInt64(n)
    }
}
