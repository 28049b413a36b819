// swift-tools-version:6.0
import PackageDescription
import class Foundation.ProcessInfo

// VIGIL_STATIC=1 links the C libraries from their Debian .a archives so
// vigil-agent ships as one binary (see README, "Static build").
let staticC = ProcessInfo.processInfo.environment["VIGIL_STATIC"] == "1"

func cLibrary(_ name: String) -> LinkerSetting {
    staticC ? .unsafeFlags(["-Xlinker", "-l:lib\(name).a"]) : .linkedLibrary(name)
}

let package = Package(
    name: "Vigil",
    products: [
        .library(name: "Reactor", targets: ["Reactor"]),
        .library(name: "Wire", targets: ["Wire"]),
        .library(name: "ConfigFile", targets: ["ConfigFile"]),
        .library(name: "CollectorStore", targets: ["CollectorStore"]),
        .library(name: "JSON", targets: ["JSON"]),
        .library(name: "HTTPServer", targets: ["HTTPServer"]),
        .library(name: "MonitorModel", targets: ["MonitorModel"]),
        .library(name: "MonitorRunners", targets: ["MonitorRunners"]),
        .executable(name: "vigil-agent", targets: ["vigil-agent"]),
        .executable(name: "vigil-collector", targets: ["vigil-collector"]),
        .executable(name: "vigil-load", targets: ["vigil-load"]),
        .executable(name: "vigil-notify", targets: ["vigil-notify"]),
    ],
    targets: [
        // ── C shims over Debian's -dev packages ────────────────────────────
        // libev's macros as static inline functions; nothing else.
        .target(name: "CEv", linkerSettings: [cLibrary("ev"), .linkedLibrary("m")]),
        // Linux socket calls hidden behind _GNU_SOURCE, and the CMSG macros.
        .target(name: "CSystem"),
        // libsodium's header (X25519, ChaCha20-Poly1305, SHA-256, HMAC) from
        // libsodium-dev. No pkgConfig and no `link` in the modulemap: both
        // would add -lsodium and pin the shared library even with
        // VIGIL_STATIC=1; Wire links it through cLibrary, like CEv does libev.
        .systemLibrary(name: "CSodium", providers: [.apt(["libsodium-dev"])]),
        // Debian's libsqlite3-dev.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Debian's libpq-dev: the PostgreSQL client library the PostgreSQL store
        // drives through its nonblocking API.
        .systemLibrary(name: "CPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // libmicrohttpd's variadic start/info calls as fixed-argument functions.
        .target(name: "CMicroHTTPD"),
        // Debian's libsnappy-dev: block compression of remote-write requests.
        .systemLibrary(name: "CSnappy", providers: [.apt(["libsnappy-dev"])]),
        // Debian's libgnutls28-dev: TLS for https remote-write receivers
        // (libmicrohttpd already links libgnutls into the collector).
        .systemLibrary(name: "CGnuTLS", providers: [.apt(["libgnutls28-dev"])]),
        // libcurl (libcurl4-openssl-dev headers) loaded with dlopen on first
        // use, behind fixed-argument wrappers; nothing links -lcurl.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),

        // ── Libraries ──────────────────────────────────────────────────────
        // The one JSON value, its strict parser and its writer (whose string
        // escaper Log uses). Depends on nothing, so Reactor can sit on it. No Foundation.
        .target(name: "JSON"),
        // The event loop: watchers, syscalls, sockets, buffers. No Foundation.
        .target(name: "Reactor", dependencies: ["CEv", "CSystem", "JSON"]),
        // The agent<->collector protocol: preamble, framing, Noise NNpsk0, records, sessions.
        .target(name: "Wire", dependencies: ["CSodium", "Reactor"], linkerSettings: [cLibrary("sodium")]),
        // Configuration files, environment and --set layering, and both programs' keys. No Foundation.
        .target(name: "ConfigFile"),
        // The collector's storage behind an asynchronous seam: embedded SQLite,
        // or a PostgreSQL server over libpq on the loop.
        .target(name: "CollectorStore", dependencies: ["Reactor", "CSQLite", "CPQ"]),
        // libmicrohttpd on a Reactor loop (external epoll, suspended
        // connections for late answers): the collector's API and the console serve on it.
        .target(name: "HTTPServer", dependencies: ["CMicroHTTPD", "Reactor"]),
        // Synthetic monitor definitions: the API document and its validation, and
        // the Schedule record codec. What the collector needs; no runner. No Foundation.
        .target(name: "MonitorModel", dependencies: ["JSON", "Wire"]),
        // Running monitors: the engine, the scheduler, and the http (libcurl
        // multi-socket), tcp and exec runners on the loop. The agent's. No Foundation.
        .target(name: "MonitorRunners", dependencies: ["MonitorModel", "JSON", "Reactor", "Wire", "CCurl", "CSystem"]),
        // Prometheus remote write 1.0 from the loop: the hand-written WriteRequest
        // encoder, snappy, a small HTTP/1.1 client on Reactor TCP (TLS by GnuTLS), the bounded sender.
        .target(name: "RemoteWrite", dependencies: ["Reactor", "CSnappy", "CGnuTLS"]),
        // IPA records parsed, filtered by the project's rules and aggregated:
        // the agent's ingest and the collector's capture uploads run this one
        // code. No I/O, no Foundation.
        .target(name: "IPAPipeline", dependencies: ["Reactor", "Wire"]),
        // Alerting: rule documents and their validation, the state machine,
        // the evaluator on the collector's loop (reading through the store
        // seam, under the store's evaluation lease) and the notifiers.
        .target(name: "Alerts", dependencies: ["JSON", "Reactor", "CollectorStore", "RemoteWrite", "MonitorModel"]),
        // The agent's logic (ingest sockets, uplink, control, replay), as a library
        // so tests and fuzzers link it; `vigil-agent` is its thin executable.
        .target(name: "Agent", dependencies: ["Reactor", "Wire", "ConfigFile", "MonitorModel", "MonitorRunners", "IPAPipeline"]),
        // The collector's logic (sessions, storage, HTTP API) as a library;
        // `vigil-collector` is its thin executable. Monitor definitions only:
        // it never links the runners (libcurl's loader, exec, the resolver).
        .target(name: "Collector", dependencies: ["Reactor", "Wire", "ConfigFile", "CollectorStore", "HTTPServer", "JSON", "MonitorModel", "RemoteWrite",
                                                "IPAPipeline", "Alerts"]),

        // The load generator's logic (simulated agents, ack ledger, verify),
        // as a library so tests link it; `vigil-load` is its thin executable.
        .target(name: "LoadGen", dependencies: ["Reactor", "Wire", "CollectorStore"]),

        // ── Programs ───────────────────────────────────────────────────────
        // The edge agent: argv to AgentCommandLine, nothing else.
        .executableTarget(name: "vigil-agent", dependencies: ["Agent"], path: "Sources/vigil-agent"),
        // The collector: `run`, `keys`, `check-config` (all in Collector's CollectorCommand).
        .executableTarget(name: "vigil-collector", dependencies: ["Collector"]),
        // Many simulated agents on one loop against vigil-collector (scripts/load.sh, soak.sh).
        .executableTarget(name: "vigil-load", dependencies: ["LoadGen"], path: "Sources/vigil-load"),

        // One alert notification with libcurl (https webhooks, SMTP), spawned
        // by the collector per delivery so the collector never links libcurl.
        .executableTarget(name: "vigil-notify", dependencies: ["CCurl", "CSystem", "JSON"], path: "Sources/vigil-notify"),

        // ── Tools (Sources/Tools): fuzz targets, benchmarks, a demo ─────────
        // The libFuzzer hand-over and file replay every fuzz target shares.
        .target(name: "FuzzSupport", path: "Sources/Tools/Fuzz/FuzzSupport"),
        // libFuzzer targets (scripts/fuzz.sh builds them with -D FUZZING);
        // a plain build makes file-replay tools of the same code.
        .executableTarget(name: "fuzz-framing", dependencies: ["FuzzSupport", "Wire"], path: "Sources/Tools/Fuzz/FuzzFraming"),
        .executableTarget(name: "fuzz-records", dependencies: ["FuzzSupport", "Wire"], path: "Sources/Tools/Fuzz/FuzzRecords"),
        .executableTarget(name: "fuzz-handshake", dependencies: ["FuzzSupport", "Wire", "Reactor"], path: "Sources/Tools/Fuzz/FuzzHandshake"),
        // The agent's IPA parser and ingest path.
        .executableTarget(name: "fuzz-ipa", dependencies: ["FuzzSupport", "IPAPipeline"], path: "Sources/Tools/Fuzz/FuzzIPA", exclude: ["seeds"]),
        // The streaming multipart/form-data reader (browser uploads).
        .executableTarget(name: "fuzz-multipart", dependencies: ["FuzzSupport", "HTTPServer"], path: "Sources/Tools/Fuzz/FuzzMultipart",
                          exclude: ["seeds"]),
        // The agent's spool segments and saved filter rules, read back from disk.
        .executableTarget(name: "fuzz-spool", dependencies: ["FuzzSupport", "Agent"], path: "Sources/Tools/Fuzz/FuzzSpool", exclude: ["seeds"]),
        // The agent's StatsD parser and ingest path.
        .executableTarget(name: "fuzz-statsd", dependencies: ["FuzzSupport", "Agent", "IPAPipeline"], path: "Sources/Tools/Fuzz/FuzzStatsD", exclude: ["seeds"]),
        // The JSON parser and writer (every HTTP API request body), monitor
        // validation and the Schedule round trip, alert rule documents.
        .executableTarget(name: "fuzz-json", dependencies: ["FuzzSupport", "JSON", "MonitorModel", "Wire", "Alerts"], path: "Sources/Tools/Fuzz/FuzzJSON"),
        // Configuration files and the updates an agent receives.
        .executableTarget(name: "fuzz-config", dependencies: ["FuzzSupport", "ConfigFile"], path: "Sources/Tools/Fuzz/FuzzConfig"),
        // The remote-write sender's HTTP response parser (outside bytes).
        .executableTarget(name: "fuzz-http-response", dependencies: ["FuzzSupport", "RemoteWrite"], path: "Sources/Tools/Fuzz/FuzzHTTPResponse", exclude: ["seeds"]),
        // Raw SQLite inserts vs. the store's batched path (docs/STORAGE.md).
        .executableTarget(name: "store-bench", dependencies: ["CollectorStore", "Reactor", "CSQLite"], path: "Sources/Tools/Bench/StoreBench"),
        // The Reactor's receiver and loop-overhead probes (scripts/bench-reactor.sh).
        .executableTarget(name: "reactor-bench", dependencies: ["Reactor"], path: "Sources/Tools/Bench/ReactorBench"),
        // The agent spool's write and replay rates (scripts/bench-spool.sh).
        .executableTarget(name: "spool-bench", dependencies: ["Agent", "IPAPipeline", "Reactor"], path: "Sources/Tools/Bench/SpoolBench"),
        // Release-mode crypto and handshake throughput (scripts/bench-wire.sh).
        .executableTarget(name: "wire-bench", dependencies: ["Wire", "Reactor"], path: "Sources/Tools/Bench/WireBench"),
        // 1,000 HTTP monitors on one engine, idle RSS with and without libcurl (scripts/bench-monitors.sh).
        .executableTarget(name: "monitors-bench", dependencies: ["MonitorRunners", "MonitorModel", "Reactor"], path: "Sources/Tools/Bench/MonitorsBench"),
        // The benchmark's local HTTP server, in its own process.
        .executableTarget(name: "monitors-bench-server", dependencies: ["HTTPServer", "Reactor"], path: "Sources/Tools/Bench/MonitorsBenchServer"),
        // Samples/s the remote-write sender encodes and compresses on one core (scripts/bench-remote-write.sh).
        .executableTarget(name: "remote-write-bench", dependencies: ["RemoteWrite"], path: "Sources/Tools/Bench/RemoteWriteBench"),
        // The StatsD pipeline's lines/s on one core, no sockets (scripts/bench-statsd.sh).
        .executableTarget(name: "statsd-bench", dependencies: ["Agent", "Reactor"], path: "Sources/Tools/Bench/StatsDBench"),
        // An empty loop with a heartbeat, for trying the loop and measuring idle RSS.
        .executableTarget(name: "reactor-demo", dependencies: ["Reactor"], path: "Sources/Tools/Demo/ReactorDemo"),

        // ── Tests ──────────────────────────────────────────────────────────
        .testTarget(name: "JSONTests", dependencies: ["JSON"], exclude: ["Fixtures"]),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "CEv"]),
        .testTarget(name: "WireTests", dependencies: ["Wire"], exclude: ["Fixtures"]),
        .testTarget(name: "ConfigFileTests", dependencies: ["ConfigFile"], exclude: ["Fixtures"]),
        .testTarget(name: "CollectorStoreTests", dependencies: ["CollectorStore", "Reactor"]),
        // In-process and end-to-end tests; both binaries are dependencies so
        // they are built before the process tests start them.
        .testTarget(name: "AgentTests", dependencies: ["Agent", "IPAPipeline", "Reactor", "Wire", "ConfigFile", "MonitorModel", "MonitorRunners", "CSystem", "vigil-agent", "vigil-collector"]),
        // Integration tests start the built vigil-collector (a dependency, so it is built first), one a real vigil-agent too.
        .testTarget(name: "CollectorTests", dependencies: ["Collector", "Reactor", "Wire", "ConfigFile", "CollectorStore", "JSON", "CSystem", "vigil-collector", "vigil-agent",
                                                     "vigil-notify"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "Reactor", "CSystem"]),
        // Monitors against local servers (HTTPServer, a TCP listener, the example exec monitor).
        .testTarget(name: "MonitorsTests", dependencies: ["MonitorModel", "MonitorRunners", "JSON", "Reactor", "Wire", "HTTPServer"]),
        .testTarget(name: "LoadGenTests", dependencies: ["LoadGen", "Reactor", "Wire", "CollectorStore"]),
        // The remote-write pieces in process, and against Debian's real prometheus.
        .testTarget(name: "RemoteWriteTests", dependencies: ["RemoteWrite", "Reactor"]),
        // Rule validation, the state machine and the notifiers' bodies in process.
        .testTarget(name: "AlertsTests", dependencies: ["Alerts", "JSON", "CollectorStore", "Reactor"]),
    ],
    swiftLanguageModes: [.v5]
)
