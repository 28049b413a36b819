// IngestCounters: where each ingested record went — parsed, matched,
// unmatched, excluded, or dropped by parse cause — for Status and replay's
// summary.
//
// Thread: a value owned by the ingest pipeline on the loop thread.

/// Where each ingested record went. Monotonic counters.
public struct IngestCounters: Sendable {
    /// Datagrams (or replayed chunks) fed in, and their bytes.
    public var datagrams: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Lines that parsed into a record (and, when placed by timestamp,
    /// were not too old or too far ahead).
    public var records: UInt64 = 0
    /// Records counted into an aggregate.
    public var matched: UInt64 = 0
    /// Records no rule matched: dropped, never forwarded.
    public var unmatched: UInt64 = 0
    /// Records an `exclude` rule matched: dropped on purpose.
    public var excluded: UInt64 = 0
    /// Lines that did not parse, and records outside the accepted time
    /// range, by cause.
    public var parseDrops = IPADropCounters()

    public init() {}
}
