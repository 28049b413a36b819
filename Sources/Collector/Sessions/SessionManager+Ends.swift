// SessionManager+Ends: what an ended agent session leaves for the store —
// its latest Status, if one was still waiting for its interval, and the
// `not_visible` state that says it is gone — written in slices.
//
// Why slices. When a load generator exits, a switch fails or the collector
// shuts down, thousands of sessions end within a second and libev hands
// their end-of-file events to one iteration: 1,149 of them once, 19.1 ms of
// the loop's CPU, a store job with its closures and completion per write,
// two writes per session. Now a session's end costs the loop only what must
// be immediate (the descriptor closed, the registry and the counts updated,
// one entry appended here); the store work follows one slice per iteration,
// `sessionEndsPerSlice` sessions in one store write, in the order they
// ended. Nothing is dropped: the queue grows with the sessions that ended
// (one small entry each, bounded by `max_clients`).
//
// Order. The store sees each agent's final Status before its `not_visible`
// (one write), and an agent that connects again before its slice has its
// end written at once, ahead of the new session's registration — so the
// stored state never says gone for an agent that is connected. Shutdown
// waits for the queue to be written before the store closes.
//
// Thread: loop thread.
import CollectorStore
import Reactor

/// An ended session waiting for its store write. A class so the agent's
/// entry can be cancelled where it waits, when it is written early.
final class PendingSessionEnd {
    let end: AgentSessionEnd
    var written = false

    init(_ end: AgentSessionEnd) { self.end = end }
}

extension SessionManager {
    /// Sessions ended and not yet handed to the store.
    public var sessionEndsPending: Int { sessionEndsByAgent.count }

    /// `s`, the registered session of `agent`, ended: its waiting Status
    /// (if any) and `not_visible` are queued for a later slice.
    func queueSessionEnd(_ s: AgentSession, agent: String) {
        s.limits.statusQueued = false
        var status: (state: CollectorStore.AgentState, messages: [String], snapshot: StatusSnapshot)?
        if let p = s.limits.pendingStatus {
            s.limits.pendingStatus = nil
            stats.statusWrites &+= 1
            status = (p.state, p.messages, p.snapshot)
        }
        let e = PendingSessionEnd(AgentSessionEnd(agent: agent, status: status, at: Clock.wallMillis()))
        if let earlier = sessionEndsByAgent[agent] {
            // Cannot happen (a new session writes the earlier end first);
            // should it, the earlier end is written now, keeping the order.
            earlier.written = true
            write([earlier.end])
        }
        sessionEndsByAgent[agent] = e
        sessionEnds.append(e)
        sessionEndWrites.schedule()
    }

    /// One slice: up to `sessionEndsPerSlice` ended sessions in one store
    /// write; the rest wait for the next iteration.
    func writeSessionEnds() {
        flushStatusGroups()
        var slice: [AgentSessionEnd] = []
        slice.reserveCapacity(min(sessionEnds.count, SessionManager.sessionEndsPerSlice))
        while slice.count < SessionManager.sessionEndsPerSlice, let e = sessionEnds.popFirst() {
            guard !e.written else { continue }
            e.written = true
            if sessionEndsByAgent[e.end.agent] === e { sessionEndsByAgent.removeValue(forKey: e.end.agent) }
            slice.append(e.end)
        }
        if !slice.isEmpty { write(slice) }
        if !sessionEnds.isEmpty {
            sessionEndWrites.schedule()
        } else if isShuttingDown && open == 0, let d = drained {
            drained = nil
            d()
        }
    }

    /// `agent` connected again: an end of its previous session still
    /// queued is written now, before the new session's registration.
    func writeSessionEndNow(agent: String) {
        flushStatusGroups()
        guard let e = sessionEndsByAgent.removeValue(forKey: agent) else { return }
        e.written = true
        write([e.end])
    }

    /// Every Status still waiting for its group write goes to the store
    /// now, ahead of the state write that follows.
    func flushStatusGroups() {
        while !statusWrites.isEmpty { writeStatusGroup() }
    }

    private func write(_ ends: [AgentSessionEnd]) {
        stats.sessionEndWrites &+= 1
        stats.sessionEndsWritten &+= UInt64(ends.count)
        let n = ends.count
        store.recordSessionsEnded(ends) { [weak self] r in
            switch r {
            case .success(let written):
                // Agents forgotten meanwhile were skipped: a state not written.
                if written < n { self?.stats.stateWritesFailed &+= UInt64(n - written) }
            case .failure(let e):
                self?.stats.stateWritesFailed &+= UInt64(n - 1)
                self?.stateWriteFailed("agent states of ended sessions", e)
            }
        }
    }
}
