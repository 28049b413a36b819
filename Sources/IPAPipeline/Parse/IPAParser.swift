// IPAParser: what in-process instrumentation sends over UDP, one line per
// outgoing API call, parsed in place in the datagram's bytes into
// IPARecord views.
//
//   version 0:  0 <sep> METHOD <sep> HOST <sep> PATH <sep> DURATION_MS
//   version 1:  1 <sep> METHOD <sep> URL <sep> DURATION_MS
//   version 2:  2 <sep> TIMESTAMP_MS <sep> METHOD <sep> URL <sep> STATUS
//               <sep> DURATION_MS [<sep> ERROR_CLASS]
//
// Version 2 adds when the call started (integer ms since the Unix epoch,
// the emitter's clock), its HTTP status (0: no response, a transport error;
// otherwise 200...599) and an optional error class (a short token such as
// `timeout` or `connection_refused`). docs/IPA.md is the emitter's guide.
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
    /// Largest accepted timestamp: the last millisecond of year 9999.
    public static let maxTimestampMs: Int64 = 253_402_300_799_999
    /// Longest accepted error class; longer ones drop the line as `.errorClass`.
    public static let maxErrorClassBytes = 64
    /// Most fields a line may have (version 2 with its error class).
    static let maxFields = 7

    /// Parses every line of `datagram`, calling `record` for each valid one
    /// and counting each invalid one in `drops`. Never traps on any input.
    public static func parse(_ datagram: UnsafeRawBufferPointer, drops: inout IPADropCounters,
                             _ record: (inout IPARecord) -> Void) {
        DatagramLines.forEach(in: datagram, maxLineBytes: maxLineBytes, oversize: { drops.count(.oversize) }) { line in
            switch parseLine(line) {
            case .success(var r): record(&r)
            case .failure(let cause): drops.count(cause)
            }
        }
    }

    enum LineResult {
        case success(IPARecord)
        case failure(IPADropCause)
    }

    /// A line's fields, views into it; at most `maxFields`. A tuple, not
    /// an array: the per-record path allocates nothing.
    struct Fields {
        var f0, f1, f2, f3, f4, f5, f6: UnsafeRawBufferPointer
        init(_ empty: UnsafeRawBufferPointer) { (f0, f1, f2, f3, f4, f5, f6) = (empty, empty, empty, empty, empty, empty, empty) }
        subscript(_ i: Int) -> UnsafeRawBufferPointer {
            get {
                switch i { case 0: return f0; case 1: return f1; case 2: return f2; case 3: return f3
                           case 4: return f4; case 5: return f5; default: return f6 }
            }
            set {
                switch i { case 0: f0 = newValue; case 1: f1 = newValue; case 2: f2 = newValue; case 3: f3 = newValue
                           case 4: f4 = newValue; case 5: f5 = newValue; default: f6 = newValue }
            }
        }
    }

    /// Parses one line (no newline). Fields: up to `maxFields` split by
    /// TAB, or by runs of spaces when the line has no TAB.
    static func parseLine(_ line: UnsafeRawBufferPointer) -> LineResult {
        var fields = Fields(UnsafeRawBufferPointer(start: line.baseAddress, count: 0))
        var count = 0
        let hasTab = line.contains(0x09)
        let sep: UInt8 = hasTab ? 0x09 : 0x20
        var i = 0
        let n = line.count
        while i < n {
            if !hasTab { while i < n && line[i] == 0x20 { i += 1 }; if i == n { break } }
            var j = i
            while j < n && line[j] != sep { j += 1 }
            if count == maxFields { return .failure(.fieldCount) }
            fields[count] = UnsafeRawBufferPointer(rebasing: line[i..<j])
            count += 1
            i = j + 1
            if hasTab && j == n - 1 { // trailing TAB: an empty last field
                if count == maxFields { return .failure(.fieldCount) }
                count += 1
            }
        }
        guard count >= 1 else { return .failure(.fieldCount) }
        let v = fields[0]
        guard v.count == 1, v[0] >= UInt8(ascii: "0") && v[0] <= UInt8(ascii: "2") else {
            return .failure(.badVersion)
        }
        switch v[0] {
        case UInt8(ascii: "0"):
            guard count == 5, fields[1].count > 0, fields[2].count > 0 else { return .failure(.fieldCount) }
            guard let d = parseDuration(fields[4]) else { return .failure(.duration) }
            guard let hp = splitHost(fields[2]) else { return .failure(.badURL) }
            return .success(IPARecord(method: fields[1], host: hp.host, port: hp.port,
                                      path: cutQuery(fields[3]), durationMs: d))
        case UInt8(ascii: "1"):
            guard count == 4, fields[1].count > 0, fields[2].count > 0 else { return .failure(.fieldCount) }
            guard let d = parseDuration(fields[3]) else { return .failure(.duration) }
            guard let u = splitURL(fields[2]) else { return .failure(.badURL) }
            return .success(IPARecord(method: fields[1], host: u.host, port: u.port, path: u.path, durationMs: d))
        default:
            // 2 TIMESTAMP METHOD URL STATUS DURATION [ERROR_CLASS]
            guard count == 6 || count == 7, fields[2].count > 0, fields[3].count > 0 else { return .failure(.fieldCount) }
            guard let ts = parseTimestamp(fields[1]) else { return .failure(.timestamp) }
            guard let status = parseStatus(fields[4]) else { return .failure(.status) }
            guard let d = parseDuration(fields[5]) else { return .failure(.duration) }
            var errorClass = UnsafeRawBufferPointer(start: line.baseAddress, count: 0)
            if count == 7 {
                guard isErrorClass(fields[6]) else { return .failure(.errorClass) }
                errorClass = fields[6]
            }
            guard let u = splitURL(fields[3]) else { return .failure(.badURL) }
            return .success(IPARecord(method: fields[2], host: u.host, port: u.port, path: u.path, durationMs: d,
                                      timestampMs: ts, status: status, errorClass: errorClass))
        }
    }

    /// Integer milliseconds since the epoch, 1...maxTimestampMs; digits only.
    static func parseTimestamp(_ f: UnsafeRawBufferPointer) -> Int64? {
        guard f.count > 0, f.count <= 15 else { return nil }
        var v: Int64 = 0
        for b in f {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            v = v * 10 + Int64(b - 0x30)
        }
        return v > 0 && v <= maxTimestampMs ? v : nil
    }

    /// 0 (no response: a transport error) or a final HTTP status 200...599;
    /// digits only. 1xx is not the final status of a call.
    static func parseStatus(_ f: UnsafeRawBufferPointer) -> Int32? {
        guard f.count > 0, f.count <= 3 else { return nil }
        var v: Int32 = 0
        for b in f {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            v = v * 10 + Int32(b - 0x30)
        }
        return v == 0 || (200...599).contains(v) ? v : nil
    }

    /// 1...maxErrorClassBytes of A-Z a-z 0-9 `_` `-` `.` `:`.
    static func isErrorClass(_ f: UnsafeRawBufferPointer) -> Bool {
        guard f.count > 0, f.count <= maxErrorClassBytes else { return false }
        for b in f {
            let alpha = (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z")
            let other = (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
                || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
            if !(alpha || other) { return false }
        }
        return true
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
