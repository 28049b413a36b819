// StoreError: why a store operation failed, in terms every backend can
// produce — nothing here names SQLite or PostgreSQL. Backend errors become
// `.backend` (with the backend's own text, for logs) or `.unavailable` (the
// store cannot be opened or reached) at the backend's edge; callers (the
// sessions, the HTTP API) decide on the case alone.
//
// Plain values; delivered through completions, never thrown across the seam.

public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store cannot be opened or reached: the data directory, the
    /// database file, the writer thread, a server connection. Names the cause.
    case unavailable(String)
    /// The backend failed an operation (a constraint, an I/O error, a failed
    /// commit); the text is the backend's own, naming the call.
    case backend(String)
    /// The named thing does not exist, e.g. "project 'demo'".
    case notFound(String)
    /// A caller passed a value the store cannot take (named in the text).
    case invalid(String)
    /// The write queue is at its row limit (`StoreLimits.maxPendingRows`);
    /// nothing was stored, retry later.
    case overloaded(pendingRows: Int, limit: Int)
    /// The read queue is at its limit (`StoreLimits.maxPendingReads`); the
    /// read did not run, retry later.
    case tooManyReads(pending: Int, limit: Int)
    /// A read ran longer than `StoreLimits.maxReadMillis` and was stopped,
    /// so it would not hold up the writes behind it.
    case readTooLong(millis: Int)
    /// The database schema is newer than this program knows.
    case schemaTooNew(found: Int, known: Int)
    /// The store was closed before the operation ran.
    case closed

    /// The operation ran and its answer is "no such thing" (`notFound`):
    /// the caller asked for what does not exist, the store did not fail.
    /// Backends count every other error as a failure (`StoreStats`), this
    /// one not, so a mistyped agent id in the API is no store failure.
    public var isAnswer: Bool {
        if case .notFound = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .unavailable(let why): return "store unavailable: \(why)"
        case .backend(let what): return what
        case .notFound(let what): return "\(what) not found"
        case .invalid(let why): return "invalid request: \(why)"
        case .overloaded(let pending, let limit): return "store overloaded: \(pending) rows pending (limit \(limit))"
        case .tooManyReads(let pending, let limit): return "store overloaded: \(pending) reads pending (limit \(limit))"
        case .readTooLong(let ms):
            return "query stopped after \(ms) ms: narrow it (since, agent, monitor, check) or lower its limit"
        case .schemaTooNew(let found, let known): return "database schema version \(found) is newer than this program's \(known)"
        case .closed: return "store closed"
        }
    }
}
