// StatsDAggregator: StatsD values per series (metric name, type, tags) per
// window, closed into the same LatencyAggregate the IPA path sends, with
// source `statsd`, monitor = the metric name and check = the type, its tags
// folded in sorted: `timer` or `timer,env:prod,region:eu` (docs/STATSD.md,
// "Measurements").
//
//   counter       count = Σ value / rate (rounded; below 0 stored as 0),
//                 sum = the same in thousandths (read as `sum_ms`)
//   gauge         count = samples; min, max; the last value as p50/p95/p99;
//                 sum = Σ of the values taken. ±values change the last
//                 value, which outlives the window while the series lives
//   timer, h, d   the latency aggregate of the values in ms (as IPA
//                 durations); a sample rate counts each value 1/rate times
//   set           count = distinct members in the window
//
// Bounded: at most `maxSeries` series per window — values of a further
// series go to the overflow series of its type (monitor `statsd.overflow`),
// counted; at most `maxSetMembers` set members per window across all sets —
// a further member is counted, not remembered. A series that saw nothing
// in a window is forgotten when the window closes.
//
// The per-value path allocates nothing for a known series: the line's
// (name, type, tags) bytes are hashed and compared with the bytes that
// created the entry. Only a new series (or a rare hash collision) builds
// strings.
//
// Thread: loop thread (the StatsD pipeline's, and the window timer's).
import Reactor
#if canImport(IPAPipeline)  // where the IPA parse/filter/aggregate code is its own module
import IPAPipeline
#endif

public final class StatsDAggregator {
    public static let source = "statsd"
    public static let overflowMonitor = "statsd.overflow"

    public let intervalMs: Int64
    public let maxSeries: Int
    public let maxSetMembers: Int

    struct Series {
        let monitor: String
        let check: String
        let type: StatsDType
        var active = false
        var counter: Double = 0
        var gaugeSamples: UInt64 = 0
        var gaugeLast: Double = 0
        var gaugeMin: Double = 0
        var gaugeMax: Double = 0
        var gaugeSum: Double = 0
        var histogram: LogHistogram?
        var members: Set<UInt64>?
    }

    /// The bytes a series entry was found by (one series may have several:
    /// the same tags in another order): `keyBytes[offset..<offset+length]`.
    /// One arena for all keys, so a lookup retains nothing.
    private struct Entry {
        let offset: Int
        let length: Int
        let series: Int
    }

    private var series: [Series] = []
    private var byCanonical: [String: Int] = [:]
    private var entries: [Entry] = []
    private var keyBytes: [UInt8] = []
    private var byHash: [UInt64: Int] = [:]
    private var overflowSeries: [Int?] = Array(repeating: nil, count: StatsDType.allCases.count)
    private var setMembers = 0
    /// Values counted into the overflow series, members refused, and series
    /// windows whose counter sum or a gauge value was below zero (stored
    /// as 0) — since the start. Read by the pipeline.
    public private(set) var overflowed: UInt64 = 0
    public private(set) var membersRefused: UInt64 = 0
    public private(set) var clamped: UInt64 = 0
    /// Values counted into the open window.
    public private(set) var pending: UInt64 = 0

    public init(intervalMs: Int64, maxSeries: Int, maxSetMembers: Int) {
        precondition(intervalMs > 0 && maxSeries > 0 && maxSetMembers >= 0)
        self.intervalMs = intervalMs
        self.maxSeries = maxSeries
        self.maxSetMembers = maxSetMembers
    }

    /// Series held now (the overflow series included).
    public var seriesCount: Int { series.count }

    /// Counts every value of one parsed line. Returns how many values.
    @discardableResult
    public func record(_ line: inout StatsDLine) -> UInt64 {
        let s = seriesIndex(line)
        var n: UInt64 = 0
        var refused: UInt64 = 0
        var members = setMembers
        let maxMembers = maxSetMembers
        let values = line.values
        // One exclusive access to the series per line, not one per field.
        series.withUnsafeMutableBufferPointer { all in
            let p = all.baseAddress! + s
            p.pointee.active = true
            switch line.type {
            case .counter:
                let rate = line.sampleRate
                StatsDParser.forEachNumber(values) { v, _ in p.pointee.counter += v / rate; n &+= 1 }
            case .gauge:
                StatsDParser.forEachNumber(values) { v, signed in
                    let value = signed ? p.pointee.gaugeLast + v : v
                    if p.pointee.gaugeSamples == 0 {
                        p.pointee.gaugeMin = value
                        p.pointee.gaugeMax = value
                    } else {
                        p.pointee.gaugeMin = Swift.min(p.pointee.gaugeMin, value)
                        p.pointee.gaugeMax = Swift.max(p.pointee.gaugeMax, value)
                    }
                    p.pointee.gaugeSum += value
                    p.pointee.gaugeLast = value
                    p.pointee.gaugeSamples &+= 1
                    n &+= 1
                }
            case .timer, .histogram, .distribution:
                let times = Swift.max(1, UInt32(clamping: Int((1 / line.sampleRate).rounded())))
                if p.pointee.histogram == nil { p.pointee.histogram = LogHistogram() }
                StatsDParser.forEachNumber(values) { v, _ in
                    // Checked ≥ 0 by the parser; ms become integer µs here, once.
                    p.pointee.histogram!.record(UInt64(Swift.min(v * 1000, 1.8e19)), times: times)
                    n &+= 1
                }
            case .set:
                if p.pointee.members == nil { p.pointee.members = [] }
                StatsDParser.forEachMember(values) { m in
                    n &+= 1
                    let h = StatsDAggregator.hash(m, seed: 0xcbf2_9ce4_8422_2325)
                    if p.pointee.members!.contains(h) { return }
                    guard members < maxMembers else { refused &+= 1; return }
                    p.pointee.members!.insert(h)
                    members += 1
                }
            }
        }
        setMembers = members
        membersRefused &+= refused
        pending &+= n
        return n
    }

    /// Closes the window that started at `windowStartMs`: one aggregate per
    /// series that saw values. Series that saw none are forgotten.
    public func flush(windowStartMs: Int64) -> [LatencyAggregate] {
        var out: [LatencyAggregate] = []
        var kept: [Series] = []
        for var s in series where s.active {
            out.append(aggregate(s, windowStartMs: windowStartMs))
            s.active = false
            s.counter = 0
            s.gaugeSamples = 0
            s.gaugeSum = 0
            s.histogram = nil
            s.members = nil
            kept.append(s)
        }
        // Rebuild the indexes for the series kept (the overflow ones among them).
        var newIndex = [Int](repeating: -1, count: series.count)
        var j = 0
        for (i, s) in series.enumerated() where s.active { newIndex[i] = j; j += 1 }
        series = kept
        byCanonical = [:]
        for (i, s) in series.enumerated() where s.monitor != StatsDAggregator.overflowMonitor {
            byCanonical[s.monitor + "\u{0}" + s.check] = i
        }
        var newEntries: [Entry] = []
        var newBytes: [UInt8] = []
        byHash = [:]
        for e in entries where newIndex[e.series] >= 0 {
            let raw = keyBytes[e.offset..<(e.offset + e.length)]
            let h = raw.withUnsafeBytes { StatsDAggregator.hash($0, seed: 0xcbf2_9ce4_8422_2325) }
            if byHash[h] == nil { byHash[h] = newEntries.count }
            newEntries.append(Entry(offset: newBytes.count, length: e.length, series: newIndex[e.series]))
            newBytes.append(contentsOf: raw)
        }
        entries = newEntries
        keyBytes = newBytes
        overflowSeries = overflowSeries.map { $0.flatMap { newIndex[$0] >= 0 ? newIndex[$0] : nil } }
        setMembers = 0
        pending = 0
        return out
    }

    private func aggregate(_ s: Series, windowStartMs: Int64) -> LatencyAggregate {
        var a = LatencyAggregate(windowStartMs: windowStartMs, windowMs: intervalMs, monitor: s.monitor, check: s.check,
                                 source: StatsDAggregator.source, count: 0, sumUs: 0, minUs: 0, maxUs: 0,
                                 p50Us: 0, p95Us: 0, p99Us: 0)
        switch s.type {
        case .counter:
            if s.counter < 0 { clamped &+= 1 }
            a.count = UInt64(clampedValue(s.counter.rounded()))
            a.sumUs = thousandths(s.counter)
        case .gauge:
            if s.gaugeMin < 0 { clamped &+= 1 }
            a.count = s.gaugeSamples
            a.sumUs = thousandths(s.gaugeSum)
            a.minUs = thousandths(s.gaugeMin)
            a.maxUs = thousandths(s.gaugeMax)
            let last = thousandths(s.gaugeLast)
            (a.p50Us, a.p95Us, a.p99Us) = (last, last, last)
        case .timer, .histogram, .distribution:
            guard let h = s.histogram else { break }
            a.count = h.count
            a.sumUs = h.sum
            a.minUs = h.count > 0 ? h.min : 0
            a.maxUs = h.max
            a.p50Us = h.quantile(0.50)
            a.p95Us = h.quantile(0.95)
            a.p99Us = h.quantile(0.99)
        case .set:
            a.count = UInt64(s.members?.count ?? 0)
        }
        return a
    }

    /// A value in the store's integer thousandths (µs for ms), 0 below zero.
    private func thousandths(_ v: Double) -> UInt64 { UInt64(clampedValue(v * 1000)) }

    private func clampedValue(_ v: Double) -> Double {
        v < 0 ? 0 : Swift.min(v, 1.8e19)
    }

    // MARK: - Series lookup

    @inline(__always)
    private func seriesIndex(_ line: StatsDLine) -> Int {
        let h = StatsDAggregator.keyHash(line)
        if let e = byHash[h] {
            let entry = entries[e]
            let same = keyBytes.withUnsafeBytes {
                StatsDAggregator.rawEquals(UnsafeRawBufferPointer(rebasing: $0[entry.offset..<(entry.offset + entry.length)]), line)
            }
            if same { return entry.series }
        }
        return slowIndex(line, hash: h)
    }

    private func slowIndex(_ line: StatsDLine, hash h: UInt64) -> Int {
        let monitor = line.nameString
        let check = StatsDAggregator.check(type: line.type, tags: line.tags)
        let key = monitor + "\u{0}" + check
        let index: Int
        if let i = byCanonical[key] {
            index = i
        } else if series.count - overflowSeries.compactMap({ $0 }).count < maxSeries {
            index = series.count
            series.append(Series(monitor: monitor, check: check, type: line.type))
            byCanonical[key] = index
        } else {
            overflowed &+= 1
            if let o = overflowSeries[Int(line.type.rawValue)] { return o }
            let o = series.count
            series.append(Series(monitor: StatsDAggregator.overflowMonitor, check: line.type.name, type: line.type))
            overflowSeries[Int(line.type.rawValue)] = o
            return o
        }
        if byHash[h] == nil {
            byHash[h] = entries.count
            let raw = StatsDAggregator.rawKey(line)
            entries.append(Entry(offset: keyBytes.count, length: raw.count, series: index))
            keyBytes.append(contentsOf: raw)
        }
        return index
    }

    /// The check of a series: its type, then its tags sorted, comma-separated
    /// (empty tags left out).
    public static func check(type: StatsDType, tags: UnsafeRawBufferPointer) -> String {
        guard tags.count > 0 else { return type.name }
        let parts = tags.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true)
            .map { String(decoding: $0, as: UTF8.self) }.sorted()
        return parts.isEmpty ? type.name : ([type.name] + parts).joined(separator: ",")
    }

    static func rawKey(_ line: StatsDLine) -> [UInt8] {
        var k = [UInt8](line.name)
        k.append(0)
        k.append(line.type.rawValue)
        k.append(contentsOf: line.tags)
        return k
    }

    static func rawEquals(_ r: UnsafeRawBufferPointer, _ line: StatsDLine) -> Bool {
        let n = line.name.count
        guard r.count == n + 2 + line.tags.count, r[n] == 0, r[n + 1] == line.type.rawValue else { return false }
        return memEqual(UnsafeRawBufferPointer(rebasing: r[0..<n]), line.name)
            && memEqual(UnsafeRawBufferPointer(rebasing: r[(n + 2)...]), line.tags)
    }

    @inline(__always)
    static func memEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where a[i] != b[i] { return false }
        return true
    }

    @inline(__always)
    static func keyHash(_ line: StatsDLine) -> UInt64 {
        var h = hash(line.name, seed: 0xcbf2_9ce4_8422_2325)
        h = (h ^ 0) &* 0x100_0000_01b3
        h = (h ^ UInt64(line.type.rawValue)) &* 0x100_0000_01b3
        return hash(line.tags, seed: h)
    }

    /// FNV-1a, 64 bits.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = seed
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
