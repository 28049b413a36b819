// The stored side of alerting: rules (their document is JSON text the
// Alerts module validated — the store keeps it, it does not read it), each
// rule's evaluation state and the history of its transitions, the
// evaluation lease, silences, and the record of every notification.
//
// The lease is what lets several collectors share one store: whoever holds
// the named lease (holder id, epoch, expiry) evaluates; state writes carry
// the holder and epoch they were computed under and are refused once the
// lease moved on (a fencing token), so a collector that paused past its
// lease cannot overwrite its successor's work.
//
// Notifications are an outbox: a transition that is notified is written
// together with one `pending` notification row per receiver of its rule;
// the lease holder claims rows (fenced like state writes, one attempt
// counted per claim) before each delivery attempt and records the result,
// so a collector that takes the lease over finds what its predecessor left
// pending and delivers it. A row's id is the notification's stable id.
//
// Plain values; no thread affinity.

public struct AlertRuleRecord: Equatable, Sendable {
    public var id: Int64
    public var project: String
    public var name: String
    /// The rule's document (JSON text, as the API normalised it).
    public var body: String
    /// Bumped by every update; 1 when created.
    public var version: Int64
    public var created: Int64
    public var updated: Int64

    public init(id: Int64, project: String, name: String, body: String, version: Int64, created: Int64, updated: Int64) {
        self.id = id; self.project = project; self.name = name; self.body = body
        self.version = version; self.created = created; self.updated = updated
    }
}

/// Where a rule stands: `ok`, `pending`, `firing` or `resolved`.
public struct AlertStateRecord: Equatable, Sendable {
    public var ruleId: Int64
    public var state: String
    /// When the rule entered `state` (ms).
    public var since: Int64
    /// The last evaluation (ms) and the value it saw (nil: no data).
    public var evaluated: Int64
    public var value: Double?
    /// Evaluator's words for people ("p95 812 ms > 800 ms").
    public var detail: String

    public init(ruleId: Int64, state: String, since: Int64, evaluated: Int64, value: Double?, detail: String) {
        self.ruleId = ruleId; self.state = state; self.since = since
        self.evaluated = evaluated; self.value = value; self.detail = detail
    }
}

/// One change of a rule's state.
public struct AlertTransition: Equatable, Sendable {
    public var id: Int64
    public var ruleId: Int64
    public var ts: Int64
    public var from: String
    public var to: String
    public var value: Double?
    public var detail: String
    /// The notification rows written with it, one per receiver of the rule
    /// in the receivers' order (empty: not notified).
    public var notificationIds: [Int64] = []

    /// Whether a change from `from` to `to` is notified: into `firing`,
    /// and from `firing` to `resolved` (docs/ALERTS.md).
    public static func notifies(from: String, to: String) -> Bool {
        to == "firing" || (to == "resolved" && from == "firing")
    }
}

/// The evaluation lease as the store last granted it.
public struct AlertLease: Equatable, Sendable {
    public var name: String
    public var holder: String
    /// Grows each time another holder takes the lease over.
    public var epoch: Int64
    /// Until when (ms) the holder may evaluate without renewing.
    public var expires: Int64

    public init(name: String, holder: String, epoch: Int64, expires: Int64) {
        self.name = name; self.holder = holder; self.epoch = epoch; self.expires = expires
    }
}

/// A silence: notifications of matching rules are suppressed (and recorded
/// as `silenced`) until `ends`.
public struct AlertSilence: Equatable, Sendable {
    public var id: Int64
    public var project: String
    /// One rule, or every rule of the project (nil) whose labels match.
    public var ruleId: Int64?
    /// Label values a rule must all have (empty: any).
    public var matchers: [String: String]
    public var starts: Int64
    public var ends: Int64
    public var comment: String
    public var createdBy: String

    public init(id: Int64 = 0, project: String, ruleId: Int64?, matchers: [String: String], starts: Int64, ends: Int64,
                comment: String, createdBy: String) {
        self.id = id; self.project = project; self.ruleId = ruleId; self.matchers = matchers
        self.starts = starts; self.ends = ends; self.comment = comment; self.createdBy = createdBy
    }
}

/// One notification, sent or not.
public struct AlertNotification: Equatable, Sendable {
    public var id: Int64
    public var project: String
    public var ruleId: Int64
    /// The transition it tells of.
    public var transitionId: Int64
    public var ts: Int64
    /// `firing` or `resolved`.
    public var event: String
    /// The receiver as the API shows it (secrets redacted).
    public var receiver: String
    /// `pending` (not yet delivered, or waiting for a retry), `sent`,
    /// `failed`, `silenced` or `rate_limited`.
    public var result: String
    /// Delivery attempts started (each counted before it starts).
    public var attempts: Int64
    public var detail: String
    /// Which of the rule's receivers (its index in the rule's `receivers`).
    public var receiverIndex: Int64
    /// A pending row is not delivered before this time (ms; a retry's backoff).
    public var due: Int64

    public init(id: Int64 = 0, project: String, ruleId: Int64, transitionId: Int64, ts: Int64, event: String,
                receiver: String, result: String, attempts: Int64, detail: String, receiverIndex: Int64 = 0, due: Int64 = 0) {
        self.id = id; self.project = project; self.ruleId = ruleId; self.transitionId = transitionId; self.ts = ts
        self.event = event; self.receiver = receiver; self.result = result; self.attempts = attempts; self.detail = detail
        self.receiverIndex = receiverIndex; self.due = due
    }
}

/// A pending notification with what delivering it needs: its row, the
/// transition it tells of, and its rule (name and document) as stored now.
public struct AlertOutboxEntry: Equatable, Sendable {
    public var notification: AlertNotification
    public var transition: AlertTransition
    public var ruleName: String
    /// The rule's document (JSON text, secrets included: never shown).
    public var ruleBody: String

    public init(notification: AlertNotification, transition: AlertTransition, ruleName: String, ruleBody: String) {
        self.notification = notification; self.transition = transition; self.ruleName = ruleName; self.ruleBody = ruleBody
    }
}
