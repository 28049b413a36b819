// ConfigSource: where the agent's configuration comes from — the file named
// by --config (if any), the VIGIL_<KEY> environment captured at start, and
// the --set overrides — so SIGHUP can load the same layers again.
//
// Thread: any (an immutable value; loaded on the loop thread).
import ConfigFile

/// The layers of one agent process. Immutable value.
public struct ConfigSource: Sendable {
    public let path: String?
    public let environment: [String: String]
    public let overrides: [(key: String, value: String)]

    public init(path: String?, environment: [String: String], overrides: [(key: String, value: String)]) {
        self.path = path
        self.environment = environment
        self.overrides = overrides
    }

    /// Loads and checks every layer: key-by-key errors and the checks of
    /// `AgentSettings`, all reported together.
    public func load() throws(ConfigErrors) -> (Configuration, AgentSettings) {
        let config = try AgentSchema.schema.load(file: path, environment: environment, overrides: overrides,
                                                 checks: AgentSettings.checks)
        return (config, try AgentSettings(config))
    }
}
