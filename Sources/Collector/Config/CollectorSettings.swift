// CollectorSettings: the collector's configuration as typed values, checked
// beyond what the schema's types can say (a listen address must be an IP
// literal). Errors name the key and where its value came from, like every
// configuration error.
import CollectorStore
import ConfigFile
import HTTPServer
import Reactor
import RemoteWrite
#if canImport(Glibc)
import Glibc
#endif

public struct CollectorSettings: Sendable {
    public var listen: SocketAddress
    public var httpListen: SocketAddress
    /// `http_max_connections`, `http_max_connections_per_address`, `http_request_deadline_ms`.
    public var httpLimits: HTTPLimits
    /// `health_store_stall_ms`, `health_loop_stall_ms` (seconds): HealthWatch.
    public var healthStoreStall: Double
    public var healthLoopStall: Double
    /// `metrics_listen`: the /metrics and /healthz listener; nil when empty.
    public var metricsListen: SocketAddress?
    /// `http_tls_cert` and `http_tls_key` (both or neither); empty: plain HTTP.
    public var httpTLSCert: String
    public var httpTLSKey: String
    public var dataDir: String
    /// `sqlite` or `postgresql` (`store`).
    public var store: StoreKind
    /// libpq's conninfo as configured (`postgresql_url`); never log it: `PGConnInfo.redacted`.
    public var postgresqlURL: String
    /// File holding the PostgreSQL password; empty: libpq's own sources.
    public var postgresqlPasswordFile: String
    /// Empty: generated into `data_dir/admin_token` at first start.
    public var adminToken: String
    /// `collector_id`; empty: derived at start (ClusterNode.collectorID).
    public var collectorID: String
    public var maxClients: Int
    public var backlog: Int32
    public var maxHandshakesPerAddress: Int
    public var handshakeReserve: Int
    /// `session_outbound_budget_bytes`.
    public var outboundBudget: Int
    public var handshakeTimeout: Double
    public var idleTimeout: Double
    public var statusWriteInterval: Double
    public var storeMaxPendingRows: Int
    public var storeMaxPendingReads: Int
    public var retentionDays: Int
    public var agentRetentionDays: Int
    /// Seconds between samples of the collector's own health.
    public var selfMetricsInterval: Double
    public var selfMetricsRetentionDays: Int
    /// Loop iterations at least this long (seconds) are logged with what ran; 0: off.
    public var loopSlowIteration: Double
    /// Capture uploads: the largest, and how many at once.
    public var uploadMaxBytes: Int64
    public var uploadMaxConcurrent: Int
    public var consoleDir: String
    /// Alert evaluation: seconds between rounds, rules at a time, the lease holder's name.
    public var alertEvalInterval: Double
    public var alertEvalSlice: Int
    public var alertEvaluatorId: String
    /// Notifications: group wait and delivery timeout (seconds), deliveries at once, retries, the helper's path.
    public var alertGroupWait: Double
    public var alertNotifyTimeout: Double
    public var alertNotifyMaxConcurrent: Int
    public var alertNotifyRetries: Int
    public var alertNotifyHelper: String
    public var consoleSessionTTL: Double
    public var consoleMaxSessions: Int
    public var logLevel: LogLevel
    public var logFormat: LogFormat
    /// The remote-write settings; nil when `remote_write_url` is empty.
    public var remoteWrite: RemoteWriteSettings?

    public init(_ c: Configuration) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        func address(_ key: String) -> SocketAddress {
            let (host, port) = c.address(key)
            do {
                return try SocketAddress(ip: host, port: port)
            } catch {
                errors.append(ConfigError(location: CollectorSettings.location(of: key, in: c), key: key,
                                          problem: .invalidValue(expected: "an IP address and port (a host name cannot be listened on)",
                                                                 got: c.value(key)?.description)))
                return SocketAddress.v4(sockaddr_in_any(port: port))
            }
        }
        listen = address("listen")
        httpListen = address("http_listen")
        if CollectorSettings.overlap(listen, httpListen) {
            errors.append(ConfigError(location: CollectorSettings.location(of: "http_listen", in: c), key: "http_listen",
                                      problem: .invalidValue(expected: "an address and port other than listen's (\(listen)): "
                                                                 + "the agent sessions and the HTTP API cannot share a socket",
                                                             got: c.value("http_listen")?.description)))
        }
        httpLimits = HTTPLimits(maxConnections: c.int("http_max_connections"),
                                maxConnectionsPerAddress: c.int("http_max_connections_per_address"),
                                requestDeadline: Double(c.int("http_request_deadline_ms")) / 1000)
        healthStoreStall = Double(c.int("health_store_stall_ms")) / 1000
        healthLoopStall = Double(c.int("health_loop_stall_ms")) / 1000
        metricsListen = nil
        let m = c.string("metrics_listen")
        if !m.isEmpty {
            if let a = try? SocketAddress(parsing: m) {
                metricsListen = a
                for (other, value) in [("listen", listen), ("http_listen", httpListen)] where CollectorSettings.overlap(a, value) {
                    errors.append(ConfigError(location: CollectorSettings.location(of: "metrics_listen", in: c), key: "metrics_listen",
                                              problem: .invalidValue(expected: "an address and port other than \(other)'s (\(value))", got: m)))
                }
            } else {
                errors.append(ConfigError(location: CollectorSettings.location(of: "metrics_listen", in: c), key: "metrics_listen",
                                          problem: .invalidValue(expected: CollectorSettings.metricsListenExpectation, got: m)))
            }
        }
        httpTLSCert = c.string("http_tls_cert")
        httpTLSKey = c.string("http_tls_key")
        dataDir = c.string("data_dir")
        store = StoreKind(rawValue: c.string("store")) ?? .sqlite
        postgresqlURL = c.string("postgresql_url")
        postgresqlPasswordFile = c.string("postgresql_password_file")
        if store == .postgresql && postgresqlURL.isEmpty {
            errors.append(ConfigError(location: CollectorSettings.location(of: "postgresql_url", in: c), key: "postgresql_url",
                                      problem: .invalidValue(expected: "the PostgreSQL server and database (store = postgresql)", got: nil)))
        }
        adminToken = c.string("admin_token")
        collectorID = c.string("collector_id")
        maxClients = c.int("max_clients")
        backlog = Int32(c.int("backlog"))
        maxHandshakesPerAddress = c.int("max_handshakes_per_address")
        handshakeReserve = c.int("handshake_reserve")
        outboundBudget = c.int("session_outbound_budget_bytes")
        handshakeTimeout = Double(c.int("handshake_timeout_ms")) / 1000
        idleTimeout = Double(c.int("session_idle_timeout_ms")) / 1000
        statusWriteInterval = Double(c.int("status_write_interval_ms")) / 1000
        storeMaxPendingRows = c.int("store_max_pending_rows")
        storeMaxPendingReads = c.int("store_max_pending_reads")
        retentionDays = c.int("retention_days")
        agentRetentionDays = c.int("agent_retention_days")
        selfMetricsInterval = Double(c.int("self_metrics_interval_ms")) / 1000
        selfMetricsRetentionDays = c.int("self_metrics_retention_days")
        loopSlowIteration = Double(c.int("loop_slow_iteration_ms")) / 1000
        uploadMaxBytes = Int64(c.int("upload_max_bytes"))
        uploadMaxConcurrent = c.int("upload_max_concurrent")
        consoleDir = c.string("console_dir")
        alertEvalInterval = Double(c.int("alert_eval_interval_ms")) / 1000
        alertEvalSlice = c.int("alert_eval_slice")
        alertEvaluatorId = c.string("alert_evaluator_id")
        alertGroupWait = Double(c.int("alert_group_wait_ms")) / 1000
        alertNotifyTimeout = Double(c.int("alert_notify_timeout_ms")) / 1000
        alertNotifyMaxConcurrent = c.int("alert_notify_max_concurrent")
        alertNotifyRetries = c.int("alert_notify_retries")
        alertNotifyHelper = c.string("alert_notify_helper")
        consoleSessionTTL = Double(c.int("console_session_ttl_ms")) / 1000
        consoleMaxSessions = c.int("console_max_sessions")
        logLevel = LogLevel(name: c.string("log_level")) ?? .info
        logFormat = LogFormat(rawValue: c.string("log_format")) ?? .text
        remoteWrite = nil
        let url = c.string("remote_write_url")
        if !url.isEmpty {
            do {
                remoteWrite = RemoteWriteSettings(
                    url: try RemoteWriteURL(parsing: url), username: c.string("remote_write_username"),
                    passwordFile: c.string("remote_write_password_file"), bearerTokenFile: c.string("remote_write_bearer_token_file"),
                    tlsCAFile: c.string("remote_write_tls_ca_file"),
                    maxSamplesPerRequest: c.int("remote_write_max_samples_per_request"),
                    queueSamples: c.int("remote_write_queue_samples"), maxSeries: c.int("remote_write_max_series"),
                    flushInterval: Double(c.int("remote_write_flush_ms")) / 1000,
                    timeout: Double(c.int("remote_write_timeout_ms")) / 1000)
            } catch {
                errors.append(ConfigError(location: CollectorSettings.location(of: "remote_write_url", in: c), key: "remote_write_url",
                                          problem: .invalidValue(expected: error.description, got: url)))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
    }

    /// What `init` checks beyond the keys' types, for the loader to run
    /// with the per-key checks (every error of a file in one run).
    static let checks: [ConfigCheck] = ["listen", "http_listen"].map { key in
        ConfigCheck(keys: [key]) { c in
            let (host, port) = c.address(key)
            if (try? SocketAddress(ip: host, port: port)) != nil { return [] }
            return [c.invalid(key, expected: "an IP address and port (a host name cannot be listened on)",
                              got: c.value(key)?.description)]
        }
    } + [ConfigCheck(keys: ["store", "postgresql_url"]) { c in
        guard c.string("store") == "postgresql", c.string("postgresql_url").isEmpty else { return [] }
        return [c.invalid("postgresql_url", expected: "the PostgreSQL server and database (store = postgresql)", got: nil)]
    }, ConfigCheck(keys: ["postgresql_password_file"]) { c in
        // Found now (check-config, a start, a reload), not at the first connection.
        let path = c.string("postgresql_password_file")
        guard !path.isEmpty, let why = CollectorSettings.unreadableFile(path) else { return [] }
        return [c.invalid("postgresql_password_file", expected: "a readable file holding the PostgreSQL password (\(path): \(why))",
                          got: path)]
    }, ConfigCheck(keys: ["collector_id"]) { c in
        let id = c.string("collector_id")
        if id.isEmpty || ClusterNames.isValidCollectorID(id) { return [] }
        return [c.invalid("collector_id", expected: "1 to 48 of A-Z a-z 0-9 . _ - (or empty: host name and listen address)", got: id)]
    }, ConfigCheck(keys: ["metrics_listen"]) { c in
        let m = c.string("metrics_listen")
        if m.isEmpty || (try? SocketAddress(parsing: m)) != nil { return [] }
        return [c.invalid("metrics_listen", expected: CollectorSettings.metricsListenExpectation, got: m)]
    }, ConfigCheck(keys: ["http_tls_cert", "http_tls_key"]) { c in
        let cert = c.string("http_tls_cert"), key = c.string("http_tls_key")
        if cert.isEmpty == key.isEmpty { return [] }
        let missing = cert.isEmpty ? "http_tls_cert" : "http_tls_key"
        return [c.invalid(missing, expected: "a PEM file: http_tls_cert and http_tls_key are set together", got: "")]
    }] + RemoteWriteSettings.checks

    /// Why `path` cannot be read as a file; nil when it can.
    static func unreadableFile(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return errno == ENOENT ? "no such file" : String(cString: strerror(errno)) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return "not a regular file" }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "cannot be read: \(String(cString: strerror(errno)))" }
        Glibc.close(fd)
        return nil
    }

    static let metricsListenExpectation = "an IP address and port (a host name cannot be listened on), or empty for none"

    /// Whether two listen addresses would claim the same socket: the same
    /// port (0, "any free port", never clashes) on the same address, or on
    /// a wildcard address that covers the other (`0.0.0.0` every IPv4
    /// address; `::` every address, as Linux binds it dual-stack).
    static func overlap(_ a: SocketAddress, _ b: SocketAddress) -> Bool {
        guard a.port != 0, a.port == b.port else { return false }
        func covers(_ x: SocketAddress, _ y: SocketAddress) -> Bool {
            x.ip == "::" || (x.ip == "0.0.0.0" && y.family == AF_INET)
        }
        return a.ip == b.ip || covers(a, b) || covers(b, a)
    }

    /// Where a key's value came from, as an error location.
    static func location(of key: String, in c: Configuration) -> ConfigLocation {
        switch c.origin(key) {
        case .file(let path, let line)?: return .file(path: path, line: line)
        case .environment(let v)?: return .environment(variable: v)
        case .commandLine?: return .commandLine
        default: return .update
        }
    }

    /// Loads and checks a configuration: defaults < file < environment
    /// (`VIGIL_COLLECTOR_<KEY>`) < `--set`. Every error is collected.
    public static func load(file: String?, environment: [String: String],
                            overrides: [(key: String, value: String)]) throws(ConfigErrors) -> (Configuration, CollectorSettings) {
        let c = try CollectorSchema.schema.load(file: file, environment: environment, overrides: overrides,
                                                checks: CollectorSettings.checks)
        return (c, try CollectorSettings(c))
    }
}

/// A placeholder address for a value already reported as an error.
private func sockaddr_in_any(port: UInt16) -> sockaddr_in {
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    return sa
}
