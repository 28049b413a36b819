// The collector's configuration keys (issue: collector, "Command line and
// configuration"). Names and defaults are part of the command-line contract:
// scripts and tests rely on them.
//
// `live` keys are taken over by SIGHUP; the others need a restart (the
// sockets, the data directory and the listen backlog are fixed at start).

public enum CollectorSchema {
    public static let keys: [ConfigKey] = [
        ConfigKey("listen", .address(defaultPort: 6600), default: "0.0.0.0:6600",
                  help: "address for agent sessions (an IP literal and port)"),
        ConfigKey("http_listen", .address(defaultPort: 6680), default: "127.0.0.1:6680",
                  help: "address of the HTTP API, /healthz and /metrics"),
        ConfigKey("http_max_connections", .integer(1...100_000), default: "256",
                  help: "open HTTP connections in all; one more is closed at accept"),
        ConfigKey("http_max_connections_per_address", .integer(1...100_000), default: "32",
                  help: "open HTTP connections from one IP address; one more is closed at accept, so slow clients from one "
                      + "address cannot take every connection"),
        ConfigKey("http_request_deadline_ms", .milliseconds(1000...3_600_000), default: "30000",
                  help: "time an HTTP request has to arrive in full and its answer to be sent, from the connection's opening "
                      + "or its previous answer (the collector's own time on the answer not counted); then the connection is closed"),
        ConfigKey("metrics_listen", .string(allowEmpty: true), default: "",
                  help: "a second HTTP address serving only /metrics and /healthz (plain HTTP, no token), so Prometheus "
                      + "need not reach the API; an IP literal and port; empty: off"),
        ConfigKey("http_tls_cert", .string(allowEmpty: true), default: "",
                  help: "PEM file of the HTTP API's TLS certificate (chain), with http_tls_key; empty: plain HTTP"),
        ConfigKey("http_tls_key", .string(allowEmpty: true), default: "",
                  help: "PEM file of the TLS private key (unencrypted), with http_tls_cert; read at start, never logged"),
        ConfigKey("health_store_stall_ms", .milliseconds(1000...3_600_000), default: "10000", live: true,
                  help: "writes waiting this long without a committed transaction make /healthz answer 503 (store_stalled)"),
        ConfigKey("health_loop_stall_ms", .milliseconds(50...600_000), default: "1000", live: true,
                  help: "a loop iteration longer than this makes /healthz answer 503 (loop_stalled) for the next 10 s"),
        ConfigKey("data_dir", .string(allowEmpty: false), default: "./data",
                  help: "directory of the database and the generated admin token"),
        ConfigKey("store", .choice(["sqlite", "postgresql"]), default: "sqlite",
                  help: "where the collector keeps its data: sqlite (data_dir/vigil.db) or postgresql (postgresql_url)"),
        ConfigKey("postgresql_url", .string(allowEmpty: true), default: "", secret: true,
                  help: "with store = postgresql: the server and database, handed to libpq as written "
                      + "(postgresql://user@host:port/db?sslmode=… or host=… dbname=… pairs); shown redacted"),
        ConfigKey("postgresql_password_file", .string(allowEmpty: true), default: "",
                  help: "file holding the PostgreSQL password (read at start, never logged; it must exist and be readable); "
                      + "empty: the URL's, PGPASSWORD or ~/.pgpass, as libpq finds it"),
        ConfigKey("collector_id", .string(allowEmpty: true), default: "",
                  help: "this collector's name in a cluster (agent ownership, control relayed through the database, "
                      + "`cluster status`): 1 to 48 of A-Z a-z 0-9 . _ -, unique per collector; empty: the host name "
                      + "and the agent listen port (host-6600), with the address when listen names one (host-127.0.0.2-6600)"),
        ConfigKey("admin_token", .string(allowEmpty: true), default: "", secret: true, live: true,
                  help: "bearer token of the HTTP API; empty: generated at first start into data_dir/admin_token"),
        ConfigKey("max_clients", .integer(1...1_000_000), default: "10000", live: true,
                  help: "most concurrent agent sessions; one more is refused with a capacity error"),
        ConfigKey("backlog", .integer(1...65535), default: "4096",
                  help: "listen(2) backlog (the kernel caps it at net.core.somaxconn)"),
        ConfigKey("max_handshakes_per_address", .integer(1...1_000_000), default: "256", live: true,
                  help: "connections from one IP address that have not finished their handshake; one more is closed at accept"),
        ConfigKey("handshake_reserve", .integer(0...1_000_000), default: "500", live: true,
                  help: "slots of max_clients kept for agents that complete their handshake (at most a tenth of max_clients): "
                      + "at most max_clients minus this many connections may be in their handshake, and one more closes the oldest of them"),
        ConfigKey("session_outbound_budget_bytes", .bytes((64 << 10)...(1 << 40)), default: "256M", live: true,
                  help: "bytes queued to send to agents across all sessions; while more are queued, a session holding more "
                      + "than its share (the budget divided among the sessions) is dropped at its next write (counted)"),
        ConfigKey("handshake_timeout_ms", .milliseconds(100...600_000), default: "5000", live: true,
                  help: "time from accept to a completed handshake"),
        ConfigKey("session_idle_timeout_ms", .milliseconds(1000...86_400_000), default: "120000", live: true,
                  help: "silence that closes a session (a Ping is sent at half)"),
        ConfigKey("status_write_interval_ms", .milliseconds(0...3_600_000), default: "2000", live: true,
                  help: "per agent session, at most one stored status per interval: Status records in between replace "
                      + "the waiting one (the latest wins, counted) and it is written when the interval ends; 0 stores every one"),
        ConfigKey("store_max_pending_rows", .integer(1_000...10_000_000), default: "200000",
                  help: "rows queued for the database and not yet committed; beyond it writes are refused as overloaded "
                      + "(the agents' sessions are then not read until it is half empty)"),
        ConfigKey("store_max_pending_reads", .integer(16...1_000_000), default: "1024",
                  help: "database reads queued and not yet answered (API queries, agents' schedules); beyond it reads are "
                      + "refused at once (HTTP 503)"),
        ConfigKey("retention_days", .integer(0...36_500), default: "30", live: true,
                  help: "days of measurements, events, status and audit kept; 0 keeps everything"),
        ConfigKey("agent_retention_days", .integer(0...36_500), default: "30", live: true,
                  help: "days without a session after which an agent is forgotten (its row, history and overrides); 0 keeps every agent"),
        ConfigKey("self_metrics_interval_ms", .milliseconds(100...3_600_000), default: "10000", live: true,
                  help: "how often the collector stores a sample of its own health (GET /api/v1/collector/history)"),
        ConfigKey("loop_slow_iteration_ms", .milliseconds(0...60_000), default: "50", live: true,
                  help: "a loop iteration at least this long is counted and logged (rate-limited) with the callbacks that ran "
                      + "in it and their times; 0 turns it and the per-callback timing off"),
        ConfigKey("self_metrics_retention_days", .integer(0...36_500), default: "7", live: true,
                  help: "days of the collector's own health history kept; 0 keeps everything"),
        ConfigKey("upload_max_bytes", .integer(1...1_099_511_627_776), default: "1073741824", live: true,
                  help: "largest capture file one upload may send (bytes); a larger one is refused with 413"),
        ConfigKey("upload_max_concurrent", .integer(1...64), default: "2", live: true,
                  help: "capture uploads running at once; one more is refused with 429"),
        ConfigKey("remote_write_url", .string(allowEmpty: true), default: "",
                  help: "Prometheus remote-write endpoint (http:// or https://host:port/path) that receives what is stored; empty: off"),
        ConfigKey("remote_write_username", .string(allowEmpty: true), default: "",
                  help: "basic-auth user for remote_write_url (with remote_write_password_file)"),
        ConfigKey("remote_write_password_file", .string(allowEmpty: true), default: "",
                  help: "file holding the basic-auth password (read at start, never logged)"),
        ConfigKey("remote_write_bearer_token_file", .string(allowEmpty: true), default: "",
                  help: "file holding a bearer token for remote_write_url (read at start, never logged)"),
        ConfigKey("remote_write_tls_ca_file", .string(allowEmpty: true), default: "",
                  help: "PEM file of the CAs that verify an https remote_write_url (read at start); empty: the system trust store"),
        ConfigKey("remote_write_max_samples_per_request", .integer(1...100_000), default: "2000",
                  help: "most samples in one remote-write request"),
        ConfigKey("remote_write_queue_samples", .integer(1000...10_000_000), default: "100000",
                  help: "most samples waiting to be sent; the oldest are dropped (counted) beyond"),
        ConfigKey("remote_write_max_series", .integer(1...10_000_000), default: "100000",
                  help: "most measurement series with running totals; rows of further series are dropped (counted)"),
        ConfigKey("remote_write_flush_ms", .milliseconds(10...60_000), default: "1000",
                  help: "longest a sample waits before a request that is not full is sent"),
        ConfigKey("remote_write_timeout_ms", .milliseconds(100...300_000), default: "10000",
                  help: "connect, send and answer of one remote-write request; then it is retried"),
        ConfigKey("console_dir", .string(allowEmpty: true), default: "",
                  help: "directory of the web console's files (index.html, …); empty: the installed ../share/vigil/console next to the program, else the console/ folder of the source tree it was built from"),
        ConfigKey("console_session_ttl_ms", .milliseconds(60_000...604_800_000), default: "43200000",
                  help: "how long a console sign-in lasts"),
        ConfigKey("console_max_sessions", .integer(1...10_000), default: "64",
                  help: "most console sign-ins kept at once; one more ends the least recently used"),
        ConfigKey("alert_eval_interval_ms", .milliseconds(100...3_600_000), default: "10000", live: true,
                  help: "how often the collector evaluates the alert rules (docs/ALERTS.md); the evaluation lease lasts three intervals"),
        ConfigKey("alert_eval_slice", .integer(1...10_000), default: "50", live: true,
                  help: "alert rules evaluated at a time; the next slice starts on a later loop iteration"),
        ConfigKey("alert_evaluator_id", .string(allowEmpty: true), default: "",
                  help: "this collector's name as holder of the alert evaluation lease; empty: the host name and the listen address"),
        ConfigKey("alert_group_wait_ms", .milliseconds(0...600_000), default: "1000", live: true,
                  help: "how long alerts for one receiver are gathered into one notification"),
        ConfigKey("alert_notify_timeout_ms", .milliseconds(100...300_000), default: "10000", live: true,
                  help: "how long one notification delivery (webhook POST, e-mail) may take"),
        ConfigKey("alert_notify_max_concurrent", .integer(1...64), default: "4", live: true,
                  help: "notification deliveries at once (each https webhook or e-mail is one vigil-notify process)"),
        ConfigKey("alert_notify_retries", .integer(0...10), default: "3", live: true,
                  help: "times a failed delivery is tried again, after 1 s, 2 s, 4 s, …"),
        ConfigKey("alert_notify_helper", .string(allowEmpty: true), default: "",
                  help: "path of vigil-notify (https webhooks and e-mail); empty: next to the collector's program"),
        ConfigKey("log_level", .choice(["debug", "info", "warn", "error"]), default: "info", live: true, help: "log level"),
        ConfigKey("log_format", .choice(["text", "json"]), default: "text", live: true, help: "log line format"),
    ]

    /// `VIGIL_COLLECTOR_<KEY>` environment variables override the file (a
    /// prefix of its own, so an agent's `VIGIL_LOG_LEVEL` on the same host
    /// does not leak into the collector).
    public static let schema = ConfigSchema(keys: keys, environmentPrefix: "VIGIL_COLLECTOR_")
}
