// ConfigError: one configuration mistake, named by where it came from
// (file and line, environment variable, `--set`, or a remote update), the key,
// and what was expected. `ConfigErrors` carries every mistake found in one
// load, so an operator fixes a file in one pass rather than one line per run.
//
// Secret values are never echoed: an invalid value of a secret key prints as
// `<redacted>`.

/// Where a configuration value came from, for error messages.
public enum ConfigLocation: Equatable, Sendable {
    /// A configuration file; `line` nil for the file as a whole.
    case file(path: String, line: Int?)
    /// An environment variable such as `VIGIL_SERVER_PORT`.
    case environment(variable: String)
    /// A `--set key=value` argument.
    case commandLine
    /// A proposed update (remote control, API); messages carry no prefix.
    case update
}

/// What was wrong.
public enum ConfigProblem: Error, Equatable, Sendable {
    /// A line that is not `key = value`.
    case syntax(got: String)
    /// A key name with characters other than `a-z`, `0-9`, `_`.
    case badKeyName(String)
    case unterminatedQuote
    case textAfterQuote(String)
    case unknownKey(suggestion: String?)
    /// The same key twice in one file.
    case duplicateKey(firstLine: Int)
    /// The same key twice in `--set` arguments or in one update.
    case givenTwice
    /// `got` is nil when the key is secret (the value is not repeated).
    case invalidValue(expected: String, got: String?)
    case missingRequired(hint: String)
    /// A key that only takes effect at start, in a live update.
    case notLive
    /// A key only the program's own configuration may set, in a remote update.
    case localOnly
    /// A remote update the program's own policy does not allow (the reason
    /// names the rule).
    case refusedRemotely(reason: String)
    case unreadable(reason: String)
    case tooLarge(limit: Int)
}

public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public let location: ConfigLocation
    public let key: String?
    public let problem: ConfigProblem

    public init(location: ConfigLocation, key: String?, problem: ConfigProblem) {
        self.location = location
        self.key = key
        self.problem = problem
    }

    /// The problem without the location prefix, e.g.
    /// `key 'server_port': expected an integer 1...65535, got "66000"`.
    public var message: String {
        let k = key.map { "key '\($0)': " } ?? ""
        switch problem {
        case .syntax(let got): return "expected 'key = value', got \(ConfigText.quoted(got))"
        case .badKeyName(let name):
            return "expected a key name of lower-case letters, digits and '_', got \(ConfigText.quoted(name))"
        case .unterminatedQuote: return k + "unterminated quote"
        case .textAfterQuote(let rest): return k + "unexpected text after the closing quote: \(ConfigText.quoted(rest))"
        case .unknownKey(let suggestion):
            return "unknown key '\(key ?? "")'" + (suggestion.map { " (did you mean '\($0)'?)" } ?? "")
        case .duplicateKey(let first): return k + "set twice (first at line \(first))"
        case .givenTwice: return k + (location == .commandLine ? "given twice with --set" : "given twice")
        case .invalidValue(let expected, let got):
            return k + "expected \(expected), got " + (got.map(ConfigText.quoted) ?? "<redacted>")
        case .missingRequired(let hint): return k + "required but not set (\(hint))"
        case .notLive: return k + "cannot change while running (restart to apply)"
        case .localOnly: return k + "set only in the agent's own file, environment or command line, never remotely"
        case .refusedRemotely(let reason): return k + reason
        case .unreadable(let reason): return "cannot read: \(reason)"
        case .tooLarge(let limit): return "larger than \(limit) bytes"
        }
    }

    /// The message only, without `key '…': ` — what an API puts next to the
    /// key in a per-key error object.
    public var detail: String {
        let m = message
        if let key, m.hasPrefix("key '\(key)': ") { return String(m.dropFirst("key '\(key)': ".count)) }
        return m
    }

    public var description: String {
        switch location {
        case .file(let path, let line?): return "\(path):\(line): \(message)"
        case .file(let path, nil): return "\(path): \(message)"
        case .environment(let v): return "environment \(v): \(message)"
        case .commandLine: return "--set: \(message)"
        case .update: return message
        }
    }
}

/// Every error found in one load or update, in the order found (file lines
/// first, then environment, then `--set`, then the program's checks, then
/// missing keys). Never empty.
public struct ConfigErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public let errors: [ConfigError]

    public init(_ errors: [ConfigError]) {
        precondition(!errors.isEmpty, "ConfigErrors needs at least one error")
        self.errors = errors
    }

    /// One error per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension Array where Element == ConfigError {
    /// key → message without the key prefix (the first error per key): the
    /// per-key object an API answers a rejected update with. Errors without
    /// a key are filed under "".
    public var messagesByKey: [String: String] {
        var out: [String: String] = [:]
        for e in self where out[e.key ?? ""] == nil { out[e.key ?? ""] = e.detail }
        return out
    }
}
