// AlertMessage: what a notification says — one or more alerts grouped for
// one receiver — and its bodies: Vigil's own JSON document (which carries
// a `text` too), the shapes Slack/Mattermost (`slack`) and Microsoft
// Teams (`teams`, a MessageCard) incoming webhooks take without an
// adapter, and an e-mail's subject and text. docs/ALERTS.md documents each.
//
// Plain values; no thread affinity. No Foundation.
import JSON

/// One alert of a message: a rule's transition.
public struct AlertItem: Equatable, Sendable {
    public var project: String
    public var ruleId: Int64
    public var rule: String
    public var transitionId: Int64
    /// `firing` or `resolved`.
    public var event: String
    public var from: String
    public var ts: Int64
    public var value: Double?
    public var detail: String
    public var labels: [(String, String)]
    /// The notification's stable id (its row in the store's outbox): the
    /// same in every attempt and from whichever collector delivers it, so a
    /// receiver can drop a repeat.
    public var notificationId: Int64

    public init(project: String, ruleId: Int64, rule: String, transitionId: Int64, event: String, from: String, ts: Int64,
                value: Double?, detail: String, labels: [(String, String)], notificationId: Int64 = 0) {
        self.project = project; self.ruleId = ruleId; self.rule = rule; self.transitionId = transitionId; self.event = event
        self.from = from; self.ts = ts; self.value = value; self.detail = detail; self.labels = labels
        self.notificationId = notificationId
    }

    public static func == (a: AlertItem, b: AlertItem) -> Bool {
        a.ruleId == b.ruleId && a.transitionId == b.transitionId && a.event == b.event && a.detail == b.detail
            && a.notificationId == b.notificationId
            && a.labels.map { [$0.0, $0.1] } == b.labels.map { [$0.0, $0.1] }
    }

    /// `[FIRING] checkout slow (acme): p95 812 ms > 800 ms`
    public var line: String { "[\(event.uppercased())] \(rule) (\(project)): \(detail)" }
}

public struct AlertMessage: Equatable, Sendable {
    public var items: [AlertItem]

    public init(items: [AlertItem]) { self.items = items }

    /// One line per alert.
    public var text: String { items.map(\.line).joined(separator: "\n") }

    /// The `X-Vigil-Notification-Id` header's value: the alerts'
    /// notification ids, comma-separated (one for a single alert).
    public var notificationIdHeader: String { items.map { String($0.notificationId) }.joined(separator: ", ") }

    /// `[FIRING] checkout slow (acme)`, or `3 alerts: 2 firing, 1 resolved`.
    public var subject: String {
        if items.count == 1, let i = items.first { return "[\(i.event.uppercased())] \(i.rule) (\(i.project))" }
        let firing = items.filter { $0.event == "firing" }.count
        return "\(items.count) alerts: \(firing) firing, \(items.count - firing) resolved"
    }

    /// The webhook body in `format` (`json`, `slack`, `teams`).
    public func body(format: String) -> JSON {
        switch format {
        case "slack":
            return .object([("text", .string(text)), ("attachments", .array(items.map { i in
                .object([("color", .string(i.event == "firing" ? "danger" : "good")), ("title", .string("[\(i.event.uppercased())] \(i.rule)")),
                         ("text", .string(i.detail)), ("fallback", .string(i.line)),
                         ("fields", .array([.object([("title", .string("project")), ("value", .string(i.project)), ("short", .bool(true))])]
                             + i.labels.map { .object([("title", .string($0.0)), ("value", .string($0.1)), ("short", .bool(true))]) }))])
            }))])
        case "teams":
            let firing = items.contains { $0.event == "firing" }
            return .object([("@type", .string("MessageCard")), ("@context", .string("https://schema.org/extensions")),
                            ("summary", .string(subject)), ("themeColor", .string(firing ? "D00000" : "2DC72D")),
                            ("title", .string(subject)), ("text", .string(text)),
                            ("sections", .array(items.map { i in
                                .object([("activityTitle", .string("[\(i.event.uppercased())] \(i.rule)")), ("text", .string(i.detail)),
                                         ("facts", .array([.object([("name", .string("project")), ("value", .string(i.project))])]
                                             + i.labels.map { .object([("name", .string($0.0)), ("value", .string($0.1))]) }))])
                            }))])
        default:
            let status = items.contains { $0.event == "firing" } ? "firing" : "resolved"
            return .object([("version", .int(1)), ("status", .string(status)), ("text", .string(text)), ("alerts", .array(items.map { i in
                .object([("project", .string(i.project)), ("rule_id", .int(i.ruleId)), ("rule", .string(i.rule)),
                         ("event", .string(i.event)), ("from", .string(i.from)), ("ts", .int(i.ts)),
                         ("value", i.value.map(JSON.number) ?? .null), ("detail", .string(i.detail)),
                         ("labels", .object(JSONObject(i.labels.map { ($0.0, JSON.string($0.1)) }))),
                         ("transition_id", .int(i.transitionId)), ("notification_id", .int(i.notificationId))])
            }))])
        }
    }

    /// The e-mail's text: the lines, then each alert's labels.
    public var mailText: String {
        var out = text + "\n"
        for i in items where !i.labels.isEmpty {
            out += "\n\(i.rule): " + i.labels.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
        }
        return out + "\n"
    }
}
