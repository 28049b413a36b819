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

/// A project's spool figures summed over its connected agents, kept as
/// their Status records arrive and their sessions end, so a /metrics scrape
/// reads one value per project instead of walking every agent (the walk was
/// 1–2 ms of the loop per scrape at 20,000 agents).
///
/// The additive figures are exact. The oldest age is a maximum, which a
/// running sum cannot give back when the agent holding it leaves: ages are
/// counted in buckets (each power of two of milliseconds split in 128, as
/// LogHistogram does), and the gauge is the lower bound of the highest
/// non-empty one — within 0.8 % of the true oldest age (exact below 128 ms).
/// The buckets in use are few (one per distinct age class), so reading the
/// maximum costs that many steps, not one per agent.
struct ProjectSpools {
    private(set) var sum = AgentSpoolFigures()
    /// Connected agents of the project that report a spool.
    private(set) var agents = 0
    private var ages: [UInt64: Int] = [:]

    static let subBits: UInt64 = 7

    /// The bucket of `ms`, as the bucket's lowest value.
    static func bucket(_ ms: UInt64) -> UInt64 {
        guard ms >= 1 << subBits else { return ms }
        let shift = UInt64(63 - ms.leadingZeroBitCount) - subBits
        return (ms >> shift) << shift
    }

    mutating func add(_ f: AgentSpoolFigures) {
        agents += 1
        sum.batches &+= f.batches
        sum.bytes &+= f.bytes
        sum.corrupt &+= f.corrupt
        sum.droppedFull &+= f.droppedFull
        sum.droppedDiskFull &+= f.droppedDiskFull
        sum.unwritten &+= f.unwritten
        ages[Self.bucket(f.oldestAgeMs), default: 0] += 1
    }

    mutating func remove(_ f: AgentSpoolFigures) {
        agents -= 1
        sum.batches &-= f.batches
        sum.bytes &-= f.bytes
        sum.corrupt &-= f.corrupt
        sum.droppedFull &-= f.droppedFull
        sum.droppedDiskFull &-= f.droppedDiskFull
        sum.unwritten &-= f.unwritten
        let b = Self.bucket(f.oldestAgeMs)
        if let n = ages[b], n > 1 { ages[b] = n - 1 } else { ages.removeValue(forKey: b) }
    }

    /// The figures as /metrics shows them.
    var figures: AgentSpoolFigures {
        var f = sum
        f.oldestAgeMs = ages.keys.max() ?? 0
        return f
    }
}
