// ConfigValue: a validated configuration value, and the types that produce
// one from text.
//
// Every value starts as text (a file line, an environment variable, a
// `--set`, a remote update) and becomes a ConfigValue only through
// `ConfigValueType.parse`, so a program never sees a value its schema did
// not accept. Values are plain data: Sendable, compared by value.

/// A configuration value after validation.
public enum ConfigValue: Equatable, Hashable, Sendable, CustomStringConvertible {
    case string(String)
    /// Integers, milliseconds and byte counts (already converted to ms/bytes).
    case integer(Int)
    case bool(Bool)
    case list([ConfigValue])
    /// `host:port`; `host` is a name or an IP literal without brackets.
    case address(host: String, port: UInt16)

    /// The canonical text, as it would be written in a file: booleans as
    /// `on`/`off`, lists joined with `, `, IPv6 hosts in brackets.
    public var description: String {
        switch self {
        case .string(let s): return s
        case .integer(let i): return String(i)
        case .bool(let b): return b ? "on" : "off"
        case .list(let items): return items.map(\.description).joined(separator: ", ")
        case .address(let host, let port):
            return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// The type of a configuration key: how text becomes a `ConfigValue`, and
/// the phrase an error uses for what was expected.
public indirect enum ConfigValueType: Sendable {
    /// Any text; `allowEmpty` false rejects the empty string.
    case string(allowEmpty: Bool)
    case integer(ClosedRange<Int>)
    /// A duration in milliseconds: a number, optionally with `ms`, `s`, `m`, `h`.
    case milliseconds(ClosedRange<Int>)
    /// A size in bytes: a number, optionally with `K`, `M`, `G` (powers of 1024).
    case bytes(ClosedRange<Int>)
    /// `on`/`off`, `true`/`false`, `yes`/`no` (any case).
    case bool
    /// One of the given words (matched without regard to case, stored as listed).
    case choice([String])
    /// Comma-separated elements of one type; `allowEmpty` false needs at least one.
    case list(ConfigValueType, allowEmpty: Bool)
    /// `host:port`, `[v6]:port`; with a default port the port may be omitted.
    case address(defaultPort: UInt16?)
    /// A host name or an IP literal.
    case host
    /// An IPv4 or IPv6 literal (IPv6 optionally in brackets).
    case ipAddress

    /// What a valid value looks like, for error messages.
    public var expectation: String {
        switch self {
        case .string(let allowEmpty): return allowEmpty ? "a string" : "a non-empty string"
        case .integer(let r): return "an integer \(r.lowerBound)...\(r.upperBound)"
        case .milliseconds(let r): return "a duration \(r.lowerBound)...\(r.upperBound) ms (a number, optionally with ms, s, m or h)"
        case .bytes(let r): return "a size \(r.lowerBound)...\(r.upperBound) bytes (a number, optionally with K, M or G)"
        case .bool: return "on or off (also true/false, yes/no)"
        case .choice(let words): return "one of " + words.joined(separator: ", ")
        case .list(let element, _): return "a comma-separated list of \(element.plural)"
        case .address(let p): return p == nil ? "an address host:port" : "an address host:port or host (port \(p!))"
        case .host: return "a host name or IP address"
        case .ipAddress: return "an IP address"
        }
    }

    /// The element phrase inside a list expectation.
    var plural: String {
        switch self {
        case .string: return "strings"
        case .host: return "host names or IP addresses"
        case .ipAddress: return "IP addresses"
        case .address: return "host:port addresses"
        default: return "values (\(expectation))"
        }
    }

    /// Parses `text` (already unquoted and trimmed). On failure returns the
    /// `expected …` phrase via `.failure`; the caller adds location and key.
    public func parse(_ text: String) -> Result<ConfigValue, ConfigProblem> {
        let bad = ConfigProblem.invalidValue(expected: expectation, got: text)
        switch self {
        case .string(let allowEmpty):
            return (!allowEmpty && text.isEmpty) ? .failure(bad) : .success(.string(text))
        case .integer(let range):
            guard let v = ConfigText.integer(text), range.contains(v) else { return .failure(bad) }
            return .success(.integer(v))
        case .milliseconds(let range):
            guard let v = ConfigText.scaled(text, units: [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]),
                  range.contains(v) else { return .failure(bad) }
            return .success(.integer(v))
        case .bytes(let range):
            let k = 1024
            guard let v = ConfigText.scaled(text, units: [("b", 1), ("k", k), ("kb", k), ("kib", k),
                                                          ("m", k * k), ("mb", k * k), ("mib", k * k),
                                                          ("g", k * k * k), ("gb", k * k * k), ("gib", k * k * k)]),
                  range.contains(v) else { return .failure(bad) }
            return .success(.integer(v))
        case .bool:
            switch text.lowercased() {
            case "on", "true", "yes": return .success(.bool(true))
            case "off", "false", "no": return .success(.bool(false))
            default: return .failure(bad)
            }
        case .choice(let words):
            let lower = text.lowercased()
            guard let w = words.first(where: { $0.lowercased() == lower }) else { return .failure(bad) }
            return .success(.string(w))
        case .list(let element, let allowEmpty):
            if text.isEmpty { return allowEmpty ? .success(.list([])) : .failure(bad) }
            var items: [ConfigValue] = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                let item = ConfigText.trimmed(Substring(part))
                guard !item.isEmpty else {
                    return .failure(.invalidValue(expected: expectation + " (an element is empty)", got: text))
                }
                switch element.parse(item) {
                case .success(let v): items.append(v)
                case .failure:
                    return .failure(.invalidValue(expected: expectation + " ('\(item)' is not \(element.expectation))", got: text))
                }
            }
            return .success(.list(items))
        case .address(let defaultPort):
            guard let (host, port) = ConfigText.hostPort(text, defaultPort: defaultPort) else { return .failure(bad) }
            return .success(.address(host: host, port: port))
        case .host:
            let h = ConfigText.unbracketed(text)
            guard ConfigText.isIPLiteral(h) || ConfigText.isHostName(h) else { return .failure(bad) }
            return .success(.string(h))
        case .ipAddress:
            let h = ConfigText.unbracketed(text)
            guard ConfigText.isIPLiteral(h) else { return .failure(bad) }
            return .success(.string(h))
        }
    }
}
