// Aggregator: per (monitor, check), per window of `intervalMs`, the count,
// sum, min, max and p50/p95/p99 of latencies, from a WindowHistogram
// (≤ 1 % relative error), and the calls per outcome class. One
// `LatencyAggregate` per key per window, in the histogram's integer
// microseconds, carrying the histogram itself so that windows and agents
// can be merged later.
//
// Two kinds of window:
//  - the open window: records placed by their arrival; the owner says when
//    it closes and under which start (`flush(windowStartMs:)`);
//  - timed windows: records placed by their own timestamp (replay, and an
//    upload of a capture). At most `maxTimedWindows` are held; a record for
//    another window closes the oldest held one first, through `timedSink`,
//    and `closeTimedWindows()` closes them all (the end of a replay). A
//    file in time order thus yields one aggregate per key per window; one
//    out of order may yield several for the same window, whose counts add
//    up (docs/IPA.md, "Time").
//
// Records are counted by rule index through a slot table rebuilt when the
// rules change, so the per-record path does no hashing for the open window
// and no allocation. Memory: one slot per distinct (monitor, check) of the
// installed rules, each a histogram whose blocks exist only for latency
// ranges seen, times (1 + the timed windows held).
//
// No I/O and no agent runtime: the collector can run the same code over an
// uploaded file.
//
// Thread: loop thread (the ingest pipeline's, and the window timer's).
import Reactor
import Wire

public final class Aggregator {
    public let intervalMs: Int64
    public let source: String
    /// Timed windows held open at most (see the file header).
    public let maxTimedWindows: Int
    /// Receives the aggregates of each timed window as it closes. Timed
    /// records are refused (false from `record(at:)`) while it is nil.
    public var timedSink: (([LatencyAggregate]) -> Void)?

    /// One key's data in one window.
    struct Cell {
        var histogram = WindowHistogram()
        var outcomes = OutcomeCounts()
    }

    private struct Slot {
        let monitor: String
        let check: String
        var open = Cell()
    }

    private var slots: [Slot] = []
    private var slotOfRule: [Int] = []
    /// Timed windows by start: per slot index, the cell (nil when empty).
    private var timed: [Int64: [Cell?]] = [:]
    /// Records counted into the open window.
    public private(set) var pending: UInt64 = 0
    /// Timed windows closed early because `maxTimedWindows` were held.
    public private(set) var timedEvictions: UInt64 = 0

    public init(intervalMs: Int64, source: String = "ipa", maxTimedWindows: Int = 64) {
        precondition(intervalMs > 0 && maxTimedWindows > 0)
        self.intervalMs = intervalMs
        self.source = source
        self.maxTimedWindows = maxTimedWindows
    }

    /// Distinct (monitor, check) keys of the installed rules.
    public var keyCount: Int { slots.count }
    /// Timed windows currently held.
    public var timedWindowCount: Int { timed.count }

    /// Start of the window containing `ms` (collector time).
    public func windowStart(containing ms: Int64) -> Int64 {
        ms - ((ms % intervalMs) + intervalMs) % intervalMs
    }

    /// Maps each rule to its (monitor, check) slot. Slots of keys that the
    /// new rules still use keep their data; so does every slot holding
    /// timed data (its window has not closed yet).
    public func install(_ patterns: PatternSet) {
        var index: [String: Int] = [:]
        var newSlots: [Slot] = []
        var moved = [Int](repeating: -1, count: slots.count)
        for (i, s) in slots.enumerated() {
            let hasTimed = timed.values.contains { $0[i] != nil }
            guard s.open.histogram.count > 0 || hasTimed else { continue }
            index[s.monitor + "\u{0}" + s.check] = newSlots.count
            moved[i] = newSlots.count
            newSlots.append(s)
        }
        slotOfRule = patterns.rules.map { r in
            let key = r.monitor + "\u{0}" + r.check
            if let i = index[key] { return i }
            index[key] = newSlots.count
            newSlots.append(Slot(monitor: r.monitor, check: r.check))
            return newSlots.count - 1
        }
        for (start, cells) in timed {
            var remapped = [Cell?](repeating: nil, count: newSlots.count)
            for (i, c) in cells.enumerated() where c != nil && moved[i] >= 0 { remapped[moved[i]] = c }
            timed[start] = remapped
        }
        slots = newSlots
    }

    /// Counts one record into the open window. Its milliseconds (the IPA
    /// line's unit) become the histogram's integer microseconds here, once,
    /// truncated. `outcome` is nil for a record without a status.
    @inline(__always)
    public func record(rule: Int, durationMs: Double, outcome: Outcome? = nil) {
        guard rule >= 0 && rule < slotOfRule.count else { return }
        let s = slotOfRule[rule]
        slots[s].open.histogram.record(UInt64(durationMs * 1000))
        if let outcome { slots[s].open.outcomes.count(outcome) }
        pending &+= 1
    }

    /// Counts one record into the window containing `timestampMs`
    /// (collector time). Returns false, counting nothing, when no
    /// `timedSink` is set or the rule is unknown.
    @discardableResult
    public func record(rule: Int, durationMs: Double, outcome: Outcome?, at timestampMs: Int64) -> Bool {
        guard let sink = timedSink, rule >= 0 && rule < slotOfRule.count else { return false }
        let start = windowStart(containing: timestampMs)
        let s = slotOfRule[rule]
        if timed[start] == nil {
            if timed.count >= maxTimedWindows, let oldest = timed.keys.min() {
                timedEvictions &+= 1
                sink(closeTimed(oldest))
            }
            timed[start] = [Cell?](repeating: nil, count: slots.count)
        }
        var cell = timed[start]![s] ?? Cell()
        cell.histogram.record(UInt64(durationMs * 1000))
        if let outcome { cell.outcomes.count(outcome) }
        timed[start]![s] = cell
        return true
    }

    /// Closes the open window that started at `windowStartMs`: returns one
    /// aggregate per key that saw records, and empties the histograms.
    /// Timed windows stay as they are.
    public func flush(windowStartMs: Int64) -> [LatencyAggregate] {
        var out: [LatencyAggregate] = []
        for i in 0..<slots.count where slots[i].open.histogram.count > 0 {
            out.append(aggregate(slots[i].open, slot: i, windowStartMs: windowStartMs))
            slots[i].open = Cell()
        }
        pending = 0
        return out
    }

    /// Closes the oldest timed window through `timedSink`; false when none
    /// is held.
    @discardableResult
    public func closeOldestTimedWindow() -> Bool {
        guard let sink = timedSink, let oldest = timed.keys.min() else { return false }
        sink(closeTimed(oldest))
        return true
    }

    /// Closes every timed window, oldest first, through `timedSink`.
    public func closeTimedWindows() {
        guard let sink = timedSink else { return }
        for start in timed.keys.sorted() { sink(closeTimed(start)) }
    }

    private func closeTimed(_ start: Int64) -> [LatencyAggregate] {
        guard let cells = timed.removeValue(forKey: start) else { return [] }
        var out: [LatencyAggregate] = []
        for (i, c) in cells.enumerated() {
            if let c, c.histogram.count > 0 { out.append(aggregate(c, slot: i, windowStartMs: start)) }
        }
        return out
    }

    private func aggregate(_ c: Cell, slot i: Int, windowStartMs: Int64) -> LatencyAggregate {
        let h = c.histogram
        return LatencyAggregate(windowStartMs: windowStartMs, windowMs: intervalMs,
                                monitor: slots[i].monitor, check: slots[i].check, source: source,
                                count: h.count, sumUs: h.sum, minUs: h.min, maxUs: h.max,
                                p50Us: h.quantile(0.50), p95Us: h.quantile(0.95), p99Us: h.quantile(0.99),
                                outcomes: c.outcomes, histogram: h.sketch.encoded)
    }
}
