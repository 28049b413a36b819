// Batch: what one agent data batch stores — aggregated measurements, raw
// events, status snapshots and monitor runs — identified by (agent id,
// boot id, sequence) so a batch re-sent after a reconnect is recognised.
// Durations are integer microseconds from the wire to the store.
// Plain values; built by a session, handed to the store, not kept.

/// One aggregate of one (monitor, check) window: `count` requests, `errors`
/// of them failed, whose latencies summed to `sumUs`, with min, max and
/// quantiles. Latencies are integer microseconds, as the agent measured and
/// sent them; the HTTP API shows them in milliseconds.
public struct MeasurementRow: Equatable, Sendable {
    /// Window start, collector time, ms since the epoch.
    public var ts: Int64
    /// Window length, ms.
    public var windowMs: Int64
    public var monitor: String
    public var check: String
    /// Where the data came from, e.g. `ipa` (in-process agent) or `synthetic`.
    public var source: String
    public var count: Int64
    /// Samples that ended in an error.
    public var errors: Int64
    public var sumUs: Int64
    public var minUs: Int64
    public var maxUs: Int64
    public var p50Us: Int64
    public var p95Us: Int64
    public var p99Us: Int64
    /// Calls by outcome class; samples without a status are in none.
    public var outcomes: Outcomes
    /// The window's latency histogram in its wire encoding (Wire's
    /// LatencySketch), kept opaque here; nil for rows from agents that do
    /// not send one and rows stored before the histogram column existed.
    public var histogram: [UInt8]?

    public init(ts: Int64, windowMs: Int64, monitor: String, check: String, source: String, count: Int64, errors: Int64 = 0,
                sumUs: Int64, minUs: Int64, maxUs: Int64, p50Us: Int64, p95Us: Int64, p99Us: Int64,
                outcomes: Outcomes = Outcomes(), histogram: [UInt8]? = nil) {
        self.histogram = histogram
        self.ts = ts; self.windowMs = windowMs; self.monitor = monitor; self.check = check; self.source = source
        self.count = count; self.errors = errors; self.sumUs = sumUs; self.minUs = minUs; self.maxUs = maxUs
        self.p50Us = p50Us; self.p95Us = p95Us; self.p99Us = p99Us; self.outcomes = outcomes
    }
}

/// Calls of one measurement by outcome class: HTTP 2xx, 3xx, 4xx, 5xx, and
/// `error` (a transport failure, no response).
public struct Outcomes: Equatable, Sendable {
    public var s2xx: Int64
    public var s3xx: Int64
    public var s4xx: Int64
    public var s5xx: Int64
    public var error: Int64

    public init(s2xx: Int64 = 0, s3xx: Int64 = 0, s4xx: Int64 = 0, s5xx: Int64 = 0, error: Int64 = 0) {
        self.s2xx = s2xx; self.s3xx = s3xx; self.s4xx = s4xx; self.s5xx = s5xx; self.error = error
    }
}

/// One raw (already redacted) request record.
public struct RawEvent: Equatable, Sendable {
    public var ts: Int64
    public var monitor: String
    public var check: String
    public var method: String
    public var host: String
    public var path: String
    /// The response status (e.g. HTTP 200); 0 when there was none.
    public var status: Int64
    public var durationUs: Int64
    /// Why no response came (status 0: a transport error); empty when the
    /// event has a status, or its sender did not say.
    public var errorClass: String

    public init(ts: Int64, monitor: String, check: String, method: String, host: String, path: String,
                status: Int64 = 0, durationUs: Int64, errorClass: String = "") {
        self.ts = ts; self.monitor = monitor; self.check = check; self.method = method
        self.host = host; self.path = path; self.status = status; self.durationUs = durationUs
        self.errorClass = errorClass
    }
}

/// The agent's periodic status, as JSON text (the store does not parse it).
public struct StatusSnapshot: Equatable, Sendable {
    public var ts: Int64
    public var json: String

    public init(ts: Int64, json: String) { self.ts = ts; self.json = json }
}

/// One run of a synthetic monitor.
public struct MonitorRun: Equatable, Sendable {
    public var ts: Int64
    public var monitor: String
    public var check: String
    public var ok: Bool
    public var durationUs: Int64
    /// JSON text (run id, status, message, phases), stored as given.
    public var detail: String?

    public init(ts: Int64, monitor: String, check: String, ok: Bool, durationUs: Int64, detail: String? = nil) {
        self.ts = ts; self.monitor = monitor; self.check = check; self.ok = ok
        self.durationUs = durationUs; self.detail = detail
    }
}

public struct Batch: Sendable {
    public var projectId: Int64
    public var agentId: String
    /// Changes at every agent process start; sequences restart with it.
    public var bootId: String
    /// Non-negative, increasing per (agent, boot); gaps and re-sends allowed.
    public var sequence: Int64
    /// When the collector received it (ms): becomes the agent's last_seen.
    public var receivedAt: Int64
    public var measurements: [MeasurementRow]
    public var events: [RawEvent]
    public var statuses: [StatusSnapshot]
    public var monitorRuns: [MonitorRun]

    public init(projectId: Int64, agentId: String, bootId: String, sequence: Int64, receivedAt: Int64,
                measurements: [MeasurementRow] = [], events: [RawEvent] = [], statuses: [StatusSnapshot] = [],
                monitorRuns: [MonitorRun] = []) {
        self.projectId = projectId; self.agentId = agentId; self.bootId = bootId; self.sequence = sequence
        self.receivedAt = receivedAt; self.measurements = measurements; self.events = events
        self.statuses = statuses; self.monitorRuns = monitorRuns
    }

    /// Rows this batch writes (its weight in a transaction's row budget).
    public var rowCount: Int { measurements.count + events.count + statuses.count + monitorRuns.count }
}

/// What happened to a submitted batch. Either way it is durable once the
/// completion runs, so the collector may acknowledge the sequence.
public enum BatchOutcome: Equatable, Sendable {
    /// Stored now, with this many rows.
    case stored(rows: Int)
    /// Stored before (same agent, boot and sequence); nothing written.
    case duplicate
}
