// PatternSet: the agent's filter rules — only records that match a rule
// leave the host, labelled with that rule's (monitor, check).
//
// Rules are ordered and the first match wins. A rule is: a method (exact,
// case-insensitive; "*" or empty for any), a host glob (case-insensitive)
// and a path glob, each matched against the whole value (anchored). In a
// glob `*` matches any run of characters, `/` included, and `?` exactly one.
// The query string was already cut off by the parser.

public struct PatternRule: Equatable, Sendable {
    public var method: String
    public var host: String
    public var path: String
    public var monitor: String
    public var check: String

    public init(method: String, host: String, path: String, monitor: String, check: String) {
        self.method = method
        self.host = host
        self.path = path
        self.monitor = monitor
        self.check = check
    }

    /// Why a rule is unusable, or nil.
    public var problem: String? {
        if host.isEmpty { return "host glob is empty (use \"*\" for any host)" }
        if path.isEmpty { return "path glob is empty (use \"*\" for any path)" }
        if monitor.isEmpty { return "monitor is empty" }
        if check.isEmpty { return "check is empty" }
        for (name, v) in [("method", method), ("host", host), ("path", path), ("monitor", monitor), ("check", check)]
            where v.utf8.count > 512 {
            return "\(name) is longer than 512 bytes"
        }
        return nil
    }
}

public final class PatternSet {
    public let rules: [PatternRule]
    public let version: UInt64
    // Lower-cased copies as bytes, matched without allocating.
    private let methods: [[UInt8]?]
    private let hosts: [[UInt8]]
    private let paths: [[UInt8]]

    public init(rules: [PatternRule], version: UInt64) {
        self.rules = rules
        self.version = version
        methods = rules.map { r in
            r.method.isEmpty || r.method == "*" ? nil : Array(r.method.utf8).map(PatternSet.lower)
        }
        hosts = rules.map { Array($0.host.utf8).map(PatternSet.lower) }
        paths = rules.map { Array($0.path.utf8) }
    }

    public static let empty = PatternSet(rules: [], version: 0)

    /// Index of the first rule matching the record, or nil.
    public func match(method: UnsafeRawBufferPointer, host: UnsafeRawBufferPointer,
                      path: UnsafeRawBufferPointer) -> Int? {
        for i in 0..<rules.count {
            if let m = methods[i], !PatternSet.equalsLowercased(method, m) { continue }
            if !hosts[i].withUnsafeBufferPointer({ PatternSet.glob($0, host, foldCase: true) }) { continue }
            if !paths[i].withUnsafeBufferPointer({ PatternSet.glob($0, path, foldCase: false) }) { continue }
            return i
        }
        return nil
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
