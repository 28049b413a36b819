// ReceivedSequences: the set of batch sequence numbers stored for one
// (agent, boot), kept as a high-water mark plus the gaps below it.
//
// Agents number batches upwards and re-send unacknowledged ones after a
// reconnect, so the set is almost always "everything up to `high`" and this
// is one small row per agent boot instead of one row per batch (10,000
// agents × one batch per 10 s would be 86 million rows a day). Gaps keep it
// exact when batches arrive out of order or one failed while later ones
// committed: a re-sent batch that falls in a gap is stored, not dropped.
//
// Bounded: at most `maxGaps` ranges; past that the oldest range is
// forgotten and counted (a late batch in it would be taken for a duplicate).

struct ReceivedSequences: Equatable {
    /// Highest sequence stored; -1 when none.
    private(set) var high: Int64 = -1
    /// Ranges below `high` never stored, ascending, disjoint.
    private(set) var gaps: [ClosedRange<Int64>] = []

    init() {}

    init(high: Int64, encodedGaps: String) {
        self.high = high
        for part in encodedGaps.split(separator: ",") {
            let ends = part.split(separator: "-")
            guard ends.count == 2, let lo = Int64(ends[0]), let hi = Int64(ends[1]), lo <= hi, hi < high else { continue }
            gaps.append(lo...hi)
        }
    }

    /// "lo-hi,lo-hi" (empty when there are no gaps).
    var encodedGaps: String { gaps.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",") }

    func contains(_ seq: Int64) -> Bool {
        seq <= high && !gaps.contains { $0.contains(seq) }
    }

    /// Adds a sequence not yet contained; returns how many gaps were forgotten.
    mutating func insert(_ seq: Int64, maxGaps: Int) -> Int {
        precondition(seq >= 0 && !contains(seq))
        if seq > high {
            if seq > high + 1 { gaps.append((high + 1)...(seq - 1)) }
            high = seq
        } else if let i = gaps.firstIndex(where: { $0.contains(seq) }) {
            let g = gaps[i]
            var parts: [ClosedRange<Int64>] = []
            if g.lowerBound < seq { parts.append(g.lowerBound...(seq - 1)) }
            if seq < g.upperBound { parts.append((seq + 1)...g.upperBound) }
            gaps.replaceSubrange(i...i, with: parts)
        }
        var forgotten = 0
        while gaps.count > maxGaps { gaps.removeFirst(); forgotten += 1 }
        return forgotten
    }
}
