// AlertConditions: what a condition's rows say — the value, and whether it
// breaches or has recovered — as pure functions of rows the evaluator read
// from the store, so each is tested without a store or a loop.
//
// Latencies arrive in integer microseconds and become milliseconds here,
// once, where a person reads them (thresholds are in ms).
//
// Pure; no thread affinity.
import CollectorStore
import JSON

public enum AlertConditions {
    /// Compares `value` with the thresholds: past `threshold` breaches,
    /// back at or past `resolve` recovers.
    public static func compare(_ value: Double, above: Bool, threshold: Double, resolve: Double, what: String,
                               unit: String) -> AlertObservation {
        let breaching = above ? value > threshold : value < threshold
        let recovered = above ? value <= resolve : value >= resolve
        let shown = format(value)
        let detail = breaching ? "\(what) \(shown)\(unit) \(above ? ">" : "<") \(format(threshold))\(unit)"
                               : "\(what) \(shown)\(unit)"
        return AlertObservation(breaching: breaching, recovered: recovered, value: value, detail: detail)
    }

    /// A statistic over measurement rows: the largest window quantile (ms),
    /// the calls, or failed calls over calls. No rows: no data (but a count
    /// of 0 is data).
    public static func measurement(_ rows: [MeasurementRow], statistic: String, above: Bool, threshold: Double,
                                   resolve: Double, label: String) -> AlertObservation {
        let calls = rows.reduce(Int64(0)) { $0 &+ $1.count }
        let value: Double, unit: String
        switch statistic {
        case "count":
            value = Double(calls); unit = ""
        case "error_rate":
            guard calls > 0 else { return .noData("\(label): no calls in the window") }
            value = Double(rows.reduce(Int64(0)) { $0 &+ $1.errors }) / Double(calls); unit = ""
        default:
            guard !rows.isEmpty else { return .noData("\(label): no measurements in the window") }
            let us: Int64
            switch statistic {
            case "p50": us = rows.map(\.p50Us).max() ?? 0
            case "p99": us = rows.map(\.p99Us).max() ?? 0
            default: us = rows.map(\.p95Us).max() ?? 0
            }
            value = Double(us) / 1000; unit = " ms"
        }
        return compare(value, above: above, threshold: threshold, resolve: resolve, what: "\(label) \(statistic)", unit: unit)
    }

    /// The newest `runs` runs (each run's own row, step ""), newest first:
    /// breaching when there are that many and all failed; recovered when
    /// the newest succeeded.
    public static func monitorFailing(_ runs: [MonitorRun], runs n: Int, monitor: String) -> AlertObservation {
        let own = runs.filter { $0.check.isEmpty }.prefix(n)
        guard let newest = own.first else { return .noData("monitor \(monitor): no runs") }
        let failed = own.prefix { !$0.ok }.count
        let breaching = own.count == n && failed == n
        return AlertObservation(breaching: breaching, recovered: newest.ok, value: Double(failed),
                                detail: breaching ? "monitor \(monitor): the last \(n) runs failed"
                                                  : "monitor \(monitor): \(failed) failed run(s) in a row")
    }

    /// Agents in `state` for longer than `longerThanMs` at `now`.
    public static func agentState(_ agents: [AgentRecord], state: String, longerThanMs: Int64, now: Int64) -> AlertObservation {
        let long = agents.filter { $0.state.rawValue == state && now - $0.stateSince > longerThanMs }.map(\.id).sorted()
        let named = long.prefix(5).joined(separator: ", ") + (long.count > 5 ? " and \(long.count - 5) more" : "")
        return AlertObservation(breaching: !long.isEmpty, recovered: long.isEmpty, value: Double(long.count),
                                detail: long.isEmpty ? "no agent \(state) for longer than \(longerThanMs / 1000) s"
                                                     : "\(state) for longer than \(longerThanMs / 1000) s: \(named)")
    }

    /// The drops an agent's status counts: the kernel's, the queues' and
    /// the spool's (`drops_kernel`, `drops_queue*`, `spool_dropped_*`).
    public static func drops(inStatus json: String) -> Int64? {
        guard let doc = try? JSON.parse(Array(json.utf8)), let counters = doc["counters"]?.objectValue else { return nil }
        var total: Int64 = 0
        for (name, v) in counters where name == "drops_kernel" || name.hasPrefix("drops_queue") || name.hasPrefix("spool_dropped_") {
            total &+= v.int64Value ?? 0
        }
        return total
    }

    /// Drops per second between the oldest and the newest status of each
    /// agent (newest first per agent); an agent whose counters went down
    /// (restarted) counts from zero.
    public static func agentDrops(_ histories: [(agent: String, statuses: [StatusRecord])], perSecond: Double) -> AlertObservation {
        var worst: (String, Double)?
        for (agent, statuses) in histories {
            guard let newest = statuses.first, let oldest = statuses.last, newest.ts > oldest.ts,
                  let a = drops(inStatus: newest.json), let b = drops(inStatus: oldest.json) else { continue }
            let grown = a >= b ? a - b : a
            let rate = Double(grown) / (Double(newest.ts - oldest.ts) / 1000)
            if worst == nil || rate > worst!.1 { worst = (agent, rate) }
        }
        guard let (agent, rate) = worst else { return .noData("no agent reported drops twice in the window") }
        return compare(rate, above: true, threshold: perSecond, resolve: perSecond, what: "agent \(agent) drops", unit: "/s")
    }

    /// The collector's own health over one bucket of its history.
    public static func collectorHealth(_ samples: [CollectorSample], metric: String, threshold: Double, resolve: Double) -> AlertObservation {
        guard !samples.isEmpty else { return .noData("no health samples in the window") }
        if metric == "loop_lag_ms" {
            let ms = Double(samples.map(\.lagMaxUs).max() ?? 0) / 1000
            return compare(ms, above: true, threshold: threshold, resolve: resolve, what: "loop lag", unit: " ms")
        }
        let failures = Double(samples.reduce(Int64(0)) { $0 &+ $1.storeFailures })
        return compare(failures, above: true, threshold: threshold, resolve: resolve, what: "store failures", unit: "")
    }

    static func format(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String((v * 1000).rounded() / 1000)
    }
}
