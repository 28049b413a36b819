// OutboundBudget: the bytes queued to send to agents, across all sessions,
// bounded by `session_outbound_budget_bytes`.
//
// Each session's own queue is bounded (1 MiB sealed in Wire, 2 MiB in its
// connection), but ten thousand agents that stop reading — or a schedule
// pushed to all of them at once — could still pin gigabytes. So the
// manager accounts what every connection holds: it reads the connection's
// queued bytes after each write to it, and after each flush of a
// connection that held some (TCPConnectionHandler.connectionDidSend), so
// the total follows every change as it happens. No timer walks the
// sessions that hold bytes: after an ack flush or a pushed schedule that is
// every session, and such a walk was one 7–20 ms iteration every 100 ms.
// The figure each session last reported is kept in the session itself
// (`outboundHeld`), so accounting allocates nothing and costs O(1) per
// write or flush.
//
// While the total is above the budget, a session holding more than its
// fair share (the budget divided among the established sessions) is dropped
// at its next write — not fed further — with
// `vigil_session_limited_total{cause="outbound_budget"}` counted. The agent
// reconnects and asks for its schedule and rules again; a session that
// never reads is gone for good.
//
// Thread: the loop thread.

/// What the budget needs of a session (AgentSession; a stand-in in tests).
protocol OutboundHolder: AnyObject {
    /// Bytes its connection holds now.
    var queuedBytes: Int { get }
    var isEstablished: Bool { get }
    /// The budget's own fields, kept in the holder: the bytes last read,
    /// and whether it was dropped already.
    var outboundHeld: Int { get set }
    var outboundDropped: Bool { get set }
}

final class OutboundBudget {
    /// Bytes in all sessions' connection queues, as last read.
    private(set) var total = 0
    /// Sessions that held bytes when last read.
    private(set) var holders = 0
    /// Reads of a connection's queued bytes: one per write and one per
    /// flush of a holder, never a walk over the holders.
    private(set) var reads: UInt64 = 0

    /// Reads what `s`'s connection holds after a write to it; true when the
    /// session should be dropped (over its share while the budget is spent).
    func observe(_ s: some OutboundHolder, budget: Int, sessions: Int) -> Bool {
        let bytes = read(s)
        guard total > budget, bytes > budget / max(1, sessions), s.isEstablished,
              !s.outboundDropped else { return false }
        s.outboundDropped = true
        return true
    }

    /// `s`'s connection sent queued bytes: what it holds fell.
    func sent(_ s: some OutboundHolder) {
        guard s.outboundHeld > 0 else { return }
        _ = read(s)
    }

    /// The session is gone: what it held no longer counts.
    func forget(_ s: some OutboundHolder) {
        if s.outboundHeld > 0 { holders -= 1 }
        total -= s.outboundHeld
        s.outboundHeld = 0
        s.outboundDropped = false
    }

    private func read(_ s: some OutboundHolder) -> Int {
        reads &+= 1
        let bytes = s.queuedBytes
        if (bytes > 0) != (s.outboundHeld > 0) { holders += bytes > 0 ? 1 : -1 }
        total += bytes - s.outboundHeld
        s.outboundHeld = bytes
        return bytes
    }
}
