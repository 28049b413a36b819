// SQLiteConnection: one open database (sqlite3*) with a cache of prepared
// statements keyed by their SQL text (prepared once with
// SQLITE_PREPARE_PERSISTENT, reused for the life of the connection).
//
// Threading: one thread at a time — the owner's: SQLiteStore.open on the
// loop thread until the store's writer thread starts, then that thread
// (SQLiteWriter) alone. The library is opened with SQLITE_OPEN_NOMUTEX: no
// SQLite mutexes are taken, because nothing else touches this handle.
//
// The WAL hook replaces SQLite's automatic checkpoint: it only counts WAL
// pages, and the owner decides when a checkpoint runs (so a checkpoint's
// copy and fsync never sit between a COMMIT and its acknowledgements).
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

public final class SQLiteConnection {
    public let handle: OpaquePointer
    public let path: String
    private var cache: [String: SQLiteStatement] = [:]
    /// Pages in the WAL after the last commit (from the WAL hook).
    public private(set) var walPages: Int32 = 0
    private var closed = false

    /// Process-wide settings, applied once before the first connection.
    private static let configured: Bool = {
        _ = csqlite_disable_memstatus()
        return true
    }()

    public init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        _ = SQLiteConnection.configured
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE))
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let err = SQLiteError(call: "sqlite3_open_v2", code: rc, db: db, sql: nil)
            sqlite3_close_v2(db)
            throw SQLiteError(call: err.call, code: err.code, message: "\(path): \(err.message)")
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        sqlite3_wal_hook(db, { ctx, _, _, pages in
            Unmanaged<SQLiteConnection>.fromOpaque(ctx!).takeUnretainedValue().walPages = pages
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { close() }

    /// Finalizes every cached statement and closes the handle. Idempotent.
    public func close() {
        if closed { return }
        closed = true
        cache.removeAll()          // finalizes (SQLiteStatement.deinit)
        sqlite3_wal_hook(handle, nil, nil)
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements without results (schema, PRAGMAs, BEGIN/COMMIT).
    public func exec(_ sql: String) throws(SQLiteError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(err)
            throw SQLiteError(call: "sqlite3_exec", code: sqlite3_extended_errcode(handle), message: msg, sql: sql)
        }
    }

    /// The cached prepared statement for `sql`, preparing it on first use.
    public func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let s = cache[sql] { return s }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError(call: "sqlite3_prepare_v3", code: sqlite3_extended_errcode(handle), db: handle, sql: sql)
        }
        let s = SQLiteStatement(handle: stmt, sql: sql, connection: self)
        cache[sql] = s
        return s
    }

    public var cachedStatements: Int { cache.count }

    /// Runs a statement with `values` bound in order; returns rows changed.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        let s = try statement(sql)
        defer { s.reset() }
        for (i, v) in values.enumerated() { s.bind(Int32(i + 1), value: v) }
        try s.run()
        return changes
    }

    /// The first column of the first row as an integer, or nil without rows.
    public func scalar(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> Int64? {
        let s = try statement(sql)
        defer { s.reset() }
        for (i, v) in values.enumerated() { s.bind(Int32(i + 1), value: v) }
        return try s.step() ? s.optionalInt64(0) : nil
    }

    /// The first column of the first row as text (PRAGMA answers), or nil.
    public func scalarText(_ sql: String) throws(SQLiteError) -> String? {
        let s = try statement(sql)
        defer { s.reset() }
        return try s.step() ? s.optionalText(0) : nil
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// `PRAGMA wal_checkpoint` without blocking on readers or writers.
    /// Returns (frames in the WAL, frames checkpointed).
    @discardableResult
    public func checkpoint(truncate: Bool = false) throws(SQLiteError) -> (log: Int32, done: Int32) {
        var log: Int32 = 0, done: Int32 = 0
        let mode = truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE
        let rc = sqlite3_wal_checkpoint_v2(handle, nil, mode, &log, &done)
        if rc != SQLITE_OK && rc != SQLITE_BUSY {
            throw SQLiteError(call: "sqlite3_wal_checkpoint_v2", code: rc, db: handle)
        }
        if log >= 0 && done >= log { walPages = 0 }
        return (log, done)
    }
}
