// AckLedger: every acknowledgement the simulated agents received, as
// totals and as lines a later `vigil-load verify` checks against the
// collectors' databases ("acknowledged records lost = 0, duplicates = 0").
//
// File format (text, one record per line):
//   # vigil-load acknowledgement ledger v1
//   run boot=HEX instance=N base_ms=MS items=N prefix=P collectors=A,B
//   ack AGENT_ID FROM TO RECORDS COLLECTOR_INDEX
//   end batches=N records=N stale=N beyond_sent=N
// `ack` lines appear in the order acks arrived; per agent their ranges are
// contiguous and ascending (acks are cumulative). Aggregate i of batch s
// of agent A is stored with window start `base_ms + s` and check name
// `c<i>`, so each acknowledged batch is findable in the database. `end` is
// written only by a run that finished; without it the ledger still holds
// only real acknowledgements, just not necessarily all of them.

/// The run-wide facts a verifier needs to find batches in a database.
public struct LedgerHeader: Equatable, Sendable {
    public var bootID: String
    public var instance: UInt64
    /// Window start of batch s is `baseMs + s`.
    public var baseMs: Int64
    /// Aggregates per batch.
    public var items: Int
    /// Agent ids are `prefix-<index>`.
    public var prefix: String
    public var collectors: [String]

    public init(bootID: String, instance: UInt64, baseMs: Int64, items: Int, prefix: String, collectors: [String]) {
        self.bootID = bootID
        self.instance = instance
        self.baseMs = baseMs
        self.items = items
        self.prefix = prefix
        self.collectors = collectors
    }

    public var line: String {
        "run boot=\(bootID) instance=\(instance) base_ms=\(baseMs) items=\(items) prefix=\(prefix) collectors=\(collectors.joined(separator: ","))"
    }
}

/// Totals of a run's acknowledgements, and the ledger lines. Loop thread
/// only; one per run, shared by every simulated agent.
public final class AckLedger {
    public static let magic = "# vigil-load acknowledgement ledger v1"

    public let header: LedgerHeader
    private let output: LedgerOutput?
    /// Batches and records newly acknowledged.
    public private(set) var batches: UInt64 = 0
    public private(set) var records: UInt64 = 0
    /// Acks at or below what was already acknowledged.
    public private(set) var stale: UInt64 = 0
    /// Acks naming a batch never sent (a collector bug; the run fails).
    public private(set) var beyondSent: UInt64 = 0

    public init(header: LedgerHeader, output: LedgerOutput?) {
        self.header = header
        self.output = output
        output?.append(AckLedger.magic)
        output?.append(header.line)
    }

    /// Books what one ack did for `agentID`, acknowledged by collector
    /// number `collector` (its position in the collector list).
    public func record(_ outcome: AckOutcome, agentID: String, collector: Int) {
        switch outcome {
        case .settled(let range):
            let n = range.upperBound - range.lowerBound + 1
            let r = n * UInt64(header.items)
            batches &+= n
            records &+= r
            output?.append("ack \(agentID) \(range.lowerBound) \(range.upperBound) \(r) \(collector)")
        case .stale:
            stale &+= 1
        case .beyondSent:
            beyondSent &+= 1
        }
    }

    /// Writes the `end` line and flushes.
    public func finish() throws {
        output?.append("end batches=\(batches) records=\(records) stale=\(stale) beyond_sent=\(beyondSent)")
        try output?.flush()
    }
}
