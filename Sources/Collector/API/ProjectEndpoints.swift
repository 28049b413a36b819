// The project endpoints: the list of projects, filter rules (pushed to the
// project's connected agents on change) and monitor definitions.
import CollectorStore
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
                     .object([("method", .string($0.method)), ("host", .string($0.host)), ("path", .string($0.path)),
                              ("monitor", .string($0.monitor)), ("check", .string($0.check))])
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

    /// Checks every rule the way the agent will (docs/API.md): host, path,
    /// monitor and check present, each at most 512 bytes; the whole list
    /// must fit one Wire record. Problems are keyed `patterns[i].field`.
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
            guard case .object = item else {
                problems.append(("patterns[\(i)]", .string("expected an object")))
                continue
            }
            var fields: [String: String] = [:]
            for name in ["method", "host", "path", "monitor", "check"] {
                let v = item[name]
                if v == nil || v == .null, name == "method" { fields[name] = ""; continue }
                guard let s = v?.stringValue else {
                    problems.append(("patterns[\(i)].\(name)", .string("expected a string")))
                    continue
                }
                if s.isEmpty && name != "method" {
                    let hint = name == "host" || name == "path" ? " (use \"*\" for any)" : ""
                    problems.append(("patterns[\(i)].\(name)", .string("must not be empty" + hint)))
                } else if s.utf8.count > maxPatternField {
                    problems.append(("patterns[\(i)].\(name)", .string("longer than \(maxPatternField) bytes")))
                }
                fields[name] = s
            }
            if fields.count == 5 {
                out.append(FilterPattern(method: fields["method"]!, host: fields["host"]!, path: fields["path"]!,
                                         monitor: fields["monitor"]!, check: fields["check"]!))
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

    func getMonitors(_ project: String, _ r: CountingResponder) {
        store.monitorDefinitions(project: project) { [self] result in r.result(result) { monitorsJSON(project, $0) } }
    }

    func monitorsJSON(_ project: String, _ m: MonitorDefinitions) -> JSON {
        .object([("project", .string(project)), ("version", .int(m.version)), ("updated", .int(m.updated)),
                 ("monitors", .raw(m.json))])
    }

    /// `{"monitors":[{…}]}`: stored as given once its shape is right (an
    /// array of objects, each with a unique `id`); the monitor kinds and
    /// their specs are the monitors' own business (see their issue).
    func putMonitors(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON
        do { b = try body(req) } catch { return r.fail(error) }
        guard let list = b["monitors"]?.arrayValue else {
            return r.fail(APIError(422, "invalid monitors", .object([("monitors", .string("expected an array of monitor objects"))])))
        }
        var problems: [(String, JSON)] = []
        var ids = Set<String>()
        for (i, m) in list.enumerated() {
            guard case .object = m else { problems.append(("monitors[\(i)]", .string("expected an object"))); continue }
            let id: String?
            switch m["id"] {
            case .string(let s)? where !s.isEmpty: id = s
            case .number? where m["id"]?.int64Value != nil: id = String(m["id"]!.int64Value!)
            default: id = nil
            }
            guard let id else { problems.append(("monitors[\(i)].id", .string("expected a non-empty string or an integer"))); continue }
            if !ids.insert(id).inserted { problems.append(("monitors[\(i)].id", .string("duplicate id \(id)"))) }
        }
        if !problems.isEmpty { return r.fail(APIError(422, "invalid monitors", .object(problems))) }
        let text = JSON.array(list).serialized
        store.replaceMonitorDefinitions(project: project, json: text, at: Clock.wallMillis()) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let defs):
                store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor(req), action: "monitors.replace",
                                             target: project, detail: "version \(defs.version), \(list.count) monitors",
                                             result: "ok")) { _ in }
                r.json(monitorsJSON(project, defs))
            }
        }
    }
}
