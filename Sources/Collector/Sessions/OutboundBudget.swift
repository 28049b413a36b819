// OutboundBudget: the bytes queued to send to agents, across all sessions,
// bounded by `session_outbound_budget_bytes`.
//
// Each session's own queue is bounded (1 MiB sealed in Wire, 2 MiB in its
// connection), but ten thousand agents that stop reading — or a schedule
// pushed to all of them at once — could still pin gigabytes. So the
// manager accounts what every connection holds: after each write it reads
// the connection's queued bytes, and sessions that still hold some are
// read again every `refreshInterval` until they drained (bytes leave
// between writes, unobserved). While the total is above the budget, a
// session holding more than its fair share (the budget divided among the
// established sessions) is dropped at its next write — not fed further —
// with `vigil_session_limited_total{cause="outbound_budget"}` counted. The
// agent reconnects and asks for its schedule and rules again; a session
// that never reads is gone for good.
//
// Thread: the loop thread.
import Reactor
import Wire

final class OutboundBudget {
    static let refreshInterval = 0.1

    private let loop: EventLoop
    /// Bytes in all sessions' connection queues, as last read.
    private(set) var total = 0
    /// Each holding session and the bytes last read from it.
    private var held: [ObjectIdentifier: (session: AgentSession, bytes: Int)] = [:]
    private var refresh: TimerWatcher?
    /// Sessions dropped and not yet finished (so one is dropped once).
    private var dropping: Set<ObjectIdentifier> = []

    init(loop: EventLoop) { self.loop = loop }

    /// Reads what `s`'s connection holds now; true when the session should
    /// be dropped (over its share while the budget is spent).
    func observe(_ s: AgentSession, budget: Int, sessions: Int) -> Bool {
        let id = ObjectIdentifier(s)
        let bytes = s.connection?.queuedBytes ?? 0
        total += bytes - (held[id]?.bytes ?? 0)
        if bytes > 0 {
            held[id] = (s, bytes)
            if refresh == nil {
                let t = TimerWatcher(loop: loop) { [unowned self] _ in self.refreshHeld() }
                t.start(after: OutboundBudget.refreshInterval, repeat: OutboundBudget.refreshInterval)
                refresh = t
            }
        } else {
            held.removeValue(forKey: id)
        }
        guard total > budget, bytes > budget / max(1, sessions), s.phase == .established,
              !dropping.contains(id) else { return false }
        dropping.insert(id)
        return true
    }

    /// The session is gone: what it held no longer counts.
    func forget(_ s: AgentSession) {
        let id = ObjectIdentifier(s)
        dropping.remove(id)
        if let h = held.removeValue(forKey: id) { total -= h.bytes }
    }

    private func refreshHeld() {
        for (id, h) in held {
            let bytes = h.session.connection?.queuedBytes ?? 0
            total += bytes - h.bytes
            if bytes > 0 { held[id] = (h.session, bytes) } else { held.removeValue(forKey: id) }
        }
        if held.isEmpty {
            refresh?.stop()
            refresh = nil
        }
    }
}
