// JSONValue: a JSON document as a value, without Foundation.
//
// Objects keep their members in document order (a serializer round trip is
// byte-exact, and error messages can point at "the third key"); keys are
// unique, which the parser enforces. Numbers keep their literal text, so an
// integer beyond 2^53 or a long decimal survives a round trip unchanged;
// `double` and `exactInteger` read it when a value is needed.
#if canImport(Glibc)
import Glibc
#endif

/// A JSON value. Immutable value type; no thread affinity.
public enum JSONValue: Equatable, Hashable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var isNull: Bool { if case .null = self { return true } else { return false } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var numberValue: JSONNumber? { if case .number(let n) = self { return n } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }

    /// The member `key` of an object; nil for a missing key or a non-object.
    public subscript(key: String) -> JSONValue? { objectValue?[key] }

    /// The JSON type's name, for error messages ("expected a string, got an array").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A JSON number as its literal text (valid JSON number grammar).
public struct JSONNumber: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The literal, e.g. "10", "-0.5", "1e300".
    public let text: String

    /// From a literal the parser has already checked.
    init(validatedText: String) { text = validatedText }

    public init(_ value: Int) { text = String(value) }
    public init(_ value: UInt64) { text = String(value) }

    /// A double. NaN and the infinities, which JSON cannot express, become 0
    /// so a serializer never writes an invalid document.
    public init(_ value: Double) {
        if !value.isFinite {
            text = "0"
        } else if value == value.rounded(.towardZero) && abs(value) < 9.007199254740992e15 {
            text = String(Int64(value))
        } else {
            text = value.description  // shortest round-trip form, e.g. "0.1", "1e+300"
        }
    }

    /// The value as a double (±infinity for out-of-range exponents).
    public var double: Double { JSONNumber.parseDouble(text) }

    /// The value when it is an integer that a double represents exactly
    /// (|n| ≤ 2^53): "10", "1e1" and "10.0" all give 10; "10.5" gives nil.
    public var exactInteger: Int64? {
        let d = double
        guard d.isFinite, d == d.rounded(.towardZero), abs(d) <= 9.007199254740992e15 else { return nil }
        return Int64(d)
    }

    public var description: String { text }

    static func parseDouble(_ text: String) -> Double {
        text.withCString { strtod($0, nil) }
    }
}

/// One member of a JSON object.
public struct JSONMember: Equatable, Hashable, Sendable {
    public var key: String
    public var value: JSONValue
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// A JSON object: members in document order, keys unique.
public struct JSONObject: Equatable, Hashable, Sendable, Sequence {
    public private(set) var members: [JSONMember]

    public init() { members = [] }

    /// Members in order; a later duplicate key replaces the earlier value.
    public init(_ pairs: [(String, JSONValue)]) {
        members = []
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    public subscript(key: String) -> JSONValue? {
        get { members.first(where: { $0.key == key })?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append(JSONMember(key, newValue))
            }
        }
    }

    /// Appends without the uniqueness check (the parser checks it itself).
    mutating func appendUnchecked(_ key: String, _ value: JSONValue) {
        members.append(JSONMember(key, value))
    }

    public func makeIterator() -> IndexingIterator<[JSONMember]> { members.makeIterator() }
}

// Literals, so tests and handlers can write documents inline.
extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}
