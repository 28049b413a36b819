// SummaryWindows: the recent window the /metrics summaries' quantiles
// cover. The histograms behind them (handshake time, store commits, loop
// lag) are cumulative since start; a quantile over the whole lifetime
// never decays, so one bad minute a week ago would stay in the p99 for
// ever. Every `step` seconds a copy of each histogram is kept, at most
// `steps` of them; a scrape subtracts the oldest copy from the current
// histogram (LogHistogram.subtracting), so its quantiles cover the last
// `steps` to `steps + 1` steps (5 to 6 minutes), or everything since start
// before that much time has passed. `_sum` and `_count` stay cumulative,
// as Prometheus expects of a summary.
//
// Thread: the loop thread (ticked by a timer, read by the scrape).
import Reactor

final class SummaryWindows {
    static let step = 60.0
    static let steps = 5
    /// The window's length as docs/API.md states it.
    static var lengthText: String { "\(Int(step) * steps / 60) to \(Int(step) * (steps + 1) / 60) minutes" }

    /// Copies per histogram name, oldest first.
    private var history: [String: [LogHistogram]] = [:]

    /// Keeps a copy of each current histogram, dropping the oldest beyond `steps`.
    func tick(_ current: [String: LogHistogram]) {
        for (name, h) in current {
            var list = history[name] ?? []
            list.append(h)
            if list.count > SummaryWindows.steps { list.removeFirst(list.count - SummaryWindows.steps) }
            history[name] = list
        }
    }

    /// The part of `current` recorded within the window: everything since
    /// start until `steps` copies are kept. (Subtracting the first copy as
    /// soon as there was one left a collector a minute old with quantiles
    /// of its last few seconds only.)
    func recent(_ name: String, _ current: LogHistogram) -> LogHistogram {
        guard let list = history[name], list.count >= SummaryWindows.steps, let oldest = list.first else { return current }
        return current.subtracting(oldest)
    }
}
