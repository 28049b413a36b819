// ConfigSchema: the keys a program accepts — name, type, default, whether
// the value is secret (never printed) and whether it can change while the
// program runs (SIGHUP, remote update). The schema is the single source of
// truth: defaults are written as text and parsed with the key's own type
// when the schema is built, so a bad default traps at start-up in every
// test rather than surfacing in production.
//
// Immutable value; share it freely.

public struct ConfigKey: Sendable {
    public let name: String
    public let type: ConfigValueType
    /// The default as file text; nil makes the key required.
    public let defaultText: String?
    /// Secret values print as `<redacted>` and are never echoed in errors.
    public let secret: Bool
    /// Whether a running program applies a change (SIGHUP, remote update).
    public let live: Bool
    /// Set only by the program's own file, environment or command line
    /// (and SIGHUP when live), never by a remote update: policy that limits
    /// what the remote side may do.
    public let localOnly: Bool
    public let help: String

    public init(_ name: String, _ type: ConfigValueType, default defaultText: String?,
                secret: Bool = false, live: Bool = false, localOnly: Bool = false, help: String = "") {
        self.name = name
        self.type = type
        self.defaultText = defaultText
        self.secret = secret
        self.live = live
        self.localOnly = localOnly
        self.help = help
    }

    public var isRequired: Bool { defaultText == nil }
}

public struct ConfigSchema: Sendable {
    public let keys: [ConfigKey]
    /// With a prefix such as `VIGIL_`, `VIGIL_<KEY>` environment variables
    /// override the file; nil ignores the environment.
    public let environmentPrefix: String?
    private let index: [String: Int]
    let defaults: [String: ConfigValue]

    public init(keys: [ConfigKey], environmentPrefix: String? = nil) {
        var index: [String: Int] = [:]
        var defaults: [String: ConfigValue] = [:]
        for (i, k) in keys.enumerated() {
            precondition(!k.name.isEmpty && k.name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F },
                         "config key '\(k.name)': names are lower-case letters, digits and '_'")
            precondition(index[k.name] == nil, "config key '\(k.name)' declared twice")
            index[k.name] = i
            if let text = k.defaultText {
                switch k.type.parse(text) {
                case .success(let v): defaults[k.name] = v
                case .failure(let p): preconditionFailure("config key '\(k.name)': default \(text) is invalid: \(p)")
                }
            }
        }
        self.keys = keys
        self.environmentPrefix = environmentPrefix
        self.index = index
        self.defaults = defaults
    }

    public func key(_ name: String) -> ConfigKey? { index[name].map { keys[$0] } }

    /// The closest known key to a mistyped one, when it is close enough to
    /// be a likely typo (edit distance ≤ 2, or ≤ a third of the length).
    public func suggestion(for name: String) -> String? {
        let lower = name.lowercased()
        if index[lower] != nil { return lower }
        var best: (String, Int)?
        for k in keys {
            let d = ConfigText.distance(lower, k.name)
            if d <= Swift.max(2, k.name.count / 3), d < (best?.1 ?? .max) { best = (k.name, d) }
        }
        return best?.0
    }

    /// `VIGIL_SERVER_PORT` for `server_port`, or nil without a prefix.
    public func environmentVariable(for key: String) -> String? {
        environmentPrefix.map { $0 + key.uppercased() }
    }

    /// Validates `text` for `key`, producing an error at `location`.
    /// Unknown keys get a "did you mean".
    public func parse(key name: String, text: String, at location: ConfigLocation) -> Result<ConfigValue, ConfigError> {
        guard let k = key(name) else {
            return .failure(ConfigError(location: location, key: name, problem: .unknownKey(suggestion: suggestion(for: name))))
        }
        switch k.type.parse(text) {
        case .success(let v): return .success(v)
        case .failure(.invalidValue(let expected, let got)):
            return .failure(ConfigError(location: location, key: name,
                                        problem: .invalidValue(expected: expected, got: k.secret ? nil : got)))
        case .failure(let p): return .failure(ConfigError(location: location, key: name, problem: p))
        }
    }
}
