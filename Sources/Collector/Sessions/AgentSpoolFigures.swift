// AgentSpoolFigures: an agent's disk-spool figures as its latest Status
// reported them (the `spool_*` counters, docs/AGENT.md "Spool"), kept on
// the session so /metrics can sum them per project without reading the
// store. Absent for agents without a spool.
//
// Thread: a value; written and read on the loop thread.
import Wire

struct AgentSpoolFigures: Equatable {
    var batches: UInt64 = 0
    var bytes: UInt64 = 0
    var oldestAgeMs: UInt64 = 0
    var corrupt: UInt64 = 0
    var droppedFull: UInt64 = 0
    var droppedDiskFull: UInt64 = 0
    var unwritten: UInt64 = 0

    /// The figures in `counters`; nil when the agent reports no spool.
    init?(_ counters: [Counter]) {
        var found = false
        for c in counters where c.name.hasPrefix("spool_") {
            found = true
            switch c.name {
            case "spool_batches": batches = c.value
            case "spool_bytes": bytes = c.value
            case "spool_oldest_age_ms": oldestAgeMs = c.value
            case "spool_corrupt": corrupt = c.value
            case "spool_dropped_full": droppedFull = c.value
            case "spool_dropped_disk_full": droppedDiskFull = c.value
            case "spool_unwritten": unwritten = c.value
            default: break
            }
        }
        if !found { return nil }
    }

    init() {}

    /// Sums (ages: the largest).
    mutating func add(_ o: AgentSpoolFigures) {
        batches &+= o.batches
        bytes &+= o.bytes
        oldestAgeMs = max(oldestAgeMs, o.oldestAgeMs)
        corrupt &+= o.corrupt
        droppedFull &+= o.droppedFull
        droppedDiskFull &+= o.droppedDiskFull
        unwritten &+= o.unwritten
    }
}
