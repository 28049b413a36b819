// SQLiteStatement: one prepared statement (sqlite3_stmt), owned by the
// SQLiteConnection that cached it; bind, step, read columns, reset.
//
// Usage: `let s = try db.statement(sql); defer { s.reset() }` — reset
// releases the statement's read snapshot and clears bindings, so a cached
// statement left half-stepped can never pin the WAL.
import CSQLite

public final class SQLiteStatement {
    let handle: OpaquePointer
    public let sql: String
    private unowned let connection: SQLiteConnection

    init(handle: OpaquePointer, sql: String, connection: SQLiteConnection) {
        self.handle = handle
        self.sql = sql
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    // MARK: binding (1-based indices, as in SQLite)

    public func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(handle, i, v) }
    public func bind(_ i: Int32, _ v: Int) { sqlite3_bind_int64(handle, i, Int64(v)) }
    public func bind(_ i: Int32, _ v: Double) { sqlite3_bind_double(handle, i, v) }
    public func bind(_ i: Int32, _ v: Bool) { sqlite3_bind_int64(handle, i, v ? 1 : 0) }
    public func bindNull(_ i: Int32) { sqlite3_bind_null(handle, i) }

    public func bind(_ i: Int32, _ v: String) {
        var s = v
        s.withUTF8 { buf in
            _ = csqlite_bind_text(handle, i, UnsafeRawPointer(buf.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                                    .assumingMemoryBound(to: CChar.self), Int32(buf.count))
        }
    }

    public func bind(_ i: Int32, blob v: [UInt8]) {
        v.withUnsafeBytes { buf in
            _ = csqlite_bind_blob(handle, i, buf.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(buf.count))
        }
    }

    public func bind(_ i: Int32, blob v: [UInt8]?) { if let v { bind(i, blob: v) } else { bindNull(i) } }

    public func bind(_ i: Int32, _ v: String?) { if let v { bind(i, v) } else { bindNull(i) } }
    public func bind(_ i: Int32, _ v: Int64?) { if let v { bind(i, v) } else { bindNull(i) } }

    /// Binds a value of any supported type (slower path for generated queries).
    public func bind(_ i: Int32, value: SQLiteValue) {
        switch value {
        case .integer(let v): bind(i, v)
        case .real(let v): bind(i, v)
        case .text(let v): bind(i, v)
        case .null: bindNull(i)
        }
    }

    // MARK: stepping

    /// Advances; true when a row is available, false when done.
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw SQLiteError(call: "sqlite3_step", code: sqlite3_extended_errcode(connection.handle), db: connection.handle, sql: sql)
    }

    /// Steps to completion (for statements that return no rows).
    public func run() throws(SQLiteError) {
        while try step() {}
    }

    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: columns (0-based, as in SQLite)

    public func int64(_ c: Int32) -> Int64 { sqlite3_column_int64(handle, c) }
    public func int(_ c: Int32) -> Int { Int(sqlite3_column_int64(handle, c)) }
    public func double(_ c: Int32) -> Double { sqlite3_column_double(handle, c) }
    public func isNull(_ c: Int32) -> Bool { sqlite3_column_type(handle, c) == SQLITE_NULL }
    public func optionalInt64(_ c: Int32) -> Int64? { isNull(c) ? nil : int64(c) }

    public func text(_ c: Int32) -> String {
        guard let p = sqlite3_column_text(handle, c) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, c))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// A BLOB column's bytes; nil for NULL.
    public func optionalBlob(_ c: Int32) -> [UInt8]? {
        if isNull(c) { return nil }
        let n = Int(sqlite3_column_bytes(handle, c))
        guard n > 0, let p = sqlite3_column_blob(handle, c) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
    }

    public func optionalText(_ c: Int32) -> String? { isNull(c) ? nil : text(c) }
}

/// A dynamically typed value for generated queries.
public enum SQLiteValue: Equatable, Sendable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case null
}
