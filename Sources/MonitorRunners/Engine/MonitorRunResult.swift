// MonitorRunResult: what one run (or one skipped slot) produced, in plain
// strings, and its conversion to DataBatch items for the session.
//
// On the wire (docs/MONITORS.md, "Results"):
//  - one Aggregate per measured sample — the run for http/tcp (check
//    "request"), each step that ran for exec (check = step name) — with
//    source "synthetic", monitor = the monitor's string id, a window that
//    starts at the run and lasts one interval, count 1, errors 0 or 1, and
//    every latency field equal to the sample's duration;
//  - one MonitorResult for the run as a whole (step 0) with the phase
//    timings, the message, the HTTP status and bytes; for exec, one more
//    MonitorResult per step (ok, error, timeout or blocked, with its own
//    timings and message);
//  - an overtime skip is a MonitorResult with status overtime only.
import MonitorModel
import Wire

/// Time spent in one named phase, in microseconds.
public struct PhaseTiming: Equatable, Sendable {
    public var name: String
    public var durationUs: UInt64
    public init(_ name: String, _ durationUs: UInt64) {
        self.name = name
        self.durationUs = durationUs
    }
}

/// The outcome of one step of an exec monitor.
public struct StepResult: Equatable, Sendable {
    public var name: String
    public var status: MonitorStatus
    public var durationUs: UInt64
    public var phases: [PhaseTiming]
    public var message: String

    public init(name: String, status: MonitorStatus, durationUs: UInt64 = 0, phases: [PhaseTiming] = [], message: String = "") {
        self.name = name
        self.status = status
        self.durationUs = durationUs
        self.phases = phases
        self.message = message
    }
}

/// The outcome of one run. Value type; delivered on the loop thread.
public struct MonitorRunResult: Equatable, Sendable {
    public var monitorID: UInt64
    /// The API's string id.
    public var monitorKey: String
    public var name: String
    public var kind: MonitorKind
    public var runID: UInt64
    /// Wall-clock start of the run, epoch ms.
    public var startedMs: UInt64
    /// The monitor's interval (the window an aggregate covers).
    public var intervalMs: UInt32
    public var status: MonitorStatus
    public var durationUs: UInt64
    public var phases: [PhaseTiming]
    /// Why it failed (or a note on success); `${env:…}` values redacted.
    public var message: String
    /// HTTP status code; 0 for other kinds or when no response came.
    public var protocolStatus: UInt32
    /// Response body bytes (http).
    public var bytes: UInt64
    /// Per-step outcomes (exec), in definition order.
    public var steps: [StepResult]

    public init(monitorID: UInt64, monitorKey: String, name: String, kind: MonitorKind, runID: UInt64, startedMs: UInt64,
                intervalMs: UInt32, status: MonitorStatus, durationUs: UInt64 = 0, phases: [PhaseTiming] = [],
                message: String = "", protocolStatus: UInt32 = 0, bytes: UInt64 = 0, steps: [StepResult] = []) {
        self.monitorID = monitorID
        self.monitorKey = monitorKey
        self.name = name
        self.kind = kind
        self.runID = runID
        self.startedMs = startedMs
        self.intervalMs = intervalMs
        self.status = status
        self.durationUs = durationUs
        self.phases = phases
        self.message = message
        self.protocolStatus = protocolStatus
        self.bytes = bytes
        self.steps = steps
    }

    /// The check name of the run's aggregate for http and tcp.
    public static let requestCheck = "request"
    /// The aggregate source of every synthetic measurement.
    public static let source = "synthetic"

    /// The DataBatch items for this result. `stringRef` maps text to the
    /// session's string table (`ClientSession.stringRef`).
    public func batchItems(stringRef: (String) throws -> StringRef) rethrows -> [BatchItem] {
        var items: [BatchItem] = []
        let monitorRef = try stringRef(monitorKey)
        let sourceRef = try stringRef(MonitorRunResult.source)
        func aggregate(check: String, status: MonitorStatus, us: UInt64) throws -> BatchItem {
            .aggregate(Aggregate(windowStartMs: startedMs, windowLengthMs: intervalMs, monitor: monitorRef,
                                 check: try stringRef(check), source: sourceRef, count: 1,
                                 errors: status == .ok ? 0 : 1, sumUs: us, minUs: us, maxUs: us,
                                 p50Us: us, p95Us: us, p99Us: us))
        }
        func phases(_ list: [PhaseTiming]) throws -> [MonitorResult.Phase] {
            try list.map { MonitorResult.Phase(name: try stringRef($0.name), durationUs: $0.durationUs) }
        }
        if status != .overtime {
            if kind == .exec {
                for s in steps where s.status != .blocked {
                    items.append(try aggregate(check: s.name, status: s.status, us: s.durationUs))
                }
            } else {
                items.append(try aggregate(check: MonitorRunResult.requestCheck, status: status, us: durationUs))
            }
        }
        items.append(.monitorResult(MonitorResult(monitorID: monitorID, runID: runID, timestampMs: startedMs, step: 0,
                                                  status: status, durationUs: durationUs, phases: try phases(self.phases),
                                                  message: message, protocolStatus: protocolStatus, bytes: bytes)))
        for s in steps {
            items.append(.monitorResult(MonitorResult(monitorID: monitorID, runID: runID, timestampMs: startedMs,
                                                      step: try stringRef(s.name), status: s.status,
                                                      durationUs: s.durationUs, phases: try phases(s.phases),
                                                      message: s.message)))
        }
        return items
    }
}
