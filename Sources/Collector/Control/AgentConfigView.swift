// AgentConfigView: an agent's configuration as the collector sees it —
// schema defaults, then the project's overrides, then the agent's own, then
// what a connected agent reports it runs (values it took from its file,
// environment or command line win, since those are what it runs) — and the rules for changing it remotely: only `live` keys, never
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
    /// validate (an older schema) are skipped and listed. `reported` is
    /// the connected agent's own report (nil: none, e.g. not connected):
    /// a value the agent took locally is shown with that origin; a value
    /// it took from the collector with the collector's stored origin (or
    /// `agent` when none is stored, e.g. a capture start); a reported
    /// default leaves the collector's view. A reported value this schema
    /// refuses is ignored.
    static func effective(project: [String: String], agent: [String: String],
                          reported: [String: ConfigEntry]? = nil) -> (config: Configuration, skipped: [String]) {
        var config = Configuration(defaultsOf: AgentSchema.schema)
        var skipped: [String] = []
        for (layer, origin) in [(project, ConfigOrigin.project), (agent, ConfigOrigin.agent)] {
            for (key, value) in layer.sorted(by: { $0.key < $1.key }) {
                if config.set(key, text: value, origin: origin, location: .update) != nil { skipped.append(key) }
            }
        }
        let allowed = remotelyAllowed(reported)
        for (key, e) in (reported ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let k = AgentSchema.schema.key(key), !k.secret, !neverRemote.contains(key) else { continue }
            let origin: ConfigOrigin
            // A stored override the agent's remote_config refuses: it runs
            // its own value, and that is what the view shows.
            if e.origin == .default, let allowed, !allowed.contains(key), config.origin(key) != .default {
                config.set(key, text: e.value, origin: .default, location: .update)
                continue
            }
            switch e.origin {
            case .file: origin = fileOrigin(e.detail)
            case .environment: origin = .environment(variable: e.detail)
            case .commandLine: origin = .commandLine
            case .collector:
                guard config.origin(key) == .default else { continue }
                origin = .agent
            default: continue
            }
            config.set(key, text: e.value, origin: origin, location: .update)
        }
        return (config, skipped)
    }

    /// `path:line` as a file origin (line 0 when there is none).
    private static func fileOrigin(_ detail: String) -> ConfigOrigin {
        if let colon = detail.lastIndex(of: ":"), let line = Int(detail[detail.index(after: colon)...]) {
            return .file(path: String(detail[..<colon]), line: line)
        }
        return .file(path: detail, line: 0)
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
    /// The keys an agent's own `remote_config` lets the collector change,
    /// read from its EffectiveConfig report; nil when it reported none (an
    /// agent without that policy takes what the schema allows).
    static func remotelyAllowed(_ reported: [String: ConfigEntry]?) -> Set<String>? {
        guard let e = reported?["remote_config"] else { return nil }
        return Set(e.value.split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty })
    }

    static func remotelySettable(_ overrides: [String: String]) -> [KeyValue] {
        overrides.sorted { $0.key < $1.key }.compactMap { k, v in
            validate([k: v]).isEmpty ? KeyValue(k, v) : nil
        }
    }

    /// `{"key","value","origin","secret","live"}` per key, in schema order,
    /// with `"source"` (`path:line` or the variable) for a value the agent
    /// took from its file or environment.
    static func json(_ config: Configuration) -> JSON {
        .array(config.entries(redactingSecrets: true).map { e in
            let origin: String
            var source: String?
            switch e.origin {
            case .project?: origin = "project"
            case .agent?: origin = "agent"
            case .file(let path, let line)?:
                origin = "file"
                source = line > 0 ? "\(path):\(line)" : path
            case .environment(let v)?:
                origin = "environment"
                source = v
            case .commandLine?: origin = "command_line"
            default: origin = "default"
            }
            var fields: [(String, JSON)] = [("key", .string(e.key)), ("value", .optional(e.value)), ("origin", .string(origin))]
            if let source { fields.append(("source", .string(source))) }
            fields += [("secret", .bool(e.secret)), ("live", .bool(e.live && !neverRemote.contains(e.key)
                                                   && AgentSchema.schema.key(e.key)?.localOnly != true))]
            return .object(fields)
        })
    }
}
