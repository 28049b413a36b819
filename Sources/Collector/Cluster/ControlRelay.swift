// ControlRelay: control requests for an agent whose session another
// collector of the cluster holds — both halves.
//
// Asking (this collector's API was asked): the request becomes a row in
// `control_commands` (agent, owner, epoch, kind, payload, deadline, who
// asked) and a NOTIFY on the owner's channel `vigil_control_<owner>`
// (payload: the row id), sent when that write commits — its own
// transaction, never an ingest one. The answer comes back the same way on
// this collector's channel; the row then holds the outcome. The asker keeps
// its own deadline, the request's timeout as for a local request: when it
// passes first the row is marked `timeout` (unless the owner's answer got
// there first, which then wins) and answered so.
//
// Owning (another collector was asked): a NOTIFY on this collector's
// channel — or a heartbeat that finds commands nobody announced, or the
// LISTEN coming back after a lost connection — takes every waiting command
// for this collector in one statement. Each runs through the ControlRouter
// exactly as a local request (same audit row, with the asker's actor; the
// time left until the row's deadline as its timeout), and its outcome is
// written to the row with a NOTIFY to the asker. A configuration update the
// agent accepted is remembered (ClusterNode.relayedConfigApplied): the
// asker stores it as the agent's overrides, and when that change comes
// back through the change log it is not pushed a second time. A command whose agent has
// no session here any more ends `disconnected`; one already past its
// deadline ends `timeout` without reaching the agent.
//
// Thread: loop thread. One timer per request in flight, as ControlRouter.
import CollectorStore
import JSON
import Reactor
import Wire

final class ControlRelay {
    private unowned let node: ClusterNode
    private let manager: ConnectedAgents
    private var listener: ControlListening?

    private final class Waiter {
        let completion: (Result<ControlOutcome, StoreError>) -> Void
        var timer: TimerWatcher?
        var expiring = false
        init(_ completion: @escaping (Result<ControlOutcome, StoreError>) -> Void) { self.completion = completion }
    }
    /// Requests this collector relayed, by command id.
    private var waiting: [Int64: Waiter] = [:]
    /// Answers announced before their submission completed here (ids).
    private var early: Set<Int64> = []
    private var taking = false
    private var takeAgain = false
    private var stopped = false

    // Counters for /metrics.
    private(set) var relayedOut: UInt64 = 0
    private(set) var relayedIn: UInt64 = 0
    private(set) var notifications: UInt64 = 0
    /// Relayed requests answered, by outcome (`ControlOutcome.auditResult`).
    private(set) var outcomes: [String: UInt64] = [:]

    init(node: ClusterNode, manager: ConnectedAgents) {
        self.node = node
        self.manager = manager
    }

    var inFlight: Int { waiting.count }
    var isListening: Bool { listener?.isListening ?? false }
    var listenReconnects: UInt64 { listener?.reconnects ?? 0 }

    func start() {
        listener = node.store.listenControl(collector: node.id, notified: { [weak self] payload in
            self?.notified(payload)
        }, listening: { [weak self] in
            // In place (again): whatever was sent while nobody listened.
            self?.takeCommands()
            self?.recheckWaiting()
        })
    }

    func stop() {
        stopped = true
        listener?.close()
        listener = nil
        for (id, w) in waiting {
            w.timer?.stop()
            waiting[id] = nil
            w.completion(.success(.shuttingDown))
        }
    }

    // MARK: asking

    /// Sends `kind` to the agent through `owner`; completes with the owner's
    /// outcome, `.timedOut` at `timeout`, or the store's failure.
    func send(agent: String, owner: AgentOwner, kind: ControlKind, values: [KeyValue], timeout: Double, audit: AuditContext,
              completion: @escaping (Result<ControlOutcome, StoreError>) -> Void) {
        guard !stopped else { return node.loop.defer { completion(.success(.shuttingDown)) } }
        let command = ControlCommand(agent: agent, owner: owner.collector, epoch: owner.epoch, kind: kind.description,
                                     payload: ControlRelay.encode(values), detail: audit.detail, requestedBy: audit.actor,
                                     asker: node.id, remainingMs: 0)
        relayedOut &+= 1
        let started = Clock.monotonic()
        node.store.submitControlCommand(command, timeoutMs: Int64(timeout * 1000)) { [weak self] r in
            guard let self else { return }
            switch r {
            case .failure(let e):
                completion(.failure(e))
            case .success(let id):
                let w = Waiter(completion)
                self.waiting[id] = w
                let t = TimerWatcher(loop: self.node.loop) { [weak self] _ in self?.expire(id) }
                t.start(after: max(0.001, timeout - (Clock.monotonic() - started)))
                w.timer = t
                if self.early.remove(id) != nil { self.fetch(id) }
                Log.debug("control relayed", ["agent": agent, "owner": owner.collector, "command": "\(id)"])
            }
        }
    }

    private func notified(_ payload: String) {
        notifications &+= 1
        guard let id = Int64(payload) else { return takeCommands() }
        if waiting[id] != nil { return fetch(id) }
        // A new command for this collector — or an answer that overtook its
        // own submission's completion.
        if early.count >= 1_024 { early.removeAll() }
        early.insert(id)
        takeCommands()
    }

    /// Reads an answered command and completes its request.
    private func fetch(_ id: Int64) {
        node.store.controlCommand(id: id) { [weak self] r in
            guard let self, case .success(let c) = r, let result = c.result else { return }
            self.complete(id, result: result, message: c.message, errors: c.errors)
        }
    }

    /// The asker's deadline: mark the row `timeout` unless answered; the
    /// stored outcome (the first) is the answer.
    private func expire(_ id: Int64) {
        guard let w = waiting[id], !w.expiring else { return }
        w.expiring = true
        node.store.finishControlCommand(id: id, result: ControlOutcome.timedOut.auditResult, message: "", errors: "",
                                        notifyAsker: false) { [weak self] r in
            guard let self else { return }
            switch r {
            case .success(let c): self.complete(id, result: c.result ?? "timeout", message: c.message, errors: c.errors)
            case .failure: self.complete(id, result: "timeout", message: "", errors: "")
            }
        }
    }

    /// After the LISTEN came back: answers that arrived meanwhile.
    private func recheckWaiting() {
        for id in waiting.keys { fetch(id) }
    }

    private func complete(_ id: Int64, result: String, message: String, errors: String) {
        guard let w = waiting.removeValue(forKey: id) else { return }
        w.timer?.stop()
        outcomes[result, default: 0] &+= 1
        w.completion(.success(ControlRelay.outcome(result: result, message: message, errors: errors)))
    }

    // MARK: owning

    /// Takes every command waiting for this collector and runs each.
    func takeCommands() {
        guard !stopped else { return }
        guard !taking else { takeAgain = true; return }
        taking = true
        node.store.takeControlCommands(owner: node.id) { [weak self] r in
            guard let self else { return }
            self.taking = false
            if case .success(let commands) = r {
                for c in commands { self.run(c) }
                if commands.count >= 256 { self.takeAgain = true }
            }
            if self.takeAgain {
                self.takeAgain = false
                self.takeCommands()
            }
        }
    }

    private func run(_ c: ControlCommand) {
        relayedIn &+= 1
        guard let kind = ControlRelay.kind(c.kind) else {
            return finish(c, .rejected(errors: [], message: "unknown control kind \(c.kind)"))
        }
        guard c.remainingMs > 0 else { return finish(c, .timedOut) }
        guard let session = manager.session(forAgent: c.agent) else { return finish(c, .disconnected) }
        let audit = AuditContext(actor: c.requestedBy, action: ControlRelay.auditAction(kind), target: c.agent, detail: c.detail)
        let values = ControlRelay.decode(c.payload)
        manager.control.send(to: session, kind: kind, values: values, timeout: Double(c.remainingMs) / 1000,
                             audit: audit) { [weak self] outcome in
            guard let self else { return }
            // The asker stores these values next; that change, read back
            // from the change log, is then not pushed to the agent again.
            if kind == .configUpdate, case .accepted = outcome { self.node.relayedConfigApplied(agent: c.agent, values: values) }
            self.finish(c, outcome)
        }
    }

    private func finish(_ c: ControlCommand, _ outcome: ControlOutcome) {
        var message = "", errors = ""
        switch outcome {
        case .accepted(let m): message = m
        case .rejected(let e, let m): message = m; errors = ControlRelay.encode(e)
        default: break
        }
        node.store.finishControlCommand(id: c.id, result: outcome.auditResult, message: message, errors: errors,
                                        notifyAsker: true) { r in
            if case .failure(let e) = r {
                Log.warn("cluster: recording a relayed control outcome failed", ["command": "\(c.id)", "error": "\(e)"])
            }
        }
    }

    // MARK: encoding

    static func kind(_ text: String) -> ControlKind? {
        [ControlKind.captureStart, .captureStop, .configUpdate].first { $0.description == text }
    }

    static func auditAction(_ kind: ControlKind) -> String {
        switch kind {
        case .captureStart: return "capture.start"
        case .captureStop: return "capture.stop"
        default: return "config.update"
        }
    }

    /// Key/value pairs as a JSON array of two-string arrays, in order.
    static func encode(_ values: [KeyValue]) -> String {
        JSON.array(values.map { .array([.string($0.key), .string($0.value)]) }).serialized
    }

    /// The reverse; anything malformed is left out.
    static func decode(_ text: String) -> [KeyValue] {
        guard !text.isEmpty, let json = try? JSON.parse(text), let items = json.arrayValue else { return [] }
        return items.compactMap { item in
            guard let pair = item.arrayValue, pair.count == 2, let k = pair[0].stringValue, let v = pair[1].stringValue else { return nil }
            return KeyValue(k, v)
        }
    }

    static func outcome(result: String, message: String, errors: String) -> ControlOutcome {
        switch result {
        case "ok": return .accepted(message: message)
        case "rejected": return .rejected(errors: decode(errors), message: message)
        case "disconnected": return .disconnected
        case "shutting_down": return .shuttingDown
        default: return .timedOut
        }
    }
}
