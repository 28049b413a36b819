// LatencySketch: a mergeable histogram of integer microseconds with
// logarithmic buckets (the DDSketch scheme), as an aggregate carries it so
// that the collector can add the histograms of many windows and agents and
// read percentiles of the whole — which averaging percentiles cannot give.
//
// A value v ≥ 1 goes to bucket i = ⌈log_γ v⌉ with γ = (1 + α)/(1 − α) and
// α = 0.01; 0 has a bucket of its own. Every value in bucket i lies in
// (γ^(i−1), γ^i], and 2γ^i/(γ + 1) is within α (1 %) of each of them, so
// a quantile read from the buckets is within 1 % of the exact value of the
// same rank (docs/PROTOCOL.md, "Latency histograms"). Indices run from 0
// (v = 1) to 2218 (v = 2^64 − 1), whatever the input: memory is bounded.
//
// In memory the counts are dense between the lowest and highest index seen
// (a 1 ms…1 s window spans about 350 buckets); on the wire they are sparse:
//   [varint zero count][varint n][n × (varint index delta, varint count)]
// with the first delta the absolute index and every later one ≥ 1, counts
// ≥ 1 — one canonical encoding per histogram, so a decode re-encodes to the
// same bytes. One sample takes 5 bytes, 1,000 typical ones 250–520
// (docs/PERFORMANCE.md, "Latency histograms").
//
// Thread: a value; no thread affinity.
#if canImport(Glibc)
import Glibc
#endif

/// A log-bucketed histogram of microsecond latencies (≤ 1 % relative
/// error), mergeable by adding bucket counts.
public struct LatencySketch: Equatable, Sendable {
    /// The relative accuracy α.
    public static let relativeAccuracy = 0.01
    /// γ = (1 + α)/(1 − α).
    public static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    static let logGamma = log(gamma)
    /// The bucket of the largest value (2^64 − 1); no index is above it.
    public static let maxIndex = bucket(of: .max)

    /// Values equal to 0.
    public private(set) var zeroCount: UInt64 = 0
    /// Index of `counts[0]`.
    public private(set) var offset: Int = 0
    /// Dense counts of buckets offset..<offset+counts.count; the first and
    /// last are non-zero.
    public private(set) var counts: [UInt64] = []
    /// All values counted (the zero bucket's too).
    public private(set) var count: UInt64 = 0

    public init() {}

    /// The bucket index of `v` ≥ 1.
    @inline(__always)
    public static func bucket(of v: UInt64) -> Int {
        v <= 1 ? 0 : Int((log(Double(v)) / logGamma).rounded(.up))
    }

    /// The value a bucket stands for: the one integer it holds when it
    /// holds one, else 2γ^i/(γ + 1), within α of all its values.
    public static func value(ofBucket i: Int) -> Double {
        if i <= 0 { return 1 }
        let hi = pow(gamma, Double(i))
        let lo = hi / gamma
        let first = lo.rounded(.down) + 1, last = hi.rounded(.down)
        if first == last { return first }
        return 2 * hi / (gamma + 1)
    }

    /// Counts `v` (`times` times).
    @inline(__always)
    public mutating func record(_ v: UInt64, times n: UInt64 = 1) {
        guard n > 0 else { return }
        count &+= n
        if v == 0 { zeroCount &+= n; return }
        add(bucket: LatencySketch.bucket(of: v), n)
    }

    private mutating func add(bucket i: Int, _ n: UInt64) {
        if counts.isEmpty {
            offset = i
            counts = [n]
        } else if i < offset {
            counts.insert(contentsOf: repeatElement(0, count: offset - i), at: 0)
            offset = i
            counts[0] = n
        } else if i >= offset + counts.count {
            counts.append(contentsOf: repeatElement(0, count: i - offset - counts.count + 1))
            counts[i - offset] = n
        } else {
            counts[i - offset] &+= n
        }
    }

    /// Adds every value of `other`.
    public mutating func merge(_ other: LatencySketch) {
        zeroCount &+= other.zeroCount
        count &+= other.count
        for (k, c) in other.counts.enumerated() where c != 0 { add(bucket: other.offset + k, c) }
    }

    /// Non-empty buckets (zero bucket excluded), lowest index first.
    public var buckets: [(index: Int, count: UInt64)] {
        counts.enumerated().compactMap { $0.element == 0 ? nil : (offset + $0.offset, $0.element) }
    }

    /// The value (µs) of rank ⌈q·count⌉ (at least 1): within 1 % of the
    /// exact value of that rank, clamped to `min`...`max` when given (an
    /// aggregate's exact extremes). 0 when empty.
    public func quantile(_ q: Double, min lowest: UInt64? = nil, max highest: UInt64? = nil) -> Double {
        guard count > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((Double(count) * Swift.min(Swift.max(q, 0), 1)).rounded(.up)))
        var v = 0.0
        var seen = zeroCount
        if seen < rank {
            v = LatencySketch.value(ofBucket: offset + counts.count - 1)
            for (k, c) in counts.enumerated() where c != 0 {
                seen &+= c
                if seen >= rank { v = LatencySketch.value(ofBucket: offset + k); break }
            }
        }
        if let lowest { v = Swift.max(v, Double(lowest)) }
        if let highest { v = Swift.min(v, Double(highest)) }
        return v
    }

    // MARK: wire form

    /// Most bytes `encode` writes.
    public var encodedSizeBound: Int { 20 + counts.count * 12 }

    public func encode(into w: inout WireWriter) {
        w.varint(zeroCount)
        let list = buckets
        w.varint(UInt64(list.count))
        var previous = 0
        for (n, b) in list.enumerated() {
            w.varint(UInt64(n == 0 ? b.index : b.index - previous))
            w.varint(b.count)
            previous = b.index
        }
    }

    /// Reads the canonical form; anything else (an index above `maxIndex`,
    /// a zero delta or count, a total above 2^64 − 1) is malformed.
    public static func decode(from r: inout WireReader) throws(WireError) -> LatencySketch {
        var s = LatencySketch()
        s.zeroCount = try r.varint()
        s.count = s.zeroCount
        // Every bucket takes at least two bytes.
        let n = try r.varint()
        guard n <= UInt64(r.remaining / 2) else { throw .truncated }
        guard n <= UInt64(maxIndex + 1) else { throw .limitExceeded(field: "histogram.buckets", value: Int(n)) }
        var index = 0
        for k in 0..<Int(n) {
            let delta = try r.varint()
            guard delta <= UInt64(maxIndex), k == 0 || delta >= 1 else { throw .malformed(field: "histogram.index") }
            index = k == 0 ? Int(delta) : index + Int(delta)
            guard index <= maxIndex else { throw .malformed(field: "histogram.index") }
            let c = try r.varint()
            guard c >= 1 else { throw .malformed(field: "histogram.count") }
            let (total, overflow) = s.count.addingReportingOverflow(c)
            guard !overflow else { throw .malformed(field: "histogram.count") }
            s.count = total
            s.add(bucket: index, c)
        }
        return s
    }

    /// The encoding as a new array (the store keeps it as a BLOB).
    public var encoded: [UInt8] {
        var w = WireWriter(capacity: encodedSizeBound)
        encode(into: &w)
        return w.bytes
    }

    /// Decodes a stored encoding; the whole of `bytes` must be one sketch.
    public init(decoding bytes: [UInt8]) throws(WireError) {
        let decoded: Result<LatencySketch, WireError> = bytes.withUnsafeBytes { raw in
            var r = WireReader(raw)
            do throws(WireError) {
                let s = try LatencySketch.decode(from: &r)
                guard r.isAtEnd else { return .failure(.malformed(field: "histogram")) }
                return .success(s)
            } catch { return .failure(error) }
        }
        self = try decoded.get()
    }
}
