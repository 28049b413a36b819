// PatternSet: the agent's filter rules — only records that match a rule
// leave the host, labelled with that rule's (monitor, check).
//
// Rules are ordered and the first match wins. A rule is: a method (exact,
// case-insensitive; "*" or empty for any), a host glob (case-insensitive)
// and a path glob, each matched against the whole value (anchored). In a
// glob `*` matches any run of characters, `/` included, and `?` exactly one.
// The query string was already cut off by the parser. A matching rule
// marked `exclude` drops the record (counted) instead of counting it.
//
// StatsD rules (a `metric` glob, case-sensitive, anchored) sit in the same
// ordered list: traffic records never match them, metric names match only
// them (`matchMetric`). With no StatsD rule every metric is kept.
//
// Thread: loop thread (an immutable object shared on it).

/// An immutable, ordered rule list compiled for matching without
/// allocation. Replaced whole when the collector sends new rules; share it
/// freely on the loop thread.
public final class PatternSet {
    public let rules: [FilterRule]
    public let version: UInt64
    /// Indices of rules with a `problem`: never matched (the other rules
    /// keep their indices, so rule numbers stay those the collector sent).
    public let unusable: [Int]

    // Lower-cased copies as bytes, matched without allocating.
    private struct Compiled {
        let usable: Bool
        let exclude: Bool
        let method: [UInt8]?
        let host: [UInt8]
        let path: [UInt8]
        /// A StatsD rule's metric glob; nil for a traffic rule.
        let metric: [UInt8]?
    }
    private let compiled: [Compiled]
    /// Whether any StatsD rule is present (none: every metric is kept).
    public let hasMetricRules: Bool

    public init(rules: [FilterRule], version: UInt64) {
        self.rules = rules
        self.version = version
        unusable = rules.indices.filter { rules[$0].problem != nil }
        compiled = rules.map { r in
            Compiled(usable: r.problem == nil, exclude: r.exclude,
                     method: r.method.isEmpty || r.method == "*" ? nil : Array(r.method.utf8).map(PatternSet.lower),
                     host: Array(r.host.utf8).map(PatternSet.lower), path: Array(r.path.utf8),
                     metric: r.isMetricRule ? Array(r.metric.utf8) : nil)
        }
        hasMetricRules = rules.contains { $0.isMetricRule }
    }

    public static let empty = PatternSet(rules: [], version: 0)

    /// Whether rule `i` drops what it matches.
    @inline(__always)
    public func isExclude(_ i: Int) -> Bool { compiled[i].exclude }

    /// Index of the first rule matching the record, or nil.
    public func match(method: UnsafeRawBufferPointer, host: UnsafeRawBufferPointer,
                      path: UnsafeRawBufferPointer) -> Int? {
        for i in 0..<compiled.count {
            let c = compiled[i]
            guard c.usable, c.metric == nil else { continue }
            if let m = c.method, !PatternSet.equalsLowercased(method, m) { continue }
            if !c.host.withUnsafeBufferPointer({ PatternSet.glob($0, host, foldCase: true) }) { continue }
            if !c.path.withUnsafeBufferPointer({ PatternSet.glob($0, path, foldCase: false) }) { continue }
            return i
        }
        return nil
    }

    /// Index of the first StatsD rule whose glob matches the whole metric
    /// name, or nil (also when there is none: see `hasMetricRules`).
    public func matchMetric(_ name: UnsafeRawBufferPointer) -> Int? {
        for i in 0..<compiled.count {
            guard compiled[i].usable, let m = compiled[i].metric else { continue }
            if m.withUnsafeBufferPointer({ PatternSet.glob($0, name, foldCase: false) }) { return i }
        }
        return nil
    }

    public func matchMetric(_ name: String) -> Int? {
        var n = name
        return n.withUTF8 { matchMetric(UnsafeRawBufferPointer($0)) }
    }

    /// Convenience for tests and tools.
    public func match(method: String, host: String, path: String) -> Int? {
        var m = method, h = host, p = path
        return m.withUTF8 { mb in h.withUTF8 { hb in p.withUTF8 { pb in
            match(method: UnsafeRawBufferPointer(mb), host: UnsafeRawBufferPointer(hb), path: UnsafeRawBufferPointer(pb))
        } } }
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    static func equalsLowercased(_ s: UnsafeRawBufferPointer, _ lowered: [UInt8]) -> Bool {
        guard s.count == lowered.count else { return false }
        for i in 0..<s.count where lower(s[i]) != lowered[i] { return false }
        return true
    }

    /// Anchored glob match with `*` and `?`, linear in practice: on a
    /// mismatch it backtracks only to the last `*`.
    static func glob(_ pattern: UnsafeBufferPointer<UInt8>, _ text: UnsafeRawBufferPointer, foldCase: Bool) -> Bool {
        var p = 0, t = 0
        var starP = -1, starT = 0
        let star = UInt8(ascii: "*"), q = UInt8(ascii: "?")
        while t < text.count {
            if p < pattern.count {
                let pc = pattern[p]
                if pc == star { starP = p; starT = t; p += 1; continue }
                let tc = foldCase ? lower(text[t]) : text[t]
                if pc == q || pc == tc { p += 1; t += 1; continue }
            }
            if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
                continue
            }
            return false
        }
        while p < pattern.count && pattern[p] == star { p += 1 }
        return p == pattern.count
    }
}
