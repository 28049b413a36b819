// StoreLimits: the bounds every MeasurementStore enforces, whatever its
// backend — how many rows a query returns, how long a read may run, how
// many rows and reads may wait. The HTTP API reads them from the store
// it was given (`store.limits`), never from a backend's type. Each has a
// default and is set when the store is opened (a backend's options carry
// one of these).
//
// Plain values.

public struct StoreLimits: Equatable, Sendable {
    /// Most rows one query returns: a query's `limit` is clamped to
    /// 1...maxQueryRows, and the API refuses a `limit` above it.
    public var maxQueryRows = 10_000
    /// Longest a read may run (ms) before the store stops it with
    /// `.readTooLong`: a scan of the whole history must not hold up the
    /// commits (and acknowledgements) behind it.
    public var maxReadMillis = 250
    /// Rows queued but not yet committed; beyond it writes are refused with
    /// `.overloaded` (the agent re-sends later; nothing is lost).
    public var maxPendingRows = 200_000
    /// Reads queued but not yet answered; beyond it reads are refused with
    /// `.tooManyReads` at once, so callers that ask faster than the store
    /// answers cannot grow its queue (and the time the writer spends
    /// reading) without bound.
    public var maxPendingReads = 1_024
    /// Most rows one merged measurements answer (`step`) reads, in pages of
    /// maxQueryRows; beyond it the API refuses the query as too broad.
    public var maxMergedRows = 1_000_000

    public init() {}

    /// `limit` within 1...maxQueryRows.
    public func clamp(_ limit: Int) -> Int { min(max(limit, 1), maxQueryRows) }
}
