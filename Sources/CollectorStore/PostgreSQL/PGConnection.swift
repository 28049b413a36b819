// PGConnection: one libpq connection driven by the collector's loop through
// libpq's nonblocking API — the adapter between libpq's "watch this socket"
// and Reactor watchers, and a bounded queue of commands.
//
// Connecting: PQconnectStartParams, then PQconnectPoll each time the socket
// is ready for what the last poll step asked; PQsocket is read again after
// every step (libpq may open a new socket, e.g. trying the next host), and
// the IOWatcher is re-armed on it. A timer bounds the whole attempt.
//
// Commands run one at a time, in queue order: PQsendQueryParams (text
// parameters, text results) or a COPY … FROM STDIN fed with PQputCopyData /
// PQputCopyEnd. After each send, PQflush runs while it returns 1, with the
// watcher on "writable"; then the watcher waits for "readable", and
// PQconsumeInput / PQisBusy / PQgetResult collect the results without ever
// blocking. A command's completion gets every result of the command (a
// multi-statement string gives several) or the first error.
//
// A pipeline command (libpq's pipeline mode, PostgreSQL 14+) sends several
// statements at once: PQenterPipelineMode, PQsendQueryParams for each,
// PQpipelineSync, then one wait for all their results (PGRES_PIPELINE_SYNC
// ends them) and PQexitPipelineMode. COPY is not allowed in pipeline mode:
// a COPY is its own command between pipelines, so only its data waits.
//
// A lost connection fails the command in flight and every queued one with
// `.unavailable` and moves to `.failed`; the owner decides whether and when
// to connect again (PostgreSQLStore: backoff). Nothing here retries,
// because only the owner knows whether a command may run twice.
//
// LISTEN/NOTIFY needs no more than this: a connection of its own that runs
// LISTEN and is told of each PQnotifies after PQconsumeInput (`onNotify`).
//
// Loop thread only. Completions run from watcher callbacks, never before
// the call that queued them returns.
internal import CPQ
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// One result of a command, copied out of libpq's PGresult: text values,
/// nil for SQL NULL.
struct PGRows {
    var columns: Int
    var rows: [[String?]]
    /// PQcmdTuples: rows a command changed ("" when it says nothing).
    var affected: Int

    var count: Int { rows.count }
    func text(_ row: Int, _ col: Int) -> String? { rows[row][col] }
    func int(_ row: Int, _ col: Int) -> Int64? { rows[row][col].flatMap { Int64($0) } }
}

final class PGConnection {
    enum State: Equatable { case idle, connecting, ready, failed(String), closed }

    enum Command {
        /// A statement with text parameters ($1 …; nil is NULL), or several
        /// statements separated by `;` without parameters.
        case query(String, [String?])
        /// `COPY … FROM STDIN` of `sql`, fed with `data` in the format the
        /// statement names.
        case copy(String, [UInt8])
        /// Statements (one each, text parameters) sent together in
        /// pipeline mode and answered together: one round trip. The first
        /// error fails the command; the statements after it are skipped by
        /// the server (an open transaction is then aborted).
        case pipeline([(String, [String?])])
    }

    let loop: EventLoop
    private(set) var state = State.idle
    /// Every NOTIFY received (channel, payload), on the loop.
    var onNotify: ((String, String) -> Void)?
    /// The connection broke (not called for `close()`).
    var onFailure: ((String) -> Void)?
    /// The server's process id, for tests and logs.
    private(set) var backendPID: Int32 = 0

    private var conn: OpaquePointer?
    private var watcher: IOWatcher?
    private var connectTimer: TimerWatcher?
    private var connectDone: ((Result<Void, StoreError>) -> Void)?
    private struct Pending {
        var command: Command
        var completion: (Result<[PGRows], StoreError>) -> Void
    }
    private var queue = RingBuffer<Pending>(capacity: 64, overflow: .grow)
    private var inFlight: Pending?
    private var results: [PGRows] = []
    private var firstError: String?
    private var copyFed = false
    /// In pipeline mode, waiting for PGRES_PIPELINE_SYNC.
    private var pipelining = false
    private let maxQueued: Int
    /// Commands sent (a pipeline counts once): the connection's round trips.
    private(set) var commandsSent: UInt64 = 0

    init(loop: EventLoop, maxQueued: Int = 4_096) {
        self.loop = loop
        self.maxQueued = maxQueued
    }

    deinit { teardown() }

    var queued: Int { queue.count + (inFlight == nil ? 0 : 1) }

    // MARK: connecting

    /// Starts connecting with `conninfo` as libpq takes it (a URI or
    /// key=value pairs) and, when given, `password` over whatever the
    /// conninfo says. `done` runs on a later iteration.
    func connect(conninfo: String, password: String?, timeout: Double,
                 done: @escaping (Result<Void, StoreError>) -> Void) {
        teardown()
        var keys = ["dbname"], values = [conninfo]
        if let password { keys.append("password"); values.append(password) }
        // client_encoding UTF8 so text in and out is what Swift strings hold.
        keys.append("client_encoding"); values.append("UTF8")
        conn = withCStrings(keys) { k in withCStrings(values) { v in PQconnectStartParams(k, v, 1) } }
        guard let conn, PQstatus(conn) != CONNECTION_BAD else {
            let why = conn.map { Self.message($0) } ?? "out of memory"
            state = .failed(why)
            loop.defer { done(.failure(.unavailable("PostgreSQL: \(why)"))) }
            return
        }
        state = .connecting
        connectDone = done
        let timer = TimerWatcher(loop: loop) { [weak self] _ in
            self?.connectFailed("no connection within \(timeout) s")
        }
        timer.start(after: timeout)
        connectTimer = timer
        // The first poll step is "writable" (libpq: as if PGRES_POLLING_WRITING).
        arm(fd: PQsocket(conn), events: .write)
    }

    private func pollConnect() {
        guard let conn, state == .connecting else { return }
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING: arm(fd: PQsocket(conn), events: .read)
        case PGRES_POLLING_WRITING: arm(fd: PQsocket(conn), events: .write)
        case PGRES_POLLING_OK:
            guard PQsetnonblocking(conn, 1) == 0 else { return connectFailed(Self.message(conn)) }
            connectTimer?.stop()
            connectTimer = nil
            backendPID = PQbackendPID(conn)
            state = .ready
            arm(fd: PQsocket(conn), events: .read)
            let done = connectDone
            connectDone = nil
            done?(.success(()))
            startNext()
        default:
            connectFailed(Self.message(conn))
        }
    }

    private func connectFailed(_ why: String) {
        let done = connectDone
        connectDone = nil
        teardown()
        state = .failed(why)
        done?(.failure(.unavailable("PostgreSQL: \(why)")))
    }

    // MARK: commands

    /// Queues `command`; refused with `.overloaded` past the queue bound,
    /// `.unavailable` when the connection is not ready.
    func run(_ command: Command, completion: @escaping (Result<[PGRows], StoreError>) -> Void) {
        guard state == .ready else {
            let why: StoreError = state == .closed ? .closed : .unavailable("PostgreSQL connection not ready")
            loop.defer { completion(.failure(why)) }
            return
        }
        guard queued < maxQueued else {
            loop.defer { completion(.failure(.overloaded(pendingRows: self.queued, limit: self.maxQueued))) }
            return
        }
        _ = queue.append(Pending(command: command, completion: completion))
        if inFlight == nil { loop.defer { [weak self] in self?.startNext() } }
    }

    private func startNext() {
        guard state == .ready, inFlight == nil, let conn, let next = queue.popFirst() else { return }
        inFlight = next
        results = []
        firstError = nil
        copyFed = false
        commandsSent &+= 1
        let sent: Int32
        switch next.command {
        case .query(let sql, let params) where params.isEmpty:
            sent = PQsendQuery(conn, sql)
        case .query(let sql, let params):
            sent = withOptionalCStrings(params) { values in
                PQsendQueryParams(conn, sql, Int32(params.count), nil, values, nil, nil, 0)
            }
        case .copy(let sql, _):
            sent = PQsendQuery(conn, sql)
        case .pipeline(let statements):
            guard PQenterPipelineMode(conn) == 1 else { return broken(Self.message(conn)) }
            pipelining = true
            var ok: Int32 = 1
            for (sql, params) in statements where ok == 1 {
                ok = withOptionalCStrings(params) { values in
                    PQsendQueryParams(conn, sql, Int32(params.count), nil, values, nil, nil, 0)
                }
            }
            sent = ok == 1 ? PQpipelineSync(conn) : 0
        }
        guard sent == 1 else { return broken(Self.message(conn)) }
        flush()
    }

    /// PQflush while it returns 1, watching for writable; then readable.
    private func flush() {
        guard let conn else { return }
        switch PQflush(conn) {
        case 0: arm(fd: PQsocket(conn), events: .read)
        case 1: arm(fd: PQsocket(conn), events: [.read, .write])
        default: broken(Self.message(conn))
        }
    }

    private func readable() {
        guard let conn else { return }
        guard PQconsumeInput(conn) == 1 else { return broken(Self.message(conn)) }
        deliverNotifies()
        // Results already in libpq's buffer do not make the socket
        // readable again: take all there are, feeding a COPY on the way.
        var ends = 0
        while inFlight != nil, let conn = self.conn, PQisBusy(conn) == 0 {
            guard let r = PQgetResult(conn) else {
                // In pipeline mode NULL ends one statement's results; the
                // sync result ends the command. (Two in a row: nothing
                // more buffered yet — wait for the socket.)
                if pipelining { ends += 1; if ends > 1 { return }; continue }
                finishCommand()
                return
            }
            ends = 0
            let status = PQresultStatus(r)
            switch status {
            case PGRES_PIPELINE_SYNC:
                PQclear(r)
                pipelining = false
                guard PQexitPipelineMode(conn) == 1 else { return broken(Self.message(conn)) }
                finishCommand()
                return
            case PGRES_PIPELINE_ABORTED:
                if firstError == nil { firstError = "pipeline aborted" }
            case PGRES_COPY_IN:
                PQclear(r)
                feedCopy(conn)
                continue
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                results.append(Self.rows(r))
            default:
                if firstError == nil { firstError = Self.resultMessage(r) }
            }
            PQclear(r)
        }
    }

    private func feedCopy(_ conn: OpaquePointer) {
        guard !copyFed, case .copy(_, let data)? = inFlight?.command else {
            _ = PQputCopyEnd(conn, "unexpected COPY")
            return flush()
        }
        copyFed = true
        // Nonblocking: PQputCopyData queues in libpq's buffer (growing it)
        // and returns 0 only when it could not; PQflush then drains it.
        let put = data.withUnsafeBufferPointer { buf in
            buf.baseAddress.map { p in p.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                PQputCopyData(conn, $0, Int32(buf.count)) } } ?? 1
        }
        guard put == 1, PQputCopyEnd(conn, nil) == 1 else { return broken(Self.message(conn)) }
        flush()
    }

    private func finishCommand() {
        guard let done = inFlight else { return }
        inFlight = nil
        let outcome: Result<[PGRows], StoreError> = firstError.map { .failure(.backend("PostgreSQL: \($0)")) } ?? .success(results)
        results = []
        done.completion(outcome)
        startNext()
    }

    private func deliverNotifies() {
        guard let conn else { return }
        while let n = PQnotifies(conn) {
            let channel = String(cString: n.pointee.relname)
            let payload = String(cString: n.pointee.extra)
            PQfreemem(n)
            onNotify?(channel, payload)
        }
    }

    /// The connection failed: everything queued fails with `.unavailable`.
    private func broken(_ why: String) {
        guard state == .ready else { return }
        teardown()
        state = .failed(why)
        failAll(.unavailable("PostgreSQL: \(why)"))
        onFailure?(why)
    }

    private func failAll(_ error: StoreError) {
        var failed: [Pending] = []
        if let f = inFlight { failed.append(f) }
        inFlight = nil
        while let p = queue.popFirst() { failed.append(p) }
        for p in failed { p.completion(.failure(error)) }
    }

    /// Closes at once; queued commands fail with `.closed`.
    func close() {
        teardown()
        state = .closed
        failAll(.closed)
    }

    // MARK: the socket

    private func arm(fd: Int32, events: IOEvents) {
        guard fd >= 0 else { return }
        if let w = watcher {
            if w.fd != fd || w.events != events { w.set(fd: fd, events: events) }
            w.start()
            return
        }
        let w = IOWatcher(loop: loop, fd: fd, events: events) { [weak self] _, fired in
            guard let self else { return }
            switch self.state {
            case .connecting: self.pollConnect()
            case .ready:
                if fired.contains(.write) { self.flush() }
                if fired.contains(.read), self.state == .ready { self.readable() }
            default: break
            }
        }
        watcher = w
        w.start()
    }

    private func teardown() {
        connectTimer?.stop()
        connectTimer = nil
        // Stop the watcher before PQfinish closes the socket.
        watcher?.stop()
        watcher = nil
        pipelining = false
        if let conn { PQfinish(conn) }
        conn = nil
    }

    // MARK: libpq values

    static func message(_ conn: OpaquePointer) -> String {
        oneLine(PQerrorMessage(conn).map { String(cString: $0) } ?? "unknown error")
    }

    /// The server's message with its SQLSTATE, which callers match on
    /// (57014: a statement cancelled by `statement_timeout`); the message
    /// alone does not carry it at libpq's default verbosity.
    private static func resultMessage(_ r: OpaquePointer) -> String {
        let text = oneLine(PQresultErrorMessage(r).map { String(cString: $0) } ?? "unknown error")
        guard let code = PQresultErrorField(r, Int32(UInt8(ascii: "C"))).map({ String(cString: $0) }), !code.isEmpty else { return text }
        return text + " (SQLSTATE \(code))"
    }

    private static func oneLine(_ s: String) -> String {
        String(s.split(whereSeparator: { $0 == "\n" }).joined(separator: " ").prefix(1_000))
    }

    private static func rows(_ r: OpaquePointer) -> PGRows {
        let n = Int(PQntuples(r)), cols = Int(PQnfields(r))
        var rows: [[String?]] = []
        rows.reserveCapacity(n)
        for i in 0..<n {
            var row: [String?] = []
            row.reserveCapacity(cols)
            for c in 0..<cols {
                if PQgetisnull(r, Int32(i), Int32(c)) == 1 { row.append(nil); continue }
                row.append(String(cString: PQgetvalue(r, Int32(i), Int32(c))))
            }
            rows.append(row)
        }
        let affected = Int(String(cString: PQcmdTuples(r))) ?? 0
        return PGRows(columns: cols, rows: rows, affected: affected)
    }
}

/// `strings` as a NULL-terminated array of C strings, valid inside `body`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let array = copies.map { UnsafePointer($0) } + [nil]
    return array.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// `strings` (nil: SQL NULL) as an array of C strings, valid inside `body`.
func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { $0.map { strdup($0) } ?? nil }
    defer { copies.forEach { free($0) } }
    let array = copies.map { $0.map { UnsafePointer($0) } } + [nil]
    return array.withUnsafeBufferPointer { body($0.baseAddress!) }
}
