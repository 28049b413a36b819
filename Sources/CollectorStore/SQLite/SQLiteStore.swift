// SQLiteStore: the collector's MeasurementStore over one embedded SQLite
// database in WAL mode — the loop-thread half. It queues jobs and runs
// their completions; SQLiteWriter, its other half, runs every statement on
// a Reactor WorkerThread.
//
// Write path. Callers queue writes; once per loop iteration (a DeferOnce)
// the queued jobs are handed to the writer, which runs the writes it has
// together in one transaction (each inside a SAVEPOINT, so one bad write
// fails alone) up to `maxRowsPerTransaction` rows, COMMITs, and hands them
// back; only then do their completions run on the loop — that is when the
// collector acknowledges. Writes queued while the writer is busy share its
// next commit (group commit), which is what makes one fsync per commit
// affordable and lets transactions grow with the load.
//
// Read path. Reads run on the writer too, after the COMMIT of the writes
// queued before them, so a read sees every earlier write; one that runs
// past `limits.maxReadMillis` is stopped (`.readTooLong`). Reads never hold
// up a commit's hand-back: the writes of a hand-off commit and go back
// first, its reads run after them (SQLiteWriter). At most
// `limits.maxPendingReads` wait; more are refused at once (`.tooManyReads`).
//
// Threading: the public API is loop-thread only, like the EventLoop it is
// bound to. The loop never touches the writer's connection: everything that
// needs it is a job (`enqueueWrite`, `enqueueRead`) whose body gets the
// writer as its argument.
import CSQLite
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public final class SQLiteStore: MeasurementStore {
    public let loop: EventLoop
    public let options: StoreOptions
    public var limits: StoreLimits { options.limits }
    public var path: String { options.databasePath }
    /// The loop's counters with the writer's as of its latest hand-back.
    public var stats: StoreStats {
        if let latest = writer.publishedStatsIfNewer(than: writerStatsVersion) {
            (writerStats, writerStatsVersion) = latest
        }
        var s = loopStats
        s.takeWriterCounters(from: writerStats)
        return s
    }
    /// The writer's counters as last read, and their version: copied again
    /// only once the writer published newer ones (callers that want only
    /// the loop's pending rows read this often).
    private var writerStats = StoreStats()
    private var writerStatsVersion: UInt64 = 0
    /// Counters kept on the loop thread (queueing, outcomes, refusals).
    var loopStats = StoreStats()
    /// Days of data kept by the retention timer (0: keep everything).
    /// Changeable while running (a live configuration key).
    public var retentionDays = 0
    /// Days without a session after which the retention timer forgets an
    /// agent (0: never). Changeable while running.
    public var agentRetentionDays = 0
    /// Days of the collector's health history kept by the retention timer
    /// (0: keep it all). Changeable while running.
    public var selfMetricsRetentionDays = 0
    /// Told (on the loop) which agents the retention timer forgot.
    public var agentsForgotten: (([String]) -> Void)?
    /// The origin written into change-log rows (MeasurementStore.changeOrigin).
    public var changeOrigin = ""
    /// The schema version of the open database.
    public let schemaVersion: Int

    /// The writer-thread half. The loop touches it only through jobs, and
    /// directly only after the worker thread has been joined (deinit).
    private let writer: SQLiteWriter
    private lazy var worker = WorkerThread<StoreJob>(
        loop: loop, name: "vigil-store", nice: options.writerNice,
        label: "store completions",
        process: { [writer] thread, jobs in writer.process(jobs) { thread.finish($0) } },
        completed: { [weak self] jobs in self?.completed(jobs) })
    /// Jobs queued and not yet handed to the writer: `outbox[outboxHead...]`.
    private var outbox: [StoreJob] = []
    private var outboxHead = 0
    /// Hand-offs so far, how many left jobs for the next iteration, and the
    /// most rows one carried (`maxRowsPerHandOff` bounds it).
    public private(set) var handOffs: UInt64 = 0
    public private(set) var handOffsCarriedOver: UInt64 = 0
    public private(set) var largestHandOffRows = 0
    private lazy var handOff = DeferOnce(loop: loop, label: "store hand-off") { [weak self] in self?.handOffJobs() }
    /// Finished jobs whose completions have not run yet.
    private var completions = RingBuffer<StoreJob>(capacity: 1024, overflow: .grow)
    private lazy var moreCompletions = DeferOnce(loop: loop, label: "store completions") { [weak self] in self?.runCompletions() }
    var retentionTimer: TimerWatcher?
    var retentionRunning = false
    private enum Phase { case open, closing, closed }
    private var phase = Phase.open
    private var closeWaiters: [() -> Void] = []

    /// Creates the data directory (0700) and the database file (0600) if
    /// needed, opens it in WAL mode, applies migrations and starts the
    /// writer thread. Synchronous: call before serving.
    public static func open(loop: EventLoop, options: StoreOptions, now: Int64 = Clock.wallMillis()) throws(StoreError) -> SQLiteStore {
        do {
            try makeDirectories(options.dataDirectory)
            // SQLite creates the -wal and -shm files with the database's mode, so
            // creating the file first keeps secrets (keys) out of other users' reach.
            let fd = try Syscalls.open(options.databasePath, O_RDWR | O_CREAT, mode: 0o600)
            defer { Syscalls.close(fd) }
            try Syscalls.fchmod(fd, 0o600)       // a file from an older, laxer install
        } catch {
            throw .unavailable("\(error)")
        }
        let db: SQLiteConnection
        do { db = try SQLiteConnection(path: options.databasePath) } catch { throw .unavailable("\(error)") }
        do { try configure(db, options) } catch {
            db.close()
            throw .unavailable("\(error)")
        }
        do { try Migrations.migrate(db, now: now) } catch {
            db.close()
            throw error
        }
        let version = Int((try? db.scalar("PRAGMA user_version")) ?? 0)
        let store = SQLiteStore(loop: loop, options: options, writer: SQLiteWriter(db: db, options: options),
                                schemaVersion: version)
        do { try store.worker.start() } catch {
            store.phase = .closed
            store.writer.close()
            throw .unavailable("the store's writer thread: \(error)")
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
        // Keeps the measurement index's working set (its right edge) in
        // memory instead of re-reading it from the OS each write.
        try db.exec("PRAGMA cache_size = -\(options.cacheKiB)")
        sqlite3_busy_timeout(db.handle, options.busyTimeoutMillis)
    }

    private init(loop: EventLoop, options: StoreOptions, writer: SQLiteWriter, schemaVersion: Int) {
        self.loop = loop
        self.options = options
        self.writer = writer
        self.schemaVersion = schemaVersion
    }

    deinit {
        retentionTimer?.stop()
        if phase != .closed {
            // Dropped without close: queued jobs hold the store, so none is
            // queued and stopping the thread abandons no work. Joined, the
            // writer is the loop's to close.
            worker.stop(discardingQueued: true)
            writer.close()
        }
    }

    // MARK: queueing

    /// Queues a write of `rows` rows. `body` runs on the writer thread inside
    /// a savepoint of a transaction; `completion` runs on the loop after COMMIT.
    func enqueueWrite<T>(rows: Int, _ body: @escaping (SQLiteWriter) throws -> T,
                         completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            loopStats.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        if let refused = loopStats.admitWrite(rows: rows, limit: options.limits.maxPendingRows) {
            return deliverLater(completion, .failure(refused))
        }
        queue(job(.write(rows: rows), body, completion))
    }

    /// Queues a read; it runs after the writes queued before it committed.
    /// Refused (`.tooManyReads`) while `limits.maxPendingReads` wait.
    func enqueueRead<T>(_ body: @escaping (SQLiteWriter) throws -> T, completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            loopStats.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        let limit = options.limits.maxPendingReads
        if loopStats.pendingReads >= limit {
            loopStats.refusedReads &+= 1
            return deliverLater(completion, .failure(.tooManyReads(pending: loopStats.pendingReads, limit: limit)))
        }
        loopStats.pendingReads += 1
        queue(job(.read, body, completion))
    }

    /// `body` on the writer thread, `completion` with its result on the loop.
    /// `result` is written by the writer and read by the loop after the
    /// hand-back, which passes through the worker's mutex. A queued job holds
    /// the store, so a store dropped with work queued finishes it first.
    private func job<T>(_ kind: StoreJob.Kind, _ body: @escaping (SQLiteWriter) throws -> T,
                        _ completion: @escaping StoreCompletion<T>) -> StoreJob {
        var result: T?
        return StoreJob(kind: kind, execute: { writer in result = try body(writer) }, finish: { [self] error in
            withExtendedLifetime(self) {
                if let error { completion(.failure(error)) } else { completion(.success(result!)) }
            }
        })
    }

    /// Delivers a result on a later iteration (never before the call returns).
    func deliverLater<T>(_ completion: @escaping StoreCompletion<T>, _ result: Result<T, StoreError>) {
        loop.defer { completion(result) }
    }

    private func queue(_ job: StoreJob) {
        outbox.append(job)
        handOff.schedule()
    }

    /// One lock round trip per loop iteration, with at most
    /// `maxRowsPerHandOff` rows of the queued jobs (at least one job); what
    /// is left goes on the next iteration, in order.
    private func handOffJobs() {
        guard outboxHead < outbox.count else { return }
        var end = outboxHead
        var rows = 0
        while end < outbox.count {
            let n: Int
            if case .write(let r) = outbox[end].kind { n = max(r, 1) } else { n = 1 }
            if end > outboxHead && rows + n > options.maxRowsPerHandOff { break }
            rows += n
            end += 1
        }
        worker.submit(contentsOf: outbox[outboxHead..<end])
        handOffs &+= 1
        largestHandOffRows = max(largestHandOffRows, rows)
        if end == outbox.count {
            outbox.removeAll(keepingCapacity: true)
            outboxHead = 0
        } else {
            handOffsCarriedOver &+= 1
            outboxHead = end
            // Keep the array from growing with what was already handed over.
            if outboxHead >= 4_096 && outboxHead * 2 >= outbox.count {
                outbox.removeFirst(outboxHead)
                outboxHead = 0
            }
            handOff.schedule()
        }
    }

    /// Loop thread (the worker's hand-back): completions, in order, at most
    /// `maxCompletionsPerIteration` per iteration, and after the first none
    /// once the loop's time box is spent (IterationTimeBox).
    private func completed(_ jobs: [StoreJob]) {
        for job in jobs { completions.append(job) }
        runCompletions()
    }

    private func runCompletions() {
        var n = 0
        while n < options.maxCompletionsPerIteration, loop.timeBox.mayRun(after: n), let job = completions.popFirst() {
            n += 1
            switch job.kind {
            case .write(let rows):
                loopStats.pendingWrites -= 1
                loopStats.pendingRows -= rows
                job.complete(job.error)
            case .read:
                loopStats.pendingReads -= 1
                job.complete(job.error)
            case .close:
                job.complete(nil)
                finishClose()
            }
        }
        if !completions.isEmpty { moreCompletions.schedule() }
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
            // WAL into the database and closes it, then hands this back.
            queue(StoreJob(kind: .close, execute: nil, finish: { [self] _ in withExtendedLifetime(self) {} }))
        }
    }

    /// The close job came back: every job before it has completed.
    private func finishClose() {
        guard phase == .closing else { return }
        phase = .closed
        worker.stop()
        let waiters = closeWaiters
        closeWaiters = []
        for w in waiters { w() }
    }

    public var isClosed: Bool { phase == .closed }

    // MARK: helpers

    private static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            _ = try Syscalls.mkdir(prefix, 0o700)
            prefix += "/"
        }
    }
}
