// SessionManager+Limits: what one authenticated agent session may cost the
// others — its Status records reach the store at most once per
// `status_write_interval_ms` (the latest wins), and its ScheduleRequests
// share one outstanding store read. Every record refused or folded into
// another is counted by cause (`vigil_session_limited_total`).
//
// Status. The operator state (in memory and stored) follows the Status
// records as they are stored, so the API's state and its messages always
// agree, at most one interval late. A Status arriving within the interval of the last
// stored one replaces the waiting one (counted `status_replaced`); the
// waiting one is written when the interval ends (one timer for every
// session, ticking only while some session waits) or, if the session ends
// first, just before its `not_visible`. A flood of Status records therefore
// costs one store write per interval per session, however fast it comes.
//
// Schedules. A ScheduleRequest while the session's previous one is still
// being answered does not queue another read: it is remembered (the latest
// `have` wins, counted `schedule_coalesced`) and answered from the same
// result once that arrives.
//
// Unauthenticated connections. At most `max_handshakes_per_address`
// connections from one IP address may be in their handshake at once; one
// more is closed at accept (`address_limit`). And at most `max_clients −
// handshake_reserve` (the reserve at most a tenth of max_clients)
// connections in all may be in their handshake: one more
// closes the oldest of them (`handshake_evicted`), so connections that send
// a preamble and nothing else cannot pin slots — each new connection pushes
// the oldest out, and at least `handshake_reserve` slots stay for agents
// that complete their handshake. Each is counted in
// `vigil_connections_refused_total{cause}`; every connection's handshake is
// also bounded in time (`handshake_timeout_ms`, from accept).
//
// Thread: loop thread.
import CollectorStore
import Reactor
import Wire

/// Why a session's record was folded into another instead of costing its
/// own store work (`vigil_session_limited_total{cause}`).
public enum SessionLimitCause: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// A Status replaced one still waiting for its store write.
    case statusReplaced
    /// A ScheduleRequest joined the session's outstanding one.
    case scheduleCoalesced
    /// A session dropped for holding more than its share of
    /// `session_outbound_budget_bytes` while the budget was spent.
    case outboundBudget

    public var description: String {
        switch self {
        case .statusReplaced: return "status_replaced"
        case .scheduleCoalesced: return "schedule_coalesced"
        case .outboundBudget: return "outbound_budget"
        }
    }
}

/// Why a connection was refused or closed before its handshake by the
/// limits on unauthenticated connections (`vigil_connections_refused_total{cause}`).
public enum ConnectionRefusal: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// `max_handshakes_per_address` connections of its address were in their handshake.
    case addressLimit
    /// The oldest connection in its handshake, closed for a newer one.
    case handshakeEvicted

    public var description: String {
        switch self {
        case .addressLimit: return "address_limit"
        case .handshakeEvicted: return "handshake_evicted"
        }
    }
}

/// A session's share of the limits: one per AgentSession, read and
/// written only by the SessionManager.
struct SessionLimitState {
    /// A Status waiting for its store write (the latest received).
    var pendingStatus: PendingStatus?
    /// On the manager's list of sessions with a waiting Status.
    var statusQueued = false
    /// When this session's last Status was written (monotonic s).
    var statusWrittenAt = -Double.infinity
    /// The messages of the last Status written: one that changes them (or
    /// the state) is written at once, one that repeats them is gathered.
    var statusWrittenMessages: [String] = []
    /// A ScheduleRequest is being answered (its store reads outstanding).
    var scheduleAnswering = false
    /// Another ScheduleRequest arrived meanwhile: its `have` (the latest).
    var scheduleAskedAgain: UInt64??
}

struct PendingStatus {
    let agent: String
    let state: CollectorStore.AgentState
    let messages: [String]
    let snapshot: StatusSnapshot
}

extension SessionManager {
    // MARK: unauthenticated connections

    /// Connections in their handshake may take at most this many slots.
    /// The reserve is at most a tenth of `maxClients`, so a small
    /// collector still takes a few handshakes at once.
    var handshakeLimit: Int { max(1, settings.maxClients - min(settings.handshakeReserve, settings.maxClients / 10)) }

    /// Whether a connection from `peer` may start a handshake; makes room
    /// by closing the oldest handshake when all its slots are taken.
    func admitUnauthenticated(peer: SocketAddress) -> Bool {
        if handshakingByAddress[peer.ip, default: 0] >= settings.maxHandshakesPerAddress {
            refuse(.addressLimit, peer: peer)
            return false
        }
        while handshaking >= handshakeLimit, let oldest = handshakeOrder.popFirst() {
            guard oldest.phase == .handshake else { continue }
            refuse(.handshakeEvicted, peer: oldest.peer)
            oldest.evict()
        }
        return true
    }

    private func refuse(_ cause: ConnectionRefusal, peer: SocketAddress) {
        stats.refused(cause)
        guard failureLog.allow(peer.ip + " " + cause.description, now: loop.now) else { return }
        Log.warn("connection refused before its handshake", ["reason": cause.description, "source": peer.ip,
                                                             "suppressed": "\(failureLog.suppressed)"])
    }

    func handshakeStarted(_ s: AgentSession) {
        handshakingByAddress[s.peer.ip, default: 0] += 1
        handshakeOrder.append(s)
        // Entries of sessions past their handshake are skipped when met;
        // pruned here so the list stays within twice the handshakes open.
        if handshakeOrder.count > 2 * handshaking + 64 {
            for _ in 0..<handshakeOrder.count {
                guard let x = handshakeOrder.popFirst() else { break }
                if x.phase == .handshake { handshakeOrder.append(x) }
            }
        }
    }

    func handshakeEnded(_ s: AgentSession) {
        let ip = s.peer.ip
        let n = handshakingByAddress[ip, default: 1] - 1
        handshakingByAddress[ip] = n > 0 ? n : nil
    }

    // MARK: status

    /// A Status that changes the agent's state waits at most this long
    /// after the previous write (s): collectors of a cluster read the state
    /// from the store, and show it within a second.
    static let stateChangeWriteInterval = 0.5

    /// The interval `p` waits after the session's last stored Status.
    func statusInterval(_ p: PendingStatus, _ s: AgentSession) -> Double {
        p.state == s.state ? settings.statusWriteInterval : min(settings.statusWriteInterval, SessionManager.stateChangeWriteInterval)
    }

    /// Stores `p` now, or — within the interval of the session's last
    /// stored Status — keeps it as the one to store when the interval ends.
    func submitStatus(_ p: PendingStatus, from s: AgentSession) {
        let now = Clock.monotonic()
        let interval = statusInterval(p, s)
        if now >= s.limits.statusWrittenAt + interval {
            if s.limits.pendingStatus != nil { stats.limited(.statusReplaced) }
            s.limits.pendingStatus = nil
            writeStatus(p, from: s, now: now, live: true)
            return
        }
        if s.limits.pendingStatus != nil { stats.limited(.statusReplaced) }
        s.limits.pendingStatus = p
        let after = max(0.01, s.limits.statusWrittenAt + interval - now)
        guard !s.limits.statusQueued else {
            // A state change may be due before the timer fires.
            if statusTimer.isActive && after < statusTimer.remaining { statusTimer.start(after: after) }
            return
        }
        s.limits.statusQueued = true
        statusWaiting.append(s)
        if !statusTimer.isActive || after < statusTimer.remaining { statusTimer.start(after: after) }
    }

    /// `live`: the session is established, so its operator state follows
    /// (not for the flush of a session that is ending).
    private func writeStatus(_ p: PendingStatus, from s: AgentSession, now: Double, live: Bool) {
        // A change of state or messages is stored in this iteration's group,
        // as the operator state it sets is visible at once; a Status that
        // only brings a new snapshot waits up to `statusGatherSeconds`.
        let changes = s.state != p.state || s.limits.statusWrittenMessages != p.messages
        if live { setState(s, p.state) }
        s.limits.statusWrittenAt = now
        s.limits.statusWrittenMessages = p.messages
        stats.statusWrites &+= 1
        statusWrites.append(AgentStatusWrite(agent: p.agent, state: p.state, messages: p.messages, snapshot: p.snapshot))
        if changes || statusWrites.count >= SessionManager.statusesPerWrite {
            statusGroup.schedule()
        } else if !statusGather.isActive {
            statusGather.start(after: SessionManager.statusGatherSeconds)
        }
    }

    /// The Statuses due over the last `statusGatherSeconds` (or in this
    /// iteration, when one changes its agent's state or messages or a
    /// write's worth is due), at most `statusesPerWrite` per store write
    /// (PostgreSQL: one statement for all of them), in the order they
    /// became due; the rest next iteration. Run first by whatever writes a
    /// session's end or a new registration, so a Status never lands after
    /// the state that follows it.
    func writeStatusGroup() {
        guard !statusWrites.isEmpty else { return }
        if statusWrites.count <= SessionManager.statusesPerWrite && statusGather.isActive { statusGather.stop() }
        let n = min(statusWrites.count, SessionManager.statusesPerWrite)
        let group = Array(statusWrites.prefix(n))
        statusWrites.removeFirst(n)
        stats.statusGroupWrites &+= 1
        store.recordAgentStatuses(group) { [weak self] r in
            if case .failure(let e) = r {
                self?.stats.stateWritesFailed &+= UInt64(n - 1)
                self?.stateWriteFailed("agent statuses", e)
            }
        }
        if !statusWrites.isEmpty { statusGroup.schedule() }
    }

    /// The status timer: writes every waiting Status whose interval ended;
    /// the others wait for the next tick.
    func writeDueStatuses() {
        let now = Clock.monotonic()
        var next = Double.infinity
        for _ in 0..<statusWaiting.count {
            guard let s = statusWaiting.popFirst() else { break }
            guard s.phase == .established, s.limits.pendingStatus != nil else {
                s.limits.statusQueued = false
                continue
            }
            let due = s.limits.statusWrittenAt + statusInterval(s.limits.pendingStatus!, s)
            if now >= due - 0.001 {
                flushStatus(s, now: now, live: true)
            } else {
                statusWaiting.append(s)
                next = min(next, due)
            }
        }
        if next.isFinite { statusTimer.start(after: max(0.01, next - now)) }
    }

    /// Writes the session's waiting Status, if any (its interval ended, or
    /// — `live` false — the session is ending).
    func flushStatus(_ s: AgentSession, now: Double = Clock.monotonic(), live: Bool) {
        s.limits.statusQueued = false
        guard let p = s.limits.pendingStatus else { return }
        s.limits.pendingStatus = nil
        writeStatus(p, from: s, now: now, live: live)
    }

    // MARK: schedules

    /// A ScheduleRequest from an agent: answered by one read at a time per
    /// session; one arriving meanwhile waits for that read's result.
    func scheduleAsked(by s: AgentSession, have: UInt64?) {
        if s.limits.scheduleAnswering {
            stats.limited(.scheduleCoalesced)
            s.limits.scheduleAskedAgain = .some(have)
            return
        }
        s.limits.scheduleAnswering = true
        scheduleRequested(by: s, have: have) { [weak self] entry, lastRuns in
            self?.scheduleAnswered(s, entry, lastRuns)
        }
    }

    /// The outstanding answer went out: a request that waited is answered
    /// from the same definitions and last runs, without another read.
    private func scheduleAnswered(_ s: AgentSession, _ e: ScheduleDirectory.Entry?, _ lastRuns: [String: Int64]?) {
        s.limits.scheduleAnswering = false
        guard let again = s.limits.scheduleAskedAgain else { return }
        s.limits.scheduleAskedAgain = nil
        guard s.phase == .established else { return }
        guard let e else { return scheduleAsked(by: s, have: again) }   // the read failed: try once more
        if let have = again, have == e.version {
            stats.scheduleAnswers &+= 1
            s.send(.scheduleUnchanged(ScheduleUnchanged(version: e.version)))
        } else if let lastRuns {
            sendScheduleRecords(e, to: s, lastRuns: lastRuns)
        } else {
            scheduleAsked(by: s, have: again)
        }
    }
}
