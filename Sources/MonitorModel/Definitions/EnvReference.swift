// EnvReference: `${env:NAME}` references inside monitor definitions.
//
// Definitions are stored and sent with the references unresolved; the agent
// resolves them from its own environment at each run (so a secret changes
// with the agent's environment, and never travels to or from the collector).
// A "${" followed by "env" in any case must be a well-formed reference,
// "${env:NAME}" with NAME matching [A-Za-z_][A-Za-z0-9_]*, so a typo such as
// "${ENV:X}" or "${env:X" is refused at validation instead of being sent
// literally. Any other "${" is plain text (a shell command in an exec
// monitor's config may well say "${HOME}").
import JSON
#if canImport(Glibc)
import Glibc
#endif

public enum EnvReference {
    /// nil when every "${env" in `text` starts a well-formed reference, else why not.
    public static func syntaxError(in text: String) -> String? {
        var err: String?
        _ = scan(text) { _ in "" } onError: { err = $0 }
        return err
    }

    /// Whether `text` holds at least one reference.
    public static func containsReference(_ text: String) -> Bool {
        text.utf8.count >= 7 && text.containsBytes("${env:")
    }

    /// The referenced names, in order of appearance.
    public static func names(in text: String) -> [String] {
        var out: [String] = []
        _ = scan(text) { out.append($0); return "" } onError: { _ in }
        return out
    }

    /// Replaces each reference by `value(NAME)`; malformed ones are kept as
    /// they are (validation refuses them before this point).
    static func scan(_ text: String, _ value: (String) -> String, onError: (String) -> Void) -> String {
        let u = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            guard u[i] == UInt8(ascii: "$"), i + 1 < u.count, u[i + 1] == UInt8(ascii: "{") else {
                out.append(u[i]); i += 1; continue
            }
            let prefix = Array("${env:".utf8)
            guard u.count - i >= prefix.count, Array(u[i..<i + prefix.count]) == prefix else {
                if u.count - i >= 5, Array(u[i + 2..<i + 5]).map({ $0 | 0x20 }) == Array("env".utf8) {
                    onError("malformed reference at character \(i + 1): expected ${env:NAME}")
                }
                out.append(u[i]); i += 1; continue
            }
            var j = i + prefix.count
            let nameStart = j
            while j < u.count, isNameByte(u[j], first: j == nameStart) { j += 1 }
            guard j > nameStart, j < u.count, u[j] == UInt8(ascii: "}") else {
                onError("malformed reference at character \(i + 1): expected ${env:NAME} with NAME of letters, digits and _")
                out.append(u[i]); i += 1; continue
            }
            out.append(contentsOf: value(String(decoding: u[nameStart..<j], as: UTF8.self)).utf8)
            i = j + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isNameByte(_ c: UInt8, first: Bool) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || c == UInt8(ascii: "_") || (!first && c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }
}

/// A referenced variable the agent does not have, or one its policy
/// (`monitor_env`) does not let monitors read (`notAllowed`).
public struct MissingEnvironmentVariable: Error, Equatable, CustomStringConvertible {
    public let name: String
    public let notAllowed: Bool
    public init(name: String, notAllowed: Bool = false) {
        self.name = name
        self.notAllowed = notAllowed
    }
    public var description: String {
        notAllowed ? "environment variable \(name) is not available to monitors on this agent (monitor_env)"
                   : "environment variable \(name) is not set"
    }
}

/// Resolves the references of one run and remembers the values it used, so
/// messages that leave the agent (curl errors that quote a URL, a monitor's
/// error text) can be redacted back to `${env:NAME}`. Value type, one per run.
///
/// Only names `allowed` says yes to are looked up; a `VIGIL_*` name never is
/// (the agent's own settings, the access key among them, live there).
public struct EnvResolver {
    public typealias Lookup = (String) -> String?
    private let lookup: Lookup
    private let allowed: (String) -> Bool
    private(set) var used: [(name: String, value: String)] = []

    /// `lookup` defaults to the process environment (getenv).
    public init(lookup: Lookup? = nil, allowed: @escaping (String) -> Bool) {
        self.lookup = lookup ?? { name in getenv(name).map { String(cString: $0) } }
        self.allowed = allowed
    }

    /// Whether monitors may ever read `name`: never a `VIGIL_*` variable
    /// (in any case: a configuration must not be able to name one by
    /// changing its spelling).
    public static func mayEverRead(_ name: String) -> Bool {
        !name.uppercased().hasPrefix("VIGIL_")
    }

    public mutating func resolve(_ text: String) throws(MissingEnvironmentVariable) -> String {
        guard EnvReference.containsReference(text) else { return text }
        var missing: String?
        var found: [(String, String)] = []
        var refused: String?
        let out = EnvReference.scan(text, { name in
            guard EnvResolver.mayEverRead(name), allowed(name) else {
                if refused == nil { refused = name }
                return ""
            }
            if let v = lookup(name) { found.append((name, v)); return v }
            if missing == nil { missing = name }
            return ""
        }, onError: { _ in })
        if let refused { throw MissingEnvironmentVariable(name: refused, notAllowed: true) }
        if let missing { throw MissingEnvironmentVariable(name: missing) }
        for (n, v) in found where !used.contains(where: { $0.name == n }) { used.append((n, v)) }
        return out
    }

    /// Resolves every string inside a JSON value.
    public mutating func resolve(_ value: JSON) throws(MissingEnvironmentVariable) -> JSON {
        switch value {
        case .string(let s): return .string(try resolve(s))
        case .array(let a):
            var out: [JSON] = []
            out.reserveCapacity(a.count)
            for e in a { out.append(try resolve(e)) }
            return .array(out)
        case .object(let o):
            var r = JSONObject()
            for m in o { r[m.key] = try resolve(m.value) }
            return .object(r)
        default: return value
        }
    }

    /// `message` with every resolved value of 4 or more bytes replaced by its
    /// reference (shorter values would garble unrelated text).
    public func redact(_ message: String) -> String {
        var m = message
        for (name, value) in used.sorted(by: { $0.value.utf8.count > $1.value.utf8.count }) where value.utf8.count >= 4 {
            m = m.replacingAll(value, with: "${env:\(name)}")
        }
        return m
    }
}

extension String {
    /// Whether `needle` occurs (byte-wise). Spelled out: the standard
    /// library's String.contains(String) lives in _StringProcessing, whose
    /// regex engine would be linked into the agent for this one call.
    func containsBytes(_ needle: String) -> Bool {
        let h = Array(utf8), n = Array(needle.utf8)
        guard !n.isEmpty else { return true }
        guard h.count >= n.count else { return false }
        for i in 0...(h.count - n.count) where h[i] == n[0] && h[i..<i + n.count].elementsEqual(n) { return true }
        return false
    }

    /// Every occurrence of `needle` replaced (byte-wise), without Foundation.
    func replacingAll(_ needle: String, with replacement: String) -> String {
        let h = Array(utf8), n = Array(needle.utf8)
        guard !n.isEmpty, h.count >= n.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(h.count)
        var i = 0
        var changed = false
        while i < h.count {
            if h[i] == n[0], h.count - i >= n.count, h[i..<i + n.count].elementsEqual(n) {
                out.append(contentsOf: replacement.utf8)
                i += n.count
                changed = true
            } else {
                out.append(h[i]); i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : self
    }
}
