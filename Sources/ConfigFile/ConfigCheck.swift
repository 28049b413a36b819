// ConfigCheck: a check the keys' types cannot make — across keys (min ≤
// max), or of a value's form beyond its type (an access key's layout, an IP
// literal to listen on). A program declares its checks and the loader runs
// them together with the per-key ones, so one run reports every mistake of
// a file: a check runs whenever its keys have values and none of them had
// an error of its own (it would only repeat that error, or judge a default
// the operator did not mean).
//
// Immutable value; share it freely.

public struct ConfigCheck: Sendable {
    /// The keys the check reads.
    public let keys: [String]
    /// The errors, each at the place its key's value came from (see
    /// `Configuration.invalid`); empty when the configuration passes.
    public let run: @Sendable (Configuration) -> [ConfigError]

    public init(keys: [String], _ run: @escaping @Sendable (Configuration) -> [ConfigError]) {
        self.keys = keys
        self.run = run
    }
}

extension Configuration {
    /// An invalid-value error for `key` at the place its current value came
    /// from (file line, environment variable, `--set`, or an update).
    /// Secret keys never repeat the value.
    public func invalid(_ key: String, expected: String, got: String?) -> ConfigError {
        let at: ConfigLocation
        switch origin(key) {
        case .file(let path, let line)?: at = .file(path: path, line: line)
        case .environment(let v)?: at = .environment(variable: v)
        case .commandLine?: at = .commandLine
        default: at = .update
        }
        return ConfigError(location: at, key: key,
                           problem: .invalidValue(expected: expected, got: schema.key(key)?.secret == true ? nil : got))
    }

    /// Runs `checks` as the loader does: those whose keys all have values
    /// and are not in `failed`.
    public func errors(of checks: [ConfigCheck], skipping failed: Set<String> = []) -> [ConfigError] {
        var errors: [ConfigError] = []
        for c in checks where c.keys.allSatisfy({ value($0) != nil && !failed.contains($0) }) {
            errors += c.run(self)
        }
        return errors
    }
}
