// WindowHistogram: one key's latencies in one window — the mergeable
// LatencySketch the aggregate carries (≤ 1 % relative error), plus the
// exact count, sum, min and max. Its percentiles are the sketch's, clamped
// to the exact extremes, so what the agent reports for one window and what
// the collector merges over many come from the same buckets.
//
// Memory: the sketch's counts span only the bucket range seen (about 350
// eight-byte counts for a 1 ms…1 s window); nothing per record.
//
// Thread: a value; used on the loop thread.
import Wire

public struct WindowHistogram: Sendable {
    public private(set) var sketch = LatencySketch()
    public private(set) var sum: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0

    public init() {}

    public var count: UInt64 { sketch.count }

    @inline(__always)
    public mutating func record(_ us: UInt64) {
        sketch.record(us)
        sum &+= us
        if us < min { min = us }
        if us > max { max = us }
    }

    /// The value at quantile `q`, whole microseconds (0 when empty).
    public func quantile(_ q: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        return UInt64(sketch.quantile(q, min: min, max: max).rounded())
    }
}
