import ConfigFile

/// A schema shaped like the agent's: every value type, a required secret,
/// live and start-only keys, environment enabled.
func agentLikeSchema(environment: Bool = true) -> ConfigSchema {
    ConfigSchema(keys: [
        ConfigKey("server_host", .list(.host, allowEmpty: false), default: "127.0.0.1", live: true),
        ConfigKey("server_port", .integer(1...65535), default: "6600", live: true),
        ConfigKey("access_key", .string(allowEmpty: false), default: nil, secret: true, live: true),
        ConfigKey("agent_name", .string(allowEmpty: true), default: ""),
        ConfigKey("tcp_connection_timeout", .milliseconds(1...600_000), default: "5000", live: true),
        ConfigKey("net_send_max_bytes", .bytes(1024...(1 << 30)), default: "5242880", live: true),
        ConfigKey("capture", .bool, default: "on", live: true),
        ConfigKey("log_format", .choice(["text", "json"]), default: "text", live: true),
        ConfigKey("ipa_bind", .list(.ipAddress, allowEmpty: false), default: "127.0.0.1", live: true),
        ConfigKey("listen", .address(defaultPort: 6600), default: "0.0.0.0:6600"),
    ], environmentPrefix: environment ? "VIGIL_" : nil)
}

/// Loads `text` as file `agent.conf`, returning the errors' descriptions.
func loadErrors(_ text: String, schema: ConfigSchema = agentLikeSchema(),
                environment: [String: String] = [:], overrides: [(key: String, value: String)] = []) -> [String] {
    do {
        _ = try schema.load(text: text, path: "agent.conf", environment: environment, overrides: overrides)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}
