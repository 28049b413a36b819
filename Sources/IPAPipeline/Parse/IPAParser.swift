// IPAParser: what in-process instrumentation sends over UDP, one line per
// outgoing API call, parsed in place in the datagram's bytes into
// IPARecord views.
//
//   version 0:  0 <sep> METHOD <sep> HOST <sep> PATH <sep> DURATION_MS
//   version 1:  1 <sep> METHOD <sep> URL <sep> DURATION_MS
//
// <sep> is a TAB; a line without any TAB may use runs of spaces instead.
// Lines end with LF or CRLF; the last may lack its newline. HOST may carry a
// scheme and a port; PATH and URL may carry a query string, which is cut
// off here, before anything else looks at the record. Never traps on any
// input (fuzz-ipa checks it).
//
// Thread: any; pure functions over the bytes given.

public enum IPAParser {
    /// Longest accepted line; longer lines are dropped as `.oversize`.
    public static let maxLineBytes = 8192
    /// Largest accepted duration: a day. Negative, NaN and larger are dropped.
    public static let maxDurationMs = 86_400_000.0

    /// Parses every line of `datagram`, calling `record` for each valid one
    /// and counting each invalid one in `drops`. Never traps on any input.
    public static func parse(_ datagram: UnsafeRawBufferPointer, drops: inout IPADropCounters,
                             _ record: (inout IPARecord) -> Void) {
        guard let base = datagram.baseAddress, datagram.count > 0 else { return }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let n = datagram.count
        var start = 0
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd > start {
                if lineEnd - start > maxLineBytes {
                    drops.count(.oversize)
                } else {
                    switch parseLine(UnsafeRawBufferPointer(start: base + start, count: lineEnd - start)) {
                    case .success(var r): record(&r)
                    case .failure(let cause): drops.count(cause)
                    }
                }
            }
            start = end + 1
        }
    }

    enum LineResult {
        case success(IPARecord)
        case failure(IPADropCause)
    }

    /// Parses one line (no newline). Fields: up to 5 split by TAB, or by
    /// runs of spaces when the line has no TAB.
    static func parseLine(_ line: UnsafeRawBufferPointer) -> LineResult {
        var fields: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer,
                     UnsafeRawBufferPointer, UnsafeRawBufferPointer)
        let empty = UnsafeRawBufferPointer(start: line.baseAddress, count: 0)
        fields = (empty, empty, empty, empty, empty)
        var count = 0
        let hasTab = line.contains(0x09)
        let sep: UInt8 = hasTab ? 0x09 : 0x20
        var i = 0
        let n = line.count
        while i < n {
            if !hasTab { while i < n && line[i] == 0x20 { i += 1 }; if i == n { break } }
            var j = i
            while j < n && line[j] != sep { j += 1 }
            if count == 5 { return .failure(.fieldCount) }
            let f = UnsafeRawBufferPointer(rebasing: line[i..<j])
            switch count {
            case 0: fields.0 = f
            case 1: fields.1 = f
            case 2: fields.2 = f
            case 3: fields.3 = f
            default: fields.4 = f
            }
            count += 1
            i = j + 1
            if hasTab && j == n - 1 { // trailing TAB: an empty last field
                if count == 5 { return .failure(.fieldCount) }
                count += 1
            }
        }
        guard count >= 1 else { return .failure(.fieldCount) }
        let v = fields.0
        guard v.count == 1, v[0] == UInt8(ascii: "0") || v[0] == UInt8(ascii: "1") else {
            return .failure(.badVersion)
        }
        if v[0] == UInt8(ascii: "0") {
            guard count == 5, fields.1.count > 0, fields.2.count > 0 else { return .failure(.fieldCount) }
            guard let d = parseDuration(fields.4) else { return .failure(.duration) }
            guard let hp = splitHost(fields.2) else { return .failure(.badURL) }
            return .success(IPARecord(method: fields.1, host: hp.host, port: hp.port,
                                      path: cutQuery(fields.3), durationMs: d))
        } else {
            guard count == 4, fields.1.count > 0, fields.2.count > 0 else { return .failure(.fieldCount) }
            guard let d = parseDuration(fields.3) else { return .failure(.duration) }
            guard let u = splitURL(fields.2) else { return .failure(.badURL) }
            return .success(IPARecord(method: fields.1, host: u.host, port: u.port, path: u.path, durationMs: d))
        }
    }

    /// "12", "12.5", ".5", "3." in milliseconds; nothing else.
    static func parseDuration(_ f: UnsafeRawBufferPointer) -> Double? {
        guard f.count > 0, f.count <= 32 else { return nil }
        var intPart: Double = 0
        var frac: Double = 0
        var scale: Double = 1
        var seenDot = false
        var digits = 0
        for b in f {
            if b == UInt8(ascii: ".") {
                if seenDot { return nil }
                seenDot = true
                continue
            }
            guard b >= 0x30 && b <= 0x39 else { return nil }
            digits += 1
            if seenDot {
                scale /= 10
                frac += Double(b - 0x30) * scale
            } else {
                intPart = intPart * 10 + Double(b - 0x30)
            }
        }
        guard digits > 0 else { return nil }
        let d = intPart + frac
        return d <= maxDurationMs ? d : nil
    }

    /// Strips "?query" and "#fragment"; an empty path becomes "/".
    static func cutQuery(_ p: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = 0
        while end < p.count && p[end] != UInt8(ascii: "?") && p[end] != UInt8(ascii: "#") { end += 1 }
        if end == 0 { return rootPath }
        return UnsafeRawBufferPointer(rebasing: p[0..<end])
    }

    private static let rootPathStorage: UnsafeMutableRawPointer = {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
        p.storeBytes(of: UInt8(ascii: "/"), as: UInt8.self)
        return p
    }()
    static var rootPath: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: rootPathStorage, count: 1) }

    /// "https://api.example.com:8443" → ("api.example.com", 8443); also
    /// accepts a bare host, "[v6]:port", and a trailing "/" or path (dropped).
    static func splitHost(_ f: UnsafeRawBufferPointer) -> (host: UnsafeRawBufferPointer, port: UInt16)? {
        var s = f
        if let schemeEnd = findSchemeEnd(s) { s = UnsafeRawBufferPointer(rebasing: s[schemeEnd...]) }
        var end = 0
        while end < s.count && s[end] != UInt8(ascii: "/") && s[end] != UInt8(ascii: "?") { end += 1 }
        s = UnsafeRawBufferPointer(rebasing: s[0..<end])
        return splitAuthority(s)
    }

    /// "https://host:port/path?q" → host, port, path (query cut).
    static func splitURL(_ f: UnsafeRawBufferPointer) -> (host: UnsafeRawBufferPointer, port: UInt16, path: UnsafeRawBufferPointer)? {
        guard let schemeEnd = findSchemeEnd(f) else { return nil }
        let rest = UnsafeRawBufferPointer(rebasing: f[schemeEnd...])
        var end = 0
        while end < rest.count && rest[end] != UInt8(ascii: "/") && rest[end] != UInt8(ascii: "?")
            && rest[end] != UInt8(ascii: "#") { end += 1 }
        guard let hp = splitAuthority(UnsafeRawBufferPointer(rebasing: rest[0..<end])) else { return nil }
        let path = cutQuery(UnsafeRawBufferPointer(rebasing: rest[end...]))
        return (hp.host, hp.port, path.first == UInt8(ascii: "/") ? path : rootPath)
    }

    /// Index just past "scheme://", or nil when there is none.
    static func findSchemeEnd(_ s: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        while i < s.count && i < 16 {
            let c = s[i]
            if c == UInt8(ascii: ":") {
                guard i > 0, i + 2 < s.count + 0, s.count >= i + 3,
                      s[i + 1] == UInt8(ascii: "/"), s[i + 2] == UInt8(ascii: "/") else { return nil }
                return i + 3
            }
            let isAlpha = (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z")
            let isOther = (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
            if !(isAlpha || (i > 0 && isOther)) { return nil }
            i += 1
        }
        return nil
    }

    /// "user@host:port" → host, port. Rejects empty hosts and bad ports.
    static func splitAuthority(_ a: UnsafeRawBufferPointer) -> (host: UnsafeRawBufferPointer, port: UInt16)? {
        var s = a
        if let at = s.lastIndex(of: UInt8(ascii: "@")) { s = UnsafeRawBufferPointer(rebasing: s[(at + 1)...]) }
        guard s.count > 0 else { return nil }
        var hostEnd = s.count
        var portStart: Int?
        if s[0] == UInt8(ascii: "[") {
            guard let close = s.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            hostEnd = close + 1
            if close + 1 < s.count {
                guard s[close + 1] == UInt8(ascii: ":") else { return nil }
                portStart = close + 2
            }
        } else if let colon = s.lastIndex(of: UInt8(ascii: ":")) {
            hostEnd = colon
            portStart = colon + 1
        }
        var port: UInt32 = 0
        if let ps = portStart {
            guard ps < s.count, s.count - ps <= 5 else { return nil }
            for b in s[ps...] {
                guard b >= 0x30 && b <= 0x39 else { return nil }
                port = port * 10 + UInt32(b - 0x30)
            }
            guard port > 0 && port <= 65535 else { return nil }
        }
        guard hostEnd > 0 else { return nil }
        for b in s[0..<hostEnd] where b <= 0x20 || b == 0x7F { return nil }
        return (UnsafeRawBufferPointer(rebasing: s[0..<hostEnd]), UInt16(port))
    }
}
