// The collector's history of its own health: one sample every
// `self_metrics_interval_ms`, kept for `self_metrics_retention_days`, read
// back in buckets for the console's Collector page and
// `GET /api/v1/collector/history`. Counts are per interval (not since
// start), so a restart does not make a step in the history; latencies are
// integer microseconds, like every duration in the store. Plain values.

public struct CollectorSample: Equatable, Sendable {
    /// When the interval ended (ms since the epoch); a bucket's start when read back.
    public var ts: Int64
    /// The interval's length (ms); a bucket's: the sum of its samples' intervals.
    public var intervalMs: Int64
    /// Agent connections by phase at the end of the interval (a bucket: the mean, rounded).
    public var sessionsHandshake: Int64 = 0
    public var sessionsEstablished: Int64 = 0
    public var sessionsClosing: Int64 = 0
    /// Connected agents by state at the end of the interval (a bucket: the mean, rounded).
    public var agentsConnecting: Int64 = 0
    public var agentsStopped: Int64 = 0
    public var agentsCapturing: Int64 = 0
    public var agentsWrongConfiguration: Int64 = 0
    /// Handshakes completed, and connections that did not become a session, in the interval.
    public var handshakes: Int64 = 0
    public var handshakeFailures: Int64 = 0
    /// Records received from agents, and rows stored, in the interval.
    public var recordsIn: Int64 = 0
    public var rowsStored: Int64 = 0
    /// Store COMMIT latency in the interval (a bucket: the largest of its samples').
    public var commitP99Us: Int64 = 0
    public var commitMaxUs: Int64 = 0
    /// Loop lag in the interval (a bucket: the largest of its samples').
    public var lagP99Us: Int64 = 0
    public var lagMaxUs: Int64 = 0
    /// Things dropped (every cause of `vigil_dropped_total`), and store
    /// operations failed or refused, in the interval.
    public var dropped: Int64 = 0
    public var storeFailures: Int64 = 0
    /// Rows queued for the store at the end of the interval (a bucket: the largest).
    public var pendingRows: Int64 = 0

    public init(ts: Int64, intervalMs: Int64) {
        self.ts = ts
        self.intervalMs = intervalMs
    }
}

/// Samples with `since` <= ts < `until`, in buckets of `stepMs` starting at
/// `since`, oldest first; a bucket without samples is left out. At most
/// `limit` buckets (clamped to 1...StoreLimits.maxQueryRows).
public struct CollectorHistoryQuery: Equatable, Sendable {
    public var since: Int64
    public var until: Int64
    public var stepMs: Int64
    public var limit: Int

    public init(since: Int64, until: Int64, stepMs: Int64, limit: Int = 10_000) {
        self.since = since; self.until = until; self.stepMs = stepMs; self.limit = limit
    }
}
