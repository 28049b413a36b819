// LogHistogram: quantiles of non-negative integers with bounded relative
// error, in the HdrHistogram style: each power of two is split into
// 2^subBits linear sub-buckets, so a value is known to within
// 1/2^subBits of itself. With the default 7 bits that is 0.78 %, and a
// reported quantile (the bucket midpoint) is within 0.4 %.
//
// Memory grows only with the range actually seen: one block of 2^subBits
// counters per power of two that received a value.

public struct LogHistogram: Sendable {
    public let subBits: Int
    private var blocks: [[UInt32]?] = Array(repeating: nil, count: 65)
    public private(set) var count: UInt64 = 0
    public private(set) var sum: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0

    public init(subBits: Int = 7) {
        precondition(subBits >= 1 && subBits <= 12)
        self.subBits = subBits
    }

    /// The same counts in buckets of its own: shares no storage with this
    /// one, so each is freed by the thread that made it (a histogram
    /// handed from one thread to another; see WorkerThread, "Memory").
    public func ownCopy() -> LogHistogram {
        var c = LogHistogram(subBits: subBits)
        c.blocks = blocks.map { $0.map { block in block.map { $0 } } }
        c.count = count
        c.sum = sum
        c.min = min
        c.max = max
        return c
    }

    /// Where the counts of each allocated block live (tests: what a copy shares).
    var blockAddresses: [UInt] {
        blocks.compactMap { $0?.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } }
    }

    /// Largest relative error of a recorded value's bucket.
    public var relativeError: Double { 1.0 / Double(1 << subBits) }

    @inline(__always)
    private func locate(_ v: UInt64) -> (block: Int, slot: Int) {
        let linear = UInt64(1) << subBits
        if v < linear { return (0, Int(v)) }
        let msb = 63 - v.leadingZeroBitCount              // >= subBits
        let shift = msb - subBits
        return (shift + 1, Int((v >> UInt64(shift)) - linear))
    }

    /// The lowest value of a bucket and its width.
    private func bounds(block: Int, slot: Int) -> (low: UInt64, width: UInt64) {
        if block == 0 { return (UInt64(slot), 1) }
        let shift = UInt64(block - 1)
        let linear = UInt64(1) << subBits
        return ((linear + UInt64(slot)) << shift, UInt64(1) << shift)
    }

    public mutating func record(_ v: UInt64, times n: UInt32 = 1) {
        let (b, s) = locate(v)
        if blocks[b] == nil {
            blocks[b] = [UInt32](repeating: 0, count: b == 0 ? (1 << subBits) : (1 << subBits))
        }
        blocks[b]![s] &+= n
        count &+= UInt64(n)
        sum &+= v &* UInt64(n)
        if v < min { min = v }
        if v > max { max = v }
    }

    /// The value at quantile `q` (0...1), the midpoint of its bucket, clamped
    /// to the recorded min and max. 0 when empty.
    public func quantile(_ q: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = UInt64((Double(count) * Swift.min(Swift.max(q, 0), 1)).rounded(.up))
        let target = Swift.max(rank, 1)
        var seen: UInt64 = 0
        for b in 0..<blocks.count {
            guard let block = blocks[b] else { continue }
            for s in 0..<block.count where block[s] != 0 {
                seen += UInt64(block[s])
                if seen >= target {
                    let (low, width) = bounds(block: b, slot: s)
                    let mid = low + (width - 1) / 2
                    return Swift.min(Swift.max(mid, min), max)
                }
            }
        }
        return max
    }

    public var mean: Double { count == 0 ? 0 : Double(sum) / Double(count) }

    /// Adds every value of `other` (same subBits).
    public mutating func merge(_ other: LogHistogram) {
        precondition(other.subBits == subBits)
        for b in 0..<other.blocks.count {
            guard let ob = other.blocks[b] else { continue }
            if blocks[b] == nil { blocks[b] = [UInt32](repeating: 0, count: ob.count) }
            for s in 0..<ob.count where ob[s] != 0 { blocks[b]![s] &+= ob[s] }
        }
        count &+= other.count
        sum &+= other.sum
        if other.count > 0 {
            min = Swift.min(min, other.min)
            max = Swift.max(max, other.max)
        }
    }

    /// The values recorded since `earlier`, an earlier copy of this same
    /// histogram: the bucket counts' difference. Its min and max are the
    /// lowest and highest non-empty buckets' bounds, clamped to this
    /// histogram's min and max (the exact ones of a window are not kept).
    /// Used for quantiles over a recent window of a cumulative histogram.
    public func subtracting(_ earlier: LogHistogram) -> LogHistogram {
        precondition(earlier.subBits == subBits)
        var out = LogHistogram(subBits: subBits)
        guard earlier.count < count else { return out }
        var low: UInt64?, high: UInt64 = 0
        for b in 0..<blocks.count {
            guard let block = blocks[b] else { continue }
            let before = earlier.blocks[b]
            var diff = block
            for s in 0..<block.count {
                let d = block[s] &- (before?[s] ?? 0)
                diff[s] = d
                if d != 0 {
                    let (l, w) = bounds(block: b, slot: s)
                    if low == nil { low = l }
                    high = l + w - 1
                }
            }
            out.blocks[b] = diff
        }
        out.count = count &- earlier.count
        out.sum = sum &- earlier.sum
        out.min = Swift.max(low ?? min, min)
        out.max = Swift.min(high, max)
        return out
    }
}
