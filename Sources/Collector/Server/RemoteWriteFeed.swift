// RemoteWriteFeed: what the collector stores, as Prometheus series for the
// remote-write sender (docs/REMOTE_WRITE.md has the names).
//
// Fed after commit: `SessionManager.batchStored` hands over each stored
// batch (duplicates are not sent twice); the feed only appends it to a list
// and converts it on a later deferred slice, at most `rowsPerSlice` rows at
// a time, so acknowledgements (sent from their own slice) never wait on it.
// Per (project, agent, monitor, check, source), from each aggregate window:
//   vigil_request_duration_seconds_count   counter  requests (cumulative)
//   vigil_request_duration_seconds_sum     counter  seconds spent (cumulative)
//   vigil_request_errors_total             counter  requests that failed (cumulative)
//   vigil_request_duration_seconds{quantile="0.5"|"0.95"|"0.99"}  the window's quantiles
//   vigil_request_duration_min_seconds, vigil_request_duration_max_seconds  gauges
// at the window's end; synthetic runs as vigil_monitor_up (1 ok, 0 failed)
// at the run's time; every `stateInterval` seconds each known agent's
// state as vigil_agent_state{state} (1 for the current state, 0 for the
// others). Counters are cumulative since the collector started, as
// Prometheus counters are (a restart is a counter reset, which rate()
// handles): that needs one running total per series, at most `maxSeries`
// of them; a new series beyond that is dropped and counted (`series_limit`).
//
// Thread: the loop thread.
import CollectorStore
import Reactor
import RemoteWrite

final class RemoteWriteFeed {
    static let rowsPerSlice = 512
    static let stateInterval = 30.0

    let sender: RemoteWriteSender
    let maxSeries: Int
    private struct Key: Hashable {
        let project: String, agent: String, monitor: String, check: String, source: String
    }
    private var totals: [Key: (count: Int64, errors: Int64, sumUs: Int64)] = [:]
    private var pending = RingBuffer<(project: String, batch: Batch)>(capacity: 64, overflow: .grow)
    private var pendingRows = 0
    private var drain: DeferOnce!
    private var stateTimer: TimerWatcher?
    /// Rows not sent because `maxSeries` running totals exist already.
    private(set) var droppedSeriesLimit: UInt64 = 0
    /// Rows of stored batches dropped before conversion (the sender's queue
    /// bound, applied early).
    private(set) var droppedPending: UInt64 = 0
    /// Samples per measurement row (the families above).
    static let samplesPerRow = 8

    init(loop: EventLoop, sender: RemoteWriteSender, maxSeries: Int, agentStates: @escaping () -> [(String, String, AgentState)]) {
        self.sender = sender
        self.maxSeries = maxSeries
        drain = DeferOnce(loop: loop) { [weak self] in self?.convertSome() }
        let t = TimerWatcher(loop: loop, label: "remote-write agent states") { [weak self] _ in self?.states(agentStates()) }
        t.start(after: 1, repeat: RemoteWriteFeed.stateInterval)
        stateTimer = t
    }

    func close() {
        stateTimer?.stop()
        sender.close()
    }

    /// A stored batch; converted later.
    func stored(project: String, batch: Batch) {
        let rows = batch.measurements.count + batch.monitorRuns.count
        guard rows > 0 else { return }
        pending.append((project, batch))
        pendingRows += rows
        // Never hold more unconverted rows than the sender could queue.
        while pendingRows * RemoteWriteFeed.samplesPerRow > sender.options.maxQueuedSamples, pending.count > 1,
              let old = pending.popFirst() {
            let n = old.batch.measurements.count + old.batch.monitorRuns.count
            pendingRows -= n
            droppedPending &+= UInt64(n * RemoteWriteFeed.samplesPerRow)
        }
        drain.schedule()
    }

    private func convertSome() {
        var rows = 0
        while rows < RemoteWriteFeed.rowsPerSlice, let (project, b) = pending.popFirst() {
            let n = b.measurements.count + b.monitorRuns.count
            pendingRows -= n
            rows += n
            convert(project, b)
        }
        if !pending.isEmpty { drain.schedule() }
    }

    private func convert(_ project: String, _ b: Batch) {
        for m in b.measurements {
            let key = Key(project: project, agent: b.agentId, monitor: m.monitor, check: m.check, source: m.source)
            var t = totals[key] ?? (0, 0, 0)
            if totals[key] == nil && totals.count >= maxSeries {
                droppedSeriesLimit &+= UInt64(RemoteWriteFeed.samplesPerRow)
                continue
            }
            t.count &+= m.count
            t.errors &+= m.errors
            t.sumUs &+= m.sumUs
            totals[key] = t
            let at = m.ts + m.windowMs
            let labels = [("project", project), ("agent", b.agentId), ("monitor", m.monitor), ("check", m.check), ("source", m.source)]
            func one(_ name: String, _ extra: [(String, String)], _ v: Double) {
                sender.enqueue(Series(name: name, labels: labels + extra, samples: [(v, at)]))
            }
            one("vigil_request_duration_seconds_count", [], Double(t.count))
            one("vigil_request_duration_seconds_sum", [], Double(t.sumUs) / 1e6)
            one("vigil_request_errors_total", [], Double(t.errors))
            one("vigil_request_duration_seconds", [("quantile", "0.5")], Double(m.p50Us) / 1e6)
            one("vigil_request_duration_seconds", [("quantile", "0.95")], Double(m.p95Us) / 1e6)
            one("vigil_request_duration_seconds", [("quantile", "0.99")], Double(m.p99Us) / 1e6)
            one("vigil_request_duration_min_seconds", [], Double(m.minUs) / 1e6)
            one("vigil_request_duration_max_seconds", [], Double(m.maxUs) / 1e6)
        }
        for r in b.monitorRuns {
            sender.enqueue(Series(name: "vigil_monitor_up",
                                  labels: [("project", project), ("agent", b.agentId), ("monitor", r.monitor), ("check", r.check)],
                                  samples: [(r.ok ? 1 : 0, r.ts)]))
        }
    }

    private func states(_ agents: [(String, String, AgentState)]) {
        let now = Clock.wallMillis()
        for (project, agent, state) in agents {
            for s in AgentState.allCases {
                sender.enqueue(Series(name: "vigil_agent_state", labels: [("project", project), ("agent", agent), ("state", s.rawValue)],
                                      samples: [(s == state ? 1 : 0, now)]))
            }
        }
    }
}

extension RemoteWriteFeed {
    /// (project, agent, state) of every agent the collector knows: a
    /// session's state, or not_visible for a known agent without one.
    static func agentStates(_ m: SessionManager) -> [(String, String, AgentState)] {
        var out: [(String, String, AgentState)] = []
        for (id, s) in m.agents { out.append((s.projectName, id, s.state)) }
        for (project, ids) in m.knownAgents {
            for id in ids where m.agents[id]?.projectName != project { out.append((project, id, .notVisible)) }
        }
        return out
    }
}
