// MonitorRunResult: what one run (or one skipped slot) produced, in plain
// strings and integer microseconds. The agent's BatchEncoder turns it into
// DataBatch items (docs/MONITORS.md, "Results"); nothing here knows the
// session or its string table.
//
// Thread: a value; produced and delivered on the loop thread.
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
}
