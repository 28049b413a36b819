// JSON: the one JSON value type of every Vigil program — what the HTTP API
// reads request bodies into and answers with, what monitor definitions are
// validated from, what the exec monitor protocol speaks — without
// Foundation. `JSONParser.swift` reads it (strict RFC 8259, bounded),
// `JSONWriter.swift` writes it (compact, one line; its string escaper is
// also Log's).
//
// Objects keep their members in order with unique keys (JSONObject), so a
// parse-write round trip is byte-exact and answers read the way docs/API.md
// shows them. Numbers keep their literal text (JSONNumber), so an integer
// beyond 2^53 or a long decimal survives unchanged.
//
// The module depends on nothing: Reactor (Log) sits above it.
//
// Plain values; no thread affinity.

/// A JSON value. Immutable value type.
public enum JSON: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSON])
    case object(JSONObject)
    /// Text that is already JSON (e.g. a status snapshot the store kept as
    /// JSON text), written verbatim. Never produced by parsing; whoever
    /// makes one vouches that it is one valid JSON value.
    case raw(String)

    // MARK: access

    public var isNull: Bool { if case .null = self { return true } else { return false } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var numberValue: JSONNumber? { if case .number(let n) = self { return n } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }

    /// A number as a double (±infinity beyond its range).
    public var doubleValue: Double? { numberValue?.double }

    /// A number that is an integer within Int64 ("10", "1e1" and "10.0"
    /// all give 10; "10.5" gives nil).
    public var int64Value: Int64? { numberValue?.int64 }

    /// The member `key` of an object; nil for a missing key or a non-object.
    public subscript(key: String) -> JSON? { objectValue?[key] }

    /// The JSON type's name, for error messages ("expected a string, got an array").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        case .raw: return "JSON text"
        }
    }

    /// A scalar as configuration text: strings as they are, numbers without
    /// a needless ".0" ("1e3" is "1000"), booleans as on/off. nil for null,
    /// arrays and objects.
    public var configText: String? {
        switch self {
        case .string(let s): return s
        case .bool(let b): return b ? "on" : "off"
        case .number(let n): return JSONNumber(n.double)?.text ?? n.text
        default: return nil
        }
    }

    // MARK: building

    public static func int(_ v: Int64) -> JSON { .number(JSONNumber(v)) }
    public static func int(_ v: Int) -> JSON { .number(JSONNumber(v)) }
    /// A double; NaN and the infinities, which JSON cannot carry, are null.
    public static func number(_ v: Double) -> JSON { JSONNumber(v).map(JSON.number) ?? .null }
    public static func optional(_ v: String?) -> JSON { v.map(JSON.string) ?? .null }
    public static func optional(_ v: Int64?) -> JSON { v.map { .int($0) } ?? .null }
    /// An object from members in order; a later duplicate key replaces the
    /// earlier value (an object never carries a key twice).
    public static func object(_ members: [(String, JSON)]) -> JSON { .object(JSONObject(members)) }
}

// Literals, so tests and handlers can write documents inline.
extension JSON: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(JSONObject(elements)) }
}
