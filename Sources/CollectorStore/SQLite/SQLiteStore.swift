// SQLiteStore: the collector's MeasurementStore over one embedded SQLite
// database in WAL mode. The loop thread queues work and runs completions;
// a writer thread (StoreWriter) runs every statement.
//
// Write path. Callers queue writes; once per loop iteration the queued jobs
// are handed to the writer, which runs the writes it has together in one
// transaction (each inside a SAVEPOINT, so one bad write fails alone) up to
// `maxRowsPerTransaction` rows, COMMITs, and hands them back; only then do
// their completions run on the loop — that is when the collector
// acknowledges. Writes queued while the writer is busy share its next
// commit (group commit), which is what makes one fsync per commit
// affordable and lets transactions grow with the load.
//
// Read path. Reads run on the writer too, after the COMMIT of the writes
// queued before them, so a read sees every earlier write.
//
// Checkpoints. The WAL hook counts pages; past `checkpointPages` the writer
// runs a PASSIVE checkpoint between two transactions — never between a
// COMMIT and its completions.
//
// Threading: the public API is loop-thread only, like the EventLoop it is
// bound to. The SQLiteConnection belongs to the writer thread while the
// store is open; `db` may be used directly only while no store work is
// outstanding (tests, start-up).
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
    /// The loop's counters with the writer's as of its latest hand-back.
    public var stats: StoreStats {
        var s = loopStats
        s.takeWriterCounters(from: writerStats)
        return s
    }
    /// Counters kept on the loop thread (queueing, outcomes, refusals).
    var loopStats = StoreStats()
    private var writerStats = StoreStats()
    /// Days of data kept by the retention timer (0: keep everything).
    /// Changeable while running (a live configuration key).
    public var retentionDays = 0
    /// The schema version of the open database.
    public let schemaVersion: Int

    let db: SQLiteConnection
    let writer: StoreWriter
    private let wake: AsyncWatcher
    /// Jobs queued during this loop iteration, handed to the writer at once.
    private var outbox: [StoreJob] = []
    private var handOffScheduled = false
    /// Finished jobs whose completions have not run yet.
    private var completions = RingBuffer<StoreJob>(capacity: 1024, overflow: .grow)
    private var completionsScheduled = false
    private var writerClosed = false
    var retentionTimer: TimerWatcher?
    var retentionRunning = false
    private enum Phase { case open, closing, closed }
    private var phase = Phase.open
    private var closeWaiters: [() -> Void] = []

    /// Creates the data directory (0700) and the database file (0600) if
    /// needed, opens it in WAL mode, applies migrations and starts the
    /// writer thread. Synchronous: call before serving.
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
        let store = SQLiteStore(loop: loop, options: options, db: db)
        do { try store.writer.start() } catch {
            store.phase = .closed
            store.wake.stop()
            db.close()
            throw error
        }
        return store
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
        // Keeps the measurement indexes' working set (the last leaf of every
        // series) in memory instead of re-reading it from the OS each write.
        try db.exec("PRAGMA cache_size = -\(options.cacheKiB)")
        sqlite3_busy_timeout(db.handle, options.busyTimeoutMillis)
    }

    private init(loop: EventLoop, options: StoreOptions, db: SQLiteConnection) {
        self.loop = loop
        self.options = options
        self.db = db
        schemaVersion = Int((try? db.scalar("PRAGMA user_version")) ?? 0)
        var drain: () -> Void = {}
        wake = AsyncWatcher(loop: loop) { _ in drain() }
        writer = StoreWriter(db: db, options: options, wakeLoop: wake)
        drain = { [weak self] in self?.drainFinished() }
        wake.start()
    }

    deinit {
        retentionTimer?.stop()
        wake.stop()
        if phase != .closed {
            // Dropped without close: nothing is queued (jobs hold the store),
            // so stopping the writer abandons no work.
            writer.requestStop()
            writer.join()
            db.close()
        }
    }

    /// Changes whenever another connection (e.g. `keys create` in another
    /// process) commits. Uses the connection directly: only while no store
    /// work is outstanding.
    var dataVersion: Int64 { (try? db.scalar("PRAGMA data_version")) ?? 0 }

    // MARK: queueing

    /// Queues a write of `rows` rows. `body` runs on the writer thread inside
    /// a savepoint of a transaction; `completion` runs on the loop after COMMIT.
    func enqueueWrite<T>(rows: Int, _ body: @escaping (SQLiteStore) throws -> T,
                         completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            loopStats.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        if loopStats.pendingRows + rows > options.maxPendingRows {
            if rows > options.maxPendingRows {
                loopStats.refusedInvalid &+= 1
                return deliverLater(completion, .failure(.invalid("a write of \(rows) rows exceeds the queue limit of \(options.maxPendingRows)")))
            }
            loopStats.refusedOverloaded &+= 1
            return deliverLater(completion, .failure(.overloaded(pendingRows: loopStats.pendingRows, limit: options.maxPendingRows)))
        }
        loopStats.pendingWrites += 1
        loopStats.pendingRows += rows
        queue(job(.write(rows: rows), body, completion))
    }

    /// Queues a read; it runs after the writes queued before it committed.
    func enqueueRead<T>(_ body: @escaping (SQLiteStore) throws -> T, completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            loopStats.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        loopStats.pendingReads += 1
        queue(job(.read, body, completion))
    }

    /// `body` on the writer thread, `completion` with its result on the loop.
    /// `result` is written by the writer and read by the loop after the
    /// hand-back, which passes through the writer's mutex.
    private func job<T>(_ kind: StoreJob.Kind, _ body: @escaping (SQLiteStore) throws -> T,
                        _ completion: @escaping StoreCompletion<T>) -> StoreJob {
        var result: T?
        return StoreJob(kind: kind, execute: { result = try body(self) }, finish: { error in
            if let error { completion(.failure(error)) } else { completion(.success(result!)) }
        })
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

    private func queue(_ job: StoreJob) {
        outbox.append(job)
        if handOffScheduled { return }
        handOffScheduled = true
        loop.defer { [weak self] in self?.handOff() }
    }

    /// One lock round trip per loop iteration, however many jobs were queued.
    private func handOff() {
        handOffScheduled = false
        guard !outbox.isEmpty else { return }
        writer.submit(outbox)
        outbox.removeAll(keepingCapacity: true)
    }

    /// Loop thread (the writer's wake-up): completions, in order, at most
    /// `maxCompletionsPerIteration` per iteration.
    private func drainFinished() {
        let (jobs, counters, closed) = writer.takeFinished()
        writerStats = counters
        if closed { writerClosed = true }
        for job in jobs { completions.append(job) }
        runCompletions()
    }

    private func runCompletions() {
        var n = 0
        while n < options.maxCompletionsPerIteration, let job = completions.popFirst() {
            n += 1
            switch job.kind {
            case .write(let rows):
                loopStats.pendingWrites -= 1
                loopStats.pendingRows -= rows
            case .read:
                loopStats.pendingReads -= 1
            case .close:
                break
            }
            job.finish(job.error)
        }
        if !completions.isEmpty {
            if !completionsScheduled {
                completionsScheduled = true
                loop.defer { [weak self] in
                    guard let self else { return }
                    self.completionsScheduled = false
                    self.runCompletions()
                }
            }
        } else if writerClosed {
            finishClose()
        }
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
            // Behind every queued job: the writer finishes them, folds the
            // WAL into the database and closes it.
            queue(StoreJob(kind: .close, execute: {}, finish: { _ in }))
        }
    }

    private func finishClose() {
        guard phase == .closing else { return }
        phase = .closed
        writer.join()
        wake.stop()
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

struct SeriesKey: Hashable {
    let agent: String
    let monitor: String
    let check: String
    let source: String
}
