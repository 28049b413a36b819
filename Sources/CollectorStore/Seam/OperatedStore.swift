// OperatedStore: what the collector's start-up, its timers and /healthz
// need of a store beyond MeasurementStore — its schema version, where the
// data is (for logs, never a secret), the retention timer and whether the
// store can serve now. SQLiteStore and PostgreSQLStore both offer it, so
// the collector picks a backend at start (`store = sqlite | postgresql`)
// and depends on nothing else. Both are ClusterStores too (SQLite as a
// cluster of one).
//
// Loop thread, like the store.

public protocol OperatedStore: MeasurementStore, ClusterStore {
    var schemaVersion: Int { get }
    /// Where the data is, as a log may show it (a path, a redacted URL).
    var location: String { get }
    /// Days of data kept by the retention timer (0: all). Live.
    var retentionDays: Int { get set }
    /// Days without a session after which an agent is forgotten (0: never). Live.
    var agentRetentionDays: Int { get set }
    /// Told which agents the retention timer forgot.
    var agentsForgotten: (([String]) -> Void)? { get set }
    /// Days of the collector's health history kept (0: all). Live.
    var selfMetricsRetentionDays: Int { get set }
    func startRetention(days: Int, agentDays: Int, selfMetricsDays: Int, every interval: Double, firstAfter: Double)
    func stopRetention()
    /// nil while the store can serve; otherwise why not (/healthz answers 503 with it).
    var unavailableReason: String? { get }
}

extension SQLiteStore: OperatedStore {
    public var location: String { path }
    /// An embedded database is there while the process is.
    public var unavailableReason: String? { isClosed ? "store closed" : nil }
}
