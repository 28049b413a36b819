// AckTracker: one simulated agent's DataBatch numbering and what the
// collector has acknowledged of it.
//
// Sequences count 1, 2, 3… per agent process (Hello.bootID + instance);
// acks are cumulative (contract §5: Ack n settles every batch ≤ n), so two
// numbers describe everything: the next sequence to assign and the highest
// acknowledged. An ack can only ever move forward; one that names a batch
// never sent is a protocol violation the load generator must report, not
// absorb, because the soak check counts on every settled sequence having
// really been sent.

/// What one Ack (or a Welcome's `ackedSequence`) did to a tracker.
public enum AckOutcome: Equatable, Sendable {
    /// Batches `range` are newly acknowledged.
    case settled(ClosedRange<UInt64>)
    /// At or below what was already acknowledged: nothing new (a late or
    /// repeated ack; harmless, counted).
    case stale
    /// Names a batch that was never sent: the collector is wrong (counted
    /// and reported; nothing is settled).
    case beyondSent(UInt64)
}

/// Sequence numbers and acknowledgements of one agent. A value type with
/// no thread affinity; its owner (one `SimulatedAgent`) mutates it on the
/// loop thread.
public struct AckTracker: Equatable, Sendable {
    /// The sequence the next new batch gets.
    public private(set) var nextSequence: UInt64 = 1
    /// Every batch ≤ this is acknowledged.
    public private(set) var acknowledged: UInt64 = 0

    public init() {}

    /// Numbers a new batch.
    public mutating func newBatch() -> UInt64 {
        defer { nextSequence += 1 }
        return nextSequence
    }

    /// Batches sent and not yet acknowledged.
    public var inFlight: Int { Int(nextSequence - 1 - acknowledged) }

    /// The batches to send again after a reconnect, oldest first.
    public var unacknowledged: ClosedRange<UInt64>? {
        inFlight > 0 ? (acknowledged + 1)...(nextSequence - 1) : nil
    }

    /// Applies a cumulative acknowledgement of every batch ≤ `sequence`.
    public mutating func acknowledge(upTo sequence: UInt64) -> AckOutcome {
        guard sequence < nextSequence else { return .beyondSent(sequence) }
        guard sequence > acknowledged else { return .stale }
        let range = (acknowledged + 1)...sequence
        acknowledged = sequence
        return .settled(range)
    }
}
