// LoadOptions: what one `vigil-load density|ingest` run does, with the
// defaults of each mode. Filled by LoadArguments; read by LoadRunner.
import Reactor
import Wire

/// The workload.
public enum LoadMode: String, Equatable, Sendable, CaseIterable {
    /// Hold N sessions, each sending a Status and a small DataBatch every
    /// interval; the figures are sessions held, handshakes/s, loop lag.
    case density
    /// Saturate: every session keeps its in-flight window of batches full,
    /// refilled on each Ack; the figure is acknowledged records/s.
    case ingest
}

/// Loopback source addresses for the simulated agents' connections.
public enum SourceSpec: Equatable, Sendable {
    /// As many 127.0.0.x addresses as the agent count needs (none below
    /// one address's worth of ephemeral ports).
    case auto
    case list([SocketAddress])

    /// The addresses to bind, for `agents` connections when one local
    /// address has `portsPerSource` usable ephemeral ports; empty: let the
    /// kernel choose (one address is enough).
    public func resolve(agents: Int, portsPerSource: Int) -> [SocketAddress] {
        switch self {
        case .list(let l):
            return l
        case .auto:
            let per = max(1, portsPerSource)
            guard agents > per else { return [] }
            let n = min(254, (agents + per - 1) / per)
            return (1...n).map { try! SocketAddress(ip: "127.0.0.\($0)", port: 0) }
        }
    }
}

/// One run's settings. A value; no thread affinity.
public struct LoadOptions: Equatable, Sendable {
    public var mode: LoadMode
    /// Collectors in order of preference; a lost session moves to the next.
    public var collectors: [SocketAddress] = [try! SocketAddress(ip: "127.0.0.1", port: 6600)]
    public var accessKey: AccessKey
    /// Simulated agents (one session each).
    public var agents: Int
    /// New connections started per second while ramping up.
    public var rate = 2000.0
    /// Connects and handshakes in progress at once, at most.
    public var maxPending = 1000
    public var sources = SourceSpec.auto
    /// Seconds to run once every agent is connected (or the ramp timed out).
    public var duration: Double
    /// Seconds the ramp may take before the run goes on with what it has.
    public var rampTimeout = 180.0
    public var statusInterval = 10.0
    /// density: seconds between one agent's batches.
    public var batchInterval = 10.0
    /// Aggregates per DataBatch.
    public var items: Int
    /// Unacknowledged batches per session at most (the collector's
    /// announced window lowers it).
    public var inflight: Int
    /// Seconds of collector silence before a Ping; no answer within half as
    /// long again and the session is replaced.
    public var silence = 30.0
    public var connectTimeout = 10.0
    /// Jittered wait before reconnecting after a lost session or a failed
    /// attempt: uniform in [min, max], doubled per consecutive failure up
    /// to 8 × max.
    public var reconnectMin = 0.5
    public var reconnectMax = 2.0
    /// Seconds allowed at the end for acknowledgements of batches in flight.
    public var drain = 5.0
    /// Acknowledgement ledger file (see AckLedger); nil: totals only.
    public var ledgerPath: String?
    /// Agent ids are `<prefix>-<index>`.
    public var prefix = "load"
    /// Seconds between progress lines on stderr; 0: none.
    public var reportInterval = 5.0
    /// Also write the summary as one JSON object to this file.
    public var jsonPath: String?
    /// Seeds the jitter (phases, backoff); 0: from the clock.
    public var seed: UInt64 = 0

    public init(mode: LoadMode, accessKey: AccessKey) {
        self.mode = mode
        self.accessKey = accessKey
        switch mode {
        case .density:
            agents = 10_000
            duration = 30
            items = 10
            inflight = 64
        case .ingest:
            agents = 50
            duration = 30
            items = 100
            inflight = 8
        }
    }
}

/// What `vigil-load verify` checks.
public struct VerifyOptions: Equatable, Sendable {
    public var ledgerPath: String
    /// Databases in collector-list order (the ledger's collector index).
    public var databases: [String]
    /// `--shared-db`: one database holds what every collector of the ledger
    /// acknowledged (collectors of one cluster on one store).
    public var shared: Bool
    public init(ledgerPath: String, databases: [String], shared: Bool = false) {
        self.ledgerPath = ledgerPath
        self.databases = databases
        self.shared = shared
    }
}
