// PostgreSQLStore: the collector's MeasurementStore over a PostgreSQL server,
// on the collector's loop through libpq's nonblocking API (PGConnection).
//
// Three connections: writes on one, reads on another, so a long read never
// holds up a commit, and a third for the handshake (below). Each write is one transaction (BEGIN … COMMIT) made of
// a chain of commands; its completion runs when COMMIT has returned
// (synchronous_commit on: durable), which is when the collector may
// acknowledge. Writes run one after another in submission order, so their
// completions do too. A read waits until every write queued before it has
// completed, then runs on the read connection (statement_timeout =
// limits.maxReadMillis: a longer read fails with `.readTooLong`).
//
// Batches queued together share one transaction (group commit) made of a
// fixed number of exchanges (PostgreSQLStore+Ingest, `storeGroup`): libpq's
// pipeline mode sends the statements before and after the rows together,
// and one COPY … FROM STDIN per table carries the whole group's rows. Every
// (agent, boot) sequence row of the group is locked first (INSERT … ON
// CONFLICT DO UPDATE), so two collectors storing re-sends of one batch
// store it once. A group the server refuses is rolled back and run again
// with each batch in its own savepoint, so a bad batch fails alone.
//
// Ingest connections: a PostgreSQL backend works on one core, so batches
// go over `ingestConnections` connections (the write connection is the
// first), each agent always over the same one (a stable hash of its id):
// one agent's batches keep their order, and two connections never touch
// the same sequence, series or agent row, so their transactions neither
// wait for nor deadlock with each other. Each group is acknowledged after
// its own COMMIT. Every other write is a barrier: it starts once every
// write queued before it completed, and the batches queued after it wait
// for it. So only batches of different agents may complete out of order.
//
// The handshake lane: what a session's handshake waits for — key lookups
// (`handshakeKeys`), identity reads and enrollment, the ownership claim —
// the registry reads a new session makes next (filter patterns, monitor
// definitions, configuration overrides) and the writes those depend on
// (keys created or revoked, identities reset, patterns, monitors and
// overrides replaced) run in order on a connection of their own, so neither
// a handshake nor a new session's first answers wait behind the ingest
// backlog queued on the write connection. The
// contract holds across lanes: a job on the write or read connection
// waits for the handshake-lane writes queued before it (short, and never
// behind ingest), except ingest itself (batches, agent states), which
// never depends on them; a handshake-lane job waits for the write
// connection only after a write there that changes identities
// (forgetting an agent), until that write completed. The lane holds at
// most limits.maxPendingReads jobs (beyond: `.overloaded` for a write,
// `.tooManyReads` for a read, counted as the other lanes' refusals).
//
// Connections that fail are made again with backoff (StoreReconnect); work
// queued meanwhile waits, within the limits (maxPendingRows,
// maxPendingReads). A write whose connection broke before its COMMIT
// returned fails with `.unavailable` (it may or may not have committed: a
// batch is then re-sent by the agent and de-duplicated).
//
// Loop thread only, like the EventLoop it is bound to.
internal import CPQ
import Reactor

public final class PostgreSQLStore: OperatedStore {
    public let loop: EventLoop
    public let options: PostgreSQLOptions
    public var limits: StoreLimits { options.limits }
    public var stats: StoreStats {
        var s = counters
        s.writeRoundTrips = ingesters.reduce(0) { $0 + $1.commandsSent }
        s.handshakeRoundTrips = handshaker.commandsSent
        return s
    }
    public let schemaVersion: Int
    /// Why the store cannot reach the server now (nil: every connection up).
    public var unavailableReason: String? {
        if phase == .closed { return "store closed" }
        for i in 0..<connectionCount {
            let (name, c) = (connectionName(i), connection(i))
            if case .failed(let why) = c.state { return "PostgreSQL \(name) connection: \(why)" }
            if c.state != .ready { return "PostgreSQL \(name) connection: connecting" }
        }
        return nil
    }

    var counters = StoreStats()
    private let writer: PGConnection
    /// The connections batches go over: `writer`, then the others.
    private let ingesters: [PGConnection]
    private let reader: PGConnection
    private let handshaker: PGConnection
    /// Where a job runs, and what it waits for first.
    enum Lane {
        /// The write connection (or the read one, for a read), after the
        /// handshake-lane writes queued before it.
        case ordered
        /// The write connection, not waiting for the handshake lane: ingest
        /// of sessions past their handshake, which never reads keys or
        /// identities.
        case ingest
        /// The handshake connection (see the header).
        case handshake
    }
    private struct Job {
        var isWrite: Bool
        var rows: Int
        /// A write's number (writesQueued when it was queued).
        var number: UInt64 = 0
        /// Writes on the write connection that must have completed before
        /// this job runs: for a read, every write queued before it; for a
        /// handshake-lane job, up to the last identity-changing write.
        var afterWrites: UInt64
        /// Handshake-lane writes that must have completed before this job
        /// (on the write or read connection) runs.
        var afterHandshakeWrites: UInt64 = 0
        /// Runs the job alone; it calls the closure when done.
        var run: (PGConnection, @escaping (Bool) -> Void) -> Void
        /// A batch: runs inside a SAVEPOINT of a shared transaction and
        /// hands back its delivery (run after COMMIT), or nil when the
        /// connection broke (the group then runs again).
        var grouped: ((PGConnection, @escaping ((() -> Void)?) -> Void) -> Void)? = nil
        /// Fails the job (its group's COMMIT failed).
        var fail: ((StoreError) -> Void)? = nil
        /// A batch, for `storeGroup`, and its delivery after COMMIT.
        var batch: Batch? = nil
        var deliver: ((Result<BatchOutcome, StoreError>) -> Void)? = nil
    }
    /// Writes other than batches, run on `writer` in order.
    private var writes = RingBuffer<Job>(capacity: 256, overflow: .grow)
    /// Batches, one queue per ingest connection (`ingestShard`).
    private var batchQueues: [RingBuffer<Job>]
    private var reads = RingBuffer<Job>(capacity: 256, overflow: .grow)
    /// A transaction runs on the ingest connection of that index.
    private var running: [Bool]
    private var writeRunning: Bool { running[0] }
    /// Per ingest connection, the batches whose connection broke before
    /// their COMMIT returned: they run again first once it is back.
    private var retryGroups: [[Job]]
    private var readRunning = false
    private var writesQueued: UInt64 = 0
    /// Every write numbered up to this one has completed (writes are
    /// numbered by `writesQueued` when queued; batches of different agents
    /// may complete out of order, see `writeCompleted`).
    private var writesDone: UInt64 = 0
    private var writesDoneAhead = Set<UInt64>()
    /// The number of the last write queued that is not a batch: the
    /// batches queued after it wait for it.
    private var lastBarrier: UInt64 = 0
    private var handshakeJobs = RingBuffer<Job>(capacity: 256, overflow: .grow)
    private var handshakeRunning = false
    private var handshakeWritesQueued: UInt64 = 0
    private var handshakeWritesDone: UInt64 = 0
    /// The number (writesQueued) of the last write queued on the write
    /// connection that changes identities: handshake-lane jobs queued after
    /// it wait for it.
    private var identityBarrier: UInt64 = 0
    private enum Phase { case open, closing, closed }
    private var phase = Phase.open
    private var closeWaiters: [() -> Void] = []
    var seriesCache: [SeriesKey: Int64] = [:]
    private var reconnectTimers: [TimerWatcher] = []
    private var backoff: [Double]

    /// Connects once, blocking, to apply migrations (start-up, before the
    /// loop serves), then opens the store's three connections on the loop.
    public static func open(loop: EventLoop, options: PostgreSQLOptions, now: Int64 = Clock.wallMillis()) throws(StoreError) -> PostgreSQLStore {
        let version = try withBlockingConnection(options) { conn throws(StoreError) -> Int in
            try PGMigrations.migrate(conn, now: now)
            try PGPartitions.ensure(conn, now: now, daysAhead: options.partitionDaysAhead)
            return try PGMigrations.version(conn)
        }
        let store = PostgreSQLStore(loop: loop, options: options, schemaVersion: version)
        for i in 0..<store.connectionCount { store.connect(i) }
        return store
    }

    /// A blocking libpq connection for `body` (start-up, the command line).
    static func withBlockingConnection<T>(_ options: PostgreSQLOptions, _ body: (OpaquePointer) throws(StoreError) -> T) throws(StoreError) -> T {
        var keys = ["dbname", "client_encoding", "connect_timeout"]
        var values = [options.conninfo, "UTF8", String(max(1, Int(options.connectTimeout)))]
        if let p = options.password { keys.append("password"); values.append(p) }
        let conn = withCStrings(keys) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let conn else { throw .unavailable("PostgreSQL: out of memory") }
        defer { PQfinish(conn) }
        guard PQstatus(conn) == CONNECTION_OK else { throw .unavailable("PostgreSQL: \(PGConnection.message(conn))") }
        try PGMigrations.exec(conn, "SET synchronous_commit = on")
        // libpq prints NOTICEs ("already exists, skipping" when a second
        // collector starts on the database) raw on stderr, among the log lines.
        try PGMigrations.exec(conn, "SET client_min_messages = warning")
        return try body(conn)
    }

    private init(loop: EventLoop, options: PostgreSQLOptions, schemaVersion: Int) {
        self.loop = loop
        self.options = options
        self.schemaVersion = schemaVersion
        writer = PGConnection(loop: loop, maxQueued: 64)
        reader = PGConnection(loop: loop, maxQueued: 64)
        handshaker = PGConnection(loop: loop, maxQueued: 64)
        let n = max(1, options.ingestConnections)
        ingesters = [writer] + (1..<n).map { _ in PGConnection(loop: loop, maxQueued: 64) }
        batchQueues = (0..<n).map { _ in RingBuffer<Job>(capacity: 256, overflow: .grow) }
        running = Array(repeating: false, count: n)
        retryGroups = Array(repeating: [], count: n)
        backoff = Array(repeating: 0, count: n + 2)
    }

    deinit {
        reconnectTimers.forEach { $0.stop() }
        ingesters.forEach { $0.close() }
        reader.close()
        handshaker.close()
    }

    // MARK: connections

    /// 0 write, 1 read, 2 handshake, 3… the other ingest connections.
    private var connectionCount: Int { 2 + ingesters.count }
    private func connection(_ i: Int) -> PGConnection { i == 0 ? writer : i == 1 ? reader : i == 2 ? handshaker : ingesters[i - 2] }
    private func connectionName(_ i: Int) -> String { i < 3 ? ["write", "read", "handshake"][i] : "write \(i - 1)" }

    /// The ingest connection an agent's batches go over: FNV-1a of its id
    /// (stable across runs, unlike Hasher), modulo `count`.
    static func ingestShard(agent: String, count: Int) -> Int {
        guard count > 1 else { return 0 }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in agent.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(h % UInt64(count))
    }

    private func connect(_ i: Int) {
        guard phase != .closed else { return }
        let c = connection(i)
        c.onFailure = { [weak self] why in
            Log.warn("store: PostgreSQL \(self?.connectionName(i) ?? "") connection lost: \(why)")
            self?.scheduleReconnect(i)
        }
        c.connect(conninfo: options.conninfo, password: options.password, timeout: options.connectTimeout) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success:
                self.backoff[i] = 0
                // Durable commits, and reads bounded in time.
                let setup = i != 1 ? "SET synchronous_commit = on"
                                   : "SET statement_timeout = \(self.options.limits.maxReadMillis)"
                c.run(.query(setup, [])) { [weak self] _ in self?.pump() }
            case .failure(let e):
                Log.warn("store: PostgreSQL \(self.connectionName(i)) connection: \(e)")
                self.scheduleReconnect(i)
            }
        }
    }

    private func scheduleReconnect(_ i: Int) {
        guard phase != .closed else { return }
        backoff[i] = min(max(backoff[i] * 2, 0.1), options.maxReconnectDelay)
        let t = TimerWatcher(loop: loop) { [weak self] t in
            self?.reconnectTimers.removeAll { $0 === t }
            self?.connect(i)
        }
        t.start(after: backoff[i])
        reconnectTimers.append(t)
    }

    // MARK: queueing

    func deliverLater<T>(_ completion: @escaping StoreCompletion<T>, _ result: Result<T, StoreError>) {
        loop.defer { completion(result) }
    }

    /// Queues a write transaction of `rows` rows: BEGIN, `body` (which ends
    /// by calling `tx.done`), COMMIT; `completion` after COMMIT returned.
    ///
    /// With `retry`, a write whose connection broke before COMMIT returned
    /// runs again once a connection is back, instead of failing: for a
    /// batch, which its sequence row makes safe to run twice (had the first
    /// COMMIT landed, the second finds the batch stored and answers
    /// `.duplicate`), so a server restart costs a delay, not a session.
    ///
    /// A `batch` write is retried so, and stored with the other batches
    /// queued with it (`storeGroup`); `body` is its savepoint form.
    ///
    /// `lane` says where it runs (see the header); `changesIdentities`
    /// makes handshake-lane jobs queued after it wait for it.
    ///
    /// `shareCommit`, on the handshake lane: consecutive such writes share
    /// one transaction, each in its savepoint (`runHandshakeGroup`).
    func enqueueWrite<T>(rows: Int, retry: Bool = false, batch: Batch? = nil, lane: Lane = .ordered, changesIdentities: Bool = false,
                         shareCommit: Bool = false,
                         _ body: @escaping (PGTransaction<T>) -> Void, completion: @escaping StoreCompletion<T>) {
        let lane = batch != nil ? .ingest : lane
        let retry = (retry || batch != nil) && lane != .handshake
        guard phase == .open else {
            counters.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        if lane == .handshake {
            if handshakeJobs.count >= options.limits.maxPendingReads {
                counters.refusedOverloaded &+= 1
                return deliverLater(completion, .failure(.overloaded(pendingRows: handshakeJobs.count, limit: options.limits.maxPendingReads)))
            }
            counters.pendingWrites += 1
            counters.pendingRows += rows
        } else if let refused = counters.admitWrite(rows: rows, limit: options.limits.maxPendingRows) {
            return deliverLater(completion, .failure(refused))
        }
        let finish: (Result<T, StoreError>) -> Void = { [self] result in
            counters.pendingWrites -= 1
            counters.pendingRows -= rows
            if case .failure(let e) = result, !e.isAnswer { counters.writesFailed &+= 1 }
            completion(result)
        }
        var job = Job(isWrite: true, rows: rows, afterWrites: 0, run: { [self] conn, next in
            let started = Clock.monotonicNanos()
            PGTransaction<T>.run(conn, mode: .transaction, body) { [self] result in
                counters.transactions &+= 1
                counters.transactionMicros.record((Clock.monotonicNanos() - started) / 1_000)
                if case .failure(let e) = result, !e.isAnswer { counters.transactionsFailed &+= 1 }
                finish(result)
                next(true)
            }
        })
        if retry || (shareCommit && lane == .handshake) {
            job.grouped = { conn, done in
                PGTransaction<T>.run(conn, mode: .savepoint, body) { result in
                    if case .failure(.unavailable) = result { return done(nil) }
                    done({ finish(result) })
                }
            }
            job.fail = { finish(.failure($0)) }
        }
        if let batch {
            job.batch = batch
            // T is BatchOutcome here (submitBatch).
            job.deliver = { r in finish(r.map { $0 as! T }) }
        }
        if lane == .handshake {
            handshakeWritesQueued += 1
            job.afterWrites = identityBarrier
            _ = handshakeJobs.append(job)
        } else {
            writesQueued += 1
            job.number = writesQueued
            job.afterHandshakeWrites = lane == .ingest ? 0 : handshakeWritesQueued
            if changesIdentities { identityBarrier = writesQueued }
            if let batch {
                // After the last barrier only; batches before it on other
                // connections are not waited for.
                job.afterWrites = lastBarrier
                _ = batchQueues[Self.ingestShard(agent: batch.agentId, count: ingesters.count)].append(job)
            } else {
                // A barrier: after every write queued before it.
                job.afterWrites = writesQueued - 1
                lastBarrier = writesQueued
                _ = writes.append(job)
            }
        }
        loop.defer { [weak self] in self?.pump() }
    }

    /// Queues a read; it runs after every write queued before it completed
    /// (on the handshake lane: every write it depends on, see the header).
    func enqueueRead<T>(lane: Lane = .ordered, _ body: @escaping (PGTransaction<T>) -> Void, completion: @escaping StoreCompletion<T>) {
        guard phase == .open else {
            counters.refusedClosed &+= 1
            return deliverLater(completion, .failure(.closed))
        }
        let limit = options.limits.maxPendingReads
        let pending = lane == .handshake ? handshakeJobs.count : counters.pendingReads
        if pending >= limit {
            counters.refusedReads &+= 1
            return deliverLater(completion, .failure(.tooManyReads(pending: pending, limit: limit)))
        }
        counters.pendingReads += 1
        var job = Job(isWrite: false, rows: 0, afterWrites: writesQueued, afterHandshakeWrites: handshakeWritesQueued, run: { [self] conn, next in
            let started = Clock.monotonicNanos()
            PGTransaction<T>.run(conn, mode: .none, body) { [self] result in
                counters.pendingReads -= 1
                counters.reads &+= 1
                counters.readMicros.record((Clock.monotonicNanos() - started) / 1_000)
                var result = result
                if case .failure(.backend(let why)) = result, why.contains("57014") {
                    counters.readsInterrupted &+= 1
                    result = .failure(.readTooLong(millis: options.limits.maxReadMillis))
                }
                if case .failure(let e) = result, !e.isAnswer { counters.readsFailed &+= 1 }
                completion(result)
                next(true)
            }
        })
        if lane == .handshake {
            job.afterWrites = identityBarrier
            job.afterHandshakeWrites = 0
            _ = handshakeJobs.append(job)
        } else {
            _ = reads.append(job)
        }
        loop.defer { [weak self] in self?.pump() }
    }

    /// Starts the next write, the next read and the next handshake-lane job
    /// when their connection is free and ready, each once the jobs it
    /// waits for completed.
    private func pump() {
        let handshakeDone = handshakeWritesDone
        for shard in ingesters.indices where !running[shard] && ingesters[shard].state == .ready {
            if !retryGroups[shard].isEmpty {
                let group = retryGroups[shard]
                retryGroups[shard] = []
                counters.writesRetried &+= UInt64(group.count)
                runGroup(group, shard)
            } else if let first = batchQueues[shard].first, first.afterWrites <= writesDone {
                // Group commit: the batches queued now share one transaction.
                var group: [Job] = []
                var rows = 0
                while let j = batchQueues[shard].first, j.afterWrites <= writesDone,
                      group.isEmpty || rows + j.rows <= options.maxRowsPerTransaction {
                    group.append(batchQueues[shard].popFirst()!)
                    rows += j.rows
                }
                runGroup(group, shard)
            }
        }
        if !writeRunning, writer.state == .ready, let first = writes.first, first.afterWrites <= writesDone,
           first.afterHandshakeWrites <= handshakeDone {
            let job = writes.popFirst()!
            running[0] = true
            job.run(writer) { [weak self] _ in
                guard let self else { return }
                self.running[0] = false
                self.writeCompleted(job.number)
                self.pump()
            }
        }
        if !readRunning, reader.state == .ready, let job = reads.first, job.afterWrites <= writesDone,
           job.afterHandshakeWrites <= handshakeDone {
            _ = reads.popFirst()
            readRunning = true
            job.run(reader) { [weak self] _ in
                guard let self else { return }
                self.readRunning = false
                self.pump()
            }
        }
        if !handshakeRunning, handshaker.state == .ready, let job = handshakeJobs.first, job.afterWrites <= writesDone,
           job.grouped != nil, handshakeJobs.count > 1 {
            // Enrollments queued together share one commit (one flush).
            var group: [Job] = []
            while group.count < PostgreSQLStore.maxHandshakeGroup, let j = handshakeJobs.first, j.grouped != nil, j.afterWrites <= writesDone {
                group.append(handshakeJobs.popFirst()!)
            }
            if group.count == 1 { runHandshakeJob(group[0]) } else { runHandshakeGroup(group) }
        } else if !handshakeRunning, handshaker.state == .ready, let job = handshakeJobs.first, job.afterWrites <= writesDone {
            _ = handshakeJobs.popFirst()
            runHandshakeJob(job)
        }
        if phase == .closing, writes.isEmpty, batchQueues.allSatisfy(\.isEmpty), reads.isEmpty, handshakeJobs.isEmpty,
           retryGroups.allSatisfy(\.isEmpty), !running.contains(true), !readRunning, !handshakeRunning { finishClose() }
    }

    /// Write `number` completed: moves `writesDone` past every write
    /// completed without a gap before it.
    private func writeCompleted(_ number: UInt64) {
        guard number == writesDone + 1 else { writesDoneAhead.insert(number); return }
        writesDone = number
        while writesDoneAhead.remove(writesDone + 1) != nil { writesDone += 1 }
    }

    /// Most handshake-lane writes that share one transaction.
    static let maxHandshakeGroup = 64

    private func runHandshakeJob(_ job: Job) {
        handshakeRunning = true
        job.run(handshaker) { [weak self] _ in
            guard let self else { return }
            self.handshakeRunning = false
            if job.isWrite { self.handshakeWritesDone += 1 }
            self.pump()
        }
    }

    /// Handshake-lane writes (enrollments) in one transaction, each in its
    /// savepoint so one that fails fails alone; their completions after the
    /// COMMIT. N enrollments cost one flush instead of N. Not retried when
    /// the connection breaks (as a single handshake-lane write is not): each
    /// fails with `.unavailable` and its handshake is refused.
    private func runHandshakeGroup(_ jobs: [Job]) {
        handshakeRunning = true
        let started = Clock.monotonicNanos()
        let conn = handshaker
        var deliveries: [() -> Void] = []
        func finished(_ outcome: Result<Void, StoreError>) {
            handshakeRunning = false
            counters.transactions &+= 1
            counters.transactionMicros.record((Clock.monotonicNanos() - started) / 1_000)
            handshakeWritesDone += UInt64(jobs.count)
            switch outcome {
            case .success:
                counters.handshakeGroups &+= 1
                for d in deliveries { d() }
            case .failure(let e):
                // BEGIN or COMMIT failed, or the connection broke: no
                // transaction is left open.
                counters.transactionsFailed &+= 1
                for j in jobs { j.fail?(e) }
            }
            pump()
        }
        func step(_ i: Int) {
            guard i < jobs.count else {
                return conn.run(.query("COMMIT", [])) { r in finished(r.map { _ in () }) }
            }
            jobs[i].grouped?(conn) { delivery in
                guard let delivery else { return finished(.failure(.unavailable("PostgreSQL connection lost"))) }
                deliveries.append(delivery)
                step(i + 1)
            }
        }
        conn.run(.query("BEGIN", [])) { r in
            if case .failure(let e) = r { return finished(.failure(e)) }
            step(0)
        }
    }

    /// The group in one transaction with a fixed number of round trips
    /// (`storeGroup`), then every completion in order. Refused by the
    /// server: rolled back and run again in savepoints (`runGroupInSavepoints`).
    /// A connection that breaks before COMMIT returned puts the whole group
    /// back for a retry.
    private func runGroup(_ jobs: [Job], _ shard: Int) {
        running[shard] = true
        let started = Clock.monotonicNanos()
        let conn = ingesters[shard]
        storeGroup(jobs.map { $0.batch! }, conn) { [self] result in
            switch result {
            case .success(let outcomes):
                running[shard] = false
                counters.transactions &+= 1
                counters.transactionMicros.record((Clock.monotonicNanos() - started) / 1_000)
                counters.transactionRows.record(UInt64(jobs.reduce(0) { $0 + $1.rows }))
                jobs.forEach { writeCompleted($0.number) }
                for (job, outcome) in zip(jobs, outcomes) { job.deliver?(.success(outcome)) }
                pump()
            case .failure(.unavailable) where phase != .closed:
                running[shard] = false
                retryGroups[shard] = jobs
                pump()
            case .failure(let e):
                // One batch the server refuses must fail alone: the group
                // again, each batch in its savepoint.
                counters.groupsSplit &+= 1
                Log.debug("store: PostgreSQL refused a group of \(jobs.count) batches (\(e)); running them one by one")
                conn.run(.query("ROLLBACK", [])) { [self] _ in runGroupInSavepoints(jobs, shard) }
            }
        }
    }

    /// BEGIN, each batch in its SAVEPOINT (one failing fails alone),
    /// COMMIT, then every completion in order. A connection that breaks
    /// before COMMIT returned puts the whole group back for a retry.
    private func runGroupInSavepoints(_ jobs: [Job], _ shard: Int) {
        running[shard] = true
        let started = Clock.monotonicNanos()
        var deliveries: [() -> Void] = []
        let conn = ingesters[shard]
        func finished(_ outcome: Result<Void, StoreError>) {
            running[shard] = false
            switch outcome {
            case .success:
                counters.transactions &+= 1
                counters.transactionMicros.record((Clock.monotonicNanos() - started) / 1_000)
                counters.transactionRows.record(UInt64(jobs.reduce(0) { $0 + $1.rows }))
                jobs.forEach { writeCompleted($0.number) }
                for d in deliveries { d() }
            case .failure(.unavailable) where phase != .closed:
                retryGroups[shard] = jobs
            case .failure(let e):
                counters.transactions &+= 1
                counters.transactionsFailed &+= 1
                jobs.forEach { writeCompleted($0.number) }
                for j in jobs { j.fail?(e) }
            }
            pump()
        }
        func step(_ i: Int) {
            guard i < jobs.count else {
                let commitStarted = Clock.monotonicNanos()
                return conn.run(.query("COMMIT", [])) { [self] r in
                    counters.commitMicros.record((Clock.monotonicNanos() - commitStarted) / 1_000)
                    finished(r.map { _ in () })
                }
            }
            jobs[i].grouped?(conn) { delivery in
                guard let delivery else { return finished(.failure(.unavailable("PostgreSQL connection lost"))) }
                deliveries.append(delivery)
                step(i + 1)
            }
        }
        conn.run(.query("BEGIN", [])) { r in
            if case .failure(let e) = r { return finished(.failure(e)) }
            step(0)
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
            partitionTimer?.stop()
            retentionTimer?.stop()
            loop.defer { [weak self] in self?.pump() }
        }
    }

    private func finishClose() {
        guard phase == .closing else { return }
        phase = .closed
        reconnectTimers.forEach { $0.stop() }
        reconnectTimers = []
        ingesters.forEach { $0.close() }
        reader.close()
        handshaker.close()
        let waiters = closeWaiters
        closeWaiters = []
        for w in waiters { w() }
    }

    public var isClosed: Bool { phase == .closed }

    var partitionTimer: TimerWatcher?
    var retentionTimer: TimerWatcher?
    var retentionRunning = false
    public var retentionDays = 0
    public var agentRetentionDays = 0
    public var selfMetricsRetentionDays = 0
    public var agentsForgotten: (([String]) -> Void)?
    /// The origin written into change-log rows (MeasurementStore.changeOrigin).
    public var changeOrigin = ""
    /// The server and database, password redacted.
    public var location: String { PGConnInfo.redacted(options.conninfo) }
}

/// The commands of one write transaction or one read, chained: each step
/// runs a command and continues in its callback; `done` ends it (a write:
/// COMMIT, then the completion). The first failure rolls back and ends it.
final class PGTransaction<T> {
    /// A read runs bare; a write in its own transaction, or in a
    /// savepoint of a transaction a group of batches shares.
    enum Mode { case none, transaction, savepoint }

    let conn: PGConnection
    private let mode: Mode
    private var transactional: Bool { mode != .none }
    private var finish: ((Result<T, StoreError>) -> Void)?

    private init(conn: PGConnection, mode: Mode, finish: @escaping (Result<T, StoreError>) -> Void) {
        self.conn = conn
        self.mode = mode
        self.finish = finish
    }

    static func run(_ conn: PGConnection, mode: Mode, _ body: @escaping (PGTransaction<T>) -> Void,
                    finish: @escaping (Result<T, StoreError>) -> Void) {
        let tx = PGTransaction(conn: conn, mode: mode, finish: finish)
        guard mode != .none else { return body(tx) }
        conn.run(.query(mode == .savepoint ? "SAVEPOINT batch" : "BEGIN", [])) { r in
            switch r {
            case .success: body(tx)
            case .failure(let e): tx.end(.failure(e))
            }
        }
    }

    /// Runs `sql` with `params`; `next` with its last result.
    func query(_ sql: String, _ params: [String?] = [], _ next: @escaping (PGRows) -> Void) {
        conn.run(.query(sql, params)) { [self] r in
            switch r {
            case .success(let results): next(results.last ?? PGRows(columns: 0, rows: [], affected: 0))
            case .failure(let e): fail(e)
            }
        }
    }

    func copy(_ sql: String, _ data: [UInt8], _ next: @escaping () -> Void) {
        conn.run(.copy(sql, data)) { [self] r in
            switch r {
            case .success: next()
            case .failure(let e): fail(e)
            }
        }
    }

    /// Ends with `value`: COMMIT first for a write.
    func done(_ value: T) {
        guard transactional else { return end(.success(value)) }
        conn.run(.query(mode == .savepoint ? "RELEASE SAVEPOINT batch" : "COMMIT", [])) { [self] r in
            switch r {
            case .success: end(.success(value))
            case .failure(let e): end(.failure(e))
            }
        }
    }

    /// Ends with `error`: ROLLBACK first for a write (if the connection is up).
    func fail(_ error: StoreError) {
        guard transactional, conn.state == .ready else { return end(.failure(error)) }
        conn.run(.query(mode == .savepoint ? "ROLLBACK TO SAVEPOINT batch" : "ROLLBACK", [])) { [self] r in
            // A statement error that was the connection dying shows as such.
            if case .failure(.unavailable(let why)) = r { return end(.failure(.unavailable(why))) }
            end(.failure(error))
        }
    }

    private func end(_ result: Result<T, StoreError>) {
        let f = finish
        finish = nil
        f?(result)
    }
}

/// Text values for libpq parameters and COPY's text format.
enum PGText {
    static func int(_ v: Int64) -> String? { String(v) }
    static func int(_ v: Int64?) -> String? { v.map { String($0) } }

    /// A bigint[] literal.
    static func intArray(_ items: [Int64]) -> String {
        "{" + items.map { String($0) }.joined(separator: ",") + "}"
    }

    /// A text[] literal: every element double-quoted, `"` and `\` escaped.
    static func array(_ items: [String]) -> String {
        var s = "{"
        for (i, item) in items.enumerated() {
            if i > 0 { s += "," }
            s += "\""
            for ch in item.unicodeScalars {
                if ch == "\"" || ch == "\\" { s += "\\" }
                s.unicodeScalars.append(ch)
            }
            s += "\""
        }
        return s + "}"
    }

    /// A value in COPY's text format: backslash, tab, newline and carriage
    /// return escaped; nil is \N.
    static func copyField(_ value: String?, into out: inout [UInt8]) {
        guard let value else { out += [0x5C, 0x4E]; return }
        for b in value.utf8 {
            switch b {
            case 0x5C: out += [0x5C, 0x5C]
            case 0x09: out += [0x5C, 0x74]
            case 0x0A: out += [0x5C, 0x6E]
            case 0x0D: out += [0x5C, 0x72]
            default: out.append(b)
            }
        }
    }

    /// bytea's hex input form (`\\x` and two hex digits a byte).
    static func byteaHex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [0x5C, 0x78]
        out.reserveCapacity(2 + bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// bytea's hex output form back to bytes; nil for NULL or a malformed value.
    static func bytea(_ text: String?) -> [UInt8]? {
        guard let text else { return nil }
        let u = Array(text.utf8)
        guard u.count >= 2, u[0] == 0x5C, u[1] == 0x78, u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity((u.count - 2) / 2)
        var i = 2
        while i < u.count {
            guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    static func copyRow(_ fields: [String?], into out: inout [UInt8]) {
        for (i, f) in fields.enumerated() {
            if i > 0 { out.append(0x09) }
            copyField(f, into: &out)
        }
        out.append(0x0A)
    }
}
