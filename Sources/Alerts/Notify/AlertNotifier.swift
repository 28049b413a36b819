// AlertNotifier: turns stored transitions (firing, and resolved after
// firing) into notifications, and records every one — sent, failed,
// silenced or rate_limited — in the store.
//
// For each receiver of the rule, the alert joins that receiver's group;
// a group is flushed `groupWait` after its first alert, so transitions of
// one round (or of a few seconds) reach a chat channel as one message.
// At the flush each alert is checked against the project's silences (a
// silenced alert is recorded, not sent) and against its rule's rate limit
// (`max_per_hour`: at most that many alerts of the rule sent in any hour;
// beyond, recorded as rate_limited). What is left is delivered by an
// `AlertDelivery` with at most `maxConcurrent` deliveries at a time (more
// wait in a bounded queue; beyond it they are recorded as failed and
// counted), each with the deadline of its delivery, retried with
// exponential backoff (from `retryBase` seconds, doubled per attempt, at
// most `maxAttempts`) while the failure is worth retrying.
//
// Secrets never leave through here: records and logs name receivers in
// their redacted form (AlertReceiver.redacted).
//
// Thread: the loop thread.
import CollectorStore
import JSON
import Reactor

/// One delivery's outcome.
public enum DeliveryResult: Equatable, Sendable {
    case sent(String)
    /// `retry`: the failure may pass (connection, timeout, 5xx).
    case failed(String, retry: Bool)
}

/// Delivers one message to one receiver; completes on a later iteration.
public protocol AlertDelivery: AnyObject {
    func deliver(_ message: AlertMessage, to receiver: AlertReceiver, completion: @escaping (DeliveryResult) -> Void)
}

public struct AlertNotifierSettings: Sendable {
    public var groupWait: Double = 1
    public var maxConcurrent = 4
    public var maxQueued = 1000
    public var maxAttempts = 4
    public var retryBase: Double = 1
    public init() {}
}

public final class AlertNotifier: AlertTransitionSink {
    /// Alerts recorded, by result (`sent`, `failed`, `silenced`, `rate_limited`).
    public private(set) var outcomes: [String: UInt64] = [:]
    public static let outcomeNames = ["sent", "failed", "silenced", "rate_limited"]
    /// Delivery attempts that failed and were tried again.
    public private(set) var retries: UInt64 = 0
    public var inFlight: Int { running }

    private let loop: EventLoop
    private let store: MeasurementStore
    public var settings: AlertNotifierSettings
    private let delivery: AlertDelivery

    private struct Pending {
        var item: AlertItem
        var maxPerHour: Int
        var labels: [(String, String)]
    }
    private struct Group {
        var receiver: AlertReceiver
        var pending: [Pending] = []
        var timer: TimerWatcher?
    }
    private var groups: [String: Group] = [:]
    /// Per rule, when its alerts were sent (the last hour's).
    private var sentTimes: [Int64: [Int64]] = [:]
    private struct Job {
        var message: AlertMessage
        var receiver: AlertReceiver
        var attempt: Int
    }
    private var queue: [Job] = []
    private var running = 0
    private var backoffTimers: [ObjectIdentifier: TimerWatcher] = [:]

    public init(loop: EventLoop, store: MeasurementStore, delivery: AlertDelivery, settings: AlertNotifierSettings = AlertNotifierSettings()) {
        self.loop = loop
        self.store = store
        self.delivery = delivery
        self.settings = settings
    }

    public func alertChanged(rule: AlertRuleRecord, document: AlertRule, transition: AlertTransition) {
        guard transition.to == "firing" || (transition.to == "resolved" && transition.from == "firing") else { return }
        let item = AlertItem(project: rule.project, ruleId: rule.id, rule: rule.name, transitionId: transition.id, event: transition.to,
                             from: transition.from, ts: transition.ts, value: transition.value, detail: transition.detail,
                             labels: document.labels)
        for r in document.receivers {
            let key = [r.kind.rawValue, r.url, r.format, r.to.joined(separator: ","), r.from].joined(separator: "\u{1}")
            var g = groups[key] ?? Group(receiver: r)
            g.pending.append(Pending(item: item, maxPerHour: document.maxPerHour, labels: document.labels))
            if g.timer == nil {
                let t = TimerWatcher(loop: loop) { [weak self] _ in self?.flush(key) }
                t.start(after: settings.groupWait)
                g.timer = t
            }
            groups[key] = g
        }
    }

    // MARK: flush: silences, rate limit

    private func flush(_ key: String) {
        guard let g = groups.removeValue(forKey: key) else { return }
        g.timer?.stop()
        let now = Clock.wallMillis()
        let projects = Array(Set(g.pending.map(\.item.project))).sorted()
        silences(projects, now: now, into: []) { [weak self] silences in
            guard let self else { return }
            var send: [AlertItem] = []
            for p in g.pending {
                if let s = silences.first(where: { AlertNotifier.matches($0, p.item, p.labels, now: now) }) {
                    self.record(p.item, g.receiver, "silenced", attempts: 0, detail: "silence \(s.id)")
                    continue
                }
                var times = (self.sentTimes[p.item.ruleId] ?? []).filter { $0 > now - 3_600_000 }
                if times.count >= p.maxPerHour {
                    self.sentTimes[p.item.ruleId] = times
                    self.record(p.item, g.receiver, "rate_limited", attempts: 0, detail: "max_per_hour \(p.maxPerHour)")
                    continue
                }
                times.append(now)
                self.sentTimes[p.item.ruleId] = times
                send.append(p.item)
            }
            guard !send.isEmpty else { return }
            self.enqueue(Job(message: AlertMessage(items: send), receiver: g.receiver, attempt: 1))
        }
    }

    static func matches(_ s: AlertSilence, _ item: AlertItem, _ labels: [(String, String)], now: Int64) -> Bool {
        guard s.project == item.project, s.starts <= now, now < s.ends else { return false }
        if let rule = s.ruleId, rule != item.ruleId { return false }
        return s.matchers.allSatisfy { m in labels.contains { $0.0 == m.key && $0.1 == m.value } }
    }

    private func silences(_ projects: [String], now: Int64, into acc: [AlertSilence], _ done: @escaping ([AlertSilence]) -> Void) {
        guard let p = projects.first else { return done(acc) }
        store.alertSilences(project: p, endingAfter: now) { [weak self] r in
            switch r {
            case .success(let list): self?.silences(Array(projects.dropFirst()), now: now, into: acc + list, done)
            case .failure(let e):
                // Unknown silences: send rather than stay quiet.
                Log.warn("alerts: cannot read silences; notifying", ["project": p, "error": "\(e)"])
                self?.silences(Array(projects.dropFirst()), now: now, into: acc, done)
            }
        }
    }

    // MARK: delivery, retries

    private func enqueue(_ job: Job) {
        if running < settings.maxConcurrent { return start(job) }
        guard queue.count < settings.maxQueued else {
            for i in job.message.items { record(i, job.receiver, "failed", attempts: 0, detail: "notification queue full") }
            return
        }
        queue.append(job)
    }

    private func start(_ job: Job) {
        running += 1
        delivery.deliver(job.message, to: job.receiver) { [weak self] result in
            guard let self else { return }
            self.running -= 1
            switch result {
            case .sent(let detail):
                for i in job.message.items { self.record(i, job.receiver, "sent", attempts: job.attempt, detail: detail) }
            case .failed(let why, let retry) where retry && job.attempt < self.settings.maxAttempts:
                self.retries &+= 1
                let wait = self.settings.retryBase * Double(1 << (job.attempt - 1))
                Log.info("alerts: notification failed; retrying", ["receiver": job.receiver.redacted, "attempt": "\(job.attempt)",
                                                                   "in_s": "\(wait)", "error": why])
                var next = job
                next.attempt += 1
                let t = TimerWatcher(loop: self.loop) { _ in }
                let id = ObjectIdentifier(t)
                t.callback = { [weak self] _ in
                    self?.backoffTimers[id] = nil
                    self?.enqueue(next)
                }
                t.start(after: wait)
                self.backoffTimers[id] = t
            case .failed(let why, _):
                Log.warn("alerts: notification failed", ["receiver": job.receiver.redacted, "attempts": "\(job.attempt)", "error": why])
                for i in job.message.items { self.record(i, job.receiver, "failed", attempts: job.attempt, detail: why) }
            }
            if let next = self.queue.first, self.running < self.settings.maxConcurrent {
                self.queue.removeFirst()
                self.start(next)
            }
        }
    }

    private func record(_ item: AlertItem, _ receiver: AlertReceiver, _ result: String, attempts: Int, detail: String) {
        outcomes[result, default: 0] &+= 1
        let n = AlertNotification(project: item.project, ruleId: item.ruleId, transitionId: item.transitionId, ts: Clock.wallMillis(),
                                  event: item.event, receiver: receiver.redacted, result: result, attempts: Int64(attempts), detail: detail)
        store.appendAlertNotification(n) { r in
            if case .failure(let e) = r { Log.warn("alerts: a notification record was not stored", ["error": "\(e)"]) }
        }
    }

    /// Stops the group and backoff timers (shutdown); queued deliveries are dropped.
    public func stop() {
        for (_, g) in groups { g.timer?.stop() }
        groups = [:]
        for (_, t) in backoffTimers { t.stop() }
        backoffTimers = [:]
        queue = []
    }
}
