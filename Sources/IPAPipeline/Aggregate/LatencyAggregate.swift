// LatencyAggregate: one (monitor, check) window's latency statistics, as
// the aggregator closes it and the send queue carries it. Latencies stay
// integer microseconds from the histogram to the wire (a Wire Aggregate
// takes them as they are); milliseconds appear only where a person reads
// them.
//
// Thread: a value; built and read on the loop thread.

/// One (monitor, check) window's latency statistics, in microseconds.
public struct LatencyAggregate: Equatable, Sendable {
    public var windowStartMs: Int64
    public var windowMs: Int64
    public var monitor: String
    public var check: String
    public var source: String
    public var count: UInt64
    public var sumUs: UInt64
    public var minUs: UInt64
    public var maxUs: UInt64
    public var p50Us: UInt64
    public var p95Us: UInt64
    public var p99Us: UInt64
    /// Calls per outcome class; records without a status are in none.
    public var outcomes: OutcomeCounts
    /// The window's histogram (its total is `count`) in its wire encoding
    /// (`LatencySketch.encoded`), for merging windows and agents at the
    /// collector; nil only where none was kept. Encoded, not the sketch
    /// itself, because aggregates wait in the send queues and the in-flight
    /// window: the sparse bytes take a few hundred bytes where the dense
    /// counts take ~3 KB.
    public var histogram: [UInt8]?

    public init(windowStartMs: Int64, windowMs: Int64, monitor: String, check: String, source: String, count: UInt64,
                sumUs: UInt64, minUs: UInt64, maxUs: UInt64, p50Us: UInt64, p95Us: UInt64, p99Us: UInt64,
                outcomes: OutcomeCounts = OutcomeCounts(), histogram: [UInt8]? = nil) {
        self.histogram = histogram
        self.windowStartMs = windowStartMs
        self.windowMs = windowMs
        self.monitor = monitor
        self.check = check
        self.source = source
        self.count = count
        self.sumUs = sumUs
        self.minUs = minUs
        self.maxUs = maxUs
        self.p50Us = p50Us
        self.p95Us = p95Us
        self.p99Us = p99Us
        self.outcomes = outcomes
    }
}
