// UplinkCounters: the uplink's monotonic counters, reported in Status.
//
// Thread: a value owned by the uplink, read and written on the loop thread.

public struct UplinkCounters: Sendable {
    /// Sessions established, and lost after being established.
    public var sessions: UInt64 = 0
    public var reconnects: UInt64 = 0
    /// Attempts that failed before a session was established.
    public var connectFailures: UInt64 = 0
    /// Batches sent for the first time, and re-sent after a reconnect.
    public var batchesSent: UInt64 = 0
    public var batchesResent: UInt64 = 0
    public var itemsSent: UInt64 = 0
    /// Standalone records sent (Status, ControlResponse, Interfaces, …).
    public var recordsSent: UInt64 = 0
    public var pingsSent: UInt64 = 0
    /// Bursts that spent `net_send_max_bytes` and yielded to the loop.
    public var burstsYielded: UInt64 = 0
    /// The last time without a session: how long it lasted (ms) and how
    /// many attempts it took to end it — what the first status after a
    /// reconnect reports about the outage the log recorded.
    public var lastOutageMs: UInt64 = 0
    public var lastOutageAttempts: UInt64 = 0
    /// Items dropped because their names could not fit the collector's
    /// string table even after a clear.
    public var itemsUnencodable: UInt64 = 0
    /// Acks that named a batch never sent (ignored).
    public var bogusAcks: UInt64 = 0
    public init() {}
}
