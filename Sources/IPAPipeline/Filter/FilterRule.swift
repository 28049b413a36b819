// FilterRule: one of the collector's filter rules as the agent applies it
// (method, host glob, path glob → monitor and check, or exclude; or, for
// StatsD, a metric-name glob → keep or exclude), with the reason it cannot
// be used, if any. PatternSet compiles a list of them.
//
// Thread: a value; built and read on the loop thread.
import Wire

/// One filter rule as the agent applies it. (The collector sends
/// `Wire.PatternRule`; `init(wire:)` maps it, empty globs meaning "any".)
public struct FilterRule: Equatable, Sendable {
    public var method: String
    public var host: String
    public var path: String
    public var monitor: String
    public var check: String
    public var exclude: Bool
    /// Non-empty: a StatsD rule matching metric names by this glob (the
    /// other fields unused; metrics keep their name and type). Empty: a
    /// traffic (IPA) rule.
    public var metric: String

    public init(method: String, host: String, path: String, monitor: String, check: String, exclude: Bool = false) {
        self.method = method
        self.host = host
        self.path = path
        self.monitor = monitor
        self.check = check
        self.exclude = exclude
        self.metric = ""
    }

    /// A StatsD rule: metrics whose whole name matches `metric` are kept,
    /// or dropped with `exclude`.
    public init(metric: String, exclude: Bool = false) {
        self.init(method: "", host: "*", path: "*", monitor: "", check: "", exclude: exclude)
        self.metric = metric
    }

    public var isMetricRule: Bool { !metric.isEmpty }

    /// The agent's reading of a rule from the collector: an empty glob
    /// matches anything, as the protocol says.
    public init(wire r: Wire.PatternRule) {
        if let glob = r.metricGlob {
            // An empty glob matches any metric, as for traffic rules.
            self.init(metric: glob.isEmpty ? "*" : glob, exclude: r.exclude)
            return
        }
        self.init(method: r.method, host: r.hostGlob.isEmpty ? "*" : r.hostGlob,
                  path: r.pathGlob.isEmpty ? "*" : r.pathGlob, monitor: r.monitor, check: r.check, exclude: r.exclude)
    }

    /// Why a rule is unusable, or nil. An exclude rule needs no names.
    public var problem: String? {
        if isMetricRule { return metric.utf8.count > 512 ? "metric is longer than 512 bytes" : nil }
        if host.isEmpty { return "host glob is empty (use \"*\" for any host)" }
        if path.isEmpty { return "path glob is empty (use \"*\" for any path)" }
        if !exclude && monitor.isEmpty { return "monitor is empty" }
        if !exclude && check.isEmpty { return "check is empty" }
        for (name, v) in [("method", method), ("host", host), ("path", path), ("monitor", monitor), ("check", check)]
            where v.utf8.count > 512 {
            return "\(name) is longer than 512 bytes"
        }
        return nil
    }
}
