// StatsDParser: StatsD and DogStatsD lines, parsed in place in the
// datagram's bytes into StatsDLine views (docs/STATSD.md is the grammar).
//
//   <name>:<value>[:<value>…]|<type>[|@<rate>][|#<tag>[,<tag>…]][|c:<container>][|T<unix seconds>]
//   _e{<title length>,<text length>}:<title>|<text>[|…]      an event
//   _sc|<name>|<status>[|…]                                 a service check
//
// Types: c (counter), g (gauge; a leading + or - makes the value relative),
// ms (timer), h (histogram), d (distribution), s (set; the value is any
// member string). Several values per line (DogStatsD 1.1) and several lines
// per datagram (LF or CRLF; the last may lack its newline). Events and
// service checks are checked and counted, not turned into measurements.
// Every other line is one StatsDLine or one counted drop; the parser never
// traps on any input (fuzz-statsd checks it) and allocates nothing.
//
// Thread: any; pure functions over the bytes given.
import IPAPipeline

/// A StatsD metric type.
public enum StatsDType: UInt8, CaseIterable, Sendable {
    case counter, gauge, timer, histogram, distribution, set

    /// The word used as the measurement's check.
    public var name: String {
        switch self {
        case .counter: return "counter"
        case .gauge: return "gauge"
        case .timer: return "timer"
        case .histogram: return "histogram"
        case .distribution: return "distribution"
        case .set: return "set"
        }
    }
}

/// One parsed metric line, pointing into the datagram it came from.
public struct StatsDLine {
    public var name: UnsafeRawBufferPointer
    public var type: StatsDType
    /// The value section: one or more values separated by `:`, each already
    /// checked (iterate with `StatsDParser.forEachNumber`, or split on `:`
    /// for a set's members).
    public var values: UnsafeRawBufferPointer
    /// 1 when the line has no `@rate`.
    public var sampleRate: Double
    /// The tags after `#`, as sent (comma-separated); empty when none.
    public var tags: UnsafeRawBufferPointer

    public var nameString: String { String(decoding: name, as: UTF8.self) }
    public var tagsString: String { String(decoding: tags, as: UTF8.self) }
}

public enum StatsDParser {
    /// Longest accepted line; longer lines are dropped as `.oversize`.
    public static let maxLineBytes = 8192
    /// Longest metric name (it becomes the measurement's monitor).
    public static let maxNameBytes = 200
    /// Longest tag section (folded into the measurement's check).
    public static let maxTagBytes = 300
    /// Longest single value (a number, or a set member).
    public static let maxValueBytes = 128

    /// What the parser saw besides metric lines.
    public struct Extras: Equatable, Sendable {
        public var events: UInt64 = 0
        public var serviceChecks: UInt64 = 0
        public var containerFields: UInt64 = 0
        public var timestamps: UInt64 = 0
        public init() {}
    }

    enum LineResult {
        case metric(StatsDLine)
        case event, serviceCheck
        case failure(StatsDDropCause)
    }

    /// Parses every line of `datagram`, calling `metric` for each valid
    /// metric line and counting everything else. Never traps on any input.
    public static func parse(_ datagram: UnsafeRawBufferPointer, drops: inout StatsDDropCounters,
                             extras: inout Extras, _ metric: (inout StatsDLine) -> Void) {
        DatagramLines.forEach(in: datagram, maxLineBytes: maxLineBytes, oversize: { drops.count(.oversize) }) { line in
            switch parseLine(line, extras: &extras) {
            case .metric(var m): metric(&m)
            case .event: extras.events &+= 1
            case .serviceCheck: extras.serviceChecks &+= 1
            case .failure(let cause): drops.count(cause)
            }
        }
    }

    static let colon = UInt8(ascii: ":"), bar = UInt8(ascii: "|")

    @inline(__always)
    static func index(of b: UInt8, in s: UnsafeRawBufferPointer, from: Int = 0) -> Int? {
        var i = from
        while i < s.count {
            if s[i] == b { return i }
            i += 1
        }
        return nil
    }

    @inline(__always)
    static func slice(_ s: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: s[from..<to])
    }

    static func parseLine(_ line: UnsafeRawBufferPointer, extras: inout Extras) -> LineResult {
        if line.count >= 3 && line[0] == UInt8(ascii: "_") {
            if line[1] == UInt8(ascii: "e") && line[2] == UInt8(ascii: "{") {
                return isEvent(line) ? .event : .failure(.event)
            }
            if line.count >= 4 && line[1] == UInt8(ascii: "s") && line[2] == UInt8(ascii: "c") && line[3] == bar {
                return isServiceCheck(line) ? .serviceCheck : .failure(.serviceCheck)
            }
        }
        guard let nameEnd = index(of: colon, in: line) else {
            if let b = index(of: bar, in: line), b > 0 { return .failure(.value) }
            return nameOK(line) ? .failure(.value) : .failure(.name)
        }
        let name = slice(line, 0, nameEnd)
        guard nameOK(name) else { return .failure(.name) }
        guard let valuesEnd = index(of: bar, in: line, from: nameEnd + 1) else { return .failure(.type) }
        let values = slice(line, nameEnd + 1, valuesEnd)
        let typeEnd = index(of: bar, in: line, from: valuesEnd + 1) ?? line.count
        guard let type = parseType(slice(line, valuesEnd + 1, typeEnd)) else { return .failure(.type) }
        if let cause = checkValues(values, type: type) { return .failure(cause) }

        var m = StatsDLine(name: name, type: type, values: values, sampleRate: 1,
                           tags: UnsafeRawBufferPointer(start: nil, count: 0))
        var container = false, timestamp = false
        var i = typeEnd
        while i < line.count {
            let fieldStart = i + 1
            let fieldEnd = index(of: bar, in: line, from: fieldStart) ?? line.count
            let f = slice(line, fieldStart, fieldEnd)
            i = fieldEnd
            guard f.count > 0 else { return .failure(.field) }
            switch f[0] {
            case UInt8(ascii: "@"):
                guard let r = parseNumber(slice(f, 1, f.count)), r > 0, r <= 1 else { return .failure(.sampleRate) }
                m.sampleRate = r
            case UInt8(ascii: "#"):
                let t = slice(f, 1, f.count)
                guard t.count <= maxTagBytes, !t.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return .failure(.tags) }
                m.tags = t
            case UInt8(ascii: "c") where f.count >= 2 && f[1] == colon:
                container = true
            case UInt8(ascii: "T"):
                guard f.count >= 2, f.count <= 12, f.dropFirst().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return .failure(.timestamp)
                }
                timestamp = true
            default:
                return .failure(.field)
            }
        }
        if container { extras.containerFields &+= 1 }
        if timestamp { extras.timestamps &+= 1 }
        return .metric(m)
    }

    static func nameOK(_ name: UnsafeRawBufferPointer) -> Bool {
        guard name.count > 0, name.count <= maxNameBytes else { return false }
        for b in name where b < 0x20 || b == 0x7F { return false }
        return true
    }

    static func parseType(_ t: UnsafeRawBufferPointer) -> StatsDType? {
        if t.count == 1 {
            switch t[0] {
            case UInt8(ascii: "c"): return .counter
            case UInt8(ascii: "g"): return .gauge
            case UInt8(ascii: "h"): return .histogram
            case UInt8(ascii: "d"): return .distribution
            case UInt8(ascii: "s"): return .set
            default: return nil
            }
        }
        if t.count == 2 && t[0] == UInt8(ascii: "m") && t[1] == UInt8(ascii: "s") { return .timer }
        return nil
    }

    /// Checks every `:`-separated value of the section for `type`.
    static func checkValues(_ values: UnsafeRawBufferPointer, type: StatsDType) -> StatsDDropCause? {
        var start = 0
        while true {
            let end = index(of: colon, in: values, from: start) ?? values.count
            let v = slice(values, start, end)
            guard v.count > 0, v.count <= maxValueBytes else { return .value }
            if type == .set {
                if v.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return .value }
            } else {
                guard let x = parseNumber(v) else { return .value }
                if x < 0 && (type == .timer || type == .histogram || type == .distribution) { return .negative }
            }
            if end == values.count { return nil }
            start = end + 1
        }
    }

    /// Calls `body` with each number of a checked value section, and
    /// whether it was written with a sign (a relative gauge change).
    @inline(__always)
    public static func forEachNumber(_ values: UnsafeRawBufferPointer, _ body: (Double, _ signed: Bool) -> Void) {
        var start = 0
        while start <= values.count {
            let end = index(of: colon, in: values, from: start) ?? values.count
            let v = slice(values, start, end)
            if let x = parseNumber(v) {
                body(x, v[0] == UInt8(ascii: "+") || v[0] == UInt8(ascii: "-"))
            }
            start = end + 1
        }
    }

    /// Calls `body` with each member of a set's value section.
    @inline(__always)
    public static func forEachMember(_ values: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= values.count {
            let end = index(of: colon, in: values, from: start) ?? values.count
            if end > start { body(slice(values, start, end)) }
            start = end + 1
        }
    }

    /// A finite decimal number: optional sign, digits with an optional
    /// fraction (at least one digit in all), an optional exponent
    /// (`1.5e-05`, as Python formats small floats). No nan, no inf, no hex.
    public static func parseNumber(_ f: UnsafeRawBufferPointer) -> Double? {
        guard f.count > 0, f.count <= maxValueBytes else { return nil }
        var i = 0
        var negative = false
        if f[0] == UInt8(ascii: "+") || f[0] == UInt8(ascii: "-") {
            negative = f[0] == UInt8(ascii: "-")
            i = 1
        }
        var mantissa: Double = 0
        var scale = 0
        var digits = 0
        var seenDot = false
        while i < f.count {
            let b = f[i]
            if b == UInt8(ascii: ".") {
                if seenDot { return nil }
                seenDot = true
            } else if b >= 0x30 && b <= 0x39 {
                digits += 1
                // Beyond 17 significant digits a double holds no more.
                if mantissa < 1e17 {
                    mantissa = mantissa * 10 + Double(b - 0x30)
                    if seenDot { scale -= 1 }
                } else if !seenDot {
                    scale += 1
                }
            } else {
                break
            }
            i += 1
        }
        guard digits > 0 else { return nil }
        if i < f.count {
            guard f[i] == UInt8(ascii: "e") || f[i] == UInt8(ascii: "E") else { return nil }
            i += 1
            var expNegative = false
            if i < f.count && (f[i] == UInt8(ascii: "+") || f[i] == UInt8(ascii: "-")) {
                expNegative = f[i] == UInt8(ascii: "-")
                i += 1
            }
            var exp = 0, expDigits = 0
            while i < f.count {
                let b = f[i]
                guard b >= 0x30 && b <= 0x39 else { return nil }
                if exp < 10_000 { exp = exp * 10 + Int(b - 0x30) }
                expDigits += 1
                i += 1
            }
            guard expDigits > 0 else { return nil }
            scale += expNegative ? -exp : exp
        }
        var x = mantissa
        if scale != 0 && x != 0 {
            if scale > 400 { return nil }
            if scale < -400 { x = 0 } else { x *= pow10(scale) }
        }
        guard x.isFinite else { return nil }
        return negative ? -x : x
    }

    /// 10^e for |e| ≤ 400, by squaring (no Foundation).
    static func pow10(_ e: Int) -> Double {
        var result = 1.0, base = 10.0, n = e < 0 ? -e : e
        while n > 0 {
            if n & 1 == 1 { result *= base }
            base *= base
            n >>= 1
        }
        return e < 0 ? 1 / result : result
    }

    /// `_e{T,X}:title|text[|…]`: T and X are the byte lengths of a non-empty
    /// title and of the text that follow.
    static func isEvent(_ line: UnsafeRawBufferPointer) -> Bool {
        var i = 3
        func number() -> Int? {
            var v = 0, digits = 0
            while i < line.count, line[i] >= 0x30 && line[i] <= 0x39, digits < 6 {
                v = v * 10 + Int(line[i] - 0x30)
                digits += 1
                i += 1
            }
            return digits > 0 ? v : nil
        }
        guard let titleLength = number(), i < line.count, line[i] == UInt8(ascii: ","), titleLength > 0 else { return false }
        i += 1
        guard let textLength = number(), i + 1 < line.count, line[i] == UInt8(ascii: "}"), line[i + 1] == colon else { return false }
        i += 2
        let titleEnd = i + titleLength
        guard titleEnd < line.count, line[titleEnd] == bar else { return false }
        let textEnd = titleEnd + 1 + textLength
        return textEnd == line.count || (textEnd < line.count && line[textEnd] == bar)
    }

    /// `_sc|name|status[|…]` with a non-empty name and status 0, 1, 2 or 3.
    static func isServiceCheck(_ line: UnsafeRawBufferPointer) -> Bool {
        guard let nameEnd = index(of: bar, in: line, from: 4), nameEnd > 4 else { return false }
        let statusEnd = index(of: bar, in: line, from: nameEnd + 1) ?? line.count
        guard statusEnd == nameEnd + 2 else { return false }
        let s = line[nameEnd + 1]
        return s >= UInt8(ascii: "0") && s <= UInt8(ascii: "3")
    }
}
