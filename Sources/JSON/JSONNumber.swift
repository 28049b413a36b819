// JSONNumber: a JSON number as its literal text, so parsing and writing
// never round a value: "12345678901234567890" and "0.10" are written back
// as they came. Readers ask for the value they need (`double`, `int64`,
// `exactInteger`) and get nil or ±infinity where it does not fit; RFC 8259
// leaves the range to the reader, and refusing there names the field.
//
// Plain value; no thread affinity.

/// A JSON number (its text follows the RFC 8259 number grammar).
public struct JSONNumber: Hashable, Sendable, CustomStringConvertible {
    /// The literal, e.g. "10", "-0.5", "1e300".
    public let text: String

    /// From a literal the parser has already checked.
    init(validatedText: String) { text = validatedText }

    public init(_ value: Int) { text = String(value) }
    public init(_ value: Int64) { text = String(value) }
    public init(_ value: UInt64) { text = String(value) }

    /// A double: integers below 10^15 without a decimal point ("2", not
    /// "2.0"), others in Swift's shortest round-trip form ("0.1", "1e+300").
    /// nil for NaN and the infinities, which JSON cannot express.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if value.rounded() == value && abs(value) < 1e15 {
            text = String(Int64(value))
        } else {
            text = value.description
        }
    }

    /// The value as a double (±infinity for out-of-range exponents).
    public var double: Double { Double(text) ?? .nan }

    /// The value when it is an integer within Int64, however written
    /// ("10", "1e1", "10.0"); nil for fractions and beyond Int64.
    public var int64: Int64? {
        if let v = Int64(text) { return v }
        let d = double
        guard d.isFinite, d.rounded() == d, abs(d) < 9.2e18 else { return nil }
        return Int64(d)
    }

    /// The value when it is an integer that a double represents exactly
    /// (|n| ≤ 2^53): "10", "1e1" and "10.0" all give 10; "10.5" and
    /// "9007199254740993" give nil.
    public var exactInteger: Int64? {
        if let v = Int64(text) { return v.magnitude <= 1 << 53 ? v : nil }
        let d = double
        guard d.isFinite, d == d.rounded(.towardZero), abs(d) < 9.007199254740992e15 else { return nil }
        return Int64(d)
    }

    public var description: String { text }
}
