// SessionManager+Records: what the collector does with each record an
// established agent sends — data batches to the store and acknowledged
// after commit, Status, Interfaces and EffectiveConfig to the agent's state (Status
// within the per-session limits of SessionManager+Limits.swift), sync requests
// and control answers to their owners.
//
// Acknowledgements. A batch's sequence waits in its session's AckWindow
// until the store completes it; a completion puts the session on one list
// (`acksDue`, a flag per session keeps it there once), and one deferred
// slice per iteration sends the acks of every session on it: the acks of
// one commit go out together, with no closure or object per session.
//
// Push-back. A batch the store refuses for being over its pending-rows
// bound does not end the session: the batch is held, the session is no
// longer read, and both resume, oldest first and in slices, once the
// store's pending rows are below half the bound (`pushBack`).
//
// Thread: loop thread.
import CollectorStore
import ConfigFile
import JSON
import Reactor
import Wire

extension SessionManager {
    func received(_ record: Record, from s: AgentSession) {
        stats.recordsIn &+= 1
        guard s.phase == .established else { return }
        switch record {
        case .dataBatch(let b):
            receivedBatch(b, from: s)
        case .status(let status):
            receivedStatus(status, from: s)
        case .interfaces(let i):
            stats.interfaceRecords &+= 1
            s.interfaces = SessionManager.json(i).serialized
        case .effectiveConfig(let c):
            s.reportedConfig = SessionManager.reported(c)
            // The first report of a session: its policy is known, converge now.
            if !s.converged {
                s.converged = true
                converge(s)
            }
        case .patternsRequest(let r):
            patternsRequested(by: s, have: r.haveVersion)
        case .scheduleRequest(let r):
            if s.agentID == nil {
                stats.scheduleAnswers &+= 1
                s.send(.scheduleUnchanged(ScheduleUnchanged(version: r.haveVersion)))
            } else {
                scheduleAsked(by: s, have: r.haveVersion)
            }
        case .controlResponse(let r):
            control.received(r, from: s)
        case .error(let e):
            Log.info("agent closed its session", ["agent": s.agentID ?? "probe", "code": "\(e.code)", "message": e.message])
        case .pong, .ping, .unknown, .hello, .welcome, .stringDef, .stringClear, .ack, .scheduleUnchanged, .schedule,
             .patternsUnchanged, .patterns, .controlRequest:
            break
        }
    }

    // MARK: data batches

    private func receivedBatch(_ b: DataBatch, from s: AgentSession) {
        guard let agentID = s.agentID, let strings = s.strings else { return }
        stats.batchesReceived &+= 1
        let t: BatchTranslator.Translated
        switch BatchTranslator.translate(b, projectId: s.projectId, agentID: agentID, dedupBoot: s.dedupBoot,
                                         strings: strings, receivedAt: Clock.wallMillis()) {
        case .success(let x): t = x
        case .failure(let refusal):
            s.close(.malformedRecord, error: ErrorRecord(code: .protocolViolation, message: refusal.description))
            return
        }
        stats.itemsUnknownDropped &+= UInt64(t.unknownItems)
        let ticket = s.window.received(b.sequence)
        if s.storePaused {
            // Behind a batch held for the store (read before the pause took
            // effect): held too, so the session's batches reach the store in
            // the order they came.
            s.heldBatches.append((ticket, t.batch))
        } else {
            submit(t.batch, ticket, from: s)
        }
        if s.window.inFlight > AgentSession.maxInFlightBatches && s.pauseForWindow() {
            stats.windowPauses &+= 1
        }
    }

    private func submit(_ batch: Batch, _ ticket: Int, from s: AgentSession) {
        // The copy for `batchStored` shares the batch's storage; kept only when someone listens.
        let copy = batchStored == nil ? nil : batch
        let project = s.projectName
        store.submitBatch(batch) { [weak self] result in
            if let copy, case .success(.stored) = result { self?.batchStored?(project, copy) }
            if case .failure(.overloaded) = result {
                self?.pushBack(s, batch, ticket)
            } else {
                self?.batchCompleted(s, ticket, result)
            }
        }
    }

    private func batchCompleted(_ s: AgentSession, _ ticket: Int, _ result: Result<BatchOutcome, StoreError>) {
        // The store counts batches stored, duplicate and failed itself.
        if case .failure(let e) = result { storeTrouble("storing a batch", e) }
        guard s.phase == .established else { return }
        if case .success = result { s.window.completed(ticket, durable: true) } else { s.window.completed(ticket, durable: false) }
        guard !s.ackQueued else { return }
        s.ackQueued = true
        acksDue.append(s)
        ackFlush.schedule()
    }

    // MARK: push-back

    /// A pushed-back session ended: its held batches go (never stored, the
    /// agent sends them again), and it leaves the queue at the next look.
    func pushedBackEnded(_ s: AgentSession) {
        s.heldBatches = []
        stats.sessionsPushedBack -= 1
        pushedBackGone += 1
    }

    /// The store refused `batch` for being over its pending-rows bound.
    /// The batch was not stored (the refusal comes before it is queued), so
    /// it stays in the session, unacknowledged, and goes to the store again
    /// once the store drained: stored once, acknowledged once. (Closing the
    /// session instead, the agent's re-send on its next session, cost a
    /// handshake per refusal and turned a slow store into reconnect churn.)
    /// Until then the session is not read: TCP flow control holds the agent,
    /// whose own queue and spool keep what it produces meanwhile.
    private func pushBack(_ s: AgentSession, _ batch: Batch, _ ticket: Int) {
        guard s.phase == .established else { return }
        // In ticket order: a re-refused batch may come back behind others.
        let at = s.heldBatches.firstIndex { $0.ticket > ticket } ?? s.heldBatches.count
        s.heldBatches.insert((ticket, batch), at: at)
        guard s.pauseForStore() else { return }
        stats.storePushbacks &+= 1
        if pushedBack.isEmpty {
            pushBackStarted = Clock.monotonic()
            pushBackEpisodeSessions = 0
            pushBackEpisodeResumed = 0
            let st = store.stats
            Log.warn("store over its pending-rows bound: pausing the sessions whose batches it refuses until it drains",
                     ["pending_rows": "\(st.pendingRows)", "limit": "\(store.limits.maxPendingRows)"])
        }
        pushBackEpisodeSessions += 1
        pushedBack.append(s)
        stats.sessionsPushedBack += 1
        if !drainCheck.isActive { drainCheck.start(after: SessionManager.drainCheckInterval, repeat: SessionManager.drainCheckInterval) }
    }

    /// Every `drainCheckInterval` while sessions are pushed back: once the
    /// store's pending rows are below the low-water mark (half the bound),
    /// the oldest paused sessions' held batches go to the store again and
    /// the sessions are read again, at most `resumesPerSlice` sessions and
    /// up to the low-water mark per check.
    func resumePushedBack() {
        // Sessions that ended while paused leave the queue here, once they
        // are half of it: a long wait with agents coming and going must
        // not grow it.
        if pushedBackGone > 64 && pushedBackGone * 2 > pushedBack.count {
            var live = RingBuffer<AgentSession>(capacity: max(64, pushedBack.count - pushedBackGone), overflow: .grow)
            while let s = pushedBack.popFirst() {
                if s.phase == .established { _ = live.append(s) }
            }
            pushedBack = live
            pushedBackGone = 0
        }
        let lowWater = store.limits.maxPendingRows / 2
        var pending = store.stats.pendingRows
        var n = 0
        while n < SessionManager.resumesPerSlice, pending < lowWater, let s = pushedBack.popFirst() {
            n += 1
            guard s.phase == .established else {
                pushedBackGone = max(0, pushedBackGone - 1)
                continue
            }
            stats.sessionsPushedBack -= 1
            pushBackEpisodeResumed += 1
            let held = s.heldBatches
            s.heldBatches = []
            for (ticket, batch) in held {
                stats.batchesResubmitted &+= 1
                pending += max(batch.rowCount, 1)
                submit(batch, ticket, from: s)
            }
            s.resumeFromStore()
        }
        guard pushedBack.isEmpty else { return }
        drainCheck.stop()
        let took = Clock.monotonic() - pushBackStarted
        Log.info("store drained: push-back over",
                 ["sessions_paused": "\(pushBackEpisodeSessions)", "read_again": "\(pushBackEpisodeResumed)",
                  "ended_meanwhile": "\(pushBackEpisodeSessions - pushBackEpisodeResumed)", "seconds": "\(Int(took.rounded()))"])
    }

    /// The deferred slice: acknowledges what each waiting session's window
    /// allows, `acksPerSlice` sessions at a time.
    func flushAcks() {
        var n = 0
        while n < SessionManager.acksPerSlice, let s = acksDue.popFirst() {
            s.ackQueued = false
            sendAcks(s)
            n += 1
        }
        if !acksDue.isEmpty { ackFlush.schedule() }
    }

    private func sendAcks(_ s: AgentSession) {
        guard s.phase == .established else { return }
        switch s.window.advance() {
        case .none:
            break
        case .ack(let sequence):
            stats.acksSent &+= 1
            s.send(.ack(Ack(sequence: sequence)))
        case .failed(let sequence):
            s.close(.local, error: ErrorRecord(code: .internalError,
                                               message: "batch \(sequence) could not be stored; reconnect and send it again"))
            return
        }
        s.windowMoved()
    }

    // MARK: status

    private func receivedStatus(_ status: Status, from s: AgentSession) {
        guard let id = s.agentID else { return }
        stats.statusRecords &+= 1
        let newState: CollectorStore.AgentState
        var messages = status.messages
        switch status.state {
        case .stopped: newState = .stopped
        case .capturing: newState = .capturing
        case .wrongConfiguration: newState = .wrongConfiguration
        default:
            newState = .stopped
            messages.append("unknown agent state \(status.state.rawValue)")
        }
        var fields: [(String, JSON)] = [
            ("agent_ts", .number(Double(status.timestampMs))), ("state", .string(newState.rawValue)),
            ("messages", .array(messages.map(JSON.string))), ("cpu_permille", .int(Int(status.cpuPermille))),
            ("rss_bytes", .number(Double(status.rssBytes))),
            ("counters", .object(status.counters.map { ($0.name, .number(Double($0.value))) })),
        ]
        if let interfaces = s.interfaces { fields.append(("interfaces", .raw(interfaces))) }
        setSpool(s, AgentSpoolFigures(status.counters))
        // Stored (and the operator state set) now or when the session's
        // status interval ends, the latest winning (SessionManager+Limits.swift).
        submitStatus(PendingStatus(agent: id, state: newState, messages: messages,
                                   snapshot: StatusSnapshot(ts: Clock.wallMillis(), json: JSON.object(fields).serialized)), from: s)
    }

    // MARK: effective configuration

    /// An EffectiveConfig as the session keeps it: only keys of the agent
    /// schema that are not secret (a secret an agent sent anyway is
    /// dropped, never shown), the last entry per key. Memory per session is
    /// therefore bounded by the schema: one entry per key, each string at
    /// most the wire's `maxStringLength`.
    static func reported(_ c: EffectiveConfig) -> [String: ConfigEntry] {
        var out: [String: ConfigEntry] = [:]
        for e in c.entries {
            guard let k = AgentSchema.schema.key(e.key), !k.secret else { continue }
            out[e.key] = e
        }
        return out
    }

    /// An Interfaces record as the status snapshot shows it.
    static func json(_ i: Interfaces) -> JSON {
        .array(i.interfaces.prefix(64).map { n in
            .object([("name", .string(n.name)), ("up", .bool(n.flags & NetworkInterface.flagUp != 0)),
                     ("loopback", .bool(n.flags & NetworkInterface.flagLoopback != 0)),
                     ("capturing", .bool(n.flags & NetworkInterface.flagCapturing != 0)),
                     ("addresses", .array(n.addresses.prefix(64).map(JSON.string)))])
        })
    }
}
