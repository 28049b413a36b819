// AlertRule: one alerting rule of a project as the API takes it — a
// condition on what Vigil measures, how long it must hold (`for_s`), labels,
// and where notifications go — with its validation (every faulty field at
// once, keyed by path, as monitor definitions are validated) and its
// normalised JSON (defaults explicit), which is what the store keeps.
//
// Secrets (a webhook URL's path and query, where chat tools put their
// tokens; SMTP passwords) stay in the stored document and never leave it:
// `redactedJSON` is what the API answers and what logs may name, and an
// update that sends a redacted value back keeps the stored secret
// (`keepingSecrets`). docs/ALERTS.md documents every field.
//
// Plain values; no thread affinity. No Foundation.
import JSON

/// The statistic a measurement condition compares.
public enum AlertStatistic: String, CaseIterable, Sendable {
    case p50, p95, p99, count
    /// Failed calls over all calls in the window (0...1), from the
    /// measurements' `errors`.
    case errorRate = "error_rate"
}

/// What a rule watches.
public enum AlertCondition: Equatable, Sendable {
    /// A statistic of a monitor/check's measurements over the last
    /// `windowSecs`, compared with `threshold`; it resolves once the value is
    /// on the other side of `resolveThreshold` (hysteresis).
    case measurement(monitor: String, check: String?, source: String?, agent: String?, statistic: String,
                     windowSecs: Int64, above: Bool, threshold: Double, resolveThreshold: Double)
    /// A synthetic monitor's last `runs` runs all failed.
    case monitorFailing(monitor: String, runs: Int)
    /// An agent (or, `agent` nil, any agent of the project) in `state` for
    /// longer than `longerThanSecs`.
    case agentState(agent: String?, state: String, longerThanSecs: Int64)
    /// An agent's drops (kernel, queue, spool — the `drops` counters of its
    /// status) grew faster than `perSecond` over `windowSecs`.
    case agentDrops(agent: String?, perSecond: Double, windowSecs: Int64)
    /// The collector's own health over `windowSecs`: `store_failures`
    /// (failed store operations) or `loop_lag_ms` (the loop's worst lag).
    case collectorHealth(metric: String, windowSecs: Int64, threshold: Double, resolveThreshold: Double)
}

/// Where a rule's notifications go.
public struct AlertReceiver: Equatable, Sendable {
    public enum Kind: String, Sendable { case webhook, email }
    /// Webhook body shapes: `json` (Vigil's own document, which carries a
    /// `text` too), `slack` (Slack and Mattermost incoming webhooks), `teams`.
    public static let formats = ["json", "slack", "teams"]

    public var kind: Kind
    /// Webhook: the URL to POST to. E-mail: the SMTP server (`smtp://host:port`
    /// or `smtps://…`).
    public var url: String
    public var format: String
    public var from: String
    public var to: [String]
    public var username: String
    public var password: String

    public init(kind: Kind, url: String, format: String = "json", from: String = "", to: [String] = [],
                username: String = "", password: String = "") {
        self.kind = kind; self.url = url; self.format = format; self.from = from; self.to = to
        self.username = username; self.password = password
    }

    /// The receiver as the API shows it and the notification record names
    /// it: the URL's scheme and host, never its path, query or password.
    public var redacted: String {
        switch kind {
        case .webhook: return "webhook " + AlertReceiver.redact(url: url)
        case .email: return "email " + to.joined(separator: ",") + " via " + AlertReceiver.redact(url: url)
        }
    }

    public static let secretMark = "[redacted]"

    /// `https://hooks.example/services/T0/B0/XXX` → `https://hooks.example/[redacted]`;
    /// user information before `@` goes too.
    public static func redact(url: String) -> String {
        let bytes = Array(url.utf8)
        var schemeEnd: Int?
        if bytes.count >= 3 {
            for i in 0..<(bytes.count - 2) where bytes[i] == UInt8(ascii: ":") && bytes[i + 1] == UInt8(ascii: "/") && bytes[i + 2] == UInt8(ascii: "/") {
                schemeEnd = i
                break
            }
        }
        guard let schemeEnd else { return secretMark }
        let scheme = String(decoding: bytes[..<schemeEnd], as: UTF8.self)
        let restStart = schemeEnd + 3
        var hostEnd = restStart
        while hostEnd < bytes.count, !"/?#".utf8.contains(bytes[hostEnd]) { hostEnd += 1 }
        var authorityStart = restStart
        if let at = bytes[restStart..<hostEnd].lastIndex(of: UInt8(ascii: "@")) { authorityStart = at + 1 }
        let authority = String(decoding: bytes[authorityStart..<hostEnd], as: UTF8.self)
        let tail = bytes.count - hostEnd
        let bare = tail == 0 || (tail == 1 && bytes[hostEnd] == UInt8(ascii: "/"))
        return scheme + "://" + authority + (bare ? "" : "/" + secretMark)
    }
}

public struct AlertRule: Equatable, Sendable {
    public var name: String
    public var enabled: Bool
    public var condition: AlertCondition
    /// How long the condition must hold before `pending` becomes `firing`.
    public var forSecs: Int64
    public var labels: [(String, String)]
    public var receivers: [AlertReceiver]
    /// At most this many notifications of the rule per hour (its rate limit).
    public var maxPerHour: Int

    public static func == (a: AlertRule, b: AlertRule) -> Bool {
        a.name == b.name && a.enabled == b.enabled && a.condition == b.condition && a.forSecs == b.forSecs
            && a.labels.map { [$0.0, $0.1] } == b.labels.map { [$0.0, $0.1] } && a.receivers == b.receivers && a.maxPerHour == b.maxPerHour
    }

    public func label(_ name: String) -> String? { labels.first { $0.0 == name }?.1 }
}

/// One faulty field: `condition.threshold`, `receivers[1].url`.
public struct AlertFieldError: Equatable, Sendable {
    public let field: String
    public let message: String
}

/// Every faulty field of a document.
public struct AlertValidationError: Error, Equatable, Sendable {
    public let errors: [AlertFieldError]
}

/// Bounds on a rule document.
public struct AlertRuleLimits: Sendable {
    public var maxStringBytes = 1024
    public var maxLabels = 32
    public var maxReceivers = 16
    public var maxRecipients = 32
    /// Longest window or duration: 7 days.
    public var maxSeconds: Int64 = 7 * 86_400
    public init() {}
}

public enum AlertRuleDocument {
    static let fields = ["name", "enabled", "condition", "for_s", "labels", "receivers", "max_per_hour"]

    /// Validates a rule document (a POST or PUT body).
    public static func validate(_ doc: JSON, limits: AlertRuleLimits = AlertRuleLimits()) -> Result<AlertRule, AlertValidationError> {
        var v = RuleValidator(limits: limits)
        let rule = v.rule(doc)
        if let rule, v.errors.isEmpty { return .success(rule) }
        return .failure(AlertValidationError(errors: v.errors))
    }

    /// Reads a stored document back (it validated when stored).
    public static func decode(_ text: String) -> AlertRule? {
        guard let doc = try? JSON.parse(Array(text.utf8)), case .success(let r) = validate(doc) else { return nil }
        return r
    }
}

extension AlertRule {
    /// The stored form: every field explicit, secrets included.
    public var json: JSON { document(redacting: false) }
    /// What the API answers: secrets replaced by `[redacted]`.
    public var redactedJSON: JSON { document(redacting: true) }

    private func document(redacting: Bool) -> JSON {
        var c = JSONObject()
        switch condition {
        case .measurement(let monitor, let check, let source, let agent, let statistic, let window, let above, let threshold, let resolve):
            c["kind"] = .string("measurement")
            c["monitor"] = .string(monitor)
            c["check"] = .optional(check)
            c["source"] = .optional(source)
            c["agent"] = .optional(agent)
            c["statistic"] = .string(statistic)
            c["window_s"] = .int(window)
            c["op"] = .string(above ? ">" : "<")
            c["threshold"] = .number(threshold)
            c["resolve_threshold"] = .number(resolve)
        case .monitorFailing(let monitor, let runs):
            c["kind"] = .string("monitor_failing")
            c["monitor"] = .string(monitor)
            c["runs"] = .int(runs)
        case .agentState(let agent, let state, let longer):
            c["kind"] = .string("agent_state")
            c["agent"] = .optional(agent)
            c["state"] = .string(state)
            c["longer_than_s"] = .int(longer)
        case .agentDrops(let agent, let perSecond, let window):
            c["kind"] = .string("agent_drops")
            c["agent"] = .optional(agent)
            c["per_second"] = .number(perSecond)
            c["window_s"] = .int(window)
        case .collectorHealth(let metric, let window, let threshold, let resolve):
            c["kind"] = .string("collector_health")
            c["metric"] = .string(metric)
            c["window_s"] = .int(window)
            c["threshold"] = .number(threshold)
            c["resolve_threshold"] = .number(resolve)
        }
        var o = JSONObject()
        o["name"] = .string(name)
        o["enabled"] = .bool(enabled)
        o["condition"] = .object(c)
        o["for_s"] = .int(forSecs)
        o["labels"] = .object(JSONObject(labels.map { ($0.0, JSON.string($0.1)) }))
        o["receivers"] = .array(receivers.map { r in
            var x = JSONObject()
            x["type"] = .string(r.kind.rawValue)
            x["url"] = .string(redacting ? AlertReceiver.redact(url: r.url) : r.url)
            if r.kind == .webhook {
                x["format"] = .string(r.format)
            } else {
                x["from"] = .string(r.from)
                x["to"] = .array(r.to.map { .string($0) })
                x["username"] = .string(r.username)
                x["password"] = .string(redacting && !r.password.isEmpty ? AlertReceiver.secretMark : r.password)
            }
            return .object(x)
        })
        o["max_per_hour"] = .int(maxPerHour)
        return .object(o)
    }

    /// This rule with the secrets of `stored` kept wherever this one sends
    /// the redacted form back (a GET, edited and PUT): receiver by receiver,
    /// in order.
    public func keepingSecrets(of stored: AlertRule) -> AlertRule {
        var out = self
        for i in out.receivers.indices where i < stored.receivers.count {
            let old = stored.receivers[i]
            guard old.kind == out.receivers[i].kind else { continue }
            if out.receivers[i].url == AlertReceiver.redact(url: old.url) { out.receivers[i].url = old.url }
            if out.receivers[i].password == AlertReceiver.secretMark { out.receivers[i].password = old.password }
        }
        return out
    }
}

/// Walks a rule document, collecting errors.
struct RuleValidator {
    let limits: AlertRuleLimits
    var errors: [AlertFieldError] = []

    mutating func fail(_ field: String, _ message: String) { errors.append(AlertFieldError(field: field, message: message)) }

    mutating func rule(_ doc: JSON) -> AlertRule? {
        guard let o = doc.objectValue else { fail("(body)", "expected an object, got \(doc.typeName)"); return nil }
        for k in o.keys where !AlertRuleDocument.fields.contains(k) {
            fail(k, "unknown field (a rule has \(AlertRuleDocument.fields.joined(separator: ", ")))")
        }
        let name = string(o["name"], "name", required: true) ?? ""
        var enabled = true
        switch o["enabled"] {
        case nil, .null?: break
        case .bool(let b)?: enabled = b
        case let x?: fail("enabled", "expected a boolean, got \(x.typeName)")
        }
        let forSecs = seconds(o["for_s"], "for_s", default: 0, min: 0)
        var labels: [(String, String)] = []
        switch o["labels"] {
        case nil, .null?: break
        case .object(let l)?:
            if l.count > limits.maxLabels { fail("labels", "at most \(limits.maxLabels) labels") }
            for (k, v) in l {
                if k.isEmpty || k.utf8.count > 128 || k.contains("=") || hasControl(k) {
                    fail("labels.\(k)", "a label name is 1 to 128 bytes without '=' or control characters")
                }
                if let s = string(v, "labels.\(k)", required: true) { labels.append((k, s)) }
            }
        case let x?: fail("labels", "expected an object of strings, got \(x.typeName)")
        }
        var receivers: [AlertReceiver] = []
        switch o["receivers"] {
        case nil, .null?: break
        case .array(let list)?:
            if list.count > limits.maxReceivers { fail("receivers", "at most \(limits.maxReceivers) receivers") }
            for (i, r) in list.enumerated() { if let x = receiver(r, "receivers[\(i)]") { receivers.append(x) } }
        case let x?: fail("receivers", "expected an array, got \(x.typeName)")
        }
        var maxPerHour = 20
        if let m = o["max_per_hour"], !m.isNull {
            if let n = m.int64Value, n >= 1, n <= 3600 { maxPerHour = Int(n) } else { fail("max_per_hour", "expected an integer from 1 to 3600") }
        }
        guard let c = o["condition"] else { fail("condition", "required"); return nil }
        guard let condition = condition(c) else { return nil }
        return AlertRule(name: name, enabled: enabled, condition: condition, forSecs: forSecs, labels: labels,
                         receivers: receivers, maxPerHour: maxPerHour)
    }

    static let conditionFields: [String: [String]] = [
        "measurement": ["monitor", "check", "source", "agent", "statistic", "window_s", "op", "threshold", "resolve_threshold"],
        "monitor_failing": ["monitor", "runs"],
        "agent_state": ["agent", "state", "longer_than_s"],
        "agent_drops": ["agent", "per_second", "window_s"],
        "collector_health": ["metric", "window_s", "threshold", "resolve_threshold"],
    ]

    mutating func condition(_ c: JSON) -> AlertCondition? {
        guard let o = c.objectValue else { fail("condition", "expected an object, got \(c.typeName)"); return nil }
        let kinds = RuleValidator.conditionFields.keys.sorted()
        guard let kind = o["kind"]?.stringValue, let allowed = RuleValidator.conditionFields[kind] else {
            fail("condition.kind", "expected one of \(kinds.joined(separator: ", "))")
            return nil
        }
        for k in o.keys where k != "kind" && !allowed.contains(k) {
            fail("condition.\(k)", "unknown field (a \(kind) condition has \(allowed.joined(separator: ", ")))")
        }
        let before = errors.count
        let out: AlertCondition?
        switch kind {
        case "measurement":
            let monitor = string(o["monitor"], "condition.monitor", required: true) ?? ""
            let check = string(o["check"], "condition.check", required: false)
            let source = string(o["source"], "condition.source", required: false)
            let agent = string(o["agent"], "condition.agent", required: false)
            let statistic = o["statistic"]?.stringValue ?? ""
            if AlertStatistic(rawValue: statistic) == nil {
                fail("condition.statistic", "expected one of \(AlertStatistic.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let window = seconds(o["window_s"], "condition.window_s", default: 300, min: 1)
            let op = o["op"]?.stringValue ?? ">"
            if op != ">" && op != "<" { fail("condition.op", "expected \">\" or \"<\"") }
            let threshold = number(o["threshold"], "condition.threshold")
            let resolve = o["resolve_threshold"].flatMap { $0.isNull ? nil : $0 }.map { number($0, "condition.resolve_threshold") } ?? threshold
            if op == ">" && resolve > threshold { fail("condition.resolve_threshold", "must not be above threshold when op is \">\"") }
            if op == "<" && resolve < threshold { fail("condition.resolve_threshold", "must not be below threshold when op is \"<\"") }
            if statistic == "error_rate" && (threshold < 0 || threshold > 1) {
                fail("condition.threshold", "an error rate is a fraction from 0 to 1")
            }
            out = .measurement(monitor: monitor, check: check, source: source, agent: agent, statistic: statistic,
                               windowSecs: window, above: op == ">", threshold: threshold, resolveThreshold: resolve)
        case "monitor_failing":
            let monitor = string(o["monitor"], "condition.monitor", required: true) ?? ""
            var runs = 1
            if let r = o["runs"], !r.isNull {
                if let n = r.int64Value, n >= 1, n <= 100 { runs = Int(n) } else { fail("condition.runs", "expected an integer from 1 to 100") }
            }
            out = .monitorFailing(monitor: monitor, runs: runs)
        case "agent_state":
            let agent = string(o["agent"], "condition.agent", required: false)
            let state = o["state"]?.stringValue ?? ""
            if state != "not_visible" && state != "wrong_configuration" {
                fail("condition.state", "expected \"not_visible\" or \"wrong_configuration\"")
            }
            let longer = seconds(o["longer_than_s"], "condition.longer_than_s", default: 60, min: 0)
            out = .agentState(agent: agent, state: state, longerThanSecs: longer)
        case "agent_drops":
            let agent = string(o["agent"], "condition.agent", required: false)
            let perSecond = number(o["per_second"], "condition.per_second")
            if perSecond < 0 { fail("condition.per_second", "must not be negative") }
            let window = seconds(o["window_s"], "condition.window_s", default: 60, min: 1)
            out = .agentDrops(agent: agent, perSecond: perSecond, windowSecs: window)
        default:  // collector_health
            let metric = o["metric"]?.stringValue ?? ""
            if metric != "store_failures" && metric != "loop_lag_ms" {
                fail("condition.metric", "expected \"store_failures\" or \"loop_lag_ms\"")
            }
            let window = seconds(o["window_s"], "condition.window_s", default: 60, min: 1)
            let threshold = number(o["threshold"], "condition.threshold")
            let resolve = o["resolve_threshold"].flatMap { $0.isNull ? nil : $0 }.map { number($0, "condition.resolve_threshold") } ?? threshold
            if resolve > threshold { fail("condition.resolve_threshold", "must not be above threshold") }
            out = .collectorHealth(metric: metric, windowSecs: window, threshold: threshold, resolveThreshold: resolve)
        }
        return errors.count == before ? out : nil
    }

    mutating func receiver(_ r: JSON, _ path: String) -> AlertReceiver? {
        guard let o = r.objectValue else { fail(path, "expected an object, got \(r.typeName)"); return nil }
        let type = o["type"]?.stringValue ?? ""
        let allowed: [String]
        switch type {
        case "webhook": allowed = ["type", "url", "format"]
        case "email": allowed = ["type", "url", "from", "to", "username", "password"]
        default: fail(path + ".type", "expected \"webhook\" or \"email\""); return nil
        }
        for k in o.keys where !allowed.contains(k) { fail("\(path).\(k)", "unknown field (a \(type) receiver has \(allowed.joined(separator: ", ")))") }
        let before = errors.count
        let url = string(o["url"], path + ".url", required: true) ?? ""
        if type == "webhook" {
            if !(url.hasPrefix("http://") || url.hasPrefix("https://")) || url.contains(" ") {
                fail(path + ".url", "expected an http:// or https:// URL")
            }
            let format = string(o["format"], path + ".format", required: false) ?? "json"
            if !AlertReceiver.formats.contains(format) { fail(path + ".format", "expected one of \(AlertReceiver.formats.joined(separator: ", "))") }
            return errors.count == before ? AlertReceiver(kind: .webhook, url: url, format: format) : nil
        }
        if !(url.hasPrefix("smtp://") || url.hasPrefix("smtps://")) || url.contains(" ") {
            fail(path + ".url", "expected an smtp:// or smtps:// URL")
        }
        let from = string(o["from"], path + ".from", required: true) ?? ""
        if !from.isEmpty && !isAddress(from) { fail(path + ".from", "expected an e-mail address") }
        var to: [String] = []
        if case .array(let list)? = o["to"], !list.isEmpty, list.count <= limits.maxRecipients {
            for (i, x) in list.enumerated() {
                if let s = x.stringValue, isAddress(s) { to.append(s) } else { fail("\(path).to[\(i)]", "expected an e-mail address") }
            }
        } else {
            fail(path + ".to", "expected an array of 1 to \(limits.maxRecipients) e-mail addresses")
        }
        let username = string(o["username"], path + ".username", required: false) ?? ""
        let password = string(o["password"], path + ".password", required: false) ?? ""
        return errors.count == before
            ? AlertReceiver(kind: .email, url: url, from: from, to: to, username: username, password: password) : nil
    }

    // MARK: scalars

    func hasControl(_ s: String) -> Bool { s.utf8.contains { $0 < 0x20 || $0 == 0x7F } }

    func isAddress(_ s: String) -> Bool {
        guard let at = s.firstIndex(of: "@"), at != s.startIndex, s.index(after: at) != s.endIndex else { return false }
        return !s.contains(" ") && !s.contains("<") && !s.contains(">") && !hasControl(s) && s.utf8.count <= 254
    }

    mutating func string(_ v: JSON?, _ field: String, required: Bool) -> String? {
        switch v {
        case nil, .null?:
            if required { fail(field, "required") }
            return nil
        case .string(let s)?:
            if s.isEmpty && required { fail(field, "must not be empty"); return nil }
            if s.utf8.count > limits.maxStringBytes { fail(field, "longer than \(limits.maxStringBytes) bytes"); return nil }
            if hasControl(s) { fail(field, "contains a control character"); return nil }
            return s.isEmpty ? nil : s
        case let x?:
            fail(field, "expected a string, got \(x.typeName)")
            return nil
        }
    }

    mutating func seconds(_ v: JSON?, _ field: String, default d: Int64, min: Int64) -> Int64 {
        guard let v, !v.isNull else { return d }
        guard let n = v.int64Value, n >= min, n <= limits.maxSeconds else {
            fail(field, "expected whole seconds from \(min) to \(limits.maxSeconds)")
            return d
        }
        return n
    }

    mutating func number(_ v: JSON?, _ field: String) -> Double {
        guard let v, !v.isNull else { fail(field, "required"); return 0 }
        guard let d = v.doubleValue, d.isFinite else { fail(field, "expected a number, got \(v.typeName)"); return 0 }
        return d
    }
}
