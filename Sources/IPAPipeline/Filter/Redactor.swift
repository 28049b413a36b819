// Redactor: makes a path safe to forward as a raw event. Path segments
// that look like identifiers — all digits, a UUID, or a long hex string —
// become ":id", so user, order or session ids never leave the host.
// (The query string is already gone: the parser cuts it first.)
//
// Thread: any (pure functions).

public enum Redactor {
    /// Hex runs at least this long (with a digit in them) count as ids.
    public static let minHexLength = 16

    public static func redactPath(_ path: UnsafeRawBufferPointer) -> String {
        var out = [UInt8]()
        out.reserveCapacity(path.count)
        var i = 0
        while i < path.count {
            if path[i] == UInt8(ascii: "/") { out.append(path[i]); i += 1; continue }
            var j = i
            while j < path.count && path[j] != UInt8(ascii: "/") { j += 1 }
            let seg = UnsafeRawBufferPointer(rebasing: path[i..<j])
            if looksLikeIdentifier(seg) { out.append(contentsOf: Array(":id".utf8)) } else { out.append(contentsOf: seg) }
            i = j
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func redactPath(_ path: String) -> String {
        var p = path
        return p.withUTF8 { redactPath(UnsafeRawBufferPointer($0)) }
    }

    static func looksLikeIdentifier(_ s: UnsafeRawBufferPointer) -> Bool {
        guard !s.isEmpty else { return false }
        if s.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return true }
        if isUUID(s) { return true }
        var digits = 0
        for b in s {
            let isDigit = b >= 0x30 && b <= 0x39
            let lower = b | 0x20
            guard isDigit || (lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "f")) else { return false }
            if isDigit { digits += 1 }
        }
        return s.count >= minHexLength && digits > 0
    }

    static func isUUID(_ s: UnsafeRawBufferPointer) -> Bool {
        guard s.count == 36 else { return false }
        for (i, b) in s.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if b != UInt8(ascii: "-") { return false }
            } else {
                let lower = b | 0x20
                let hex = (b >= 0x30 && b <= 0x39) || (lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "f"))
                if !hex { return false }
            }
        }
        return true
    }
}
