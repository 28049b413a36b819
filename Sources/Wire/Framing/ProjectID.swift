// ProjectID: the project names that appear in preambles and access keys.

/// Validation of project ids: 1…64 bytes of `[A-Za-z0-9._-]`. Pure functions.
public enum ProjectID {
    public static let maxLength = 64

    @inline(__always)
    static func isAllowed(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        guard bytes.count >= 1 && bytes.count <= maxLength else { return false }
        return bytes.allSatisfy(isAllowed)
    }

    public static func isValid(_ id: String) -> Bool { isValid(id.utf8) }
}
