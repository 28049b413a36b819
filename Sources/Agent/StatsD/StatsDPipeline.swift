// StatsDPipeline: parse → filter → aggregate for StatsD datagrams, the
// counterpart of IngestPipeline for IPA. Every line ends counted: values
// into a series, or the line as unmatched, excluded, an event or service
// check, or a drop by cause. No I/O: the receiver, the tests, the fuzzer
// and the benchmark feed it bytes.
//
// Filter: with no StatsD rule in the installed PatternSet every metric is
// kept; with some, the first rule whose `metric` glob matches the name
// decides (an `exclude` rule drops it) and a name no rule matches is
// dropped as unmatched.
//
// Thread: loop thread (the receiver's callbacks, the window timer).
#if canImport(IPAPipeline)  // where the IPA parse/filter/aggregate code is its own module
import IPAPipeline
#endif

public final class StatsDPipeline {
    public struct Limits: Equatable, Sendable {
        /// `statsd_max_series`: series per window before the overflow series.
        public var maxSeries: Int
        /// `statsd_max_set_members`: set members remembered per window.
        public var maxSetMembers: Int
        public init(maxSeries: Int = 10_000, maxSetMembers: Int = 100_000) {
            self.maxSeries = maxSeries
            self.maxSetMembers = maxSetMembers
        }
    }

    public private(set) var patterns: PatternSet
    public private(set) var aggregator: StatsDAggregator
    public let limits: Limits
    private var base = StatsDCounters()

    public init(patterns: PatternSet = .empty, aggregationIntervalMs: Int64, limits: Limits = Limits()) {
        self.patterns = patterns
        self.limits = limits
        aggregator = StatsDAggregator(intervalMs: aggregationIntervalMs, maxSeries: limits.maxSeries,
                                      maxSetMembers: limits.maxSetMembers)
    }

    /// Every counter, the aggregator's own included.
    public var counters: StatsDCounters {
        var c = base
        c.overflow &+= aggregator.overflowed
        c.setMembersRefused &+= aggregator.membersRefused
        c.clampedNegative &+= aggregator.clamped
        return c
    }

    public func install(_ newPatterns: PatternSet) { patterns = newPatterns }

    /// Replaces the aggregator for a new window length (series restart);
    /// the old one is returned for its open window to be flushed.
    @discardableResult
    public func setAggregationInterval(_ ms: Int64) -> StatsDAggregator {
        let old = aggregator
        base.overflow &+= old.overflowed
        base.setMembersRefused &+= old.membersRefused
        base.clampedNegative &+= old.clamped
        aggregator = StatsDAggregator(intervalMs: ms, maxSeries: limits.maxSeries, maxSetMembers: limits.maxSetMembers)
        return old
    }

    /// Parses every line of `bytes` and routes it.
    public func ingest(_ bytes: UnsafeRawBufferPointer) {
        base.datagrams &+= 1
        base.bytes &+= UInt64(bytes.count)
        let patterns = self.patterns
        let aggregator = self.aggregator
        let filtered = patterns.hasMetricRules
        var drops = base.drops
        var extras = StatsDParser.Extras()
        var lines: UInt64 = 0, values: UInt64 = 0, unmatched: UInt64 = 0, excluded: UInt64 = 0
        StatsDParser.parse(bytes, drops: &drops, extras: &extras) { line in
            lines &+= 1
            if filtered {
                guard let rule = patterns.matchMetric(line.name) else { unmatched &+= 1; return }
                if patterns.isExclude(rule) { excluded &+= 1; return }
            }
            values &+= aggregator.record(&line)
        }
        base.drops = drops
        base.lines &+= lines
        base.values &+= values
        base.unmatched &+= unmatched
        base.excluded &+= excluded
        base.events &+= extras.events
        base.serviceChecks &+= extras.serviceChecks
        base.containerFields &+= extras.containerFields
        base.timestamps &+= extras.timestamps
    }
}
