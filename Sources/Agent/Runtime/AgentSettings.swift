// AgentSettings: a validated Configuration turned into the typed values the
// agent's parts take, plus the checks a single key's type cannot make (the
// access key's format, min ≤ max of the reconnect interval), which the
// loader runs with the per-key ones. Errors name the key and where its
// value came from, like every other config error.
//
// Thread: a value; built on the loop thread (or the main thread before it runs).
import ConfigFile
import MonitorModel
import MonitorRunners
import Reactor
import Wire

/// Everything the runtime needs from one configuration. A value.
public struct AgentSettings: Equatable, Sendable {
    public var accessKey: AccessKey
    /// `state_dir`: where the agent keeps what outlives a process (StateDirectory).
    public var stateDir: String
    /// The disk spool (`spool_*`); nil when `spool_max_bytes` is 0.
    public var spool: SpoolSettings?
    public var agentName: String
    public var groups: [String]
    public var uplink: UplinkSettings
    public var ingest: IPAReceiver.Settings
    /// StatsD sockets (`statsd_port`, `statsd_bind`, `statsd_socket`).
    public var statsd: StatsDReceiver.Settings
    /// `statsd_max_series`, `statsd_max_set_members`.
    public var statsdLimits: StatsDPipeline.Limits
    public var capture: Bool
    public var aggregationIntervalMs: Int
    public var statusIntervalMs: Int
    public var syncIntervalMs: Int
    public var forwardRawEvents: Bool
    /// Replay: records with older timestamps are dropped as `too_old`.
    public var replayMaxAgeMs: Int
    public var logLevel: LogLevel
    public var logFormat: LogFormat
    /// What monitors may do here (`exec_monitors`, `monitor_env`).
    public var monitorPolicy: MonitorEngine.Policy
    /// What the collector may change here (`remote_config`).
    public var remote: RemotePolicy

    /// The checks a key's type cannot make; the loader runs them with the
    /// per-key checks (so a file's every mistake is reported in one run),
    /// and `init` again for updates while running.
    public static let checks: [ConfigCheck] = [
        ConfigCheck(keys: ["access_key"]) { config in
            do throws(AccessKeyError) {
                _ = try AccessKey(parsing: config.string("access_key"))
                return []
            } catch {
                let why: String
                switch error {
                case .missingSeparator: why = "(not three parts separated by '.')"
                case .badProjectID: why = "(the project id is not 1-64 of A-Z a-z 0-9 . _ -)"
                case .badSecret: why = "(the secret is not 43 base64url characters)"
                case .badCollectorKey: why = "(the collector key is not 43 base64url characters)"
                case .missingCollectorKey: why = "(an old key without the collector's public key: create a new one with `vigil-collector keys create`)"
                }
                return [config.invalid("access_key", expected: "an access key <project-id>.<secret>.<collector-key> \(why)", got: nil)]
            }
        },
        ConfigCheck(keys: ["reconnect_interval_min", "reconnect_interval_max"]) { config in
            let minMs = config.int("reconnect_interval_min"), maxMs = config.int("reconnect_interval_max")
            guard minMs > maxMs else { return [] }
            return [config.invalid("reconnect_interval_min", expected: "at most reconnect_interval_max (\(maxMs) ms)", got: "\(minMs)")]
        },
        ConfigCheck(keys: ["spool_max_bytes"]) { config in
            let n = config.int("spool_max_bytes")
            guard n != 0 && n < SpoolSettings.minMaxBytes else { return [] }
            return [config.invalid("spool_max_bytes", expected: "0 (no spool) or at least \(SpoolSettings.minMaxBytes) bytes", got: "\(n)")]
        },
        ConfigCheck(keys: ["ipa_bind", "ipa_port"]) { config in
            let port = UInt16(config.int("ipa_port"))
            // The schema accepted each as an IP literal; brackets already gone.
            return config.list("ipa_bind").filter { (try? SocketAddress(ip: $0, port: port)) == nil }
                .map { config.invalid("ipa_bind", expected: "IP addresses", got: $0) }
        },
        ConfigCheck(keys: ["statsd_bind", "statsd_port"]) { config in
            let port = UInt16(config.int("statsd_port"))
            return config.list("statsd_bind").filter { (try? SocketAddress(ip: $0, port: port)) == nil }
                .map { config.invalid("statsd_bind", expected: "IP addresses", got: $0) }
        },
        ConfigCheck(keys: ["exec_monitors"]) { config in
            let dirs = config.list("exec_monitors")
            if dirs == ["off"] { return [] }
            return dirs.filter { !$0.hasPrefix("/") }
                .map { config.invalid("exec_monitors", expected: "off, or absolute directory paths", got: $0) }
        },
        ConfigCheck(keys: ["monitor_env"]) { config in
            config.list("monitor_env").compactMap { name in
                if !EnvResolver.mayEverRead(name) {
                    return config.invalid("monitor_env", expected: "variable names other than VIGIL_* (the agent's own settings, the access key among them, are never available to monitors)", got: name)
                }
                if EnvReference.names(in: "${env:\(name)}") != [name] {
                    return config.invalid("monitor_env", expected: "variable names of letters, digits and _", got: name)
                }
                return nil
            }
        },
        ConfigCheck(keys: ["remote_config"]) { config in
            config.list("remote_config").compactMap { key in
                guard let k = AgentSchema.schema.key(key) else {
                    return config.invalid("remote_config", expected: "names of agent configuration keys", got: key)
                }
                if k.localOnly || k.secret {
                    return config.invalid("remote_config", expected: "keys other than the policy keys and the access key (never remote)", got: key)
                }
                if !k.live {
                    return config.invalid("remote_config", expected: "keys that can change while running (\(key) cannot)", got: key)
                }
                return nil
            }
        },
    ]

    /// Reads `config` (already valid key by key); throws the errors of
    /// `checks`, all of them.
    public init(_ config: Configuration) throws(ConfigErrors) {
        let errors = config.errors(of: AgentSettings.checks)
        if !errors.isEmpty { throw ConfigErrors(errors) }
        let key = try? AccessKey(parsing: config.string("access_key"))
        let minMs = config.int("reconnect_interval_min"), maxMs = config.int("reconnect_interval_max")
        let port = UInt16(config.int("ipa_port"))
        var addresses: [SocketAddress] = []
        for ip in config.list("ipa_bind") {
            if let a = try? SocketAddress(ip: ip, port: port), !addresses.contains(a) { addresses.append(a) }
        }

        accessKey = key!
        stateDir = config.string("state_dir")
        let spoolBytes = config.int("spool_max_bytes")
        spool = spoolBytes == 0 ? nil : SpoolSettings(
            directory: SpoolSettings.resolve(spoolDir: config.string("spool_dir"), stateDir: stateDir),
            maxBytes: spoolBytes, sync: SpoolSettings.Sync(rawValue: config.string("spool_sync")) ?? .interval,
            syncIntervalMs: config.int("spool_sync_interval_ms"))
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
        let statsdPort = UInt16(config.int("statsd_port"))
        var statsdAddresses: [SocketAddress] = []
        if statsdPort != 0 {
            for ip in config.list("statsd_bind") {
                if let a = try? SocketAddress(ip: ip, port: statsdPort), !statsdAddresses.contains(a) { statsdAddresses.append(a) }
            }
        }
        statsd = StatsDReceiver.Settings(addresses: statsdAddresses, socketPath: config.string("statsd_socket"),
                                         receiveBuffer: config.int("ipa_rcvbuf"))
        statsdLimits = StatsDPipeline.Limits(maxSeries: config.int("statsd_max_series"),
                                             maxSetMembers: config.int("statsd_max_set_members"))
        capture = config.bool("capture")
        aggregationIntervalMs = config.int("aggregation_interval_ms")
        statusIntervalMs = config.int("status_interval_ms")
        syncIntervalMs = config.int("schedule_sync_interval_ms")
        forwardRawEvents = config.bool("forward_raw_events")
        replayMaxAgeMs = config.int("replay_max_age_ms")
        logLevel = LogLevel(name: config.string("log_level")) ?? .info
        logFormat = LogFormat(rawValue: config.string("log_format")) ?? .text
        let dirs = config.list("exec_monitors")
        monitorPolicy = MonitorEngine.Policy(exec: dirs == ["off"] ? .disabled : .directories(dirs),
                                             environment: Set(config.list("monitor_env")))
        remote = RemotePolicy(config)
    }
}
