// Configuration: a resolved configuration — one validated value per key,
// with the origin of each (default, file line, environment variable,
// `--set`, and the collector's project/agent overrides), rendering with
// secrets redacted, and the update discipline remote control needs:
// validate a proposed set of changes without applying anything, then apply
// a valid set atomically and learn which keys changed.
//
// A value type: copy it, change the copy, swap it in. Not shared mutable state.

/// Where a key's effective value came from.
public enum ConfigOrigin: Equatable, Sendable, CustomStringConvertible {
    case `default`
    case file(path: String, line: Int)
    case environment(variable: String)
    /// A `--set key=value` argument.
    case commandLine
    /// The collector's per-project override.
    case project
    /// The collector's per-agent override.
    case agent
    /// Applied while running by a remote/API update.
    case update

    /// The short name an API reports: default, file, env, set, project, agent, update.
    public var name: String {
        switch self {
        case .default: return "default"
        case .file: return "file"
        case .environment: return "env"
        case .commandLine: return "set"
        case .project: return "project"
        case .agent: return "agent"
        case .update: return "update"
        }
    }

    public var description: String {
        switch self {
        case .file(let path, let line): return "file \(path):\(line)"
        case .environment(let v): return "env \(v)"
        default: return name
        }
    }
}

public struct Configuration: Sendable {
    public let schema: ConfigSchema
    private var values: [String: ConfigValue]
    private var origins: [String: ConfigOrigin]

    /// Every key at its default; required keys are absent until set.
    public init(defaultsOf schema: ConfigSchema) {
        self.schema = schema
        values = schema.defaults
        origins = schema.defaults.mapValues { _ in .default }
    }

    // MARK: reading

    public func value(_ key: String) -> ConfigValue? { values[key] }
    public func origin(_ key: String) -> ConfigOrigin? { origins[key] }

    /// Required keys that have no value.
    public var missingRequired: [String] { schema.keys.filter { values[$0.name] == nil }.map(\.name) }

    // Typed getters trap on a key the schema lacks or a type mismatch: both
    // are programming errors, and a load guarantees required keys are set.
    public func string(_ key: String) -> String {
        switch checked(key) {
        case .string(let s): return s
        case let v: return v.description
        }
    }

    public func int(_ key: String) -> Int {
        guard case .integer(let i) = checked(key) else { preconditionFailure("config key '\(key)' is not an integer") }
        return i
    }

    public func bool(_ key: String) -> Bool {
        guard case .bool(let b) = checked(key) else { preconditionFailure("config key '\(key)' is not a boolean") }
        return b
    }

    /// A list's elements as canonical text.
    public func list(_ key: String) -> [String] {
        guard case .list(let items) = checked(key) else { preconditionFailure("config key '\(key)' is not a list") }
        return items.map(\.description)
    }

    public func address(_ key: String) -> (host: String, port: UInt16) {
        guard case .address(let h, let p) = checked(key) else { preconditionFailure("config key '\(key)' is not an address") }
        return (h, p)
    }

    private func checked(_ key: String) -> ConfigValue {
        guard schema.key(key) != nil else { preconditionFailure("config key '\(key)' is not in the schema") }
        guard let v = values[key] else { preconditionFailure("config key '\(key)' is required and was not set") }
        return v
    }

    // MARK: layering

    /// Sets one key from text (a layer above what is there). Returns the
    /// error instead of changing anything when the key or value is invalid.
    @discardableResult
    public mutating func set(_ key: String, text: String, origin: ConfigOrigin, location: ConfigLocation) -> ConfigError? {
        switch schema.parse(key: key, text: text, at: location) {
        case .success(let v):
            values[key] = v
            origins[key] = origin
            return nil
        case .failure(let e):
            return e
        }
    }

    // MARK: rendering

    public struct Entry: Equatable, Sendable {
        public let key: String
        /// Canonical text; `<redacted>` for a non-empty secret when redacting;
        /// nil for a required key that is not set.
        public let value: String?
        public let origin: ConfigOrigin?
        public let secret: Bool
        public let live: Bool
    }

    public static let redacted = "<redacted>"

    /// Every key in schema order.
    public func entries(redactingSecrets: Bool = true) -> [Entry] {
        schema.keys.map { k in
            var text = values[k.name]?.description
            if redactingSecrets, k.secret, let t = text, !t.isEmpty { text = Configuration.redacted }
            return Entry(key: k.name, value: text, origin: origins[k.name], secret: k.secret, live: k.live)
        }
    }

    /// The configuration as a file, one `key = value  # origin` line per key,
    /// secrets redacted. What `check-config` prints.
    public func render(redactingSecrets: Bool = true) -> String {
        var out = ""
        for e in entries(redactingSecrets: redactingSecrets) {
            guard let v = e.value else { out += "# \(e.key) = (required, not set)\n"; continue }
            let needsQuotes = v.isEmpty || v.contains("#") || v.first == " " || v.last == " " || v.first == "\"" || v.first == "'"
            let text = needsQuotes ? (v.contains("\"") ? "'\(v)'" : "\"\(v)\"") : v
            out += "\(e.key) = \(text)  # \(e.origin?.description ?? "unset")\n"
        }
        return out
    }

    // MARK: updates

    /// Checks a proposed update (key → value text) without applying any of
    /// it. Returns one error per bad key, in the order given; empty means
    /// `apply` will succeed. With `requireLive`, keys that only take effect
    /// at start, and local-only keys, are refused.
    public func validate(_ update: [(key: String, value: String)], requireLive: Bool = true) -> [ConfigError] {
        var errors: [ConfigError] = []
        var seen = Set<String>()
        for (key, text) in update {
            if !seen.insert(key).inserted {
                errors.append(ConfigError(location: .update, key: key, problem: .givenTwice))
                continue
            }
            switch schema.parse(key: key, text: text, at: .update) {
            case .failure(let e): errors.append(e)
            case .success:
                if requireLive, let k = schema.key(key), k.localOnly {
                    errors.append(ConfigError(location: .update, key: key, problem: .localOnly))
                } else if requireLive, let k = schema.key(key), !k.live {
                    errors.append(ConfigError(location: .update, key: key, problem: .notLive))
                }
            }
        }
        return errors
    }

    /// `validate` for an unordered update (e.g. a decoded JSON object);
    /// keys are checked in sorted order so messages are stable.
    public func validate(_ update: [String: String], requireLive: Bool = true) -> [ConfigError] {
        validate(update.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }, requireLive: requireLive)
    }

    /// Applies every key of `update` or none: on any error nothing changes
    /// and all errors are thrown. Returns the keys whose value changed, in
    /// schema order (a key set to its current value is not a change, but
    /// takes the new origin).
    @discardableResult
    public mutating func apply(_ update: [(key: String, value: String)], origin: ConfigOrigin = .update,
                               requireLive: Bool = true) throws(ConfigErrors) -> [String] {
        let errors = validate(update, requireLive: requireLive)
        if !errors.isEmpty { throw ConfigErrors(errors) }
        var next = self
        for (key, text) in update { next.set(key, text: text, origin: origin, location: .update) }
        let changed = changedKeys(comparedTo: next)
        self = next
        return changed
    }

    @discardableResult
    public mutating func apply(_ update: [String: String], origin: ConfigOrigin = .update,
                               requireLive: Bool = true) throws(ConfigErrors) -> [String] {
        try apply(update.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }, origin: origin, requireLive: requireLive)
    }

    /// Keys whose value differs between `self` and `other`, in schema order.
    public func changedKeys(comparedTo other: Configuration) -> [String] {
        schema.keys.map(\.name).filter { values[$0] != other.values[$0] }
    }

    public struct Reload: Sendable {
        /// The running configuration with the new file's live keys taken over.
        public let configuration: Configuration
        /// Live keys whose value changed (apply these).
        public let applied: [String]
        /// Keys that changed in the file but only take effect at start
        /// (log them; the running value is kept).
        public let needsRestart: [String]
    }

    /// SIGHUP: given a freshly loaded, valid configuration, takes over the
    /// live keys and reports the others that changed.
    public func reloading(from fresh: Configuration) -> Reload {
        var next = self
        var applied: [String] = []
        var needsRestart: [String] = []
        for k in schema.keys where values[k.name] != fresh.values[k.name] || origins[k.name] != fresh.origins[k.name] {
            let differs = values[k.name] != fresh.values[k.name]
            if k.live {
                next.values[k.name] = fresh.values[k.name]
                next.origins[k.name] = fresh.origins[k.name]
                if differs { applied.append(k.name) }
            } else if differs {
                needsRestart.append(k.name)
            }
        }
        return Reload(configuration: next, applied: applied, needsRestart: needsRestart)
    }
}
