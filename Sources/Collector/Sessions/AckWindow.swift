// AckWindow: the data batches of one session between "received" and
// "acknowledged", in arrival order.
//
// The store completes writes in submission order, but the rule that matters
// is stated here, not assumed: a sequence is acknowledged only once its own
// commit and the commits of every batch received before it have completed.
// Acks are cumulative (Ack n settles every batch <= n), so one failed batch
// blocks every later acknowledgement — the session is then closed and the
// agent re-sends from its window; de-duplication keeps the committed ones
// from being stored twice. A batch refused only because the store was over
// its pending-rows bound is not failed: it stays pending here while the
// session holds it for the store (SessionManager+Records, "push-back").
//
// A value type owned by one session; bounded by the window the collector
// announces (`Welcome.limits.maxInFlightBatches`), enforced by the session
// pausing its reads.

struct AckWindow {
    private enum Outcome: UInt8 { case pending, durable, failed }

    private var sequences: [UInt64] = []
    private var outcomes: [Outcome] = []
    private var head = 0
    /// Highest sequence acknowledged on this session (0: none yet).
    private(set) var acknowledged: UInt64 = 0

    var inFlight: Int { sequences.count - head }
    var isEmpty: Bool { inFlight == 0 }

    /// A batch was handed to the store; returns its ticket.
    mutating func received(_ sequence: UInt64) -> Int {
        sequences.append(sequence)
        outcomes.append(.pending)
        return sequences.count - 1 + base
    }

    /// Tickets stay valid while the arrays are compacted.
    private var base = 0

    /// The store completed the batch of `ticket`.
    mutating func completed(_ ticket: Int, durable: Bool) {
        let i = ticket - base
        guard i >= head && i < outcomes.count else { return }
        outcomes[i] = durable ? .durable : .failed
    }

    enum Next: Equatable {
        /// Nothing new can be acknowledged yet.
        case none
        /// Send Ack(sequence).
        case ack(UInt64)
        /// The oldest unacknowledged batch failed to store.
        case failed(UInt64)
    }

    /// Takes every leading durable batch; what to send.
    mutating func advance() -> Next {
        var highest: UInt64?
        while head < outcomes.count, outcomes[head] == .durable {
            highest = max(highest ?? 0, sequences[head])
            head += 1
        }
        if head < outcomes.count, outcomes[head] == .failed { return .failed(sequences[head]) }
        compact()
        guard let highest else { return .none }
        acknowledged = max(acknowledged, highest)
        return .ack(acknowledged)
    }

    private mutating func compact() {
        if head == sequences.count {
            base += head
            // An idle session holds no window memory.
            sequences = []
            outcomes = []
            head = 0
        } else if head >= 32 && head * 2 >= sequences.count {
            base += head
            sequences.removeFirst(head)
            outcomes.removeFirst(head)
            head = 0
        }
    }
}
