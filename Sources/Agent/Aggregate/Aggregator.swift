// Aggregator: per (monitor, check), per window of `intervalMs`, the count,
// sum, min, max and p50/p95/p99 of latencies, from a WindowHistogram
// (≤ 1 % relative error). One `LatencyAggregate` per key per window, in the
// histogram's integer microseconds, carrying the histogram itself so that
// windows and agents can be merged later.
//
// Records are counted by rule index through a slot table rebuilt when the
// rules change, so the per-record path does no hashing and no allocation.
// Memory: one slot per distinct (monitor, check) of the installed rules,
// each a histogram whose blocks exist only for latency ranges seen.
//
// Thread: loop thread (the ingest pipeline's, and the window timer's).
import Reactor
import Wire

public final class Aggregator {
    public let intervalMs: Int64
    public let source: String

    private struct Slot {
        let monitor: String
        let check: String
        var histogram = WindowHistogram()
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

    /// Counts one record. Its milliseconds (the IPA line's unit) become
    /// the histogram's integer microseconds here, once, truncated.
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
            out.append(LatencyAggregate(windowStartMs: windowStartMs, windowMs: intervalMs,
                                        monitor: slots[i].monitor, check: slots[i].check, source: source,
                                        count: h.count, sumUs: h.sum, minUs: h.min, maxUs: h.max,
                                        p50Us: h.quantile(0.50), p95Us: h.quantile(0.95), p99Us: h.quantile(0.99),
                                        histogram: h.sketch.encoded))
            slots[i].histogram = WindowHistogram()
        }
        pending = 0
        return out
    }
}
