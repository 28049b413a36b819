// The project-level configuration endpoints: the project's stored
// overrides as the configuration view shows them (origin `project`), and
// their update, which is stored at once and pushed to the project's
// connected agents that do not override the key themselves.
//
// Unlike an agent's update there is no single agent to wait for (a project
// spans many, some offline), so the values are stored first; an agent that
// is offline, or refuses the push, gets them again at its next connect
// (`SessionManager.converge`).
//
// Thread: loop thread.
import CollectorStore
import ConfigFile
import HTTPServer
import JSON
import Reactor
import Wire

extension APIHandler {
    func getProjectConfig(_ project: String, _ r: CountingResponder) {
        withKnownProject(project, r) { [self] in
            overrides(project: project, agent: nil, r) { p, _ in
                let (config, skipped) = AgentConfigView.effective(project: p, agent: [:])
                r.json(.object([("project", .string(project)), ("config", AgentConfigView.json(config)),
                                ("skipped", .array(skipped.map(JSON.string)))]))
            }
        }
    }

    /// `{"key": "value", …}`; `null` removes the project's override (its
    /// agents then get the default, unless they override the key).
    /// Audited as `config.project` with the project as target.
    func putProjectConfig(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON
        do { b = try body(req) } catch { return r.fail(error) }
        let set: [String: String], removed: [String]
        do { (set, removed) = try configChange(b, owner: "project") } catch { return r.fail(error) }
        let actor = actor(req)
        let keys = (Array(set.keys) + removed).sorted()
        withKnownProject(project, r) { [self] in
            var change: [String: String?] = set.mapValues { Optional($0) }
            for k in removed { change[k] = .some(nil) }
            store.setConfigOverrides(project: project, agent: nil, values: change, at: Clock.wallMillis()) { [self] saved in
                switch saved {
                case .failure(let e):
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "config.project", target: project,
                                                 detail: keys.joined(separator: ","), result: "error")) { _ in }
                    r.fail(.store(e))
                case .success(let projectValues):
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "config.project", target: project,
                                                 detail: keys.joined(separator: ","), result: "ok")) { _ in }
                    // A removed override falls back to the default.
                    var values = set
                    for k in removed { values[k] = AgentSchema.schema.key(k)?.defaultText }
                    let update = values.sorted { $0.key < $1.key }.map { KeyValue($0.key, $0.value) }
                    let pushed = manager.pushProjectConfig(project: project, values: update)
                    let (config, _) = AgentConfigView.effective(project: projectValues, agent: [:])
                    r.json(.object([("project", .string(project)), ("result", .string("ok")),
                                    ("applied", .array(keys.map(JSON.string))),
                                    ("pushed_to", .array(pushed.map(JSON.string))),
                                    ("config", AgentConfigView.json(config))]))
                }
            }
        }
    }
}
