// AlertNotifier: delivers the notifications of stored transitions (firing,
// and resolved after firing) and records the outcome of every one — sent,
// failed, silenced or rate_limited — in the store.
//
// Notifications are an outbox in the store: a notified transition is
// written with one `pending` row per receiver (AlertEvaluator), and the row
// id is the notification's stable id (the `X-Vigil-Notification-Id` header
// and `notification_id` in Vigil's JSON body). Only the evaluation lease's
// holder delivers: each attempt is first claimed in the store under the
// lease (fenced; the attempt is counted before it starts), so a collector
// that lost the lease starts no attempt, and each round holding the lease
// takes up the rows still pending that this collector does not have in
// hand — what a predecessor left when it died, with its attempts so far
// and the time its retry is due.
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
// most `maxAttempts`; a row taken over after its holder died in its last
// attempt gets one more) while the failure is worth retrying.
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
    /// Pending notifications taken from the store's outbox that this
    /// collector had not stored itself in this run (a predecessor's, or
    /// its own from before a restart).
    public private(set) var adopted: UInt64 = 0
    public var inFlight: Int { running }

    private let loop: EventLoop
    private let store: MeasurementStore
    public var settings: AlertNotifierSettings
    private let delivery: AlertDelivery

    /// The lease this collector holds (nil: it delivers nothing).
    private var lease: AlertLease?
    /// Notification ids this collector is handling (grouped, queued,
    /// delivering or waiting for a retry), until their outcome is stored.
    private var inHand: Set<Int64> = []
    private var scanning = false

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
        var items: [AlertItem]
        var receiver: AlertReceiver
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

    /// A transition this collector stored: its notification rows (one per
    /// receiver, in the rule's receivers' order) join their groups.
    public func alertChanged(rule: AlertRuleRecord, document: AlertRule, transition: AlertTransition) {
        guard AlertTransition.notifies(from: transition.from, to: transition.to) else { return }
        for (r, id) in zip(document.receivers, transition.notificationIds) where !inHand.contains(id) {
            let item = AlertItem(project: rule.project, ruleId: rule.id, rule: rule.name, transitionId: transition.id, event: transition.to,
                                 from: transition.from, ts: transition.ts, value: transition.value, detail: transition.detail,
                                 labels: document.labels, notificationId: id)
            take(item, r, document)
        }
    }

    /// Each round holding the lease: what is pending in the outbox and not
    /// in hand here (left by a collector that died, or by this one before a
    /// restart) is taken up; without the lease, nothing new starts.
    public func alertLease(_ lease: AlertLease?) {
        self.lease = lease
        guard lease != nil, !scanning else { return }
        scanning = true
        store.pendingAlertNotifications(dueBy: Clock.wallMillis(), limit: settings.maxQueued) { [weak self] r in
            guard let self else { return }
            self.scanning = false
            guard self.lease != nil else { return }
            guard case .success(let entries) = r else {
                if case .failure(let e) = r { Log.warn("alerts: cannot read pending notifications", ["error": "\(e)"]) }
                return
            }
            for e in entries where !self.inHand.contains(e.notification.id) { self.adopt(e) }
        }
    }

    private func adopt(_ e: AlertOutboxEntry) {
        let n = e.notification
        let index = Int(n.receiverIndex)
        guard let doc = AlertRuleDocument.decode(e.ruleBody), index >= 0, index < doc.receivers.count,
              doc.receivers[index].redacted == n.receiver else {
            // The rule's receivers were edited since: the secret needed to reach this one is gone.
            inHand.insert(n.id)
            return finish([n.id], "failed", detail: "the rule's receivers changed before it was delivered")
        }
        adopted &+= 1
        Log.info("alerts: delivering a pending notification", ["id": "\(n.id)", "rule": "\(n.ruleId)", "event": n.event,
                                                                "attempts": "\(n.attempts)"])
        let t = e.transition
        let item = AlertItem(project: n.project, ruleId: n.ruleId, rule: e.ruleName, transitionId: t.id, event: t.to, from: t.from, ts: t.ts,
                             value: t.value, detail: t.detail, labels: doc.labels, notificationId: n.id)
        take(item, doc.receivers[index], doc)
    }

    /// The item joins its receiver's group, flushed `groupWait` after the group's first.
    private func take(_ item: AlertItem, _ r: AlertReceiver, _ document: AlertRule) {
        inHand.insert(item.notificationId)
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
                    self.finish([p.item.notificationId], "silenced", detail: "silence \(s.id)")
                    continue
                }
                var times = (self.sentTimes[p.item.ruleId] ?? []).filter { $0 > now - 3_600_000 }
                if times.count >= p.maxPerHour {
                    self.sentTimes[p.item.ruleId] = times
                    self.finish([p.item.notificationId], "rate_limited", detail: "max_per_hour \(p.maxPerHour)")
                    continue
                }
                times.append(now)
                self.sentTimes[p.item.ruleId] = times
                send.append(p.item)
            }
            guard !send.isEmpty else { return }
            self.enqueue(Job(items: send, receiver: g.receiver))
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
            return finish(job.items.map(\.notificationId), "failed", detail: "notification queue full")
        }
        queue.append(job)
    }

    private func startNext() {
        if let next = queue.first, running < settings.maxConcurrent {
            queue.removeFirst()
            start(next)
        }
    }

    /// Claims the rows under the lease (one attempt counted on each), then
    /// delivers those still pending. Without the lease nothing starts: the
    /// rows stay pending for the holder.
    private func start(_ job: Job) {
        let ids = job.items.map(\.notificationId)
        guard let lease else {
            release(ids)
            return startNext()
        }
        running += 1
        store.claimAlertNotifications(ids: ids, lease: lease, at: Clock.wallMillis()) { [weak self] r in
            guard let self else { return }
            switch r {
            case .failure(let e):
                // Lease lost, or the store failing: the rows stay pending
                // for whoever holds the lease at its next round.
                Log.warn("alerts: a delivery was not started", ["error": "\(e)"])
                if case .invalid(let why) = e, why.hasPrefix("lease lost") { self.lease = nil }
                self.running -= 1
                self.release(ids)
                self.startNext()
            case .success(let claimed):
                let items = job.items.filter { claimed[$0.notificationId] != nil }
                self.release(ids.filter { claimed[$0] == nil })
                guard !items.isEmpty else {
                    self.running -= 1
                    return self.startNext()
                }
                let attempt = Int(claimed.values.max() ?? 1)
                self.deliver(Job(items: items, receiver: job.receiver), attempt: attempt)
            }
        }
    }

    private func deliver(_ job: Job, attempt: Int) {
        let ids = job.items.map(\.notificationId)
        delivery.deliver(AlertMessage(items: job.items), to: job.receiver) { [weak self] result in
            guard let self else { return }
            self.running -= 1
            switch result {
            case .sent(let detail):
                self.finish(ids, "sent", detail: detail)
            case .failed(let why, let retry) where retry && attempt < self.settings.maxAttempts:
                self.retries &+= 1
                let wait = self.settings.retryBase * Double(1 << min(attempt - 1, 16))
                Log.info("alerts: notification failed; retrying", ["receiver": job.receiver.redacted, "attempt": "\(attempt)",
                                                                   "in_s": "\(wait)", "error": why])
                // Recorded as pending until the retry, so a successor waits as long.
                let due = Clock.wallMillis() + Int64(wait * 1000)
                self.store.finishAlertNotifications(ids: ids, result: "pending", detail: why, at: Clock.wallMillis(), due: due) { r in
                    if case .failure(let e) = r { Log.warn("alerts: a notification's retry was not recorded", ["error": "\(e)"]) }
                }
                let t = TimerWatcher(loop: self.loop) { _ in }
                let id = ObjectIdentifier(t)
                t.callback = { [weak self] _ in
                    self?.backoffTimers[id] = nil
                    self?.enqueue(job)
                }
                t.start(after: wait)
                self.backoffTimers[id] = t
            case .failed(let why, _):
                Log.warn("alerts: notification failed", ["receiver": job.receiver.redacted, "attempts": "\(attempt)", "error": why])
                self.finish(ids, "failed", detail: why)
            }
            self.startNext()
        }
    }

    /// Records the outcome of rows in hand; they leave the hand once it is
    /// stored (until then a scan of the outbox must not take them up again).
    private func finish(_ ids: [Int64], _ result: String, detail: String) {
        store.finishAlertNotifications(ids: ids, result: result, detail: detail, at: Clock.wallMillis(), due: 0) { [weak self] r in
            guard let self else { return }
            switch r {
            case .success(let n): self.outcomes[result, default: 0] &+= UInt64(n)
            case .failure(let e): Log.warn("alerts: a notification record was not stored", ["error": "\(e)"])
            }
            self.release(ids)
        }
    }

    private func release(_ ids: [Int64]) {
        for id in ids { inHand.remove(id) }
    }

    /// Stops the group and backoff timers (shutdown); what was not
    /// delivered stays pending in the store, for the next lease holder.
    public func stop() {
        for (_, g) in groups { g.timer?.stop() }
        groups = [:]
        for (_, t) in backoffTimers { t.stop() }
        backoffTimers = [:]
        queue = []
        lease = nil
    }
}
