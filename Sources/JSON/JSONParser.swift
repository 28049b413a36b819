// JSONParser: strict RFC 8259 parsing of untrusted bytes.
//
// Anything that is not JSON is an error naming the byte offset, line and
// column: trailing commas, comments, single quotes, leading zeros, NaN, raw
// control characters in strings, invalid UTF-8 (overlong forms, encoded
// surrogates, beyond U+10FFFF), lone surrogate escapes, a byte-order mark,
// data after the value — and a key given twice in one object, named in the
// error, since readers that disagree on which one counts (first, last, both)
// read two different documents. Bounded by `JSONLimits` (input size,
// nesting depth), so a hostile document costs at most its own size in
// memory and recursion is capped.
//
// Plain values; the parser is a local of one `parse` call.

/// Bounds on a document. Value type.
public struct JSONLimits: Equatable, Sendable {
    /// Largest accepted input, in bytes.
    public var maxBytes: Int
    /// Deepest nesting of arrays and objects.
    public var maxDepth: Int

    public init(maxBytes: Int = 1 << 20, maxDepth: Int = 64) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
    }

    public static let `default` = JSONLimits()
}

/// Why a document was refused, and where.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Byte offset of the problem (0-based).
    public let offset: Int
    /// 1-based line and column (column counts bytes).
    public let line: Int
    public let column: Int
    public let message: String

    public init(offset: Int, line: Int, column: Int, message: String) {
        self.offset = offset
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "invalid JSON at line \(line), column \(column): \(message)" }
}

extension JSON {
    /// Parses one JSON document from `bytes`.
    public static func parse(_ bytes: [UInt8], limits: JSONLimits = .default) throws(JSONError) -> JSON {
        try bytes.withUnsafeBufferPointer { (buf) throws(JSONError) -> JSON in
            var p = JSONParser(buf, limits: limits)
            return try p.document()
        }
    }

    public static func parse(_ text: String, limits: JSONLimits = .default) throws(JSONError) -> JSON {
        try parse(Array(text.utf8), limits: limits)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits = .default) throws(JSONError) -> JSON {
        var p = JSONParser(bytes.bindMemory(to: UInt8.self), limits: limits)
        return try p.document()
    }
}

/// The recursive-descent parser over borrowed bytes; one per document.
struct JSONParser {
    private let b: UnsafeBufferPointer<UInt8>
    private let limits: JSONLimits
    private var i = 0
    private var depth = 0
    /// Scratch for string bytes, reused across strings.
    private var scratch: [UInt8] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>, limits: JSONLimits) {
        b = bytes
        self.limits = limits
    }

    mutating func document() throws(JSONError) -> JSON {
        guard b.count <= limits.maxBytes else {
            throw error(at: 0, "document is \(b.count) bytes; the limit is \(limits.maxBytes)")
        }
        skipSpace()
        let v = try value()
        skipSpace()
        guard i == b.count else { throw error(at: i, "unexpected data after the JSON value") }
        return v
    }

    // MARK: values

    private mutating func value() throws(JSONError) -> JSON {
        guard i < b.count else { throw error(at: i, "unexpected end of input, expected a value") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error(at: i, "unexpected \(describe(b[i])), expected a value")
        }
    }

    private mutating func object() throws(JSONError) -> JSON {
        try enter()
        i += 1  // {
        var obj = JSONObject()
        /// Keys seen, once the object outgrows a linear scan.
        var seen: Set<String>? = nil
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; depth -= 1; return .object(obj) }
        while true {
            skipSpace()
            guard i < b.count else { throw error(at: i, "unexpected end of input, expected an object key") }
            guard b[i] == UInt8(ascii: "\"") else { throw error(at: i, "unexpected \(describe(b[i])), expected an object key in double quotes") }
            let keyAt = i
            let key = try string()
            let repeated: Bool
            if obj.count < JSONObject.linearLimit {
                repeated = obj.contains(key: key)
            } else {
                if seen == nil { seen = Set(obj.keys) }
                repeated = !seen!.insert(key).inserted
            }
            if repeated { throw error(at: keyAt, "duplicate key \(JSON.quoted(key))") }
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw error(at: i, "expected ':' after an object key") }
            i += 1
            skipSpace()
            obj.appendUnchecked(key, try value())
            skipSpace()
            guard i < b.count else { throw error(at: i, "unexpected end of input, expected ',' or '}'") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; break }
            throw error(at: i, "unexpected \(describe(b[i])), expected ',' or '}'")
        }
        depth -= 1
        return .object(obj)
    }

    private mutating func array() throws(JSONError) -> JSON {
        try enter()
        i += 1  // [
        var out: [JSON] = []
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; depth -= 1; return .array(out) }
        while true {
            skipSpace()
            out.append(try value())
            skipSpace()
            guard i < b.count else { throw error(at: i, "unexpected end of input, expected ',' or ']'") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; break }
            throw error(at: i, "unexpected \(describe(b[i])), expected ',' or ']'")
        }
        depth -= 1
        return .array(out)
    }

    private mutating func enter() throws(JSONError) {
        depth += 1
        guard depth <= limits.maxDepth else { throw error(at: i, "nesting deeper than \(limits.maxDepth)") }
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        guard b.count - i >= n, (0..<n).allSatisfy({ b[i + $0] == w[$0] }) else {
            throw error(at: i, "invalid literal, expected \(word)")
        }
        i += n
    }

    // MARK: numbers

    /// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    private mutating func number() throws(JSONError) -> JSONNumber {
        let start = i
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, isDigit(b[i]) else { throw error(at: i, "expected a digit") }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if i < b.count && isDigit(b[i]) { throw error(at: start, "numbers must not have leading zeros") }
        } else {
            while i < b.count && isDigit(b[i]) { i += 1 }
        }
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, isDigit(b[i]) else { throw error(at: i, "expected a digit after the decimal point") }
            while i < b.count && isDigit(b[i]) { i += 1 }
        }
        if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            i += 1
            if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw error(at: i, "expected a digit in the exponent") }
            while i < b.count && isDigit(b[i]) { i += 1 }
        }
        return JSONNumber(validatedText: String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
    }

    @inline(__always) private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    // MARK: strings

    private mutating func string() throws(JSONError) -> String {
        let start = i
        i += 1  // opening quote
        scratch.removeAll(keepingCapacity: true)
        while true {
            // The common run: printable ASCII that needs no escape.
            let run = i
            while i < b.count, b[i] >= 0x20, b[i] < 0x80, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") { i += 1 }
            if i > run { scratch.append(contentsOf: UnsafeBufferPointer(rebasing: b[run..<i])) }
            guard i < b.count else { throw error(at: start, "unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw error(at: i, "control character \(describe(c)) in a string must be escaped") }
            if c >= 0x80 {
                let n = try utf8Sequence(at: i)
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: b[i..<i + n]))
                i += n
                continue
            }
            i += 1  // backslash
            guard i < b.count else { throw error(at: start, "unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): scratch.append(0x22)
            case UInt8(ascii: "\\"): scratch.append(0x5C)
            case UInt8(ascii: "/"): scratch.append(0x2F)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"): try unicodeEscape()
            default:
                let shown = e >= 0x21 && e < 0x7F ? String(Unicode.Scalar(e)) : describe(e)
                throw error(at: i - 2, "invalid escape \\\(shown)")
            }
        }
        // Every byte was checked above: scratch is valid UTF-8.
        return String(decoding: scratch, as: UTF8.self)
    }

    /// The length of the valid UTF-8 sequence at `at` (lead byte ≥ 0x80):
    /// no overlong forms, no encoded surrogates, nothing above U+10FFFF.
    private func utf8Sequence(at: Int) throws(JSONError) -> Int {
        let b0 = b[at]
        let n: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF   // the second byte's range (RFC 3629 table)
        switch b0 {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; hi = 0x9F
        case 0xF0: n = 4; lo = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; hi = 0x8F
        default: throw error(at: at, "string is not valid UTF-8")
        }
        guard b.count - at >= n, b[at + 1] >= lo, b[at + 1] <= hi else { throw error(at: at, "string is not valid UTF-8") }
        for k in 2..<n where b[at + k] & 0xC0 != 0x80 {
            throw error(at: at, "string is not valid UTF-8")
        }
        return n
    }

    /// After "\u": four hex digits, and for a high surrogate a second
    /// "\uDC00"-"\uDFFF" escape; appends the scalar's UTF-8.
    private mutating func unicodeEscape() throws(JSONError) {
        let at = i - 2
        var v = try hex4()
        if v >= 0xD800 && v <= 0xDBFF {
            guard b.count - i >= 2, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                throw error(at: at, "lone surrogate \\u escape")
            }
            i += 2
            let low = try hex4()
            guard low >= 0xDC00 && low <= 0xDFFF else { throw error(at: at, "lone surrogate \\u escape") }
            v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
        } else if v >= 0xDC00 && v <= 0xDFFF {
            throw error(at: at, "lone surrogate \\u escape")
        }
        let scalar = Unicode.Scalar(v)!
        scratch.append(contentsOf: UTF8.encode(scalar)!)
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard b.count - i >= 4 else { throw error(at: i, "expected four hex digits after \\u") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error(at: i, "expected four hex digits after \\u")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    // MARK: helpers

    /// RFC 8259 whitespace: space, tab, line feed, carriage return; nothing else.
    private mutating func skipSpace() {
        while i < b.count {
            switch b[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private func describe(_ c: UInt8) -> String {
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        let hex = String(c, radix: 16, uppercase: true)
        return "byte 0x\(hex.count == 1 ? "0" + hex : hex)"
    }

    private func error(at offset: Int, _ message: String) -> JSONError {
        var line = 1
        var lineStart = 0
        let end = min(offset, b.count)
        for k in 0..<end where b[k] == 0x0A {
            line += 1
            lineStart = k + 1
        }
        return JSONError(offset: offset, line: line, column: offset - lineStart + 1, message: message)
    }
}
