// ConfigText: the small text routines the parser and the value types share
// (no Foundation, so trimming, number and address syntax live here).
#if canImport(Glibc)
import Glibc
#endif

enum ConfigText {
    static func isSpace(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\r\n" }

    static func trimmed(_ s: Substring) -> String {
        var t = s
        while let c = t.first, isSpace(c) { t = t.dropFirst() }
        while let c = t.last, isSpace(c) { t = t.dropLast() }
        return String(t)
    }

    /// A decimal integer with an optional sign; nil on anything else or overflow.
    static func integer(_ text: String) -> Int? {
        var digits = Substring(text)
        var negative = false
        if let c = digits.first, c == "+" || c == "-" { negative = c == "-"; digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        guard let magnitude = Int(digits) else { return nil }     // overflow
        return negative ? -magnitude : magnitude
    }

    /// A non-negative integer followed by an optional unit from `units`
    /// (case-insensitive, optional space between); nil on overflow.
    static func scaled(_ text: String, units: [(String, Int)]) -> Int? {
        let digitEnd = text.firstIndex(where: { !($0 >= "0" && $0 <= "9") }) ?? text.endIndex
        guard digitEnd != text.startIndex, let n = Int(text[..<digitEnd]) else { return nil }
        let unit = trimmed(text[digitEnd...]).lowercased()
        if unit.isEmpty { return n }
        guard let factor = units.first(where: { $0.0 == unit })?.1 else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow ? nil : v
    }

    static func unbracketed(_ s: String) -> String {
        if s.hasPrefix("[") && s.hasSuffix("]") && s.count >= 2 { return String(s.dropFirst().dropLast()) }
        return s
    }

    static func isIPLiteral(_ s: String) -> Bool {
        var a4 = in_addr()
        if inet_pton(AF_INET, s, &a4) == 1 { return true }
        var a6 = in6_addr()
        return inet_pton(AF_INET6, s, &a6) == 1
    }

    static func isIPv6Literal(_ s: String) -> Bool {
        var a6 = in6_addr()
        return inet_pton(AF_INET6, s, &a6) == 1
    }

    /// RFC 1123 host name: labels of letters, digits and inner hyphens,
    /// at most 63 bytes each and 253 in all.
    static func isHostName(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        for label in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63,
                  label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { return false }
            for b in label {
                let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
                if !ok { return false }
            }
        }
        // All-numeric dotted names ("1.2.3.999") are mistyped IPv4, not names.
        return !bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }
    }

    /// "host:port", "[v6]:port", or (with a default port) "host", "[v6]", "v6".
    static func hostPort(_ text: String, defaultPort: UInt16?) -> (String, UInt16)? {
        func validHost(_ h: String) -> Bool { isIPLiteral(h) || isHostName(h) }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            guard isIPv6Literal(host) else { return nil }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return defaultPort.map { (host, $0) } }
            guard rest.first == ":", let p = port(rest.dropFirst()) else { return nil }
            return (host, p)
        }
        let colons = text.reduce(0) { $0 + ($1 == ":" ? 1 : 0) }
        if colons == 0 {
            guard let p = defaultPort, validHost(text) else { return nil }
            return (text, p)
        }
        if colons == 1, let i = text.firstIndex(of: ":") {
            let host = String(text[..<i])
            guard validHost(host), let p = port(text[text.index(after: i)...]) else { return nil }
            return (host, p)
        }
        // Several colons without brackets: only a bare IPv6 literal, default port.
        guard let p = defaultPort, isIPv6Literal(text) else { return nil }
        return (text, p)
    }

    private static func port(_ s: Substring) -> UInt16? {
        guard !s.isEmpty, s.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return UInt16(s)
    }

    /// `s` as a double-quoted literal for a message: controls escaped,
    /// at most 80 characters.
    static func quoted(_ s: String) -> String {
        var out = "\""
        var n = 0
        for u in s.unicodeScalars {
            if n == 80 { out += "…"; break }
            n += 1
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += "\\x" + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// Levenshtein distance, for "did you mean".
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.utf8), y = Array(b.utf8)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[y.count]
    }
}
