// The agent endpoints: listing, one agent, capture control, configuration
// (effective view and remote update), status and state history.
import CollectorStore
import ConfigFile
import HTTPServer
import JSON
import Reactor
import Wire

extension APIHandler {
    // MARK: reading

    /// How many agents one page of `GET /api/v1/agents` holds unless `limit` says otherwise.
    static let defaultAgentPage = 1_000

    /// A page of agents in id order: `limit` of them after `cursor` (the
    /// previous page's `next_cursor`, which is its last id); `next_cursor`
    /// is null on the last page. One more row than asked for is read, so a
    /// full last page is known to be the last. `sort=name` pages in (project
    /// name, name, id) order instead, its cursor naming all three;
    /// `counts=state` adds how many agents of the project and search are in
    /// each state (a second, grouped read).
    func listAgents(_ req: HTTPRequest, _ r: CountingResponder) {
        let project = text(req, "project"), cursor = text(req, "cursor"), search = text(req, "search"), n: Int
        do { n = try limit(req, default: APIHandler.defaultAgentPage) } catch { return r.fail(error) }
        var state: CollectorStore.AgentState?
        if let s = text(req, "state") {
            guard let st = CollectorStore.AgentState(rawValue: s) else {
                return r.fail(.badRequest("invalid query parameter", .object([("state", .string(
                    "expected one of \(CollectorStore.AgentState.allCases.map(\.rawValue).joined(separator: ", ")), got \(s)"))])))
            }
            state = st
        }
        if let search, search.utf8.count > 256 {
            return r.fail(.badRequest("invalid query parameter", .object([("search", .string("longer than 256 bytes"))])))
        }
        let byName: Bool
        switch text(req, "sort") {
        case nil, "id": byName = false
        case "name": byName = true
        case let other?:
            return r.fail(.badRequest("invalid query parameter", .object([("sort", .string("expected id or name, got \(other)"))])))
        }
        let counts: Bool
        switch text(req, "counts") {
        case nil: counts = false
        case "state": counts = true
        case let other?:
            return r.fail(.badRequest("invalid query parameter", .object([("counts", .string("expected state, got \(other)"))])))
        }
        var namePosition: AgentNamePosition?
        if byName, let cursor {
            guard let p = APIHandler.agentNamePosition(cursor) else {
                return r.fail(.badRequest("invalid query parameter", .object([("cursor", .string(
                    "not a next_cursor of sort=name: pass it back unchanged"))])))
            }
            namePosition = p
        }
        withKnownProject(project, r) { [self] in
            let answer: (Result<[AgentRecord], StoreError>, [CollectorStore.AgentState: Int]?) -> Void = { [self] result, stateCounts in
                guard case .success(let agents) = result else { return r.result(result) { _ in .null } }
                let page = agents.prefix(n)
                agentOwners(page.map(\.id), r) { [self] owners in
                    var next: JSON = .null
                    if agents.count > n, let last = page.last {
                        next = .string(byName ? APIHandler.agentNameCursor(last) : last.id)
                    }
                    var fields: [(String, JSON)] = [("agents", .array(page.map { agentJSON($0, owners: owners) })), ("next_cursor", next)]
                    if let stateCounts {
                        var total = 0
                        fields.append(("counts", .object(CollectorStore.AgentState.allCases.map { s in
                            total += stateCounts[s] ?? 0
                            return (s.rawValue, .int(Int64(stateCounts[s] ?? 0)))
                        } + [("total", .int(Int64(total)))])))
                    }
                    r.json(.object(fields))
                }
            }
            let list: (@escaping (Result<[AgentRecord], StoreError>) -> Void) -> Void = { [self] done in
                if byName {
                    store.agentsByName(project: project, state: state, search: search, after: namePosition, limit: n + 1, completion: done)
                } else {
                    store.agents(project: project, state: state, search: search, after: cursor, limit: n + 1, completion: done)
                }
            }
            list { [self] result in
                guard counts, case .success = result else { return answer(result, nil) }
                store.agentStateCounts(project: project, search: search) { c in
                    switch c {
                    case .success(let byState): answer(result, byState)
                    case .failure(let e): answer(.failure(e), nil)
                    }
                }
            }
        }
    }

    /// The `next_cursor` of a page in name order: the last row's project,
    /// name and id, each length-prefixed (`<bytes>:<text>`), so any name
    /// round-trips.
    static func agentNameCursor(_ a: AgentRecord) -> String {
        [a.project, a.name, a.id].map { "\($0.utf8.count):\($0)" }.joined()
    }

    /// The position an `agentNameCursor` names; nil when `text` is not one.
    static func agentNamePosition(_ text: String) -> AgentNamePosition? {
        let bytes = Array(text.utf8)
        var i = 0
        var parts: [String] = []
        for _ in 0..<3 {
            guard let colon = bytes[i...].firstIndex(of: UInt8(ascii: ":")), colon > i, colon - i <= 6,
                  let n = Int(String(decoding: bytes[i..<colon], as: UTF8.self)), n >= 0,
                  bytes.count - (colon + 1) >= n else { return nil }
            parts.append(String(decoding: bytes[(colon + 1)..<(colon + 1 + n)], as: UTF8.self))
            i = colon + 1 + n
        }
        guard i == bytes.count else { return nil }
        return AgentNamePosition(project: parts[0], name: parts[1], id: parts[2])
    }

    func getAgent(_ id: String, _ r: CountingResponder) {
        store.agent(id: id) { [self] result in
            guard case .success(let a) = result else { return r.result(result) { _ in .null } }
            agentOwners([a.id], r) { [self] owners in r.json(agentJSON(a, owners: owners)) }
        }
    }

    /// An agent as the API shows it. A connected agent's state comes from
    /// its session (current to the last record); otherwise from the store,
    /// which the collector holding its session (`collector`, from
    /// `owners`: ClusterNode's leases) keeps current.
    func agentJSON(_ a: AgentRecord, owners: [String: AgentOwner] = [:]) -> JSON {
        let live = manager.session(forAgent: a.id)
        let state = live?.state ?? a.state
        let collector: String? = live != nil ? cluster?.id : owners[a.id]?.collector
        return .object([
            ("id", .string(a.id)), ("project", .string(a.project)), ("name", .string(a.name)),
            ("hostname", .string(a.hostname)), ("version", .string(a.version)), ("state", .string(state.rawValue)),
            ("mode", .string(a.mode)),
            ("state_messages", .array(a.stateMessages.map(JSON.string))), ("state_since", .int(a.stateSince)),
            ("connected", .bool(live != nil || collector != nil)), ("collector", .optional(collector)),
            ("last_seen", .int(a.lastSeen)), ("first_seen", .int(a.firstSeen)),
            ("status", a.status.map(JSON.raw) ?? .null), ("status_ts", .optional(a.statusTs)),
        ])
    }

    func statusHistory(_ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let range: (since: Int64?, until: Int64?), n: Int, after: ListPosition?
        do { range = try timeRange(req); n = try limit(req); after = try cursor(req) } catch { return r.fail(error) }
        store.agent(id: id) { [self] found in
            if case .failure(let e) = found { return r.fail(.store(e)) }
            store.statusHistory(agent: id, since: range.since, until: range.until, limit: n + 1, after: after) { [self] result in
                r.result(result) { all in
                    let (rows, next) = page(all, limit: n) { ListPosition(ts: $0.ts, id: $0.id) }
                    return .object([("agent", .string(id)),
                                    ("status", .array(rows.map { .object([("ts", .int($0.ts)), ("status", .raw($0.json))]) })),
                                    ("next_cursor", next)])
                }
            }
        }
    }

    func stateHistory(_ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let range: (since: Int64?, until: Int64?), n: Int, after: ListPosition?
        do { range = try timeRange(req); n = try limit(req); after = try cursor(req) } catch { return r.fail(error) }
        store.agent(id: id) { [self] found in
            if case .failure(let e) = found { return r.fail(.store(e)) }
            store.stateHistory(agent: id, since: range.since, until: range.until, limit: n + 1, after: after) { [self] result in
                r.result(result) { all in
                    let (rows, next) = page(all, limit: n) { ListPosition(ts: $0.ts, id: $0.id) }
                    return .object([("agent", .string(id)), ("states", .array(rows.map {
                        .object([("ts", .int($0.ts)), ("state", .string($0.state.rawValue)),
                                 ("messages", .array($0.messages.map(JSON.string)))])
                    })), ("next_cursor", next)])
                }
            }
        }
    }

    // MARK: forgetting

    /// `DELETE /api/v1/agents/{id}`: forgets an agent that is gone (its row,
    /// histories and own overrides; its measurements stay — see
    /// `MeasurementStore.forgetAgent`). Refused with 409 while it has a
    /// session, since the session would write it back at once. Audited
    /// as `agent.forget` (unknown agents are a 404 and not audited).
    func forgetAgent(_ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let actor = actor(req)
        func audit(_ result: String) {
            store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "agent.forget", target: id,
                                         detail: "", result: result)) { _ in }
        }
        func connected(_ state: String, collector: String?) {
            audit("connected")
            r.fail(APIError(409, "agent connected", .object([
                ("agent", .string(id)), ("state", .string(state)), ("collector", .optional(collector)),
                ("message", .string("stop the agent (or wait until its session closes) before forgetting it"))])))
        }
        if let session = manager.session(forAgent: id) { return connected(session.state.rawValue, collector: cluster?.id) }
        // Connected to another collector of the cluster: the same answer.
        controlPath(id, r) { [self] path in
            switch path {
            case .local(let session)?: return connected(session.state.rawValue, collector: cluster?.id)
            case .remote(let owner)?:
                return store.agent(id: id) { found in
                    connected((try? found.get())?.state.rawValue ?? "connecting", collector: owner.collector)
                }
            case nil: break
            }
            store.forgetAgent(id: id) { result in
                switch result {
                case .failure(let e):
                    r.fail(.store(e))
                case .success:
                    audit("ok")
                    r.json(.object([("agent", .string(id)), ("result", .string("ok"))]))
                }
            }
        }
    }

    // MARK: identity

    /// `POST /api/v1/agents/{id}/reset-identity`: the agent id keeps its
    /// project but forgets its static key, so the next completed handshake
    /// of that id enrolls the key it proves (a rebuilt host). A live session
    /// is left alone. Audited as `agent.reset-identity`; an id never
    /// enrolled is a 404 and not audited.
    func resetIdentity(_ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let actor = actor(req)
        store.resetAgentIdentity(id: id) { [store] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success:
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "agent.reset-identity", target: id,
                                             detail: "", result: "ok")) { _ in }
                r.json(.object([("agent", .string(id)), ("result", .string("ok")),
                                ("message", .string("the next handshake of this agent id enrolls the static key it proves"))]))
            }
        }
    }

    // MARK: capture

    func capture(_ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON, timeout: Double
        do { b = try body(req); timeout = try controlTimeout(req) } catch { return r.fail(error) }
        guard let action = b["action"]?.stringValue, action == "start" || action == "stop" else {
            return r.fail(APIError(422, "invalid request", .object([("action", .string("expected \"start\" or \"stop\""))])))
        }
        var values: [KeyValue] = []
        switch b["interface"] {
        case nil, .null?: break
        case .string(let iface)? where !iface.isEmpty: values.append(KeyValue("interface", iface))
        case let v?:
            return r.fail(APIError(422, "invalid request",
                                   .object([("interface", .string("expected the name of an interface the agent reported, got \(APIHandler.kind(of: v))"))])))
        }
        let audit = AuditContext(actor: actor(req), action: "capture.\(action)", target: id,
                                 detail: values.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        func sendCapture(_ path: ControlPath) {
            sendControl(path, agent: id, kind: action == "start" ? .captureStart : .captureStop, values: values,
                        timeout: timeout, audit: audit, r) { [self] outcome in
                answer(outcome, timeout: timeout, r) {
                    r.json(.object([("agent", .string(id)), ("action", .string(action)), ("result", .string("ok")),
                                    ("message", .string($0))]))
                }
            }
        }
        withConnectedAgent(id, audit, r) { [self] path in
            guard let iface = values.first?.value else { return sendCapture(path) }
            // The agent captures only on interfaces it reported; another name
            // would be accepted by nobody, so it is refused here, naming it.
            store.agent(id: id) { found in
                let reported: [String]
                switch found {
                case .failure(let e): return r.fail(.store(e))
                case .success(let a): reported = APIHandler.interfaceNames(a.status)
                }
                guard reported.contains(iface) else {
                    return r.fail(APIError(422, "invalid request", .object([
                        ("interface", .string("the agent reported no interface \(iface)")),
                        ("reported", .array(reported.map(JSON.string)))])))
                }
                sendCapture(path)
            }
        }
    }

    /// The interface names in an agent's latest status snapshot (none
    /// before its first status).
    static func interfaceNames(_ status: String?) -> [String] {
        guard let status, let json = try? JSON.parse(status) else { return [] }
        return (json["interfaces"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
    }

    // MARK: configuration

    func getAgentConfig(_ id: String, _ r: CountingResponder) {
        store.agent(id: id) { [self] found in
            switch found {
            case .failure(let e): r.fail(.store(e))
            case .success(let a):
                overrides(project: a.project, agent: id, r) { [self] p, o in
                    let (config, skipped) = AgentConfigView.effective(project: p, agent: o,
                                                                      reported: manager.session(forAgent: id)?.reportedConfig)
                    r.json(.object([("agent", .string(id)), ("project", .string(a.project)),
                                    ("config", AgentConfigView.json(config)),
                                    ("skipped", .array(skipped.map(JSON.string)))]))
                }
            }
        }
    }

    /// `{"key": "value", …}`; `null` removes the agent's own override (the
    /// agent then gets the project's value or the default).
    func putAgentConfig(_ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON, timeout: Double
        do { b = try body(req); timeout = try controlTimeout(req) } catch { return r.fail(error) }
        let set: [String: String], removed: [String]
        do { (set, removed) = try configChange(b, owner: "agent") } catch { return r.fail(error) }
        let audit = AuditContext(actor: actor(req), action: "config.update", target: id,
                                 detail: (Array(set.keys) + removed).sorted().joined(separator: ","))
        store.agent(id: id) { [self] found in
            let a: AgentRecord
            switch found {
            case .failure(let e): return r.fail(.store(e))
            case .success(let x): a = x
            }
            overrides(project: a.project, agent: id, r) { [self] projectValues, _ in
                // A removed override falls back to the project's value, else the default.
                var values = set
                for k in removed {
                    guard let v = projectValues[k] ?? AgentSchema.schema.key(k)?.defaultText else { continue }
                    values[k] = v
                }
                let update = values.sorted { $0.key < $1.key }.map { KeyValue($0.key, $0.value) }
                controlPath(id, r) { [self] found in
                    guard let path = found else {
                        return stageAgentConfig(a, set: set, removed: removed, actor: audit.actor, r)
                    }
                    sendControl(path, agent: id, kind: .configUpdate, values: update, timeout: timeout, audit: audit, r) { [self] outcome in
                        answer(outcome, timeout: timeout, r) { _ in
                            var change: [String: String?] = set.mapValues { Optional($0) }
                            for k in removed { change[k] = .some(nil) }
                            store.setConfigOverrides(project: a.project, agent: id, values: change, at: Clock.wallMillis()) { [self] saved in
                                switch saved {
                                case .failure(let e):
                                    // The agent runs the new values; only the record of them failed.
                                    r.fail(APIError(500, "applied by the agent but not saved", .string(e.description)))
                                case .success(let agentValues):
                                    overrides(project: a.project, agent: nil, r) { p, _ in
                                        let (config, _) = AgentConfigView.effective(project: p, agent: agentValues)
                                        r.json(.object([("agent", .string(id)), ("result", .string("ok")),
                                                        ("applied", .array(update.map { .string($0.key) })),
                                                        ("config", AgentConfigView.json(config))]))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// An agent that is not connected: the checked values are stored as its
    /// overrides now and reach it as one update when it next connects (the
    /// converge after every handshake). Answers 202, audited `config.stage`.
    private func stageAgentConfig(_ a: AgentRecord, set: [String: String], removed: [String], actor: String,
                                  _ r: CountingResponder) {
        var change: [String: String?] = set.mapValues { Optional($0) }
        for k in removed { change[k] = .some(nil) }
        let keys = (Array(set.keys) + removed).sorted()
        store.setConfigOverrides(project: a.project, agent: a.id, values: change, at: Clock.wallMillis()) { [self] saved in
            let agentValues: [String: String]
            switch saved {
            case .failure(let e):
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "config.stage", target: a.id,
                                             detail: keys.joined(separator: ","), result: "error")) { _ in }
                return r.fail(.store(e))
            case .success(let v): agentValues = v
            }
            store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "config.stage", target: a.id,
                                         detail: keys.joined(separator: ","), result: "ok")) { _ in }
            overrides(project: a.project, agent: nil, r) { p, _ in
                let (config, _) = AgentConfigView.effective(project: p, agent: agentValues)
                r.json(.object([("agent", .string(a.id)), ("result", .string("staged")),
                                ("staged", .array(keys.map { .string($0) })),
                                ("config", AgentConfigView.json(config))]), status: 202)
            }
        }
    }

    /// Reads a configuration update body: `{"key": value, …}` with `null`
    /// removing the `owner`'s (agent's or project's) override. Every key is
    /// checked with the agent's schema; an empty object is a 400, any
    /// faulty key a 422 naming each one (`by: collector`).
    func configChange(_ b: JSON, owner: String) throws(APIError) -> (set: [String: String], removed: [String]) {
        guard case .object(let members) = b, !members.isEmpty else {
            throw .badRequest("no keys to change",
                              .string("give at least one \"key\": value (null removes the \(owner)'s override)"))
        }
        var set: [String: String] = [:]
        var removed: [String] = []
        var problems: [String: String] = [:]
        for (k, v) in members {
            if case .null = v {
                removed.append(k)
            } else if let t = v.configText {
                set[k] = t
            } else {
                problems[k] = "expected a string, number or boolean (or null to remove the \(owner)'s override)"
            }
        }
        for e in AgentConfigView.validate(set) where problems[e.key ?? ""] == nil { problems[e.key ?? ""] = e.detail }
        for k in removed {
            guard let key = AgentSchema.schema.key(k) else { problems[k] = "unknown key"; continue }
            if !key.live || AgentConfigView.neverRemote.contains(k) { problems[k] = "cannot change while running (restart to apply)" }
        }
        if !problems.isEmpty {
            throw APIError(422, "invalid configuration", keyProblems(problems, message: "", by: "collector"))
        }
        return (set, removed)
    }

    /// The project's and the agent's stored overrides (`agent` nil: only
    /// the project's, the second value then empty).
    func overrides(project: String, agent: String?, _ r: CountingResponder,
                           _ done: @escaping ([String: String], [String: String]) -> Void) {
        store.configOverrides(project: project, agent: nil) { [self] p in
            switch p {
            case .failure(let e): r.fail(.store(e))
            case .success(let pv):
                guard let agent else { return done(pv, [:]) }
                store.configOverrides(project: project, agent: agent) { a in
                    switch a {
                    case .failure(let e): r.fail(.store(e))
                    case .success(let av): done(pv, av)
                    }
                }
            }
        }
    }

    // MARK: control helpers

    func controlTimeout(_ req: HTTPRequest) throws(APIError) -> Double {
        guard let ms = try integer(req, "timeout_ms") else { return controlTimeout }
        guard ms >= 1 && Double(ms) <= APIHandler.maxControlTimeout * 1000 else {
            throw .badRequest("invalid query parameter",
                              .object([("timeout_ms", .string("expected 1...\(Int(APIHandler.maxControlTimeout * 1000))"))]))
        }
        return Double(ms) / 1000
    }

    /// Runs `body` with the way to the agent's session (here, or through
    /// the collector that holds it); answers 404 for an unknown agent and
    /// 409 (audited) for one without a session anywhere.
    func withConnectedAgent(_ id: String, _ audit: AuditContext, _ r: CountingResponder,
                            _ body: @escaping (ControlPath) -> Void) {
        if let s = manager.session(forAgent: id) { return body(.local(s)) }
        store.agent(id: id) { [self] found in
            switch found {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let a):
                controlPath(id, r) { [self] path in
                    if let path { return body(path) }
                    notConnected(a, audit, r)
                }
            }
        }
    }

    private func notConnected(_ a: AgentRecord, _ audit: AuditContext, _ r: CountingResponder) {
        let id = a.id
        store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: audit.actor, action: audit.action,
                                     target: id, detail: audit.detail, result: "not_connected")) { _ in }
        r.fail(APIError(409, "agent not connected", .object([("agent", .string(id)), ("state", .string(a.state.rawValue))])))
    }

    /// The HTTP answer for a control outcome; `accepted` renders success.
    func answer(_ outcome: ControlOutcome, timeout: Double, _ r: CountingResponder, accepted: (String) -> Void) {
        switch outcome {
        case .accepted(let message):
            accepted(message)
        case .rejected(let errors, let message):
            var keys: [String: String] = [:]
            for e in errors { keys[e.key] = e.value }
            r.fail(APIError(422, "rejected by the agent", keyProblems(keys, message: message, by: "agent")))
        case .timedOut:
            r.fail(APIError(504, "agent did not answer", .object([("timeout_ms", .int(Int(timeout * 1000)))])))
        case .disconnected:
            r.fail(APIError(504, "agent disconnected before answering", .null))
        case .shuttingDown:
            r.fail(APIError(503, "shutting down", .null))
        }
    }

    func keyProblems(_ keys: [String: String], message: String, by: String) -> JSON {
        .object([("keys", .object(keys.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                 ("message", .string(message)), ("by", .string(by))])
    }
}
