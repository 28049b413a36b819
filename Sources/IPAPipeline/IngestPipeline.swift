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
// Thread: loop thread (the receiver's callbacks, the replay driver's timer).

/// The agent's ingest path. Loop thread only; owned by the runtime.
public final class IngestPipeline {
    public private(set) var patterns: PatternSet
    public private(set) var aggregator: Aggregator
    public private(set) var counters = IngestCounters()
    /// When set, called for every record counted into an aggregate (raw
    /// event forwarding). The record and its views die when it returns.
    public var onMatched: ((inout IPARecord, _ rule: Int) -> Void)?

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
    @discardableResult
    public func setAggregationInterval(_ ms: Int64) -> Aggregator {
        let old = aggregator
        aggregator = Aggregator(intervalMs: ms)
        aggregator.install(patterns)
        return old
    }

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
        IPAParser.parse(bytes, drops: &drops) { record in
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
            aggregator.record(rule: rule, durationMs: record.durationMs)
            onMatched?(&record, rule)
        }
        counters.parseDrops = drops
        counters.records &+= records
        counters.matched &+= matched
        counters.unmatched &+= unmatched
        counters.excluded &+= excluded
    }
}
