// Aggregator: per (monitor, check), per window of `intervalMs`, the count,
// sum, min, max and p50/p95/p99 of latencies, from a LogHistogram (<1 %
// relative error). One `Aggregate` per key per window.
//
// Records are counted by rule index through a slot table rebuilt when the
// rules change, so the per-record path does no hashing and no allocation.
// Memory: one slot per distinct (monitor, check) of the installed rules,
// each a histogram whose blocks exist only for latency ranges seen.
import Reactor

/// One (monitor, check) window's latency statistics, in milliseconds.
public struct LatencyAggregate: Equatable, Sendable {
    public var windowStartMs: Int64
    public var windowMs: Int64
    public var monitor: String
    public var check: String
    public var source: String
    public var count: UInt64
    public var sumMs: Double
    public var minMs: Double
    public var maxMs: Double
    public var p50Ms: Double
    public var p95Ms: Double
    public var p99Ms: Double
}

public final class Aggregator {
    public let intervalMs: Int64
    public let source: String

    private struct Slot {
        let monitor: String
        let check: String
        var histogram = LogHistogram()
    }

    private var slots: [Slot] = []
    private var slotOfRule: [Int] = []
    /// Records counted into the open window.
    public private(set) var pending: UInt64 = 0

    public init(intervalMs: Int64, source: String = "ipa") {
        precondition(intervalMs > 0)
        self.intervalMs = intervalMs
        self.source = source
    }

    /// Start of the window containing `ms` (collector time).
    public func windowStart(containing ms: Int64) -> Int64 {
        ms - ((ms % intervalMs) + intervalMs) % intervalMs
    }

    /// Maps each rule to its (monitor, check) slot. Slots of keys that the
    /// new rules still use keep their open-window data.
    public func install(_ patterns: PatternSet) {
        var index: [String: Int] = [:]
        var newSlots: [Slot] = []
        for s in slots where s.histogram.count > 0 {
            index[s.monitor + "\u{0}" + s.check] = newSlots.count
            newSlots.append(s)
        }
        slotOfRule = patterns.rules.map { r in
            let key = r.monitor + "\u{0}" + r.check
            if let i = index[key] { return i }
            index[key] = newSlots.count
            newSlots.append(Slot(monitor: r.monitor, check: r.check))
            return newSlots.count - 1
        }
        slots = newSlots
    }

    @inline(__always)
    public func record(rule: Int, durationMs: Double) {
        guard rule >= 0 && rule < slotOfRule.count else { return }
        slots[slotOfRule[rule]].histogram.record(UInt64(durationMs * 1000))
        pending &+= 1
    }

    /// Closes the window that started at `windowStartMs`: returns one
    /// aggregate per key that saw records, and empties the histograms.
    public func flush(windowStartMs: Int64) -> [LatencyAggregate] {
        var out: [LatencyAggregate] = []
        for i in 0..<slots.count where slots[i].histogram.count > 0 {
            let h = slots[i].histogram
            func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
            out.append(LatencyAggregate(windowStartMs: windowStartMs, windowMs: intervalMs,
                                 monitor: slots[i].monitor, check: slots[i].check, source: source,
                                 count: h.count, sumMs: ms(h.sum), minMs: ms(h.min), maxMs: ms(h.max),
                                 p50Ms: ms(h.quantile(0.50)), p95Ms: ms(h.quantile(0.95)),
                                 p99Ms: ms(h.quantile(0.99))))
            slots[i].histogram = LogHistogram()
        }
        pending = 0
        return out
    }
}
