// Data from the agent: DataBatch (with its three item kinds), Ack, Status,
// Interfaces. Durations are unsigned integer microseconds everywhere;
// wall-clock times are Unix epoch milliseconds (events: microseconds).

/// 0x20 DataBatch: one numbered unit of delivery. `sequence` counts from 1
/// per (Hello.agentID, Hello.instance) and never repeats within it; the
/// collector acknowledges cumulatively with Ack. Each item is
/// `[kind u8][varint length][body]`, so unknown kinds are skipped.
public struct DataBatch: RecordBody {
    public static let recordType = RecordType.dataBatch
    public var sequence: UInt64
    public var items: [BatchItem]

    public init(sequence: UInt64, items: [BatchItem]) {
        self.sequence = sequence
        self.items = items
    }

    /// Items on the wire: an aggregate with a histogram is two (kind 1,
    /// then kind 4).
    public var wireItemCount: Int {
        items.reduce(0) { n, item in
            if case .aggregate(let a) = item, a.histogram != nil { return n + 2 }
            return n + 1
        }
    }

    public func encode(into w: inout WireWriter) {
        w.varint(sequence)
        w.varint(UInt64(wireItemCount))
        for item in items {
            item.encode(into: &w)
            if case .aggregate(let a) = item, let h = a.histogram {
                w.u8(BatchItem.histogramKind)
                let start = w.beginLengthPrefixed()
                h.encode(into: &w)
                w.endLengthPrefixed(start)
            }
        }
    }

    /// A kind-4 item is the histogram of the aggregate just before it and
    /// becomes that aggregate's `histogram`; anywhere else, or with a total
    /// other than the aggregate's count, it is malformed.
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> DataBatch {
        let sequence = try r.varint()
        let n = try r.varint()
        // Every item takes at least 2 bytes (kind, length).
        guard n <= UInt64(r.remaining / 2) else { throw .truncated }
        guard n <= UInt64(limits.maxBatchItems) else { throw .batchTooLarge(Int(n)) }
        var items: [BatchItem] = []
        items.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard r.peek() == BatchItem.histogramKind else {
                items.append(try BatchItem.decode(from: &r, limits: limits))
                continue
            }
            _ = try r.u8()
            var body = try r.lengthPrefixed()
            let h = try LatencySketch.decode(from: &body)
            guard case .aggregate(var a)? = items.last, a.histogram == nil, a.count == h.count else {
                throw .malformed(field: "aggregate.histogram")
            }
            a.histogram = h
            items[items.count - 1] = .aggregate(a)
        }
        return DataBatch(sequence: sequence, items: items)
    }
}

/// One entry of a DataBatch.
public enum BatchItem: Equatable, Sendable {
    case aggregate(Aggregate)
    case event(RawEvent)
    case monitorResult(MonitorResult)
    /// A kind this version does not know; its body was skipped.
    case unknown(kind: UInt8)

    public static let aggregateKind: UInt8 = 1
    public static let eventKind: UInt8 = 2
    public static let monitorResultKind: UInt8 = 3
    /// The histogram of the aggregate item just before it (see DataBatch);
    /// never an item of its own in `items`.
    public static let histogramKind: UInt8 = 4

    public func encode(into w: inout WireWriter) {
        let kind: UInt8
        switch self {
        case .aggregate: kind = BatchItem.aggregateKind
        case .event: kind = BatchItem.eventKind
        case .monitorResult: kind = BatchItem.monitorResultKind
        case .unknown(let k): kind = k
        }
        w.u8(kind)
        let start = w.beginLengthPrefixed()
        switch self {
        case .aggregate(let a): a.encode(into: &w)
        case .event(let e): e.encode(into: &w)
        case .monitorResult(let m): m.encode(into: &w)
        case .unknown: break
        }
        w.endLengthPrefixed(start)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> BatchItem {
        let kind = try r.u8()
        var body = try r.lengthPrefixed()
        switch kind {
        case aggregateKind: return .aggregate(try Aggregate.decode(from: &body))
        case eventKind: return .event(try RawEvent.decode(from: &body, limits: limits))
        case monitorResultKind: return .monitorResult(try MonitorResult.decode(from: &body, limits: limits))
        default: return .unknown(kind: kind)
        }
    }
}

/// Item kind 1: latency statistics of one (monitor, check, source) over
/// one time window. All latencies in microseconds. The five outcome
/// counts are appended fields: a body from an older sender ends before
/// them (all 0), and an older receiver skips them.
public struct Aggregate: Equatable, Sendable {
    public var windowStartMs: UInt64
    public var windowLengthMs: UInt32
    public var monitor: StringRef
    public var check: StringRef
    public var source: StringRef
    public var count: UInt64
    /// Samples that ended in an error (included in `count`).
    public var errors: UInt64
    public var sumUs: UInt64
    public var minUs: UInt64
    public var maxUs: UInt64
    public var p50Us: UInt64
    public var p95Us: UInt64
    public var p99Us: UInt64
    /// Calls by outcome class (appended): HTTP 2xx, 3xx, 4xx, 5xx, and
    /// transport errors (no response). Samples without a status are in
    /// none, so these may add up to less than `count`, never more.
    public var outcome2xx: UInt64
    public var outcome3xx: UInt64
    public var outcome4xx: UInt64
    public var outcome5xx: UInt64
    public var outcomeError: UInt64
    /// The window's latency histogram, whose total is `count`; nil from
    /// senders that predate it. It travels as a separate item (kind 4) right
    /// after this one, so a receiver that does not know it skips it and
    /// keeps the aggregate, and fields appended to this body stay free.
    public var histogram: LatencySketch?

    public init(windowStartMs: UInt64, windowLengthMs: UInt32, monitor: StringRef, check: StringRef, source: StringRef,
                count: UInt64, errors: UInt64 = 0, sumUs: UInt64, minUs: UInt64, maxUs: UInt64,
                p50Us: UInt64, p95Us: UInt64, p99Us: UInt64, outcome2xx: UInt64 = 0, outcome3xx: UInt64 = 0,
                outcome4xx: UInt64 = 0, outcome5xx: UInt64 = 0, outcomeError: UInt64 = 0,
                histogram: LatencySketch? = nil) {
        self.histogram = histogram
        self.windowStartMs = windowStartMs
        self.windowLengthMs = windowLengthMs
        self.monitor = monitor
        self.check = check
        self.source = source
        self.count = count
        self.errors = errors
        self.sumUs = sumUs
        self.minUs = minUs
        self.maxUs = maxUs
        self.p50Us = p50Us
        self.p95Us = p95Us
        self.p99Us = p99Us
        self.outcome2xx = outcome2xx
        self.outcome3xx = outcome3xx
        self.outcome4xx = outcome4xx
        self.outcome5xx = outcome5xx
        self.outcomeError = outcomeError
    }

    /// Whether any outcome is counted (else the appended fields are left off).
    public var hasOutcomes: Bool { outcome2xx | outcome3xx | outcome4xx | outcome5xx | outcomeError != 0 }

    public func encode(into w: inout WireWriter) {
        w.varint(windowStartMs)
        w.varint(windowLengthMs)
        w.varint(monitor)
        w.varint(check)
        w.varint(source)
        w.varint(count)
        w.varint(errors)
        w.varint(sumUs)
        w.varint(minUs)
        w.varint(maxUs)
        w.varint(p50Us)
        w.varint(p95Us)
        w.varint(p99Us)
        guard hasOutcomes else { return }
        w.varint(outcome2xx)
        w.varint(outcome3xx)
        w.varint(outcome4xx)
        w.varint(outcome5xx)
        w.varint(outcomeError)
    }

    public static func decode(from r: inout WireReader) throws(WireError) -> Aggregate {
        var a = Aggregate(windowStartMs: try r.varint(), windowLengthMs: try r.varint32(), monitor: try r.varint32(),
                          check: try r.varint32(), source: try r.varint32(), count: try r.varint(), errors: try r.varint(),
                          sumUs: try r.varint(), minUs: try r.varint(), maxUs: try r.varint(),
                          p50Us: try r.varint(), p95Us: try r.varint(), p99Us: try r.varint())
        // Appended fields: absent in bodies from older senders.
        if r.isAtEnd { return a }
        a.outcome2xx = try r.varint()
        a.outcome3xx = try r.varint()
        a.outcome4xx = try r.varint()
        a.outcome5xx = try r.varint()
        a.outcomeError = try r.varint()
        return a
    }
}

/// Item kind 2: one observed request, sent raw (sampled or on demand).
/// `path` is inline text: paths are too varied for the string table.
/// `monitor` and `check` (appended later; 0 when absent) name the filter
/// rule that matched it, as an Aggregate does.
/// `errorClass` (appended later; inline, empty when absent) names why a
/// call got no response; with it, status 0 means a transport error rather
/// than "unknown".
public struct RawEvent: Equatable, Sendable {
    public var timestampUs: UInt64
    public var method: StringRef
    public var host: StringRef
    public var path: String
    /// Protocol status (e.g. HTTP 200); 0 when unknown.
    public var status: UInt32
    public var durationUs: UInt64
    public var monitor: StringRef
    public var check: StringRef
    public var errorClass: String

    public init(timestampUs: UInt64, method: StringRef, host: StringRef, path: String, status: UInt32 = 0, durationUs: UInt64,
                monitor: StringRef = 0, check: StringRef = 0, errorClass: String = "") {
        self.timestampUs = timestampUs
        self.method = method
        self.host = host
        self.path = path
        self.status = status
        self.durationUs = durationUs
        self.monitor = monitor
        self.check = check
        self.errorClass = errorClass
    }

    public func encode(into w: inout WireWriter) {
        w.varint(timestampUs)
        w.varint(method)
        w.varint(host)
        w.string(path)
        w.varint(status)
        w.varint(durationUs)
        w.varint(monitor)
        w.varint(check)
        if !errorClass.isEmpty { w.string(errorClass) }
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> RawEvent {
        var e = RawEvent(timestampUs: try r.varint(), method: try r.varint32(), host: try r.varint32(),
                         path: try r.string("event.path", maxLength: limits.maxStringLength),
                         status: try r.varint32(), durationUs: try r.varint())
        // Appended fields: an older sender's body ends here.
        if !r.isAtEnd { e.monitor = try r.varint32() }
        if !r.isAtEnd { e.check = try r.varint32() }
        if !r.isAtEnd { e.errorClass = try r.string("event.error_class", maxLength: limits.maxStringLength) }
        return e
    }
}

/// Outcome of one monitor run or step. Unknown values are kept.
public struct MonitorStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let ok = MonitorStatus(rawValue: 0)
    public static let error = MonitorStatus(rawValue: 1)
    public static let blocked = MonitorStatus(rawValue: 2)
    public static let timeout = MonitorStatus(rawValue: 3)
    /// The run was not started: the previous run of the monitor was still
    /// going when this one was due.
    public static let overtime = MonitorStatus(rawValue: 4)
    /// The run was not started: the agent's own policy (`exec_monitors`,
    /// `monitor_env`) does not allow it; the message says which rule.
    public static let refused = MonitorStatus(rawValue: 5)

    public var description: String {
        switch self {
        case .ok: return "ok"
        case .error: return "error"
        case .blocked: return "blocked"
        case .timeout: return "timeout"
        case .overtime: return "overtime"
        case .refused: return "refused"
        default: return "status_\(rawValue)"
        }
    }
}

/// Item kind 3: the result of one scheduled monitor run (or one step).
public struct MonitorResult: Equatable, Sendable {
    /// Time spent in one named phase (e.g. "dns", "connect", "tls", "ttfb").
    public struct Phase: Equatable, Sendable {
        public var name: StringRef
        public var durationUs: UInt64
        public init(name: StringRef, durationUs: UInt64) {
            self.name = name
            self.durationUs = durationUs
        }
    }

    /// `MonitorSpec.id` from the Schedule.
    public var monitorID: UInt64
    /// Distinguishes runs of the same monitor; steps of one run share it.
    public var runID: UInt64
    public var timestampMs: UInt64
    /// The check or step name; 0 for the run as a whole.
    public var step: StringRef
    public var status: MonitorStatus
    public var durationUs: UInt64
    public var phases: [Phase]
    public var message: String
    /// The protocol's own status, e.g. the HTTP status code; 0 = none.
    /// Appended field.
    public var protocolStatus: UInt32
    /// Bytes received (an HTTP response body); 0 = none. Appended field.
    public var bytes: UInt64

    public init(monitorID: UInt64, runID: UInt64, timestampMs: UInt64, step: StringRef, status: MonitorStatus,
                durationUs: UInt64, phases: [Phase] = [], message: String = "", protocolStatus: UInt32 = 0,
                bytes: UInt64 = 0) {
        self.monitorID = monitorID
        self.runID = runID
        self.timestampMs = timestampMs
        self.step = step
        self.status = status
        self.durationUs = durationUs
        self.phases = phases
        self.message = message
        self.protocolStatus = protocolStatus
        self.bytes = bytes
    }

    public func encode(into w: inout WireWriter) {
        w.varint(monitorID)
        w.varint(runID)
        w.varint(timestampMs)
        w.varint(step)
        w.u8(status.rawValue)
        w.varint(durationUs)
        w.list(phases) { w, p in
            w.varint(p.name)
            w.varint(p.durationUs)
        }
        w.string(message)
        w.varint(protocolStatus)
        w.varint(bytes)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> MonitorResult {
        var m = MonitorResult(monitorID: try r.varint(), runID: try r.varint(), timestampMs: try r.varint(),
                              step: try r.varint32(), status: MonitorStatus(rawValue: try r.u8()), durationUs: try r.varint(),
                              phases: try r.list("result.phases", max: limits.maxListCount) { (r) throws(WireError) -> Phase in
                                  Phase(name: try r.varint32(), durationUs: try r.varint())
                              },
                              message: try r.string("result.message", maxLength: limits.maxStringLength))
        // Appended fields: absent in bodies from older senders.
        if r.isAtEnd { return m }
        m.protocolStatus = try r.varint32()
        m.bytes = try r.varint()
        return m
    }
}

/// 0x21 Ack: every DataBatch with sequence ≤ `sequence` is durably stored
/// (cumulative; TCP keeps batches in order, so one number suffices).
public struct Ack: RecordBody {
    public static let recordType = RecordType.ack
    public var sequence: UInt64
    public init(sequence: UInt64) { self.sequence = sequence }
    public func encode(into w: inout WireWriter) { w.varint(sequence) }
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Ack {
        Ack(sequence: try r.varint())
    }
}

/// The agent's capture state. Unknown values are kept.
public struct AgentState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let stopped = AgentState(rawValue: 0)
    public static let capturing = AgentState(rawValue: 1)
    public static let wrongConfiguration = AgentState(rawValue: 2)

    public var description: String {
        switch self {
        case .stopped: return "stopped"
        case .capturing: return "capturing"
        case .wrongConfiguration: return "wrong_configuration"
        default: return "state_\(rawValue)"
        }
    }
}

/// A named counter value; new counters need no new record type.
public struct Counter: Equatable, Sendable {
    public var name: String
    public var value: UInt64
    public init(_ name: String, _ value: UInt64) {
        self.name = name
        self.value = value
    }
}

/// 0x22 Status: the agent's health, sent periodically and on change.
public struct Status: RecordBody {
    public static let recordType = RecordType.status
    public var timestampMs: UInt64
    public var state: AgentState
    /// Human-readable explanations (why wrong_configuration, warnings).
    public var messages: [String]
    /// CPU use in tenths of a percent of one core (1000 = one core busy).
    public var cpuPermille: UInt32
    public var rssBytes: UInt64
    public var counters: [Counter]

    public init(timestampMs: UInt64, state: AgentState, messages: [String] = [], cpuPermille: UInt32 = 0,
                rssBytes: UInt64 = 0, counters: [Counter] = []) {
        self.timestampMs = timestampMs
        self.state = state
        self.messages = messages
        self.cpuPermille = cpuPermille
        self.rssBytes = rssBytes
        self.counters = counters
    }

    public func encode(into w: inout WireWriter) {
        w.varint(timestampMs)
        w.u8(state.rawValue)
        w.strings(messages)
        w.varint(cpuPermille)
        w.varint(rssBytes)
        w.list(counters) { w, c in
            w.string(c.name)
            w.varint(c.value)
        }
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Status {
        Status(timestampMs: try r.varint(), state: AgentState(rawValue: try r.u8()),
               messages: try r.strings("status.messages", limits: limits),
               cpuPermille: try r.varint32(), rssBytes: try r.varint(),
               counters: try r.list("status.counters", max: limits.maxListCount) { (r) throws(WireError) -> Counter in
                   Counter(try r.string("status.counter", maxLength: limits.maxStringLength), try r.varint())
               })
    }
}

/// One network interface the agent can capture on.
public struct NetworkInterface: Equatable, Sendable {
    public static let flagUp: UInt32 = 1
    public static let flagLoopback: UInt32 = 2
    public static let flagCapturing: UInt32 = 4

    public var name: String
    /// Bit set: 1 up, 2 loopback, 4 being captured.
    public var flags: UInt32
    /// Addresses in text form ("10.0.0.5/24", "fe80::1/64").
    public var addresses: [String]

    public init(name: String, flags: UInt32, addresses: [String]) {
        self.name = name
        self.flags = flags
        self.addresses = addresses
    }
}

/// 0x23 Interfaces: the agent's current interface list (sent after the
/// handshake and whenever it changes).
public struct Interfaces: RecordBody {
    public static let recordType = RecordType.interfaces
    public var interfaces: [NetworkInterface]
    public init(_ interfaces: [NetworkInterface]) { self.interfaces = interfaces }

    public func encode(into w: inout WireWriter) {
        w.list(interfaces) { w, i in
            w.string(i.name)
            w.varint(i.flags)
            w.strings(i.addresses)
        }
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Interfaces {
        Interfaces(try r.list("interfaces", max: limits.maxListCount) { (r) throws(WireError) -> NetworkInterface in
            NetworkInterface(name: try r.string("interface.name", maxLength: limits.maxStringLength),
                             flags: try r.varint32(),
                             addresses: try r.strings("interface.addresses", limits: limits))
        })
    }
}
