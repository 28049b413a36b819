// IngestPipeline: parse → filter → aggregate, for one datagram's bytes at a
// time, with every record either counted into an aggregate or dropped and
// counted under one cause. No I/O: the UDP receiver, the replay file reader,
// the tests and the fuzzer all feed it bytes.
//
// The per-record path allocates nothing: the parser yields views into the
// datagram, the pattern set matches bytes, the aggregator adds to a
// histogram. Only a forwarded raw event (opt-in) builds strings, and the
// owner's `onMatched` checks for queue room before it does.
//
// Records are placed in the open window by their arrival (live traffic),
// or, once `placeByTimestamp` is called (replay, upload), records that
// carry a timestamp go to the window of their time — within the accepted
// age and skew, the rest dropped as `too_old` or `future` — and records
// without one to the open window.
//
// Nothing here reaches for a socket, the uplink or the runtime; the clock
// comes in through `TimePlacement`, so the collector can run the same
// parse → filter → aggregate over an uploaded file.
//
// Thread: loop thread (the receiver's callbacks, the replay driver's timer).

/// How records with timestamps are placed: how far back and ahead they are
/// accepted, against which clock.
public struct TimePlacement {
    /// Default oldest accepted record: a day before now.
    public static let defaultMaxAgeMs: Int64 = 86_400_000
    /// Default clock skew accepted for records ahead of now.
    public static let defaultMaxFutureMs: Int64 = 60_000

    /// Records older than now − maxAgeMs are dropped as `too_old`.
    public var maxAgeMs: Int64
    /// Records later than now + maxFutureMs are dropped as `future`.
    public var maxFutureMs: Int64
    /// Now, collector time (ms since the epoch).
    public var nowMs: () -> Int64
    /// Added to a record's timestamp (the emitter's clock) to make it
    /// collector time; the agent's measured offset, 0 in the collector.
    public var offsetMs: () -> Int64

    public init(maxAgeMs: Int64 = defaultMaxAgeMs, maxFutureMs: Int64 = defaultMaxFutureMs,
                nowMs: @escaping () -> Int64, offsetMs: @escaping () -> Int64 = { 0 }) {
        self.maxAgeMs = maxAgeMs
        self.maxFutureMs = maxFutureMs
        self.nowMs = nowMs
        self.offsetMs = offsetMs
    }
}

/// The agent's ingest path. Loop thread only; owned by the runtime.
public final class IngestPipeline {
    public private(set) var patterns: PatternSet
    public private(set) var aggregator: Aggregator
    public private(set) var counters = IngestCounters()
    /// When set, called for every record counted into an aggregate (raw
    /// event forwarding). The record and its views die when it returns.
    public var onMatched: ((inout IPARecord, _ rule: Int) -> Void)?
    /// Set by `placeByTimestamp`; nil: every record goes to the open window.
    public private(set) var placement: TimePlacement?
    private var timedSink: (([LatencyAggregate]) -> Void)?

    public init(patterns: PatternSet = .empty, aggregationIntervalMs: Int64) {
        self.patterns = patterns
        aggregator = Aggregator(intervalMs: aggregationIntervalMs)
        aggregator.install(patterns)
    }

    /// Installs new rules; open-window data of keys the new rules keep stays.
    public func install(_ newPatterns: PatternSet) {
        patterns = newPatterns
        aggregator.install(newPatterns)
    }

    /// Replaces the aggregator for a new window length. The caller flushes
    /// the open window of the old one first (it is returned for that).
    /// Its timed windows are closed into the sink first.
    @discardableResult
    public func setAggregationInterval(_ ms: Int64) -> Aggregator {
        let old = aggregator
        old.closeTimedWindows()
        aggregator = Aggregator(intervalMs: ms)
        aggregator.timedSink = timedSink
        aggregator.install(patterns)
        return old
    }

    /// From now on, records with a timestamp go to the window of their
    /// time; each timed window's aggregates reach `sink` when it closes
    /// (see Aggregator). `closeTimedWindows()` closes those still held.
    public func placeByTimestamp(_ placement: TimePlacement, sink: @escaping ([LatencyAggregate]) -> Void) {
        self.placement = placement
        timedSink = sink
        aggregator.timedSink = sink
    }

    /// Closes every timed window still held (the end of a replay).
    public func closeTimedWindows() { aggregator.closeTimedWindows() }

    /// Closes the oldest timed window held; false when none is.
    @discardableResult
    public func closeOldestTimedWindow() -> Bool { aggregator.closeOldestTimedWindow() }

    /// Parses every record of `bytes` and routes it.
    public func ingest(_ bytes: UnsafeRawBufferPointer) {
        counters.datagrams &+= 1
        counters.bytes &+= UInt64(bytes.count)
        // Counters are gathered in locals: one write-back per datagram, and
        // no exclusive access to `self` held across the closure.
        let patterns = self.patterns
        let aggregator = self.aggregator
        let onMatched = self.onMatched
        var drops = counters.parseDrops
        var records: UInt64 = 0, matched: UInt64 = 0, unmatched: UInt64 = 0, excluded: UInt64 = 0
        // The placement window, read once per datagram: [oldest, newest]
        // in collector time, and the offset to get there.
        var timed = false
        var tooOld: UInt64 = 0, future: UInt64 = 0
        var offset: Int64 = 0, oldest: Int64 = 0, newest: Int64 = 0
        if let p = placement {
            let now = p.nowMs()
            timed = true
            offset = p.offsetMs()
            oldest = now &- p.maxAgeMs
            newest = now &+ p.maxFutureMs
        }
        IPAParser.parse(bytes, drops: &drops) { record in
            var at: Int64 = 0
            if timed && record.timestampMs > 0 {
                at = record.timestampMs &+ offset
                if at < oldest { tooOld &+= 1; return }
                if at > newest { future &+= 1; return }
            }
            records &+= 1
            guard let rule = patterns.match(method: record.method, host: record.host, path: record.path) else {
                unmatched &+= 1
                return
            }
            if patterns.isExclude(rule) {
                excluded &+= 1
                return
            }
            matched &+= 1
            if at > 0 {
                aggregator.record(rule: rule, durationMs: record.durationMs, outcome: record.outcome, at: at)
            } else {
                aggregator.record(rule: rule, durationMs: record.durationMs, outcome: record.outcome)
            }
            onMatched?(&record, rule)
        }
        drops.count(.tooOld, times: tooOld)
        drops.count(.future, times: future)
        counters.parseDrops = drops
        counters.records &+= records
        counters.matched &+= matched
        counters.unmatched &+= unmatched
        counters.excluded &+= excluded
    }
}
