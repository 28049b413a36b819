// APIRoutes: the HTTP API's routing table — every endpoint under `/api/v1/`
// as method, path pattern and accepted query parameters, with the handler
// it runs — and the strict reading of a request target (APITarget).
//
// One table, so docs/API.md can be checked against it (`documentedForm`),
// the 405 answer can list the methods a path has, and every endpoint
// refuses the query parameters it does not know the same way.
//
// Thread: loop thread (the table itself is immutable).
import HTTPServer
import JSON

/// One endpoint: `GET agents/{id}/status` and what runs it.
struct APIRoute {
    let method: String
    /// Path segments after `/api/v1/`; `{name}` captures one segment.
    let pattern: [String]
    /// The query parameters the endpoint takes; any other is refused.
    let query: [String]
    let run: (APIHandler, [String], HTTPRequest, CountingResponder) -> Void

    init(_ method: String, _ path: String, query: [String] = [],
         _ run: @escaping (APIHandler, [String], HTTPRequest, CountingResponder) -> Void) {
        self.method = method
        self.pattern = path.split(separator: "/").map(String.init)
        self.query = query
        self.run = run
    }

    /// The names of the captured segments, in order (`id`, `project`, …).
    var parameterNames: [String] {
        pattern.filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
    }

    /// The captured segments when `segments` fits the pattern.
    func match(_ segments: [String]) -> [String]? {
        guard segments.count == pattern.count else { return nil }
        var captured: [String] = []
        for (want, got) in zip(pattern, segments) {
            if want.hasPrefix("{") { captured.append(got) } else if want != got { return nil }
        }
        return captured
    }

    /// `GET /api/v1/agents/{id}/status`, as docs/API.md writes an endpoint.
    var documentedForm: String { "\(method) /api/v1/" + pattern.joined(separator: "/") }
}

extension APIHandler {
    /// Every endpoint under `/api/v1/` (docs/API.md documents each one; a
    /// test compares the two lists).
    static let routes: [APIRoute] = [
        APIRoute("GET", "agents", query: ["project", "state", "search", "limit", "cursor", "sort", "counts"]) { h, _, q, r in h.listAgents(q, r) },
        APIRoute("GET", "agents/{id}") { h, c, _, r in h.getAgent(c[0], r) },
        APIRoute("DELETE", "agents/{id}") { h, c, q, r in h.forgetAgent(c[0], q, r) },
        APIRoute("POST", "agents/{id}/capture", query: ["timeout_ms"]) { h, c, q, r in h.capture(c[0], q, r) },
        APIRoute("POST", "agents/{id}/reset-identity") { h, c, q, r in h.resetIdentity(c[0], q, r) },
        APIRoute("GET", "agents/{id}/config") { h, c, _, r in h.getAgentConfig(c[0], r) },
        APIRoute("PUT", "agents/{id}/config", query: ["timeout_ms"]) { h, c, q, r in h.putAgentConfig(c[0], q, r) },
        APIRoute("GET", "agents/{id}/status", query: ["since", "until", "limit", "cursor"]) { h, c, q, r in h.statusHistory(c[0], q, r) },
        APIRoute("GET", "agents/{id}/states", query: ["since", "until", "limit", "cursor"]) { h, c, q, r in h.stateHistory(c[0], q, r) },
        APIRoute("GET", "projects") { h, _, _, r in h.listProjects(r) },
        APIRoute("GET", "projects/{project}/keys") { h, c, _, r in h.listKeys(c[0], r) },
        APIRoute("POST", "projects/{project}/keys") { h, c, q, r in h.createKey(c[0], q, r) },
        APIRoute("DELETE", "projects/{project}/keys/{key_id}") { h, c, q, r in h.revokeKey(c[0], c[1], q, r) },
        APIRoute("GET", "projects/{project}/config") { h, c, _, r in h.getProjectConfig(c[0], r) },
        APIRoute("PUT", "projects/{project}/config") { h, c, q, r in h.putProjectConfig(c[0], q, r) },
        APIRoute("GET", "projects/{project}/patterns") { h, c, _, r in h.getPatterns(c[0], r) },
        APIRoute("PUT", "projects/{project}/patterns") { h, c, q, r in h.putPatterns(c[0], q, r) },
        APIRoute("GET", "projects/{project}/monitors") { h, c, _, r in h.getMonitors(c[0], r) },
        APIRoute("PUT", "projects/{project}/monitors") { h, c, q, r in h.putMonitors(c[0], q, r) },
        APIRoute("GET", "projects/{project}/alerts") { h, c, _, r in h.listAlertRules(c[0], r) },
        APIRoute("POST", "projects/{project}/alerts") { h, c, q, r in h.createAlertRule(c[0], q, r) },
        APIRoute("GET", "projects/{project}/alerts/{id}", query: ["limit"]) { h, c, q, r in h.getAlertRule(c[0], c[1], q, r) },
        APIRoute("PUT", "projects/{project}/alerts/{id}") { h, c, q, r in h.updateAlertRule(c[0], c[1], q, r) },
        APIRoute("DELETE", "projects/{project}/alerts/{id}") { h, c, q, r in h.deleteAlertRule(c[0], c[1], q, r) },
        APIRoute("GET", "projects/{project}/silences") { h, c, _, r in h.listSilences(c[0], r) },
        APIRoute("POST", "projects/{project}/silences") { h, c, q, r in h.createSilence(c[0], q, r) },
        APIRoute("DELETE", "projects/{project}/silences/{id}") { h, c, q, r in h.endSilence(c[0], c[1], q, r) },
        APIRoute("GET", "projects/{project}/notifications", query: ["rule", "limit"]) { h, c, q, r in h.listNotifications(c[0], q, r) },
        APIRoute("POST", "projects/{project}/uploads") { h, _, _, r in h.uploadNotStreamed(r) },
        APIRoute("GET", "projects/{project}/uploads/{id}") { h, c, _, r in h.uploadStatus(c[0], c[1], r) },
        APIRoute("GET", "projects/{project}/monitors/{monitor}/runs", query: ["agent", "since", "until", "limit", "cursor"]) { h, c, q, r in
            h.monitorRuns(c[0], c[1], q, r)
        },
        APIRoute("GET", "measurements", query: ["project", "agent", "monitor", "check", "source", "since", "until", "limit", "cursor",
                                                "step", "group_by", "quantiles"]) { h, _, q, r in
            h.measurements(q, r)
        },
        APIRoute("GET", "events", query: ["project", "agent", "monitor", "check", "since", "until", "limit", "cursor"]) { h, _, q, r in h.events(q, r) },
        APIRoute("GET", "audit", query: ["target", "action", "since", "until", "limit", "cursor"]) { h, _, q, r in h.audit(q, r) },
        APIRoute("GET", "config") { h, _, _, r in h.ownConfig(r) },
        APIRoute("GET", "cluster") { h, _, _, r in h.clusterStatus(r) },
        APIRoute("GET", "collector/history", query: ["from", "to", "step"]) { h, _, q, r in h.collectorHistory(q, r) },
        APIRoute("GET", "schema/agent-config") { h, _, _, r in h.agentConfigSchema(r) },
        APIRoute("POST", "session") { h, _, q, r in h.signIn(q, r) },
        APIRoute("GET", "session") { h, _, q, r in h.sessionInfo(q, r) },
        APIRoute("DELETE", "session") { h, _, q, r in h.signOut(q, r) },
    ]
}

/// A request target read strictly: the path split into segments before
/// each is percent-decoded (so `%2F` stays inside its segment and `%00` is
/// seen, not taken for the end of the path), and the query decoded into
/// parameters. A bad escape, bytes that are not UTF-8, or a parameter given
/// twice answer 400 naming it.
struct APITarget {
    let path: String
    let segments: [String]
    let query: [String: String]

    /// Identifiers in a path (agent ids, project names, monitor ids): 1 to
    /// 256 bytes of UTF-8 without control characters (U+0000–U+001F, U+007F).
    static let maxIdentifierBytes = 256

    static func parse(_ raw: String) -> Result<APITarget, APIError> {
        let pathPart: Substring, queryPart: Substring?
        if let q = raw.firstIndex(of: "?") {
            pathPart = raw[..<q]
            queryPart = raw[raw.index(after: q)...]
        } else {
            pathPart = raw[...]
            queryPart = nil
        }
        var segments: [String] = []
        for piece in pathPart.split(separator: "/", omittingEmptySubsequences: true) {
            guard let s = decode(piece, plusIsSpace: false) else {
                return .failure(.badRequest("invalid request target",
                                            .object([("path", .string("bad percent-escape or not UTF-8 in \"\(piece)\""))])))
            }
            segments.append(s)
        }
        var query: [String: String] = [:]
        for pair in (queryPart ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: "=")
            let rawName = eq.map { pair[..<$0] } ?? pair
            let rawValue = eq.map { pair[pair.index(after: $0)...] } ?? ""
            guard let name = decode(rawName, plusIsSpace: true) else {
                return .failure(.badRequest("invalid query parameter",
                                            .object([("query", .string("bad percent-escape or not UTF-8 in \"\(rawName)\""))])))
            }
            guard let value = decode(rawValue, plusIsSpace: true) else {
                return .failure(.badRequest("invalid query parameter",
                                            .object([(name, .string("bad percent-escape or not UTF-8"))])))
            }
            if let why = controlCharacter(in: value) {
                return .failure(.badRequest("invalid query parameter", .object([(name, .string(why))])))
            }
            guard query[name] == nil else {
                return .failure(.badRequest("invalid query parameter", .object([(name, .string("given twice"))])))
            }
            query[name] = value
        }
        return .success(APITarget(path: String(pathPart), segments: segments, query: query))
    }

    /// Why `id` is not an identifier, or nil when it is one.
    static func invalidIdentifier(_ id: String) -> String? {
        if id.utf8.count > maxIdentifierBytes { return "longer than \(maxIdentifierBytes) bytes" }
        if let why = controlCharacter(in: id) {
            return why + " (identifiers are 1 to \(maxIdentifierBytes) bytes of UTF-8 without control characters)"
        }
        return nil
    }

    private static func controlCharacter(in s: String) -> String? {
        for (i, b) in s.utf8.enumerated() where b < 0x20 || b == 0x7F {
            let hex = String(b, radix: 16, uppercase: true)
            return "contains the control character U+\(String(repeating: "0", count: 4 - hex.count))\(hex) at byte \(i)"
        }
        return nil
    }

    /// Percent-decodes `s` (and `+` as a space in a query); nil for a bad
    /// escape or bytes that are not UTF-8.
    private static func decode(_ s: Substring, plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) else { return nil }
                out.append(h << 4 | l)
            } else if b == UInt8(ascii: "+") && plusIsSpace {
                out.append(0x20)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
