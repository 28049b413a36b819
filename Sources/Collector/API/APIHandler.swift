// APIHandler: routes the HTTP API (docs/API.md). `/healthz` and `/metrics`
// are open, and so are the console's static files (`/`, `/console/…`,
// `/vendor/…`: docs/CONSOLE.md); everything under `/api/v1/` needs
// `Authorization: Bearer <admin_token>` or the console's session cookie
// (with `X-Vigil-CSRF` on requests that change something) — except the
// sign-in itself. Handlers answer JSON, now or when the store (or an agent)
// has answered — HTTPServer suspends the connection meanwhile.
//
// Thread: loop thread.
import CollectorStore
import ConfigFile
import HTTPServer
import JSON
import Reactor

public final class APIHandler {
    let loop: EventLoop
    let store: MeasurementStore
    /// The session layer, seen through its API-facing protocol.
    let manager: ConnectedAgents
    /// The bearer token (changes on SIGHUP when `admin_token` does; the
    /// console's sessions, opened with the old one, end then).
    var adminToken: String {
        didSet { if adminToken != oldValue { sessions.closeAll() } }
    }
    /// The console's sign-in sessions.
    let sessions: ConsoleSessions
    /// The console's static files (empty until the collector loads them).
    var console = ConsoleFiles()
    /// How long a control request waits for the agent (the request may ask
    /// for another value with `timeout_ms`, up to `maxControlTimeout`).
    var controlTimeout = 10.0
    static let maxControlTimeout = 60.0
    /// Renders /metrics (the collector supplies it).
    var metrics: () -> String = { "" }
    /// Why /healthz should answer 503 (empty: healthy; the collector supplies it).
    var health: () -> [JSON] = { [] }
    /// The collector's own configuration, for `GET /api/v1/config`.
    var collectorConfig: () -> Configuration? = { nil }

    public internal(set) var requests: UInt64 = 0
    public internal(set) var unauthorized: UInt64 = 0
    /// Cookie-authenticated changes refused for a missing or wrong `X-Vigil-CSRF`.
    public internal(set) var csrfRefused: UInt64 = 0
    /// Answers by status class (index 1...5 for 1xx...5xx).
    public private(set) var answers = [UInt64](repeating: 0, count: 6)

    init(loop: EventLoop, store: MeasurementStore, manager: ConnectedAgents, adminToken: String,
         sessions: ConsoleSessions = ConsoleSessions(maxSessions: 64, ttl: 12 * 3600)) {
        self.sessions = sessions
        self.loop = loop
        self.store = store
        self.manager = manager
        self.adminToken = adminToken
    }

    /// Capture uploads (nil: refused with 503).
    var uploads: Uploads?
    /// This collector in its cluster: agent owners, control relayed to them.
    var cluster: ClusterNode?

    /// Counts an answer by its status class.
    func count(_ status: Int) { answers[min(5, max(1, status / 100))] &+= 1 }

    /// HTTPServer's handler.
    public func handle(_ req: HTTPRequest, _ responder: HTTPResponder) {
        requests &+= 1
        let r = CountingResponder(responder) { [weak self] status in
            guard let self else { return }
            self.count(status)
        }
        let target: APITarget
        switch APITarget.parse(req.target) {
        case .success(let t): target = t
        case .failure(let e): return r.fail(e)
        }
        let parts = target.segments
        if serveOpen(req, parts, r) { return }
        switch parts.first {
        case "api"? where parts.count >= 2 && parts[1] == "v1":
            if let (e, headers) = authorizationRefusal(req, parts) { return r.fail(e, headers: headers) }
            let strict = HTTPRequest(method: req.method, path: req.path, target: req.target, query: target.query,
                                     headers: req.headers, body: req.body)
            route(strict, Array(parts.dropFirst(2)), r)
        default:
            if (req.method == "GET" || req.method == "HEAD") && ConsoleFiles.isConsolePath(parts),
               let answer = console.response(parts.isEmpty ? "/" : "/" + parts.joined(separator: "/")) {
                return r.respond(answer)
            }
            r.fail(.notFound("no such endpoint: \(target.path)"))
        }
    }

    /// The handler of the `metrics_listen` listener: `/healthz` and
    /// `/metrics` as on `http_listen`, everything else 404 (the API and the
    /// console are not served there, with or without a token).
    public func handleMetricsOnly(_ req: HTTPRequest, _ responder: HTTPResponder) {
        requests &+= 1
        let r = CountingResponder(responder) { [weak self] status in
            guard let self else { return }
            self.count(status)
        }
        switch APITarget.parse(req.target) {
        case .success(let t):
            if !serveOpen(req, t.segments, r) { r.fail(.notFound("this listener serves only /metrics and /healthz")) }
        case .failure(let e):
            r.fail(e)
        }
    }

    /// `/healthz` and `/metrics`, open on both listeners; false for any other path.
    private func serveOpen(_ req: HTTPRequest, _ parts: [String], _ r: CountingResponder) -> Bool {
        switch parts.first {
        case "healthz"? where parts.count == 1:
            guard req.method == "GET" || req.method == "HEAD" else { r.fail(methodNotAllowed("GET, HEAD")); return true }
            let problems = health()
            if problems.isEmpty {
                r.respond(HTTPResponse(status: 200, contentType: "text/plain; charset=utf-8", text: "ok\n"))
            } else {
                r.fail(APIError(503, "unhealthy", .object([("reasons", .array(problems))])))
            }
        case "metrics"? where parts.count == 1:
            guard req.method == "GET" else { r.fail(methodNotAllowed("GET")); return true }
            r.respond(HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: metrics()))
        default:
            return false
        }
        return true
    }

    /// HTTPServer's `admit`: the same authorization decision as `handle`,
    /// taken when a request's headers have arrived, so a refused request
    /// (401, or 403 for a cookie without its anti-CSRF value) is answered
    /// before any of its body is read. A target `handle` would refuse as
    /// malformed is admitted (it is answered there).
    public func admit(_ req: HTTPRequest) -> HTTPResponse? {
        guard case .success(let target) = APITarget.parse(req.target),
              let (e, headers) = authorizationRefusal(req, target.segments) else { return nil }
        count(e.status)
        var body: [UInt8] = []
        e.body.write(into: &body)
        body.append(0x0A)
        return HTTPResponse(status: e.status, contentType: "application/json", body: body, headers: headers)
    }

    /// Whether a request may go on, for a path that needs authorization
    /// (everything under `/api/v1/` but the sign-in): the refusal, or nil.
    /// The one place both `handle` and `admit` decide.
    func authorizationRefusal(_ req: HTTPRequest, _ parts: [String]) -> (APIError, [(String, String)])? {
        guard parts.count >= 2, parts[0] == "api", parts[1] == "v1" else { return nil }
        let signIn = parts.count == 3 && parts[2] == "session" && req.method == "POST"
        return signIn ? nil : refusal(req)
    }

    /// Why a request under `/api/v1/` may not proceed (counted), or nil:
    /// neither the bearer token nor a console session (401), or a change
    /// made with the session cookie without its anti-CSRF value (403).
    func refusal(_ req: HTTPRequest) -> (APIError, [(String, String)])? {
        if authorized(req) { return nil }
        guard let (_, session) = sessions.session(for: req.header("cookie")) else {
            unauthorized &+= 1
            return (APIError(401, "unauthorized", .string("send Authorization: Bearer <admin_token>, or sign in")),
                    [("WWW-Authenticate", "Bearer realm=\"vigil\"")])
        }
        // A cookie is sent by the browser whoever made the page ask:
        // a change needs the value only the signed-in page knows.
        if req.method != "GET" && req.method != "HEAD" && !ConsoleSessions.csrfMatches(req.header(ConsoleSessions.csrfHeader), session) {
            csrfRefused &+= 1
            return (APIError(403, "missing or wrong anti-CSRF header",
                             .string("send X-Vigil-CSRF with the csrf value the sign-in answered")), [])
        }
        return nil
    }

    /// Finds the route for `p` (the segments after `/api/v1/`), checks the
    /// identifiers it captured and runs it; 405 when the path is known but
    /// not for this method.
    private func route(_ req: HTTPRequest, _ p: [String], _ r: CountingResponder) {
        var allowed: [String] = []
        for route in APIHandler.routes {
            guard let captured = route.match(p) else { continue }
            guard route.method == req.method else { allowed.append(route.method); continue }
            let unknown = req.query.keys.filter { !route.query.contains($0) }.sorted()
            if !unknown.isEmpty {
                return r.fail(.badRequest("unknown query parameter",
                                          .object([("unknown", .array(unknown.map(JSON.string))),
                                                   ("accepted", .array(route.query.map(JSON.string)))])))
            }
            for (name, value) in zip(route.parameterNames, captured) {
                if let why = APITarget.invalidIdentifier(value) {
                    return r.fail(.badRequest("invalid \(name)", .object([(name, .string(why))])))
                }
            }
            return route.run(self, captured, req, r)
        }
        if !allowed.isEmpty { return r.fail(methodNotAllowed(allowed.joined(separator: ", "))) }
        r.fail(.notFound("no such endpoint: /api/v1/" + p.joined(separator: "/")))
    }

    private func methodNotAllowed(_ allowed: String) -> APIError {
        APIError(405, "method not allowed", .object([("allowed", .string(allowed))]))
    }

    // MARK: auth

    /// Constant-time comparison, so the answer time says nothing about how
    /// much of a guessed token was right.
    func authorized(_ req: HTTPRequest) -> Bool {
        guard let h = req.header("authorization") else { return false }
        let prefix = "Bearer "
        guard h.hasPrefix(prefix) else { return false }
        return isAdminToken(Array(h.utf8.dropFirst(prefix.utf8.count)))
    }

    func isAdminToken(_ given: [UInt8]) -> Bool {
        guard !adminToken.isEmpty else { return false }
        return ConsoleSessions.constantTimeEqual(given, Array(adminToken.utf8))
    }

    /// Who asked, for the audit table: `api`, or `api:<name>` when the
    /// caller names itself with an `X-Vigil-Actor` header.
    func actor(_ req: HTTPRequest) -> String {
        guard let a = req.header("x-vigil-actor"), !a.isEmpty else { return "api" }
        return "api:" + String(a.prefix(64).filter { $0.isLetter || $0.isNumber || "._-@".contains($0) })
    }

    // MARK: request helpers

    /// Every body is read here, so every endpoint fails alike: empty, not
    /// JSON (a duplicate key included) or not an object is 400 with the
    /// same error texts; what the object holds is the endpoint's to check.
    func body(_ req: HTTPRequest) throws(APIError) -> JSON {
        guard !req.body.isEmpty else { throw .badRequest("request body is empty", .string("expected a JSON object")) }
        let value: JSON
        do {
            value = try JSON.parse(req.body)
        } catch {
            throw .badRequest("request body is not JSON", .string(error.description))
        }
        guard case .object = value else {
            throw .badRequest("request body is not a JSON object", .string("expected a JSON object, got \(APIHandler.kind(of: value))"))
        }
        return value
    }

    static func kind(of v: JSON) -> String {
        switch v {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .null: return "null"
        default: return "a number"
        }
    }

    func integer(_ req: HTTPRequest, _ name: String) throws(APIError) -> Int64? {
        guard let text = req.query[name], !text.isEmpty else { return nil }
        guard let v = Int64(text) else {
            throw .badRequest("invalid query parameter", .object([(name, .string("expected an integer, got \(text)"))]))
        }
        return v
    }

    func limit(_ req: HTTPRequest, default fallback: Int = 100) throws(APIError) -> Int {
        guard let v = try integer(req, "limit") else { return fallback }
        guard v >= 1 && v <= Int64(store.limits.maxQueryRows) else {
            throw .badRequest("invalid query parameter",
                              .object([("limit", .string("expected 1...\(store.limits.maxQueryRows), got \(v)"))]))
        }
        return Int(v)
    }

    /// `cursor`: the previous page's `next_cursor` (`<ts>.<id>` of its last
    /// row); 400 naming it when it is not one.
    func cursor(_ req: HTTPRequest) throws(APIError) -> ListPosition? {
        guard let t = text(req, "cursor") else { return nil }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let ts = Int64(parts[0]), let id = Int64(parts[1]) else {
            throw .badRequest("invalid query parameter",
                              .object([("cursor", .string("expected a next_cursor this endpoint answered, got \(t)"))]))
        }
        return ListPosition(ts: ts, id: id)
    }

    /// A page of a newest-first list read with one row more than `limit`
    /// asked for: the rows to answer and the `next_cursor` (null on the
    /// last page). At the store's row maximum no extra row can be read, so
    /// a full page then always gets a cursor (the next page may be empty).
    func page<T>(_ rows: [T], limit: Int, position: (T) -> ListPosition) -> (rows: ArraySlice<T>, next: JSON) {
        let page = rows.prefix(limit)
        let more = rows.count > limit || (rows.count == limit && limit >= store.limits.maxQueryRows)
        guard more, let last = page.last else { return (page, .null) }
        let p = position(last)
        return (page, .string("\(p.ts).\(p.id)"))
    }

    /// `since` and `until` (ms since the epoch): the half-open range
    /// since <= ts < until, either end optional; an empty range is a 400.
    func timeRange(_ req: HTTPRequest) throws(APIError) -> (since: Int64?, until: Int64?) {
        let since = try integer(req, "since"), until = try integer(req, "until")
        if let since, let until, until <= since {
            throw .badRequest("invalid query parameter",
                              .object([("until", .string("expected more than since (\(since)), got \(until)"))]))
        }
        return (since, until)
    }

    /// Runs `then` when `project` is nil or names a project; 404 naming it otherwise.
    func withKnownProject(_ project: String?, _ r: CountingResponder, _ then: @escaping () -> Void) {
        guard let project else { return then() }
        store.projects { result in
            switch result {
            case .failure(let e): r.fail(.store(e))
            case .success(let all):
                guard all.contains(where: { $0.name == project }) else { return r.fail(.notFound("project '\(project)'")) }
                then()
            }
        }
    }

    func text(_ req: HTTPRequest, _ name: String) -> String? {
        guard let v = req.query[name], !v.isEmpty else { return nil }
        return v
    }
}

/// Wraps a responder to count answers by status class.
struct CountingResponder {
    let responder: HTTPResponder
    let count: (Int) -> Void

    init(_ responder: HTTPResponder, count: @escaping (Int) -> Void) {
        self.responder = responder
        self.count = count
    }

    var isOpen: Bool { responder.isOpen }

    func respond(_ r: HTTPResponse) {
        count(r.status)
        responder.respond(r)
    }

    func json(_ value: JSON, status: Int = 200, headers: [(String, String)] = []) {
        respond(HTTPResponse(status: status, contentType: "application/json", body: CountingResponder.line(value), headers: headers))
    }

    func fail(_ e: APIError, headers: [(String, String)] = []) {
        respond(HTTPResponse(status: e.status, contentType: "application/json", body: CountingResponder.line(e.body), headers: headers))
    }

    /// The answer body: compact JSON and a newline, written straight to bytes.
    private static func line(_ value: JSON) -> [UInt8] {
        var out: [UInt8] = []
        value.write(into: &out)
        out.append(0x0A)
        return out
    }

    func result<T>(_ r: Result<T, StoreError>, _ render: (T) -> JSON) {
        switch r {
        case .success(let v): json(render(v))
        case .failure(let e): fail(.store(e))
        }
    }
}
