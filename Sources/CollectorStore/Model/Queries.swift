// Query filters and result rows for the HTTP API. Every list is newest
// first and bounded: `limit` is clamped to 1...StoreLimits.maxQueryRows of
// the store asked. A time range is half-open: `since` <= ts < `until`
// (ms), either end optional. Plain values.

public struct MeasurementQuery: Sendable {
    public var project: String?
    public var agent: String?
    public var monitor: String?
    public var check: String?
    public var source: String?
    /// Only rows with ts >= since (ms).
    public var since: Int64?
    /// Only rows with ts < until (ms).
    public var until: Int64?
    public var limit: Int
    /// Only rows after this position (the previous page's last row).
    public var after: ListPosition?

    public init(project: String? = nil, agent: String? = nil, monitor: String? = nil, check: String? = nil,
                source: String? = nil, since: Int64? = nil, until: Int64? = nil, limit: Int = 100,
                after: ListPosition? = nil) {
        self.project = project; self.agent = agent; self.monitor = monitor; self.check = check
        self.source = source; self.since = since; self.until = until; self.limit = limit; self.after = after
    }
}

public struct MeasurementRecord: Equatable, Sendable {
    public var project: String
    public var agent: String
    public var measurement: MeasurementRow
    /// The row's id in the store: with `measurement.ts`, its list position.
    public var id: Int64 = 0
}

/// Where a newest-first list stopped: the last row's time and id. A query
/// given one answers only rows after it in that order (older, or as old
/// with a smaller id), so pages neither repeat nor skip a row while new
/// rows arrive (they are newer than any position already handed out).
public struct ListPosition: Equatable, Sendable {
    public var ts: Int64
    public var id: Int64

    public init(ts: Int64, id: Int64) { self.ts = ts; self.id = id }
}

public struct EventQuery: Sendable {
    public var project: String?
    public var agent: String?
    public var monitor: String?
    public var check: String?
    public var since: Int64?
    public var until: Int64?
    public var limit: Int
    /// Only rows after this position (the previous page's last row).
    public var after: ListPosition?

    public init(project: String? = nil, agent: String? = nil, monitor: String? = nil, check: String? = nil,
                since: Int64? = nil, until: Int64? = nil, limit: Int = 100, after: ListPosition? = nil) {
        self.project = project; self.agent = agent; self.monitor = monitor; self.check = check
        self.since = since; self.until = until; self.limit = limit; self.after = after
    }
}

public struct EventRecord: Equatable, Sendable {
    public var id: Int64
    public var project: String
    public var agent: String
    public var event: RawEvent
}

public struct MonitorRunQuery: Sendable {
    public var project: String?
    public var agent: String?
    public var monitor: String?
    public var since: Int64?
    public var until: Int64?
    public var limit: Int
    /// Only rows after this position (the previous page's last row).
    public var after: ListPosition?

    public init(project: String? = nil, agent: String? = nil, monitor: String? = nil, since: Int64? = nil,
                until: Int64? = nil, limit: Int = 100, after: ListPosition? = nil) {
        self.project = project; self.agent = agent; self.monitor = monitor; self.since = since; self.until = until
        self.limit = limit; self.after = after
    }
}

public struct MonitorRunRecord: Equatable, Sendable {
    public var project: String
    public var agent: String
    public var run: MonitorRun
    /// The row's id in the store: with `run.ts`, its list position.
    public var id: Int64 = 0
}

public struct AuditQuery: Sendable {
    public var target: String?
    public var action: String?
    public var since: Int64?
    public var until: Int64?
    public var limit: Int
    /// Only rows after this position (the previous page's last row).
    public var after: ListPosition?

    public init(target: String? = nil, action: String? = nil, since: Int64? = nil, until: Int64? = nil, limit: Int = 100,
                after: ListPosition? = nil) {
        self.target = target; self.action = action; self.since = since; self.until = until; self.limit = limit
        self.after = after
    }
}

/// What one retention pass removed, per table.
public struct RetentionReport: Equatable, Sendable {
    public var cutoff: Int64
    public var deleted: [String: Int] = [:]
    /// Transactions (chunks) it took.
    public var chunks = 0

    public var total: Int { deleted.values.reduce(0, +) }
}
