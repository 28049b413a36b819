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
