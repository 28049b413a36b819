// BatchContent: what a simulated agent's batch holds, computed from
// (sequence, item) alone, so a batch re-sent after a reconnect is rebuilt
// identical without keeping a copy, and `vigil-load verify` can find it:
// aggregate i of batch s has check name `c<i>` and window start
// `baseMs + s` (unique per agent and batch).
import Wire

enum BatchContent {
    static let monitor = "load"
    static let source = "load"
    static let windowLengthMs: UInt32 = 10_000

    /// Check names c0, c1, … shared by every agent (one allocation each).
    static func checkNames(_ items: Int) -> [String] { (0..<items).map { "c\($0)" } }

    /// The aggregates of batch `sequence`, with string refs of `session`
    /// (new names are defined on it first, in the same message).
    static func items(sequence: UInt64, count: Int, baseMs: Int64, names: [String],
                      session: ClientSession) throws(SessionError) -> [BatchItem] {
        let monitor = try session.stringRef(BatchContent.monitor)
        let source = try session.stringRef(BatchContent.source)
        let start = UInt64(baseMs) &+ sequence
        var out: [BatchItem] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let check = try session.stringRef(names[i])
            // Plausible latencies (µs), varied by sequence and item.
            let n = 50 + (sequence &+ UInt64(i)) % 100
            let p50 = 2_000 + UInt64(i % 50) * 100
            out.append(.aggregate(Aggregate(windowStartMs: start, windowLengthMs: windowLengthMs, monitor: monitor,
                                            check: check, source: source, count: n, errors: n % 7 == 0 ? 1 : 0,
                                            sumUs: n * p50, minUs: p50 / 4, maxUs: p50 * 6, p50Us: p50,
                                            p95Us: p50 * 3, p99Us: p50 * 5)))
        }
        return out
    }
}
