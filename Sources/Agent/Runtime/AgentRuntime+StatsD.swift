// StatsD in the runtime: the StatsD sockets follow `capture` like the IPA
// ones (open while capturing and `statsd_port` or `statsd_socket` is set),
// the StatsD pipeline gets the same filter rules, and its series close with
// the IPA aggregation window into queue 1 (docs/STATSD.md).
//
// Thread: loop thread.
import ConfigFile
import Reactor
import Wire
#if canImport(IPAPipeline)  // where the IPA parse/filter/aggregate code is its own module
import IPAPipeline
#endif

extension AgentRuntime {
    /// Opens, changes or closes the StatsD sockets for `next` (run mode,
    /// capture on). Throws a bind failure naming the address or path.
    func applyStatsD(_ next: AgentSettings, capture: Bool = true) throws {
        guard mode == .run && capture && next.statsd.isEnabled else {
            if statsd.isOpen { statsd.close() }
            return
        }
        if !statsd.isOpen || statsd.settings != next.statsd { try statsd.open(next.statsd) }
    }

    /// `commit`'s step for the StatsD keys: nil, or the error to reject with.
    func commitStatsD(_ next: AgentSettings, capture: Bool, candidate: Configuration, changed: [String]) -> ConfigError? {
        do {
            try applyStatsD(next, capture: capture)
            return nil
        } catch {
            let key = changed.first { $0 == "statsd_socket" || $0 == "statsd_bind" } ?? "statsd_port"
            let expected = key == "statsd_socket" ? "a path this agent can bind a Unix datagram socket to" : "an address this host can receive on"
            return ConfigError(location: .update, key: key,
                               problem: .invalidValue(expected: "\(expected) (\(error))", got: candidate.value(key)?.description))
        }
    }

    /// Closes the StatsD series of the open window into queue 1.
    func flushStatsD() {
        for a in statsd.pipeline.aggregator.flush(windowStartMs: openWindowStart) {
            uplink.enqueue(.aggregate(a), priority: true)
        }
    }

    var statsdDescription: String {
        guard statsd.isOpen else { return "off" }
        var parts = statsd.localAddresses.map { "\($0)" }
        if let path = statsd.socketPath { parts.append(path) }
        return parts.joined(separator: ",")
    }

    /// The StatsD counters of a Status record (docs/STATSD.md, "Counters");
    /// none while StatsD is off and never received anything.
    public var statsdCounters: [Counter] {
        let c = statsd.pipeline.counters
        guard statsd.isOpen || c.datagrams > 0 else { return [] }
        var out = [
            Counter("statsd_datagrams", c.datagrams),
            Counter("statsd_lines", c.lines),
            Counter("statsd_values", c.values),
            Counter("statsd_series", UInt64(statsd.pipeline.aggregator.seriesCount)),
            Counter("statsd_overflow", c.overflow),
            Counter("statsd_set_members_refused", c.setMembersRefused),
            Counter("statsd_clamped_negative", c.clampedNegative),
            Counter("statsd_events", c.events),
            Counter("statsd_service_checks", c.serviceChecks),
            Counter("statsd_container_fields", c.containerFields),
            Counter("statsd_timestamps", c.timestamps),
            Counter("statsd_drops_kernel", statsd.kernelDrops),
            Counter("statsd_drops_unmatched", c.unmatched),
            Counter("statsd_drops_excluded", c.excluded),
            Counter("statsd_drops_parse", c.drops.total &+ statsd.truncated),
        ]
        for cause in StatsDDropCause.allCases {
            let extra = cause == .oversize ? statsd.truncated : 0
            out.append(Counter("statsd_drops_parse_\(cause.name)", c.drops[cause] &+ extra))
        }
        return out
    }
}
