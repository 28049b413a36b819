// AgentSettings: a validated Configuration turned into the typed values the
// agent's parts take, plus the checks a single key's type cannot make (the
// access key's format, min ≤ max of the reconnect interval). Errors name
// the key and where its value came from, like every other config error.
//
// Thread: a value; built on the loop thread (or the main thread before it runs).
import ConfigFile
import Reactor
import Wire

/// Everything the runtime needs from one configuration. A value.
public struct AgentSettings: Equatable, Sendable {
    public var accessKey: AccessKey
    public var agentName: String
    public var groups: [String]
    public var uplink: UplinkSettings
    public var ingest: IPAReceiver.Settings
    public var capture: Bool
    public var aggregationIntervalMs: Int
    public var statusIntervalMs: Int
    public var syncIntervalMs: Int
    public var forwardRawEvents: Bool
    public var logLevel: LogLevel
    public var logFormat: LogFormat

    /// Reads `config` (already valid key by key); throws the cross-key and
    /// format errors, all of them.
    public init(_ config: Configuration) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        var key: AccessKey?
        do throws(AccessKeyError) {
            key = try AccessKey(parsing: config.string("access_key"))
        } catch {
            let why: String
            switch error {
            case .missingSeparator: why = "(no '.' between project id and secret)"
            case .badProjectID: why = "(the project id is not 1-64 of A-Z a-z 0-9 . _ -)"
            case .badSecret: why = "(the secret is not 43 base64url characters)"
            }
            errors.append(AgentSettings.error(config, "access_key",
                                              expected: "an access key <project-id>.<secret> \(why)", got: nil))
        }
        let minMs = config.int("reconnect_interval_min"), maxMs = config.int("reconnect_interval_max")
        if minMs > maxMs {
            errors.append(AgentSettings.error(config, "reconnect_interval_min",
                                              expected: "at most reconnect_interval_max (\(maxMs) ms)", got: "\(minMs)"))
        }
        let port = UInt16(config.int("ipa_port"))
        var addresses: [SocketAddress] = []
        for ip in config.list("ipa_bind") {
            // The schema accepted it as an IP literal; brackets already gone.
            if let a = try? SocketAddress(ip: ip, port: port) {
                if !addresses.contains(a) { addresses.append(a) }
            } else {
                errors.append(AgentSettings.error(config, "ipa_bind", expected: "IP addresses", got: ip))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }

        accessKey = key!
        let name = config.string("agent_name")
        agentName = name.isEmpty ? HostInfo.hostname() : name
        groups = config.list("groups")
        uplink = UplinkSettings(
            hosts: config.list("server_host"), port: UInt16(config.int("server_port")),
            connectTimeout: Double(config.int("tcp_connection_timeout")) / 1000,
            silenceTimeout: Double(config.int("tcp_so_timeout")) / 1000,
            sendMaxBytes: config.int("net_send_max_bytes"),
            queue1Size: config.int("net_send_queue1_size"), queue2Size: config.int("net_send_queue2_size"),
            reconnectMin: Double(minMs) / 1000, reconnectMax: Double(maxMs) / 1000)
        ingest = IPAReceiver.Settings(addresses: addresses, receiveBuffer: config.int("ipa_rcvbuf"))
        capture = config.bool("capture")
        aggregationIntervalMs = config.int("aggregation_interval_ms")
        statusIntervalMs = config.int("status_interval_ms")
        syncIntervalMs = config.int("schedule_sync_interval_ms")
        forwardRawEvents = config.bool("forward_raw_events")
        logLevel = LogLevel(name: config.string("log_level")) ?? .info
        logFormat = LogFormat(rawValue: config.string("log_format")) ?? .text
    }

    /// An error for `key` at the place its current value came from.
    static func error(_ config: Configuration, _ key: String, expected: String, got: String?) -> ConfigError {
        ConfigError(location: location(of: config.origin(key)), key: key,
                    problem: .invalidValue(expected: expected, got: got))
    }

    static func location(of origin: ConfigOrigin?) -> ConfigLocation {
        switch origin {
        case .file(let path, let line): return .file(path: path, line: line)
        case .environment(let v): return .environment(variable: v)
        case .commandLine: return .commandLine
        default: return .update
        }
    }
}
