// The alerting endpoints (docs/ALERTS.md): a project's rules — list,
// create, read with their history, replace, delete — validated by
// `AlertRuleDocument` (every faulty field at once: 422) and audited
// (`alerts.create`, `alerts.update`, `alerts.delete`); silences with an end
// time; the record of every notification. Answers show receivers with
// their secrets redacted; a PUT that sends a redacted value back keeps the
// stored secret.
//
// Thread: loop thread.
import Alerts
import CollectorStore
import HTTPServer
import JSON
import Reactor

extension APIHandler {
    static let maxAlertHistory = 1000

    func alertRuleJSON(_ rec: AlertRuleRecord, _ state: AlertStateRecord?) -> JSON {
        let doc = AlertRuleDocument.decode(rec.body)?.redactedJSON ?? .null
        return .object([("id", .int(rec.id)), ("project", .string(rec.project)), ("version", .int(rec.version)),
                        ("created", .int(rec.created)), ("updated", .int(rec.updated)), ("rule", doc),
                        ("state", APIHandler.alertStateJSON(state))])
    }

    static func alertStateJSON(_ s: AlertStateRecord?) -> JSON {
        guard let s else { return .object([("state", .string("ok")), ("since", .null), ("evaluated", .null), ("value", .null), ("detail", .string(""))]) }
        return .object([("state", .string(s.state)), ("since", .int(s.since)), ("evaluated", .int(s.evaluated)),
                        ("value", s.value.map(JSON.number) ?? .null), ("detail", .string(s.detail))])
    }

    /// A rule id from the path; nil (and a 404 answered) when it is none.
    private func alertRuleId(_ text: String, _ project: String, _ r: CountingResponder) -> Int64? {
        guard let id = Int64(text), id > 0 else {
            r.fail(.notFound("alert rule '\(text)' of project '\(project)'"))
            return nil
        }
        return id
    }

    private func validatedRule(_ req: HTTPRequest, _ r: CountingResponder) -> AlertRule? {
        let b: JSON
        do { b = try body(req) } catch { r.fail(error); return nil }
        switch AlertRuleDocument.validate(b) {
        case .success(let rule):
            return rule
        case .failure(let failure):
            r.fail(APIError(422, "invalid alert rule", .object(failure.errors.map { ($0.field, JSON.string($0.message)) })))
            return nil
        }
    }

    private func ruleStoreFailure(_ e: StoreError) -> APIError {
        if case .invalid(let why) = e { return APIError(422, "invalid alert rule", .object([("name", .string(why))])) }
        return .store(e)
    }

    /// `GET /api/v1/projects/{project}/alerts`: every rule with its state.
    func listAlertRules(_ project: String, _ r: CountingResponder) {
        store.alertRules(project: project) { [self] rules in
            guard case .success(let list) = rules else { return r.result(rules) { _ in .null } }
            store.alertStates(project: project) { [self] states in
                r.result(states) { all in
                    var byRule: [Int64: AlertStateRecord] = [:]
                    for s in all { byRule[s.ruleId] = s }
                    return .object([("project", .string(project)), ("alerts", .array(list.map { alertRuleJSON($0, byRule[$0.id]) }))])
                }
            }
        }
    }

    /// `POST /api/v1/projects/{project}/alerts`: 201 with the stored rule.
    func createAlertRule(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        guard let rule = validatedRule(req, r) else { return }
        let actor = actor(req)
        store.createAlertRule(project: project, name: rule.name, body: rule.json.serialized, at: Clock.wallMillis()) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(ruleStoreFailure(e))
            case .success(let rec):
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "alerts.create", target: project,
                                             detail: "rule \(rec.id) \(rec.name)", result: "ok")) { _ in }
                r.json(alertRuleJSON(rec, nil), status: 201)
            }
        }
    }

    /// `GET /api/v1/projects/{project}/alerts/{id}`: the rule, its state
    /// and its newest transitions (`limit`, default 100).
    func getAlertRule(_ project: String, _ idText: String, _ req: HTTPRequest, _ r: CountingResponder) {
        guard let id = alertRuleId(idText, project, r) else { return }
        let n: Int
        do { n = min(try limit(req), APIHandler.maxAlertHistory) } catch { return r.fail(error) }
        store.alertRules(project: project) { [self] rules in
            guard case .success(let list) = rules else { return r.result(rules) { _ in .null } }
            guard let rec = list.first(where: { $0.id == id }) else {
                return r.fail(.notFound("alert rule \(id) of project '\(project)'"))
            }
            store.alertStates(project: project) { [self] states in
                let state = (try? states.get())?.first { $0.ruleId == id }
                store.alertHistory(ruleId: id, limit: n) { [self] history in
                    r.result(history) { transitions in
                        guard case .object(var o) = alertRuleJSON(rec, state) else { return .null }
                        o["history"] = .array(transitions.map {
                            .object([("id", .int($0.id)), ("ts", .int($0.ts)), ("from", .string($0.from)), ("to", .string($0.to)),
                                     ("value", $0.value.map(JSON.number) ?? .null), ("detail", .string($0.detail))])
                        })
                        return .object(o)
                    }
                }
            }
        }
    }

    /// `PUT /api/v1/projects/{project}/alerts/{id}`: replaces the rule (its
    /// state and history stay); redacted secrets sent back keep the stored ones.
    func updateAlertRule(_ project: String, _ idText: String, _ req: HTTPRequest, _ r: CountingResponder) {
        guard let id = alertRuleId(idText, project, r), let sent = validatedRule(req, r) else { return }
        let actor = actor(req)
        store.alertRules(project: project) { [self] rules in
            guard case .success(let list) = rules else { return r.result(rules) { _ in .null } }
            guard let old = list.first(where: { $0.id == id }) else {
                return r.fail(.notFound("alert rule \(id) of project '\(project)'"))
            }
            let rule = AlertRuleDocument.decode(old.body).map { sent.keepingSecrets(of: $0) } ?? sent
            store.updateAlertRule(project: project, id: id, name: rule.name, body: rule.json.serialized, at: Clock.wallMillis()) { [self] result in
                switch result {
                case .failure(let e):
                    r.fail(ruleStoreFailure(e))
                case .success(let rec):
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "alerts.update", target: project,
                                                 detail: "rule \(rec.id) \(rec.name) version \(rec.version)", result: "ok")) { _ in }
                    store.alertStates(project: project) { [self] states in
                        r.json(alertRuleJSON(rec, (try? states.get())?.first { $0.ruleId == id }))
                    }
                }
            }
        }
    }

    /// `DELETE /api/v1/projects/{project}/alerts/{id}`: the rule, its state,
    /// history and notification records go.
    func deleteAlertRule(_ project: String, _ idText: String, _ req: HTTPRequest, _ r: CountingResponder) {
        guard let id = alertRuleId(idText, project, r) else { return }
        let actor = actor(req)
        store.deleteAlertRule(project: project, id: id) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success:
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "alerts.delete", target: project,
                                             detail: "rule \(id)", result: "ok")) { _ in }
                r.json(.object([("deleted", .int(id))]))
            }
        }
    }
}

// MARK: silences and notification records

extension APIHandler {
    static let maxSilenceMatchers = 16

    func silenceJSON(_ s: AlertSilence) -> JSON {
        .object([("id", .int(s.id)), ("project", .string(s.project)), ("rule_id", s.ruleId.map { .int($0) } ?? .null),
                 ("matchers", .object(JSONObject(s.matchers.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) }))),
                 ("starts", .int(s.starts)), ("ends", .int(s.ends)), ("comment", .string(s.comment)), ("created_by", .string(s.createdBy))])
    }

    /// `GET /api/v1/projects/{project}/silences`: those not yet ended.
    func listSilences(_ project: String, _ r: CountingResponder) {
        store.alertSilences(project: project, endingAfter: Clock.wallMillis()) { [self] result in
            r.result(result) { list in .object([("project", .string(project)), ("silences", .array(list.map(silenceJSON)))]) }
        }
    }

    /// `POST /api/v1/projects/{project}/silences`: `{"rule_id", "matchers",
    /// "starts", "ends" | "duration_s", "comment"}`; 201 with the silence.
    func createSilence(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON
        do { b = try body(req) } catch { return r.fail(error) }
        let now = Clock.wallMillis()
        var problems: [(String, JSON)] = []
        let fields = ["rule_id", "matchers", "starts", "ends", "duration_s", "comment"]
        for k in b.objectValue?.keys ?? [] where !fields.contains(k) {
            problems.append((k, .string("unknown field (a silence has \(fields.joined(separator: ", ")))")))
        }
        var ruleId: Int64?
        if let v = b["rule_id"], !v.isNull {
            if let id = v.int64Value, id > 0 { ruleId = id } else { problems.append(("rule_id", .string("expected a rule id"))) }
        }
        var matchers: [String: String] = [:]
        switch b["matchers"] {
        case nil, .null?: break
        case .object(let o)?:
            if o.count > APIHandler.maxSilenceMatchers { problems.append(("matchers", .string("at most \(APIHandler.maxSilenceMatchers)"))) }
            for (k, v) in o {
                guard let s = v.stringValue, !k.isEmpty, !k.contains("="), APITarget.invalidIdentifier(k) == nil,
                      APITarget.invalidIdentifier(s) == nil, !s.contains("\n") else {
                    problems.append(("matchers.\(k)", .string("expected a label name without '=' and a string value, without control characters")))
                    continue
                }
                matchers[k] = s
            }
        case let v?: problems.append(("matchers", .string("expected an object of label values, got \(APIHandler.kind(of: v))")))
        }
        var starts = now
        if let v = b["starts"], !v.isNull {
            if let t = v.int64Value { starts = t } else { problems.append(("starts", .string("expected epoch milliseconds"))) }
        }
        var ends: Int64?
        if let v = b["ends"], !v.isNull {
            if let t = v.int64Value { ends = t } else { problems.append(("ends", .string("expected epoch milliseconds"))) }
        }
        if let v = b["duration_s"], !v.isNull {
            if ends != nil { problems.append(("duration_s", .string("give ends or duration_s, not both"))) }
            else if let d = v.int64Value, d > 0, d <= 366 * 86_400 { ends = starts + d * 1000 }
            else { problems.append(("duration_s", .string("expected seconds from 1 to 31622400"))) }
        }
        if ends == nil && problems.isEmpty { problems.append(("ends", .string("required (or duration_s): a silence has an end"))) }
        if let e = ends, e <= max(starts, now) { problems.append(("ends", .string("must lie after starts and now"))) }
        let comment = b["comment"]?.stringValue ?? ""
        if comment.utf8.count > 1024 { problems.append(("comment", .string("longer than 1024 bytes"))) }
        if ruleId == nil && matchers.isEmpty && problems.isEmpty {
            problems.append(("matchers", .string("give rule_id or matchers (a silence of every rule names no matcher: use {\"matchers\":{}} with rule_id)")))
        }
        guard problems.isEmpty, let end = ends else { return r.fail(APIError(422, "invalid silence", .object(problems))) }
        let actor = actor(req)
        let create = { [self] in
            store.createAlertSilence(AlertSilence(project: project, ruleId: ruleId, matchers: matchers, starts: starts, ends: end,
                                                  comment: comment, createdBy: actor)) { [self] result in
                switch result {
                case .failure(let e): r.fail(.store(e))
                case .success(let s):
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "alerts.silence", target: project,
                                                 detail: "silence \(s.id) until \(s.ends)", result: "ok")) { _ in }
                    r.json(silenceJSON(s), status: 201)
                }
            }
        }
        guard let ruleId else { return create() }
        store.alertRules(project: project) { result in
            switch result {
            case .failure(let e): r.fail(.store(e))
            case .success(let rules) where !rules.contains(where: { $0.id == ruleId }):
                r.fail(APIError(422, "invalid silence", .object([("rule_id", .string("no rule \(ruleId) in project \(project)"))])))
            case .success: create()
            }
        }
    }

    /// `DELETE /api/v1/projects/{project}/silences/{id}`: ends it now.
    func endSilence(_ project: String, _ idText: String, _ req: HTTPRequest, _ r: CountingResponder) {
        guard let id = Int64(idText), id > 0 else { return r.fail(.notFound("silence '\(idText)' of project '\(project)'")) }
        let actor = actor(req)
        store.endAlertSilence(project: project, id: id, at: Clock.wallMillis()) { [self] result in
            switch result {
            case .failure(let e): r.fail(.store(e))
            case .success(let s):
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "alerts.unsilence", target: project,
                                             detail: "silence \(id)", result: "ok")) { _ in }
                r.json(silenceJSON(s))
            }
        }
    }

    /// `GET /api/v1/projects/{project}/notifications`: every notification
    /// sent or not, newest first; `rule` narrows to one rule.
    func listNotifications(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let n: Int, rule: Int64?
        do {
            n = try limit(req)
            rule = try integer(req, "rule")
        } catch { return r.fail(error) }
        store.alertNotifications(project: project, ruleId: rule, limit: n) { result in
            r.result(result) { list in
                .object([("project", .string(project)), ("notifications", .array(list.map {
                    .object([("id", .int($0.id)), ("ts", .int($0.ts)), ("rule_id", .int($0.ruleId)), ("transition_id", .int($0.transitionId)),
                             ("event", .string($0.event)), ("receiver", .string($0.receiver)), ("result", .string($0.result)),
                             ("attempts", .int($0.attempts)), ("detail", .string($0.detail))])
                }))])
            }
        }
    }
}
