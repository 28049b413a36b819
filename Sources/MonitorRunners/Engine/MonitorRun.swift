// MonitorRun: the seam between the engine and the three runners.
import MonitorModel
import Reactor
import Wire

/// One run in progress. The engine creates it, calls `start()` once, and
/// gets exactly one result through `RunContext.complete` — always from a
/// later loop callback, never from inside `start()` — unless it calls
/// `cancel()` first, after which the run reports nothing and releases its
/// resources (a child process is still terminated and reaped). Loop thread
/// only; the engine holds the run until it completes or is cancelled.
protocol MonitorRun: AnyObject {
    func start()
    func cancel()
}

/// What a runner needs to know about its run, and where the result goes.
struct RunContext {
    let definition: MonitorDefinition
    let runID: UInt64
    /// Wall-clock start, epoch ms.
    let startedMs: UInt64
    /// Monotonic start, ns.
    let startedNanos: UInt64
    let complete: (MonitorRunResult) -> Void

    /// A result for this run with the given outcome; the duration is the
    /// time since the start unless given.
    func result(_ status: MonitorStatus, message: String = "", durationUs: UInt64? = nil,
                phases: [PhaseTiming] = [], protocolStatus: UInt32 = 0, bytes: UInt64 = 0,
                steps: [StepResult] = []) -> MonitorRunResult {
        MonitorRunResult(monitorID: definition.numericID, monitorKey: definition.id, name: definition.name,
                         kind: definition.kind, runID: runID, startedMs: startedMs, intervalMs: definition.intervalMs,
                         status: status, durationUs: durationUs ?? elapsedUs, phases: phases, message: message,
                         protocolStatus: protocolStatus, bytes: bytes, steps: steps)
    }

    var elapsedUs: UInt64 { (Clock.monotonicNanos() &- startedNanos) / 1000 }
}

/// A run that ended before it began (an unset environment variable, exec
/// refused by policy, libcurl missing): reports its result on the next
/// iteration, as every run must.
final class FailedRun: MonitorRun {
    private let loop: EventLoop
    private let context: RunContext
    private let message: String
    private let status: MonitorStatus
    private var cancelled = false

    /// `status`: error, or refused for a run the agent's policy forbids.
    init(loop: EventLoop, context: RunContext, message: String, status: MonitorStatus = .error) {
        self.loop = loop
        self.context = context
        self.message = message
        self.status = status
    }

    func start() {
        loop.defer { [self] in
            guard !cancelled else { return }
            context.complete(context.result(status, message: message, durationUs: 0))
        }
    }

    func cancel() { cancelled = true }
}
