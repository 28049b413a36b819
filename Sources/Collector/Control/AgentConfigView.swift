// AgentConfigView: an agent's configuration as the collector sees it —
// schema defaults, then the project's overrides, then the agent's own —
// and the rules for changing it remotely: only `live` keys, never
// `access_key`, every key validated with the agent's own schema before
// anything is sent. Secrets are redacted in every rendering.
//
// Pure functions over ConfigFile values.
import ConfigFile
import JSON
import Wire

enum AgentConfigView {
    /// Keys that may never be changed over a session, whatever the schema says.
    static let neverRemote: Set<String> = ["access_key"]

    /// The effective configuration; stored overrides that no longer
    /// validate (an older schema) are skipped and listed.
    static func effective(project: [String: String], agent: [String: String]) -> (config: Configuration, skipped: [String]) {
        var config = Configuration(defaultsOf: AgentSchema.schema)
        var skipped: [String] = []
        for (layer, origin) in [(project, ConfigOrigin.project), (agent, ConfigOrigin.agent)] {
            for (key, value) in layer.sorted(by: { $0.key < $1.key }) {
                if config.set(key, text: value, origin: origin, location: .update) != nil { skipped.append(key) }
            }
        }
        return (config, skipped)
    }

    /// Per-key errors for a proposed update; empty when it may be sent.
    static func validate(_ update: [String: String]) -> [ConfigError] {
        var errors: [ConfigError] = []
        var rest: [String: String] = [:]
        for (k, v) in update {
            if neverRemote.contains(k) {
                errors.append(ConfigError(location: .update, key: k, problem: .notLive))
            } else {
                rest[k] = v
            }
        }
        errors += Configuration(defaultsOf: AgentSchema.schema).validate(rest, requireLive: true)
        return errors
    }

    /// The valid, remotely settable part of stored overrides, in key order.
    static func remotelySettable(_ overrides: [String: String]) -> [KeyValue] {
        overrides.sorted { $0.key < $1.key }.compactMap { k, v in
            validate([k: v]).isEmpty ? KeyValue(k, v) : nil
        }
    }

    /// `{"key","value","origin","secret","live"}` per key, in schema order.
    static func json(_ config: Configuration) -> JSON {
        .array(config.entries(redactingSecrets: true).map { e in
            let origin: String
            switch e.origin {
            case .project?: origin = "project"
            case .agent?: origin = "agent"
            default: origin = "default"
            }
            return .object([("key", .string(e.key)), ("value", .optional(e.value)), ("origin", .string(origin)),
                            ("secret", .bool(e.secret)), ("live", .bool(e.live && !neverRemote.contains(e.key)))])
        })
    }
}
