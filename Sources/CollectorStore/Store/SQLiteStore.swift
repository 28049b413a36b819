// SQLiteStore: the collector's MeasurementStore over one embedded SQLite
// database in WAL mode, driven from the loop thread.
//
// Write path. Callers queue writes; one deferred slice per loop iteration
// opens a transaction, runs queued writes (each inside a SAVEPOINT, so one
// bad write fails alone) until `maxRowsPerTransaction` rows or
// `maxTransactionMicros` of work, COMMITs, and only then runs the writes'
// completions — that is when the collector acknowledges. What is left
// continues in the next iteration via `loop.defer`, so a large backlog is
// cut into bounded slices with I/O and timers served in between. Writes
// queued in the same iteration share one commit (group commit), which is
// what makes one fsync per commit affordable.
//
// Read path. Reads queue behind writes and run after the slice's COMMIT,
// within a per-slice count and time budget.
//
// Checkpoints. The WAL hook counts pages; past `checkpointPages` a PASSIVE
// checkpoint takes the next slice in place of a write transaction — never
// between a COMMIT and its completions, never in the same iteration as a
// transaction — and its duration is measured separately.
//
// Threading: loop thread only, like the EventLoop it is bound to. Owns the
// SQLiteConnection; nothing else may use it.
import CSQLite
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public final class SQLiteStore: MeasurementStore {
    /// Upper bound of every query's `limit`.
    public static let maxQueryLimit = 10_000

    public let loop: EventLoop
    public let options: StoreOptions
    public var path: String { options.databasePath }
    public internal(set) var stats = StoreStats()
    /// Days of data kept by the retention timer (0: keep everything).
    /// Changeable while running (a live configuration key).
    public var retentionDays = 0

    let db: SQLiteConnection
    private var writes = RingBuffer<PendingWrite>(capacity: 256, overflow: .grow)
    private var reads = RingBuffer<PendingRead>(capacity: 64, overflow: .grow)
    private var flushScheduled = false
    /// WAL pages at which the next checkpoint runs.
    private lazy var checkpointAt: Int32 = options.checkpointPages
    private var busyTimer: TimerWatcher?
    var retentionTimer: TimerWatcher?
    var retentionRunning = false
    private enum Phase { case open, closing, closed }
    private var phase = Phase.open
    private var closeWaiters: [() -> Void] = []
    var seriesCache: [SeriesKey: Int64] = [:]

    /// Creates the data directory (0700) and the database file (0600) if
    /// needed, opens it in WAL mode and applies migrations. Synchronous:
    /// call before serving.
    public static func open(loop: EventLoop, options: StoreOptions, now: Int64 = Clock.wallMillis()) throws(StoreError) -> SQLiteStore {
        try makeDirectories(options.dataDirectory)
        // SQLite creates the -wal and -shm files with the database's mode, so
        // creating the file first keeps secrets (keys) out of other users' reach.
        let fd = Glibc.open(options.databasePath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw .io(call: "open", path: options.databasePath, errno: errno) }
        let chmodFailed = fchmod(fd, 0o600) != 0      // a file from an older, laxer install
        let chmodErrno = errno
        Glibc.close(fd)
        if chmodFailed { throw .io(call: "fchmod", path: options.databasePath, errno: chmodErrno) }
        let db: SQLiteConnection
        do { db = try SQLiteConnection(path: options.databasePath) } catch { throw .sqlite(error) }
        do { try configure(db, options) } catch {
            db.close()
            throw .sqlite(error)
        }
        do { try Migrations.migrate(db, now: now) } catch {
            db.close()
            throw error
        }
        return SQLiteStore(loop: loop, options: options, db: db)
    }

    private static func configure(_ db: SQLiteConnection, _ options: StoreOptions) throws(SQLiteError) {
        let mode = try db.scalarText("PRAGMA journal_mode = WAL")
        guard mode?.lowercased() == "wal" else {
            throw SQLiteError(call: "PRAGMA journal_mode", code: SQLITE_ERROR, message: "WAL not available (got \(mode ?? "nothing"))")
        }
        try db.exec("PRAGMA synchronous = \(options.synchronous.rawValue)")
        try db.exec("PRAGMA foreign_keys = ON")
        try db.exec("PRAGMA temp_store = MEMORY")
        // After a checkpoint the WAL file is cut back to this size.
        try db.exec("PRAGMA journal_size_limit = 67108864")
        sqlite3_busy_timeout(db.handle, options.busyTimeoutMillis)
    }

    private init(loop: EventLoop, options: StoreOptions, db: SQLiteConnection) {
        self.loop = loop
        self.options = options
        self.db = db
    }

    deinit {
        retentionTimer?.stop()
        busyTimer?.stop()
        db.close()
    }

    /// The schema version of the open database.
    public var schemaVersion: Int { Int((try? db.scalar("PRAGMA user_version")) ?? 0) }

    /// Changes whenever another connection (e.g. `keys create` in another
    /// process) commits: a cheap check before re-reading cached data.
    public var dataVersion: Int64 { (try? db.scalar("PRAGMA data_version")) ?? 0 }

    // MARK: queueing

    /// Queues a write of `rows` rows. `body` runs inside a savepoint of the
    /// current slice's transaction; `completion` runs after COMMIT.
    func enqueueWrite<T>(rows: Int, _ body: @escaping (SQLiteStore) throws -> T,
                         completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            stats.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        if stats.pendingRows + rows > options.maxPendingRows {
            if rows > options.maxPendingRows {
                stats.refusedInvalid &+= 1
                return deliverLater(completion, .failure(.invalid("a write of \(rows) rows exceeds the queue limit of \(options.maxPendingRows)")))
            }
            stats.refusedOverloaded &+= 1
            return deliverLater(completion, .failure(.overloaded(pendingRows: stats.pendingRows, limit: options.maxPendingRows)))
        }
        var result: T?
        let w = PendingWrite(rows: rows, execute: { store in result = try body(store) }, finish: { error in
            if let error { completion(.failure(error)) } else { completion(.success(result!)) }
        })
        writes.append(w)
        stats.pendingWrites += 1
        stats.pendingRows += rows
        scheduleFlush()
    }

    /// Queues a read; it runs after the writes queued before it committed.
    func enqueueRead<T>(_ body: @escaping (SQLiteStore) throws -> T, completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            stats.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        reads.append(PendingRead { store in
            let t0 = Clock.monotonicNanos()
            let r: Result<T, StoreError>
            do { r = .success(try body(store)) } catch { r = .failure(SQLiteStore.storeError(error)); store.stats.readsFailed &+= 1 }
            store.stats.readMicros.record((Clock.monotonicNanos() &- t0) / 1000)
            completion(r)
        })
        stats.pendingReads += 1
        scheduleFlush()
    }

    /// Delivers a result on a later iteration (never before the call returns).
    func deliverLater<T>(_ completion: @escaping StoreCompletion<T>, _ result: Result<T, StoreError>) {
        loop.defer { completion(result) }
    }

    static func storeError(_ error: Error) -> StoreError {
        switch error {
        case let e as StoreError: return e
        case let e as SQLiteError: return .sqlite(e)
        default: return .invalid("\(error)")
        }
    }

    private func scheduleFlush() {
        if flushScheduled || busyTimer?.isActive == true { return }
        flushScheduled = true
        loop.defer { [weak self] in self?.flush() }
    }

    // MARK: the slice

    private func flush() {
        flushScheduled = false
        guard phase != .closed else { return }
        // A due checkpoint takes this iteration instead of a write slice, so
        // the two never add up in one iteration's loop lag.
        if checkpointDue {
            checkpoint()
            if !writes.isEmpty || !reads.isEmpty || phase == .closing { scheduleFlush() }
            return
        }
        if !writes.isEmpty {
            if !writeSlice() { return }          // busy: a timer retries
        }
        readSlice()
        if !writes.isEmpty || !reads.isEmpty || checkpointDue {
            scheduleFlush()
        } else if phase == .closing {
            finishClose()
        }
    }

    private var checkpointDue: Bool { db.walPages >= checkpointAt }

    /// One transaction's worth of queued writes. Returns false when the
    /// database was locked by another process and the slice must be retried.
    private func writeSlice() -> Bool {
        let start = Clock.monotonicNanos()
        do {
            try db.exec("BEGIN IMMEDIATE")
        } catch {
            if error.isBusy {
                stats.busyRetries &+= 1
                retryLater()
                return false
            }
            failAllQueuedWrites(.sqlite(error))
            return true
        }
        var taken: [(PendingWrite, StoreError?)] = []
        var rows = 0
        while let w = writes.first {
            if !taken.isEmpty && (rows + w.rows > options.maxRowsPerTransaction
                                  || (Clock.monotonicNanos() &- start) / 1000 >= options.maxTransactionMicros) { break }
            _ = writes.popFirst()
            stats.pendingWrites -= 1
            stats.pendingRows -= w.rows
            rows += w.rows
            taken.append((w, runInSavepoint(w)))
        }
        let commitStart = Clock.monotonicNanos()
        do {
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            seriesCache.removeAll()
            stats.transactionsFailed &+= 1
            stats.writesFailed &+= UInt64(taken.count)
            for (w, _) in taken { w.finish(.sqlite(error)) }
            return true
        }
        let end = Clock.monotonicNanos()
        stats.commitMicros.record((end &- commitStart) / 1000)
        stats.transactionMicros.record((end &- start) / 1000)
        stats.transactionRows.record(UInt64(rows))
        stats.transactions &+= 1
        for (w, error) in taken {
            if error != nil { stats.writesFailed &+= 1 }
            w.finish(error)
        }
        return true
    }

    private func runInSavepoint(_ w: PendingWrite) -> StoreError? {
        do {
            try db.exec("SAVEPOINT w")
        } catch {
            return .sqlite(error)
        }
        do {
            try w.execute(self)
            try db.exec("RELEASE w")
            return nil
        } catch {
            try? db.exec("ROLLBACK TO w")
            try? db.exec("RELEASE w")
            seriesCache.removeAll()       // ids created inside the savepoint are gone
            return SQLiteStore.storeError(error)
        }
    }

    private func failAllQueuedWrites(_ error: StoreError) {
        while let w = writes.popFirst() {
            stats.pendingWrites -= 1
            stats.pendingRows -= w.rows
            stats.writesFailed &+= 1
            w.finish(error)
        }
    }

    private func retryLater() {
        let t = busyTimer ?? TimerWatcher(loop: loop) { [weak self] _ in self?.scheduleFlush() }
        busyTimer = t
        t.start(after: options.busyRetryDelay)
    }

    private func readSlice() {
        let start = Clock.monotonicNanos()
        var n = 0
        while n < options.maxReadsPerSlice, let r = reads.popFirst() {
            stats.pendingReads -= 1
            stats.reads &+= 1
            n += 1
            r.run(self)
            if (Clock.monotonicNanos() &- start) / 1000 >= options.maxReadMicros { break }
        }
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

    // MARK: closing

    public func close(completion: @escaping () -> Void) {
        switch phase {
        case .closed:
            loop.defer { completion() }
        case .closing:
            closeWaiters.append(completion)
        case .open:
            phase = .closing
            closeWaiters.append(completion)
            retentionTimer?.stop()
            if writes.isEmpty && reads.isEmpty && busyTimer?.isActive != true {
                loop.defer { [weak self] in self?.finishClose() }
            } else {
                scheduleFlush()
            }
        }
    }

    private func finishClose() {
        guard phase == .closing else { return }
        phase = .closed
        busyTimer?.stop()
        // Fold the WAL into the database so the directory holds one file.
        _ = try? db.checkpoint(truncate: true)
        db.close()
        let waiters = closeWaiters
        closeWaiters = []
        for w in waiters { w() }
    }

    public var isClosed: Bool { phase == .closed }

    // MARK: helpers

    private static func makeDirectories(_ path: String) throws(StoreError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { throw .io(call: "mkdir", path: prefix, errno: errno) }
            prefix += "/"
        }
    }
}

final class PendingWrite {
    let rows: Int
    let execute: (SQLiteStore) throws -> Void
    let finish: (StoreError?) -> Void

    init(rows: Int, execute: @escaping (SQLiteStore) throws -> Void, finish: @escaping (StoreError?) -> Void) {
        self.rows = rows
        self.execute = execute
        self.finish = finish
    }
}

final class PendingRead {
    let run: (SQLiteStore) -> Void
    init(_ run: @escaping (SQLiteStore) -> Void) { self.run = run }
}

struct SeriesKey: Hashable {
    let agent: String
    let monitor: String
    let check: String
    let source: String
}
