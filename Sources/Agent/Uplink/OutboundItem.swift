// OutboundItem: what waits in the send queues — data items that travel in
// numbered, acknowledged DataBatches (aggregates, raw events), and records
// that travel alone (status, control answers).
//
// Items hold their names as text, not string-table ids: the table belongs
// to one session, while a batch may be re-sent on the next one. Ids are
// assigned when a batch is written to a session (`BatchEncoder`).
import MonitorRunners
import Wire

/// A matched record forwarded raw (`forward_raw_events`), already redacted:
/// no query string, identifier-like path segments replaced by `:id`.
public struct ForwardedEvent: Equatable, Sendable {
    /// Collector time, microseconds since the epoch.
    public var timestampUs: UInt64
    public var method: String
    public var host: String
    public var path: String
    public var durationUs: UInt64
    public var monitor: String
    public var check: String

    public init(timestampUs: UInt64, method: String, host: String, path: String, durationUs: UInt64,
                monitor: String, check: String) {
        self.timestampUs = timestampUs
        self.method = method
        self.host = host
        self.path = path
        self.durationUs = durationUs
        self.monitor = monitor
        self.check = check
    }
}

/// One entry of a send queue.
public enum OutboundItem: Sendable {
    /// Queue 1, batched.
    case aggregate(LatencyAggregate)
    /// Queue 2, batched.
    case event(ForwardedEvent)
    /// Queue 1, batched: one synthetic monitor run (its aggregates and
    /// MonitorResult items, `MonitorRunResult.batchItems`).
    case monitorRun(MonitorRunResult)
    /// Queue 1, sent alone and not acknowledged (Status, ControlResponse).
    case record(Record)

    /// The names the item puts in the string table.
    var names: [String] {
        switch self {
        case .aggregate(let a): return [a.monitor, a.check, a.source]
        case .event(let e): return [e.method, e.host, e.monitor, e.check]
        case .monitorRun(let r):
            var names = [r.monitorKey, MonitorRunResult.source, MonitorRunResult.requestCheck]
            names += r.phases.map(\.name)
            for s in r.steps { names.append(s.name); names += s.phases.map(\.name) }
            return names
        case .record: return []
        }
    }

    public var isData: Bool {
        if case .record = self { return false }
        return true
    }

    /// An upper bound of the item's encoding inside a DataBatch (kind,
    /// length, body with every string id at its widest), so a batch built
    /// by these sizes never exceeds the record limit.
    public var encodedSizeBound: Int {
        switch self {
        case .aggregate:
            // 13 varints of at most 10 bytes, kind, 1-byte length.
            return 2 + 13 * 10
        case .event(let e):
            // 8 varints, the path with its length, kind, length prefix.
            return 4 + 8 * 10 + 3 + e.path.utf8.count
        case .monitorRun(let r):
            // An aggregate per step (or one), a result for the run and one
            // per step: 14 varints each, 2 per phase, the message.
            let aggregates = max(1, r.steps.count) * (2 + 14 * 10)
            let results = (1 + r.steps.count) * (4 + 14 * 10)
            let phases = (r.phases.count + r.steps.reduce(0) { $0 + $1.phases.count }) * 20
            let messages = r.message.utf8.count + r.steps.reduce(0) { $0 + $1.message.utf8.count }
            return aggregates + results + phases + messages
        case .record:
            return 0
        }
    }
}

/// Microseconds from the aggregator's milliseconds, rounded.
@inline(__always)
func microseconds(_ ms: Double) -> UInt64 {
    ms <= 0 ? 0 : UInt64((ms * 1000).rounded())
}

/// Turns queued data items into a `DataBatch` for one session, defining
/// each name in the session's string table on first use.
public enum BatchEncoder {
    public static let source = "ipa"

    /// Limits for one batch. A batch may need at most half the string
    /// table's ids and bytes, so that after a StringClear it always fits.
    public struct Limits: Sendable {
        public var maxItems: Int
        public var maxBytes: Int
        public var maxNames: Int
        public var maxNameBytes: Int

        public init(maxItems: Int, maxBytes: Int, maxNames: Int, maxNameBytes: Int) {
            self.maxItems = maxItems
            self.maxBytes = maxBytes
            self.maxNames = maxNames
            self.maxNameBytes = maxNameBytes
        }
    }

    /// Pops the consecutive data items at the head of `queues` that fit
    /// one batch (the first always does). Returns them and their size bound.
    public static func takeBatch(from queues: inout SendQueues<OutboundItem>, limits: Limits) -> ([OutboundItem], Int) {
        var items: [OutboundItem] = []
        var bytes = 16
        var names: Set<String> = [source]
        var nameBytes = source.utf8.count
        while let next = queues.next, next.isData {
            let size = next.encodedSizeBound
            var fresh: [String] = []
            for n in next.names where !n.isEmpty && !names.contains(n) && !fresh.contains(n) { fresh.append(n) }
            let freshBytes = fresh.reduce(0) { $0 + $1.utf8.count }
            let namesFull = !fresh.isEmpty
                && (names.count + fresh.count > limits.maxNames || nameBytes + freshBytes > limits.maxNameBytes)
            if !items.isEmpty && (items.count >= limits.maxItems || bytes + size > limits.maxBytes || namesFull) {
                break
            }
            items.append(queues.pop()!)
            bytes += size
            names.formUnion(fresh)
            nameBytes += freshBytes
        }
        return (items, bytes)
    }

    /// Writes `items` as DataBatch `sequence` into `session`. When the
    /// string table is full it is cleared (StringClear) and the batch
    /// encoded again — never in the middle of a batch. If its names do not
    /// fit even an empty table (a collector announcing a tiny table), an
    /// empty batch with the same sequence goes instead, so sequences stay
    /// consecutive, and false is returned: the caller counts the items as
    /// dropped.
    public static func send(sequence: UInt64, items: [OutboundItem], on session: ClientSession) throws(SessionError) -> Bool {
        do {
            try session.send(.dataBatch(DataBatch(sequence: sequence, items: try wireItems(items, session))))
            return true
        } catch .stringTableFull {
            try session.clearStrings()
        }
        do {
            try session.send(.dataBatch(DataBatch(sequence: sequence, items: try wireItems(items, session))))
            return true
        } catch .stringTableFull {
            try session.send(.dataBatch(DataBatch(sequence: sequence, items: [])))
            return false
        }
    }

    static func wireItems(_ items: [OutboundItem], _ s: ClientSession) throws(SessionError) -> [BatchItem] {
        var out: [BatchItem] = []
        out.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .aggregate(let a):
                out.append(.aggregate(Wire.Aggregate(
                    windowStartMs: UInt64(max(0, a.windowStartMs)), windowLengthMs: UInt32(clamping: a.windowMs),
                    monitor: try s.stringRef(a.monitor), check: try s.stringRef(a.check), source: try s.stringRef(a.source),
                    count: a.count, sumUs: microseconds(a.sumMs), minUs: microseconds(a.minMs), maxUs: microseconds(a.maxMs),
                    p50Us: microseconds(a.p50Ms), p95Us: microseconds(a.p95Ms), p99Us: microseconds(a.p99Ms))))
            case .event(let e):
                out.append(.event(Wire.RawEvent(
                    timestampUs: e.timestampUs, method: try s.stringRef(e.method), host: try s.stringRef(e.host),
                    path: e.path, durationUs: e.durationUs,
                    monitor: try s.stringRef(e.monitor), check: try s.stringRef(e.check))))
            case .monitorRun(let r):
                // `batchItems` rethrows the table's own error; nothing else throws.
                do {
                    out += try r.batchItems { name throws(SessionError) in try s.stringRef(name) }
                } catch let e as SessionError {
                    throw e
                } catch {
                    throw .stringTableFull
                }
            case .record:
                continue
            }
        }
        return out
    }
}
