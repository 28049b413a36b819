// SQLiteError: a failed SQLite call, with the call's name, the extended
// result code, SQLite's own message and the statement that failed, so a log
// line says exactly what went wrong (in the style of Reactor's SyscallError).
// It stays behind the seam: the store hands callers `StoreError.backend`
// with this text. Plain values.
import CSQLite

public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The C function that failed, e.g. `sqlite3_step`.
    public let call: String
    /// Extended result code (`sqlite3_extended_errcode`).
    public let code: Int32
    public let message: String
    /// The statement text, when there was one (first 200 characters).
    public let sql: String?

    public init(call: String, code: Int32, message: String, sql: String? = nil) {
        self.call = call
        self.code = code
        self.message = message
        self.sql = sql.map { $0.count > 200 ? String($0.prefix(200)) + "…" : $0 }
    }

    init(call: String, code: Int32, db: OpaquePointer?, sql: String? = nil) {
        let msg = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        self.init(call: call, code: code, message: msg, sql: sql)
    }

    /// The primary result code (`code & 0xff`), e.g. SQLITE_BUSY.
    public var primaryCode: Int32 { code & 0xff }
    public var isBusy: Bool { primaryCode == SQLITE_BUSY || primaryCode == SQLITE_LOCKED }

    public var description: String {
        var s = "\(call): \(message) (\(String(cString: sqlite3_errstr(code))), code \(code))"
        if let sql { s += " in: \(sql)" }
        return s
    }
}

extension StoreError {
    /// A failure inside the store's work as the seam reports it: a
    /// StoreError as it is, an SQLite error as `.backend` with SQLite's text.
    static func from(_ error: Error) -> StoreError {
        switch error {
        case let e as StoreError: return e
        case let e as SQLiteError: return .backend(e.description)
        default: return .backend("\(error)")
        }
    }
}
