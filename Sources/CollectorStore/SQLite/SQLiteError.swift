// SQLiteError: a failed SQLite call, with the call's name, the extended
// result code, SQLite's own message and the statement that failed, so a log
// line says exactly what went wrong (in the style of Reactor's SyscallError).
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

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

/// Why a store operation failed. Delivered through completions; never thrown
/// across the seam, so a networked backend can produce the same values.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case sqlite(SQLiteError)
    /// A filesystem call on the data directory failed.
    case io(call: String, path: String, errno: Int32)
    /// The named thing does not exist, e.g. "project 'demo'".
    case notFound(String)
    /// A caller passed a value the store cannot take (named in the text).
    case invalid(String)
    /// The write queue is at its row limit; retry later (nothing was stored).
    case overloaded(pendingRows: Int, limit: Int)
    /// The database schema is newer than this program knows.
    case schemaTooNew(found: Int, known: Int)
    /// The store was closed before the operation ran.
    case closed
    /// A read ran longer than the store allows (`StoreOptions.maxReadMillis`)
    /// and was stopped, so it would not hold up the writes behind it.
    case readTooLong(millis: Int)

    public var description: String {
        switch self {
        case .sqlite(let e): return e.description
        case .io(let call, let path, let e): return "\(call) \(path): \(String(cString: strerror(e))) (errno \(e))"
        case .notFound(let what): return "\(what) not found"
        case .invalid(let why): return "invalid request: \(why)"
        case .overloaded(let pending, let limit): return "store overloaded: \(pending) rows pending (limit \(limit))"
        case .schemaTooNew(let found, let known): return "database schema version \(found) is newer than this program's \(known)"
        case .closed: return "store closed"
        case .readTooLong(let ms):
            return "query stopped after \(ms) ms: narrow it (since, agent, monitor, check) or lower its limit"
        }
    }
}
