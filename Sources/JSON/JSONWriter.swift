// JSONWriter: writes a JSON value as compact UTF-8 on one line, and the one
// string escaper every Vigil program uses (the API's answers, monitor
// definitions, the exec monitor protocol, and Log's JSON lines).
//
// Compact output never contains a raw newline — strings escape every
// control character — which the exec monitor protocol and Log rely on to
// keep one value per line. The escaper writes `"` `\` and the controls
// (\b \f \n \r \t short, the rest and DEL as \u00xx); everything else,
// non-ASCII included, is copied as UTF-8. Numbers are their literal text,
// object members come out in order.
//
// Plain functions over a caller's buffer; no thread affinity.

extension JSON {
    /// The value as compact JSON text.
    public var serialized: String { String(decoding: serializedBytes, as: UTF8.self) }

    /// The value as compact JSON, UTF-8.
    public var serializedBytes: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    /// Appends the value as compact JSON to `out`.
    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: JSON.append("null", to: &out)
        case .bool(let b): JSON.append(b ? "true" : "false", to: &out)
        case .number(let n): JSON.append(n.text, to: &out)
        case .string(let s): JSON.writeString(s, into: &out)
        case .raw(let text): JSON.append(text, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (k, v) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (k, m) in o.members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                m.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// `s` as a JSON string literal, quotes included.
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        writeString(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `s` as a JSON string literal, quotes included.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { escape($0, into: &out) }
        out.append(UInt8(ascii: "\""))
    }

    private static func escape(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        var run = 0
        for k in 0..<bytes.count {
            let c = bytes[k]
            guard c < 0x20 || c == 0x22 || c == 0x5C || c == 0x7F else { continue }
            if run < k { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<k])) }
            run = k + 1
            out.append(UInt8(ascii: "\\"))
            switch c {
            case 0x22: out.append(UInt8(ascii: "\""))
            case 0x5C: out.append(UInt8(ascii: "\\"))
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            default:
                out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hexDigits[Int(c >> 4)], hexDigits[Int(c & 0xF)]])
            }
        }
        if run < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...])) }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func append(_ text: String, to out: inout [UInt8]) {
        out.append(contentsOf: text.utf8)
    }
}
