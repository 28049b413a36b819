// BatchEncoder: the one place where the agent's queued items become Wire
// items — latency aggregates, forwarded raw events and synthetic monitor
// runs alike — and where a batch's names are defined in the session's
// string table.
//
// Units pass through unchanged: latencies are integer microseconds from the
// aggregator's histogram (and from the monitor runners) to the wire.
//
// A monitor run becomes (docs/MONITORS.md, "Results"):
//  - one Aggregate per measured sample — the run for http/tcp (check
//    "request"), each step that ran for exec (check = step name) — with
//    source "synthetic", monitor = the monitor's string id, a window that
//    starts at the run and lasts one interval, count 1, errors 0 or 1, and
//    every latency field equal to the sample's duration; an http run also
//    counts one outcome (its status class, or `error` when no response
//    came); tcp and exec runs, which have no HTTP status, count none; each
//    carries a one-value histogram;
//  - one MonitorResult for the run as a whole (step 0) with the phase
//    timings, the message, the HTTP status and bytes; for exec, one more
//    MonitorResult per step (ok, error, timeout or blocked, with its own
//    timings and message);
//  - an overtime skip is a MonitorResult with status overtime only, and so
//    is a run the agent's policy refused (status refused): neither measured
//    anything.
//
// Thread: loop thread (called by the uplink's pump); no state of its own.
import IPAPipeline
import MonitorModel
import MonitorRunners
import Wire

/// Turns queued data items into a `DataBatch` for one session, defining
/// each name in the session's string table on first use.
public enum BatchEncoder {
    /// The aggregate source of IPA measurements.
    public static let source = "ipa"
    /// The aggregate source of every synthetic measurement.
    public static let syntheticSource = "synthetic"
    /// The check name of a http or tcp run's aggregate.
    public static let requestCheck = "request"

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
        try wireItems(items) { name throws(SessionError) in try s.stringRef(name) }
    }

    /// The Wire items for `items`; `stringRef` maps each name to the
    /// session's string table (`ClientSession.stringRef`). Records (which
    /// travel alone) produce nothing. Internal: a public generic copy would
    /// ship in the agent next to the one specialized for the session.
    static func wireItems(_ items: [OutboundItem],
                          stringRef: (String) throws(SessionError) -> StringRef) throws(SessionError) -> [BatchItem] {
        var out: [BatchItem] = []
        out.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .aggregate(let a):
                out.append(.aggregate(Wire.Aggregate(
                    windowStartMs: UInt64(max(0, a.windowStartMs)), windowLengthMs: UInt32(clamping: a.windowMs),
                    monitor: try stringRef(a.monitor), check: try stringRef(a.check), source: try stringRef(a.source),
                    count: a.count, errors: a.outcomes.failures, sumUs: a.sumUs, minUs: a.minUs, maxUs: a.maxUs,
                    p50Us: a.p50Us, p95Us: a.p95Us, p99Us: a.p99Us,
                    outcome2xx: a.outcomes.s2xx, outcome3xx: a.outcomes.s3xx, outcome4xx: a.outcomes.s4xx,
                    outcome5xx: a.outcomes.s5xx, outcomeError: a.outcomes.error,
                    histogram: histogram(of: a))))
            case .event(let e):
                out.append(.event(Wire.RawEvent(
                    timestampUs: e.timestampUs, method: try stringRef(e.method), host: try stringRef(e.host),
                    path: e.path, status: e.status, durationUs: e.durationUs,
                    monitor: try stringRef(e.monitor), check: try stringRef(e.check), errorClass: e.errorClass)))
            case .monitorRun(let r):
                try append(r, to: &out, stringRef)
            case .record:
                continue
            }
        }
        return out
    }

    /// The aggregate's histogram for the wire, when its bytes decode and add
    /// up to its count (a collector refuses a batch whose histogram does
    /// not); else the aggregate goes without one.
    static func histogram(of a: LatencyAggregate) -> LatencySketch? {
        guard let bytes = a.histogram, let h = try? LatencySketch(decoding: bytes), h.count == a.count else { return nil }
        return h
    }

    /// A monitor run's aggregates and MonitorResults (see the file header).
    static func append(_ r: MonitorRunResult, to items: inout [BatchItem],
                       _ stringRef: (String) throws(SessionError) -> StringRef) throws(SessionError) {
        let monitorRef = try stringRef(r.monitorKey)
        let sourceRef = try stringRef(syntheticSource)
        func aggregate(check: String, status: MonitorStatus, us: UInt64,
                       outcome: Outcome? = nil) throws(SessionError) -> BatchItem {
            var o = OutcomeCounts()
            if let outcome { o.count(outcome) }
            return .aggregate(Aggregate(windowStartMs: r.startedMs, windowLengthMs: r.intervalMs, monitor: monitorRef,
                                        check: try stringRef(check), source: sourceRef, count: 1,
                                        errors: status == .ok ? 0 : 1, sumUs: us, minUs: us, maxUs: us,
                                        p50Us: us, p95Us: us, p99Us: us, outcome2xx: o.s2xx, outcome3xx: o.s3xx,
                                        outcome4xx: o.s4xx, outcome5xx: o.s5xx, outcomeError: o.error,
                                        histogram: sample(us)))
        }
        func sample(_ us: UInt64) -> LatencySketch {
            var h = LatencySketch()
            h.record(us)
            return h
        }
        func phases(_ list: [PhaseTiming]) throws(SessionError) -> [MonitorResult.Phase] {
            var out: [MonitorResult.Phase] = []
            out.reserveCapacity(list.count)
            for p in list { out.append(MonitorResult.Phase(name: try stringRef(p.name), durationUs: p.durationUs)) }
            return out
        }
        if r.status != .overtime && r.status != .refused {
            if r.kind == .exec {
                for s in r.steps where s.status != .blocked {
                    items.append(try aggregate(check: s.name, status: s.status, us: s.durationUs))
                }
            } else {
                items.append(try aggregate(check: requestCheck, status: r.status, us: r.durationUs,
                                           outcome: httpOutcome(r)))
            }
        }
        items.append(.monitorResult(MonitorResult(monitorID: r.monitorID, runID: r.runID, timestampMs: r.startedMs, step: 0,
                                                  status: r.status, durationUs: r.durationUs, phases: try phases(r.phases),
                                                  message: r.message, protocolStatus: r.protocolStatus, bytes: r.bytes)))
        for s in r.steps {
            items.append(.monitorResult(MonitorResult(monitorID: r.monitorID, runID: r.runID, timestampMs: r.startedMs,
                                                      step: try stringRef(s.name), status: s.status,
                                                      durationUs: s.durationUs, phases: try phases(s.phases),
                                                      message: s.message)))
        }
    }
}

extension BatchEncoder {
    /// An http run's outcome: the class of its status, or `error` when no
    /// status came back (refused, timed out, TLS failure). Others: none.
    static func httpOutcome(_ r: MonitorRunResult) -> Outcome? {
        guard r.kind == .http else { return nil }
        let s = r.protocolStatus
        return (200...599).contains(s) ? Outcome(status: Int32(s)) : .error
    }
}

extension OutboundItem {
    /// The names the item puts in the string table.
    var names: [String] {
        switch self {
        case .aggregate(let a): return [a.monitor, a.check, a.source]
        case .event(let e): return [e.method, e.host, e.monitor, e.check]
        case .monitorRun(let r):
            var names = [r.monitorKey, BatchEncoder.syntheticSource, BatchEncoder.requestCheck]
            names += r.phases.map(\.name)
            for s in r.steps { names.append(s.name); names += s.phases.map(\.name) }
            return names
        case .record: return []
        }
    }

    /// An upper bound of the item's encoding inside a DataBatch (kind,
    /// length, body with every string id at its widest), so a batch built
    /// by these sizes never exceeds the record limit.
    public var encodedSizeBound: Int {
        switch self {
        case .aggregate(let a):
            // 18 varints of at most 10 bytes, kind, 2-byte length; the
            // histogram item: kind, length, body.
            return 3 + 18 * 10 + (a.histogram.map { 4 + $0.count } ?? 0)
        case .event(let e):
            // 8 varints, the path and error class with their lengths,
            // kind, length prefix.
            return 4 + 8 * 10 + 3 + e.path.utf8.count + 3 + e.errorClass.utf8.count
        case .monitorRun(let r):
            // An aggregate per step (or one), a result for the run and one
            // per step: 14 varints each, 2 per phase, the message.
            let aggregates = max(1, r.steps.count) * (3 + 18 * 10 + 4 + 32)
            let results = (1 + r.steps.count) * (4 + 14 * 10)
            let phases = (r.phases.count + r.steps.reduce(0) { $0 + $1.phases.count }) * 20
            let messages = r.message.utf8.count + r.steps.reduce(0) { $0 + $1.message.utf8.count }
            return aggregates + results + phases + messages
        case .record:
            return 0
        }
    }
}
