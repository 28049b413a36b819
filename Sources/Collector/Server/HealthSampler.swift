// HealthSampler: the collector's history of its own health. Every
// `self_metrics_interval_ms` it takes the figures /metrics shows — sessions
// by phase, connected agents by state, handshakes and their failures,
// records in and rows stored, store commit latency, loop lag, drops, store
// failures, the store's queue — as a CollectorSample and appends it to the
// store, which keeps it for `self_metrics_retention_days` (swept by the
// retention timer). Counters become per-interval differences and the
// latency quantiles cover only the interval (the cumulative histograms
// minus their copies at the previous sample), so the history shows each
// interval on its own, not the averages since start.
//
// A sample is one small write; one that fails (store overloaded or
// closing) is logged at debug level and counted in the store's own
// failure counters, and the next interval goes on.
//
// Thread: the loop thread (a TimerWatcher).
import CollectorStore
import Reactor

final class HealthSampler {
    private let loop: EventLoop
    private let manager: SessionManager
    private let store: MeasurementStore
    private var timer: TimerWatcher?
    private var previous: Totals
    private var previousAt: Int64

    /// The cumulative figures a sample is the difference of.
    private struct Totals {
        var handshakes: UInt64 = 0
        var failures: UInt64 = 0
        var recordsIn: UInt64 = 0
        var rowsStored: UInt64 = 0
        var dropped: UInt64 = 0
        var storeFailures: UInt64 = 0
        var commit = LogHistogram()
        var lag = LogHistogram()
    }

    init(loop: EventLoop, manager: SessionManager, store: MeasurementStore) {
        self.loop = loop
        self.manager = manager
        self.store = store
        previous = Totals()
        previousAt = Clock.wallMillis()
        previous = totals()
    }

    /// Samples every `interval` seconds from now on (restarts the timer).
    func start(interval: Double) {
        timer?.stop()
        let t = TimerWatcher(loop: loop, label: "self-metrics sampler") { [weak self] _ in self?.sample() }
        t.start(after: interval, repeat: interval)
        timer = t
    }

    func stop() {
        timer?.stop()
        timer = nil
    }

    private func totals() -> Totals {
        let s = manager.stats
        let st = store.stats
        return Totals(handshakes: s.handshakesCompleted, failures: s.totalHandshakeFailures, recordsIn: s.recordsIn,
                      rowsStored: st.rowsStored,
                      dropped: s.itemsUnknownDropped &+ s.writesRefused &+ s.stateWritesFailed,
                      storeFailures: st.writesFailed &+ st.refusedOverloaded &+ st.refusedClosed &+ st.refusedInvalid
                          &+ st.readsFailed,
                      commit: st.commitMicros, lag: loop.lag)
    }

    /// Takes one sample now and appends it to the store.
    func sample() {
        let now = Clock.wallMillis()
        let t = totals()
        let p = previous
        previous = t
        defer { previousAt = now }
        func delta(_ a: UInt64, _ b: UInt64) -> Int64 { a >= b ? Int64(clamping: a - b) : 0 }
        let commit = t.commit.subtracting(p.commit), lag = t.lag.subtracting(p.lag)
        var s = CollectorSample(ts: now, intervalMs: max(0, now - previousAt))
        s.sessionsHandshake = Int64(manager.handshaking)
        s.sessionsEstablished = Int64(manager.established)
        s.sessionsClosing = Int64(manager.closing)
        s.agentsConnecting = Int64(manager.count(.connecting))
        s.agentsStopped = Int64(manager.count(.stopped))
        s.agentsCapturing = Int64(manager.count(.capturing))
        s.agentsWrongConfiguration = Int64(manager.count(.wrongConfiguration))
        s.handshakes = delta(t.handshakes, p.handshakes)
        s.handshakeFailures = delta(t.failures, p.failures)
        s.recordsIn = delta(t.recordsIn, p.recordsIn)
        s.rowsStored = delta(t.rowsStored, p.rowsStored)
        s.commitP99Us = Int64(clamping: commit.quantile(0.99))
        s.commitMaxUs = Int64(clamping: commit.max)
        s.lagP99Us = Int64(clamping: lag.quantile(0.99))
        s.lagMaxUs = Int64(clamping: lag.max)
        s.dropped = delta(t.dropped, p.dropped)
        s.storeFailures = delta(t.storeFailures, p.storeFailures)
        s.pendingRows = Int64(store.stats.pendingRows)
        store.appendCollectorSample(s) { r in
            if case .failure(let e) = r { Log.debug("store: a health sample was not stored", ["error": "\(e)"]) }
        }
    }
}
