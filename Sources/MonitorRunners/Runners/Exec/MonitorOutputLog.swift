// MonitorOutputLog: what custom monitors print to stderr (and `log` lines)
// goes to the agent's log, bounded so a chatty or broken monitor cannot
// flood it: at most `linesPerRun` lines per run, each clipped to
// `maxLineBytes`, and a token bucket of `linesPerMinute` across all runs.
// Everything over the bounds is counted in `dropped`.
//
// Thread: loop thread. Owned by the engine, shared by its exec runs.
import Reactor

final class MonitorOutputLog {
    let linesPerRun: Int
    let maxLineBytes: Int
    let linesPerMinute: Double
    private var tokens: Double
    private var refilledAtNanos: UInt64

    private(set) var written: UInt64 = 0
    private(set) var dropped: UInt64 = 0

    init(linesPerRun: Int, maxLineBytes: Int, linesPerMinute: Int) {
        self.linesPerRun = linesPerRun
        self.maxLineBytes = maxLineBytes
        self.linesPerMinute = Double(max(linesPerMinute, 0))
        tokens = self.linesPerMinute
        refilledAtNanos = Clock.monotonicNanos()
    }

    /// Logs one line for `monitor`, charging the run's budget.
    func line(_ text: String, monitor: String, runID: UInt64, stream: String, runBudget: inout Int) {
        let now = Clock.monotonicNanos()
        tokens = min(linesPerMinute, tokens + Double(now &- refilledAtNanos) / 60e9 * linesPerMinute)
        refilledAtNanos = now
        guard runBudget > 0, tokens >= 1 else {
            dropped &+= 1
            return
        }
        runBudget -= 1
        tokens -= 1
        written &+= 1
        var t = text
        if t.utf8.count > maxLineBytes {
            t = String(decoding: Array(t.utf8.prefix(maxLineBytes)), as: UTF8.self) + "…"
        }
        Log.info("monitor output", ["monitor": monitor, "run": String(runID), "stream": stream, "line": t])
    }
}
