// The agent's configuration keys. Lives beside the parser because both
// programs need it: the agent to load its file, the collector to show an
// agent's effective configuration and to check an update before sending it.

public enum AgentSchema {
    public static let keys: [ConfigKey] = [
        ConfigKey("server_host", .list(.host, allowEmpty: false), default: "127.0.0.1",
                  help: "collectors to connect to, in order of preference"),
        ConfigKey("server_port", .integer(1...65535), default: "6600", help: "collector port"),
        ConfigKey("access_key", .string(allowEmpty: false), default: nil, secret: true,
                  help: "the project's access key, <project-id>.<secret>.<collector-key>"),
        ConfigKey("state_dir", .string(allowEmpty: false), default: "./state",
                  help: "the agent's own directory: its key, the filter rules it last received, its spool (created 0700)"),
        ConfigKey("spool_dir", .string(allowEmpty: false), default: "spool",
                  help: "the disk spool's directory; relative paths are under state_dir"),
        ConfigKey("spool_max_bytes", .bytes(0...1_099_511_627_776), default: "268435456",
                  help: "disk spool size limit (the oldest segment is dropped beyond it); 0 = no spool, memory only"),
        ConfigKey("spool_sync", .choice(["interval", "always", "never"]), default: "interval",
                  help: "when spooled records are forced to disk: every spool_sync_interval_ms, after each record, or never"),
        ConfigKey("spool_sync_interval_ms", .milliseconds(10...60_000), default: "1000",
                  help: "fsync interval of spool_sync interval (and how often queued records are spooled while offline)"),
        ConfigKey("agent_name", .string(allowEmpty: true), default: "", live: true,
                  help: "name shown in the collector (default: the host name)"),
        ConfigKey("groups", .list(.string(allowEmpty: false), allowEmpty: false), default: "default", live: true,
                  help: "monitor groups this agent runs"),
        ConfigKey("tcp_connection_timeout", .milliseconds(100...600_000), default: "5000", live: true,
                  help: "connect timeout to a collector"),
        ConfigKey("tcp_so_timeout", .milliseconds(1000...3_600_000), default: "60000", live: true,
                  help: "silence before the agent pings, then gives up on the session"),
        ConfigKey("net_send_max_bytes", .bytes(4096...268_435_456), default: "5242880", live: true,
                  help: "bytes written per burst before the loop gets control back"),
        ConfigKey("net_send_queue1_size", .integer(1...1_000_000), default: "512", live: true,
                  help: "queue 1 (aggregates, monitor results, status, control answers) capacity in records"),
        ConfigKey("net_send_queue2_size", .integer(1...1_000_000), default: "1024", live: true,
                  help: "queue 2 (raw events) capacity in records"),
        ConfigKey("reconnect_interval_min", .milliseconds(100...3_600_000), default: "5000", live: true,
                  help: "shortest wait after a failed round of collectors"),
        ConfigKey("reconnect_interval_max", .milliseconds(100...3_600_000), default: "10000", live: true,
                  help: "longest (jittered) wait after a failed round of collectors"),
        ConfigKey("ipa_port", .integer(1...65535), default: "51712", live: true,
                  help: "UDP port for in-process instrumentation"),
        ConfigKey("ipa_bind", .list(.ipAddress, allowEmpty: false), default: "127.0.0.1", live: true,
                  help: "addresses to receive instrumentation on (IPv6 allowed)"),
        ConfigKey("ipa_rcvbuf", .bytes(0...268_435_456), default: "4194304", live: true,
                  help: "UDP receive buffer (SO_RCVBUF); 0 keeps the kernel default"),
        ConfigKey("statsd_port", .integer(0...65535), default: "0", live: true,
                  help: "UDP port for StatsD and DogStatsD metrics (8125 is the usual one); 0 turns the UDP listener off"),
        ConfigKey("statsd_bind", .list(.ipAddress, allowEmpty: false), default: "127.0.0.1", live: true,
                  help: "addresses to receive StatsD on (IPv6 allowed)"),
        ConfigKey("statsd_socket", .string(allowEmpty: true), default: "", live: true,
                  help: "Unix datagram socket path to receive StatsD on as well (empty: none)"),
        ConfigKey("statsd_max_series", .integer(1...1_000_000), default: "10000",
                  help: "StatsD series (name, type, tags) per window; values of further series go to statsd.overflow"),
        ConfigKey("statsd_max_set_members", .integer(0...10_000_000), default: "100000",
                  help: "StatsD set members remembered per window across all sets; further members are counted, not kept"),
        ConfigKey("capture", .bool, default: "on", live: true, help: "receive instrumentation"),
        ConfigKey("aggregation_interval_ms", .milliseconds(100...3_600_000), default: "10000", live: true,
                  help: "aggregation window"),
        ConfigKey("status_interval_ms", .milliseconds(100...3_600_000), default: "10000", live: true,
                  help: "status report interval"),
        ConfigKey("schedule_sync_interval_ms", .milliseconds(100...3_600_000), default: "10000", live: true,
                  help: "schedule and filter-rule sync interval"),
        ConfigKey("forward_raw_events", .bool, default: "off", live: true,
                  help: "also send matched records, redacted, as raw events"),
        ConfigKey("replay_max_age_ms", .milliseconds(60_000...2_592_000_000), default: "86400000", live: true,
                  help: "replay: oldest record timestamp accepted, before now (older: dropped as too_old)"),
        ConfigKey("log_level", .choice(["debug", "info", "warn", "error"]), default: "info", live: true, help: "log level"),
        ConfigKey("log_format", .choice(["text", "json"]), default: "text", live: true, help: "log line format"),
        // Agent-local policy: what the collector may make this agent do.
        ConfigKey("exec_monitors", .list(.string(allowEmpty: false), allowEmpty: false), default: "off", live: true,
                  localOnly: true,
                  help: "directories exec monitors may run commands from (real paths, links resolved), or off"),
        ConfigKey("monitor_env", .list(.string(allowEmpty: false), allowEmpty: true), default: "", live: true,
                  localOnly: true,
                  help: "environment variables monitors may name as ${env:NAME} (never VIGIL_*, never in a host)"),
        ConfigKey("remote_config", .list(.string(allowEmpty: false), allowEmpty: true),
                  default: AgentSchema.defaultRemoteConfig.joined(separator: ", "), live: true, localOnly: true,
                  help: "keys the collector may change on this agent (policy keys never)"),
    ]

    /// The keys a collector may change by default: tuning, capture and
    /// logging. Left out: `agent_name` and `groups` (who the agent is and
    /// which monitors it runs), everything that points the agent elsewhere
    /// (`server_host`, `server_port`, `access_key`, not live anyway) and the
    /// policy keys (`localOnlyKeys`, never remote). `ipa_bind` is in, but a
    /// remote value may name loopback addresses only (`remoteLimit`).
    public static let defaultRemoteConfig = [
        "tcp_connection_timeout", "tcp_so_timeout", "net_send_max_bytes", "net_send_queue1_size",
        "net_send_queue2_size", "reconnect_interval_min", "reconnect_interval_max", "ipa_port", "ipa_bind",
        "ipa_rcvbuf", "capture", "aggregation_interval_ms", "status_interval_ms", "schedule_sync_interval_ms",
        "forward_raw_events", "log_level", "log_format",
    ]

    /// Largest values a remote update may set where the agent's own
    /// configuration may set more (memory the collector could make the
    /// agent hold).
    public static let remoteMaxima: [String: Int] = [
        "net_send_queue1_size": 8192,
        "net_send_queue2_size": 65536,
        "net_send_max_bytes": 16 << 20,
        "ipa_rcvbuf": 16 << 20,
    ]

    public static let schema = ConfigSchema(keys: keys, environmentPrefix: "VIGIL_")
}
