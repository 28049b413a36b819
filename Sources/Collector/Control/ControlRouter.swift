// ControlRouter: control requests (capture start/stop, configuration
// update) sent over an agent's session, matched to the agent's answer by
// request id, with a timeout — and every one of them written to the audit
// table with who asked, what, and how it ended.
//
// A request goes to a `ControlTarget` — an agent's session, seen only as
// "something that can carry a ControlRequest" — so this folder knows
// nothing of how sessions are built.
//
// Thread: loop thread. One timer per request in flight: control requests
// are operator actions (and one configuration push per reconnecting agent
// with overrides), never per-record work.
import CollectorStore
import Reactor
import Wire

/// How a control request ended.
public enum ControlOutcome: Equatable, Sendable {
    /// The agent did it; its message, if any.
    case accepted(message: String)
    /// The agent refused: per-key errors (configuration) and a message.
    case rejected(errors: [KeyValue], message: String)
    /// No answer within the timeout.
    case timedOut
    /// The session closed before the agent answered (or could be asked).
    case disconnected
    /// The collector is shutting down.
    case shuttingDown

    /// Every `auditResult`, so /metrics can show each at zero.
    public static let auditResults = ["ok", "rejected", "timeout", "disconnected", "shutting_down"]

    /// The audit table's `result` column.
    public var auditResult: String {
        switch self {
        case .accepted: return "ok"
        case .rejected: return "rejected"
        case .timedOut: return "timeout"
        case .disconnected: return "disconnected"
        case .shuttingDown: return "shutting_down"
        }
    }
}

/// Who asked for a control action, for the audit table.
public struct AuditContext: Sendable {
    public var actor: String
    public var action: String
    public var target: String
    public var detail: String

    public init(actor: String, action: String, target: String, detail: String = "") {
        self.actor = actor
        self.action = action
        self.target = target
        self.detail = detail
    }
}

/// Where a control request goes: an agent's session.
protocol ControlTarget: AnyObject {
    /// Sends `request` to the agent; false when the session cannot take it
    /// (not established, a probe, or closing).
    func sendControl(_ request: ControlRequest) -> Bool
}

final class ControlRouter {
    private final class Pending {
        let session: ControlTarget
        let kind: ControlKind
        let audit: AuditContext
        let completion: (ControlOutcome) -> Void
        var timer: TimerWatcher?

        init(session: ControlTarget, kind: ControlKind, audit: AuditContext, completion: @escaping (ControlOutcome) -> Void) {
            self.session = session
            self.kind = kind
            self.audit = audit
            self.completion = completion
        }
    }

    private let loop: EventLoop
    private let store: MeasurementStore
    private var pending: [UInt64: Pending] = [:]
    private var nextID: UInt64 = 1
    /// Requests by outcome (`ControlOutcome.auditResult`), for /metrics.
    private(set) var outcomes: [String: UInt64] = [:]
    /// Answers with an id nobody waits for (late, after a timeout).
    private(set) var unmatchedResponses: UInt64 = 0
    private(set) var auditWritesFailed: UInt64 = 0

    init(loop: EventLoop, store: MeasurementStore) {
        self.loop = loop
        self.store = store
    }

    var inFlight: Int { pending.count }

    /// Sends `kind` with `values` to the agent of `session` and completes
    /// (always on a later iteration) with the agent's answer, a timeout, or
    /// the session's end. Secrets never travel back: the agent's answer
    /// carries per-key errors and a message only.
    func send(to session: ControlTarget, kind: ControlKind, values: [KeyValue], timeout: Double,
              audit: AuditContext, completion: @escaping (ControlOutcome) -> Void) {
        let id = nextID
        nextID &+= 1
        let p = Pending(session: session, kind: kind, audit: audit, completion: completion)
        pending[id] = p
        guard session.sendControl(ControlRequest(requestID: id, kind: kind, values: values)) else {
            loop.defer { [weak self] in self?.finish(id, .disconnected) }
            return
        }
        let t = TimerWatcher(loop: loop) { [weak self] _ in self?.finish(id, .timedOut) }
        t.start(after: timeout)
        p.timer = t
    }

    /// The agent answered.
    func received(_ r: ControlResponse, from session: ControlTarget) {
        guard let p = pending[r.requestID], p.session === session else {
            unmatchedResponses &+= 1
            Log.debug("control: answer to unknown request", ["request": "\(r.requestID)"])
            return
        }
        finish(r.requestID, r.ok ? .accepted(message: r.message) : .rejected(errors: r.errors, message: r.message))
    }

    /// The session ended: its requests end as `.disconnected`.
    func sessionClosed(_ session: ControlTarget) {
        for (id, p) in pending where p.session === session { finish(id, .disconnected) }
    }

    /// Shutdown: everything still waiting ends now.
    func cancelAll() {
        for id in Array(pending.keys) { finish(id, .shuttingDown) }
    }

    private func finish(_ id: UInt64, _ outcome: ControlOutcome) {
        guard let p = pending.removeValue(forKey: id) else { return }
        p.timer?.stop()
        p.timer = nil
        outcomes[outcome.auditResult, default: 0] &+= 1
        var detail = p.audit.detail
        switch outcome {
        case .rejected(let errors, let message):
            let why = errors.map { "\($0.key): \($0.value)" } + (message.isEmpty ? [] : [message])
            if !why.isEmpty { detail += (detail.isEmpty ? "" : "; ") + why.joined(separator: "; ") }
        case .accepted(let message) where !message.isEmpty:
            detail += (detail.isEmpty ? "" : "; ") + message
        default:
            break
        }
        let entry = AuditEntry(ts: Clock.wallMillis(), actor: p.audit.actor, action: p.audit.action, target: p.audit.target,
                               detail: detail, result: outcome.auditResult)
        store.appendAudit(entry) { [weak self] r in
            if case .failure(let e) = r {
                self?.auditWritesFailed &+= 1
                Log.warn("audit: write failed", ["action": entry.action, "target": entry.target, "error": "\(e)"])
            }
        }
        Log.info("control \(p.kind)", ["agent": p.audit.target, "actor": p.audit.actor, "result": outcome.auditResult])
        p.completion(outcome)
    }
}
