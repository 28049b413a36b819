// The project endpoints: the list of projects, filter rules (pushed to the
// project's connected agents on change) and monitor definitions.
import CollectorStore
import HTTPServer
import JSON
import MonitorModel
import Reactor
import Wire

extension APIHandler {
    static let maxPatternField = 512

    func listProjects(_ r: CountingResponder) {
        store.projects { result in
            r.result(result) { projects in
                .object([("projects", .array(projects.map {
                    .object([("id", .int($0.id)), ("name", .string($0.name)), ("created", .int($0.created))])
                }))])
            }
        }
    }

    // MARK: patterns

    func getPatterns(_ project: String, _ r: CountingResponder) {
        store.patterns(project: project) { [self] result in r.result(result) { patternsJSON(project, $0) } }
    }

    func patternsJSON(_ project: String, _ set: PatternSet) -> JSON {
        .object([("project", .string(project)), ("version", .int(set.version)), ("updated", .int(set.updated)),
                 ("patterns", .array(set.patterns.map {
                     // A StatsD rule is stored as a rule with the marker method (Wire's PatternRule+Metric).
                     $0.method == PatternRule.metricMethod
                         ? .object([("metric", .string($0.path)), ("exclude", .bool($0.exclude))])
                         : .object([("method", .string($0.method)), ("host", .string($0.host)), ("path", .string($0.path)),
                              ("monitor", .string($0.monitor)), ("check", .string($0.check)),
                              ("exclude", .bool($0.exclude))])
                 }))])
    }

    /// `{"patterns":[{"method","host","path","monitor","check"}]}`: the whole
    /// ordered list, replaced at once and pushed to connected agents.
    func putPatterns(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON
        do { b = try body(req) } catch { return r.fail(error) }
        let (patterns, problems) = APIHandler.parsePatterns(b)
        if !problems.isEmpty { return r.fail(APIError(422, "invalid patterns", .object(problems))) }
        store.replacePatterns(project: project, patterns: patterns, at: Clock.wallMillis()) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let set):
                manager.pushPatterns(project: project, set: set)
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor(req), action: "patterns.replace",
                                             target: project, detail: "version \(set.version), \(set.patterns.count) rules",
                                             result: "ok")) { _ in }
                r.json(patternsJSON(project, set))
            }
        }
    }

    /// The fields a rule may have; any other is refused, naming it.
    static let patternFields = ["method", "host", "path", "monitor", "check", "exclude", "metric"]

    /// Checks every rule the way the agent will (docs/API.md): host and path
    /// present, and monitor and check unless the rule excludes (an `exclude`
    /// rule drops what it matches, so it names no aggregate); each string at
    /// most 512 bytes; no fields but `patternFields`; the whole list must fit
    /// one Wire record. Problems are keyed `patterns[i].field`.
    static func parsePatterns(_ b: JSON) -> (patterns: [FilterPattern], problems: [(String, JSON)]) {
        guard let list = b["patterns"]?.arrayValue else {
            return ([], [("patterns", .string("expected an array of rules"))])
        }
        var problems: [(String, JSON)] = []
        var out: [FilterPattern] = []
        if list.count > WireLimits.default.maxListCount {
            problems.append(("patterns", .string("at most \(WireLimits.default.maxListCount) rules")))
        }
        for (i, item) in list.enumerated() {
            guard case .object(let members) = item else {
                problems.append(("patterns[\(i)]", .string("expected an object")))
                continue
            }
            let before = problems.count
            for (name, _) in members where !patternFields.contains(name) {
                problems.append(("patterns[\(i)].\(name)",
                                 .string("unknown field (a rule has \(patternFields.joined(separator: ", ")))")))
            }
            var exclude = false
            switch item["exclude"] {
            case nil, .null?: break
            case .bool(let x)?: exclude = x
            default: problems.append(("patterns[\(i)].exclude", .string("expected a boolean")))
            }
            if let metric = item["metric"], metric != .null {
                // A StatsD rule: a metric-name glob, kept or excluded; the
                // metric keeps its name and type, so it names no aggregate.
                for name in ["method", "host", "path", "monitor", "check"] where item[name] != nil && item[name] != .null {
                    problems.append(("patterns[\(i)].\(name)",
                                     .string("not allowed with metric (a metric rule has metric and exclude only)")))
                }
                guard let glob = metric.stringValue, !glob.isEmpty else {
                    problems.append(("patterns[\(i)].metric", .string("expected a non-empty glob (\"*\" for any metric)")))
                    continue
                }
                if glob.utf8.count > maxPatternField {
                    problems.append(("patterns[\(i)].metric", .string("longer than \(maxPatternField) bytes")))
                }
                if problems.count == before {
                    out.append(FilterPattern(method: PatternRule.metricMethod, host: "*", path: glob, monitor: "", check: "",
                                             exclude: exclude))
                }
                continue
            }
            if item["method"]?.stringValue == PatternRule.metricMethod {
                problems.append(("patterns[\(i)].method", .string("\(PatternRule.metricMethod) is reserved (give metric for a StatsD rule)")))
            }
            var fields: [String: String] = [:]
            for name in ["method", "host", "path", "monitor", "check"] {
                let v = item[name]
                let optional = name == "method" || (exclude && (name == "monitor" || name == "check"))
                if v == nil || v == .null, optional { fields[name] = ""; continue }
                guard let s = v?.stringValue else {
                    problems.append(("patterns[\(i)].\(name)", .string("expected a string")))
                    continue
                }
                if s.isEmpty && !optional {
                    let hint = name == "host" || name == "path" ? " (use \"*\" for any)"
                                                                 : " (or give \"exclude\": true to drop what the rule matches)"
                    problems.append(("patterns[\(i)].\(name)", .string("must not be empty" + hint)))
                } else if s.utf8.count > maxPatternField {
                    problems.append(("patterns[\(i)].\(name)", .string("longer than \(maxPatternField) bytes")))
                }
                fields[name] = s
            }
            if problems.count == before {
                out.append(FilterPattern(method: fields["method"]!, host: fields["host"]!, path: fields["path"]!,
                                         monitor: fields["monitor"]!, check: fields["check"]!, exclude: exclude))
            }
        }
        if problems.isEmpty {
            let record = Record.patterns(PatternDirectory.record(PatternSet(version: Int64.max, updated: 0, patterns: out)))
            let size = record.encoded.count
            if size > SessionLimits.absoluteMaxMessagePlaintext - 8 {
                problems.append(("patterns", .string("the rules take \(size) bytes; at most \(SessionLimits.absoluteMaxMessagePlaintext - 8) fit one message")))
            }
        }
        return (out, problems)
    }

    // MARK: monitors

    /// The stored document (as PUT normalised it) and, per monitor, its
    /// latest run from any agent and whether it is stale.
    func getMonitors(_ project: String, _ r: CountingResponder) {
        store.monitorDefinitions(project: project) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let stored):
                store.lastMonitorRuns(project: project, agent: nil) { [self] last in
                    r.result(last) { monitorsJSON(project, stored, lastRuns: $0) }
                }
            }
        }
    }

    /// A monitor is stale when no agent reported a run within 3 intervals
    /// (counted from the definitions' update when it never ran since).
    static let staleIntervals: Int64 = 3

    static func monitorState(_ d: MonitorDefinition, lastRun: Int64?, updated: Int64, now: Int64) -> JSON {
        let since = max(lastRun ?? 0, updated)
        let stale = now - since > staleIntervals * Int64(d.intervalSecs) * 1000
        return .object([("last_run_ms", lastRun.map { .int($0) } ?? .null), ("stale", .bool(stale))])
    }

    func monitorsJSON(_ project: String, _ m: MonitorDefinitions, lastRuns: [String: Int64]) -> JSON {
        let now = Clock.wallMillis()
        let defs = manager.schedules.entry(m).definitions
        return .object([("project", .string(project)), ("version", .int(m.version)), ("updated", .int(m.updated)),
                        ("monitors", .raw(m.json)),
                        ("state", .object(defs.map {
                            ($0.id, APIHandler.monitorState($0, lastRun: lastRuns[String($0.numericID)], updated: m.updated, now: now))
                        }))])
    }

    /// `GET /api/v1/projects/{p}/monitors/{id}/runs`: newest first, `limit`
    /// and `since` as elsewhere; `agent` narrows to one agent. Each run's
    /// result is its step `run` row; other rows are its steps.
    func monitorRuns(_ project: String, _ id: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let q: MonitorRunQuery, n: Int
        do {
            let range = try timeRange(req)
            n = try limit(req)
            q = MonitorRunQuery(project: project, agent: text(req, "agent"), monitor: String(MonitorID.numeric(id)),
                                since: range.since, until: range.until, limit: n + 1, after: try cursor(req))
        } catch { return r.fail(error) }
        store.monitorDefinitions(project: project) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let stored):
                guard let def = manager.schedules.entry(stored).definitions.first(where: { $0.id == id }) else {
                    return removedMonitorRuns(project, id, q, n, r)
                }
                store.lastMonitorRuns(project: project, agent: nil) { [self] last in
                    guard case .success(let lastRuns) = last else { return r.result(last) { _ in .null } }
                    store.monitorRuns(q) { [self] runs in
                        r.result(runs) { all in
                            runsJSON(project, id, all, n, state: APIHandler.monitorState(def, lastRun: lastRuns[String(def.numericID)],
                                                                                         updated: stored.updated, now: Clock.wallMillis()))
                        }
                    }
                }
            }
        }
    }

    /// The runs of a monitor no longer in the project's document: its
    /// stored runs stay readable until retention removes them (`state` is
    /// `{"removed":true}`); 404 only when it has none at all (whatever the
    /// query's range or cursor).
    private func removedMonitorRuns(_ project: String, _ id: String, _ q: MonitorRunQuery, _ n: Int, _ r: CountingResponder) {
        let removed = JSON.object([("removed", .bool(true))])
        store.monitorRuns(q) { [self] runs in
            guard case .success(let all) = runs, all.isEmpty else { return r.result(runs) { runsJSON(project, id, $0, n, state: removed) } }
            store.monitorRuns(MonitorRunQuery(project: project, monitor: q.monitor, limit: 1)) { [self] any in
                switch any {
                case .failure(let e): r.fail(.store(e))
                case .success(let found) where found.isEmpty: r.fail(.notFound("no monitor \(id) in project \(project)"))
                case .success: r.json(runsJSON(project, id, [], n, state: removed))
                }
            }
        }
    }

    private func runsJSON(_ project: String, _ id: String, _ all: [MonitorRunRecord], _ n: Int, state: JSON) -> JSON {
        let (rows, next) = page(all, limit: n) { ListPosition(ts: $0.run.ts, id: $0.id) }
        return .object([("project", .string(project)), ("monitor", .string(id)), ("state", state),
                        ("runs", .array(rows.map { rec in
                            .object([("ts", .int(rec.run.ts)), ("agent", .string(rec.agent)),
                                     ("step", .string(rec.run.check)), ("ok", .bool(rec.run.ok)),
                                     ("duration_ms", APIHandler.millis(rec.run.durationUs)),
                                     ("detail", rec.run.detail.map(JSON.raw) ?? .null)])
                        })), ("next_cursor", next)])
    }

    /// `{"monitors":[{…}]}`: read like every body (not JSON: 400), validated
    /// by `MonitorDocument.validate` (every faulty field at once, keyed by
    /// path: 422), then stored normalised (defaults explicit) under the next
    /// version and pushed to the project's connected agents.
    func putMonitors(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON
        do { b = try body(req) } catch { return r.fail(error) }
        let defs: [MonitorDefinition]
        switch MonitorDocument.validate(b) {
        case .success(let d):
            defs = d
        case .failure(let e):
            return r.fail(APIError(422, "invalid monitors", .object(e.errors.map { ($0.field, .string($0.message)) })))
        }
        let text = JSON.array(defs.map(\.json)).serialized
        store.replaceMonitorDefinitions(project: project, json: text, at: Clock.wallMillis()) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let stored):
                manager.pushSchedules(project: project, stored: stored)
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor(req), action: "monitors.replace",
                                             target: project, detail: "version \(stored.version), \(defs.count) monitors",
                                             result: "ok")) { _ in }
                r.json(monitorsJSON(project, stored, lastRuns: [:]))
            }
        }
    }
}
