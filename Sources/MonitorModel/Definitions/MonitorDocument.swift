// MonitorDocument: the API's `{"monitors": [...]}` document, validated
// into definitions or refused with one message per faulty field.
//
// The collector's `PUT /api/v1/projects/{project}/monitors` handler calls
// `validate(json:)` and answers 422 with `errors` when it fails. Every rule
// is here, so the API, the tests and the docs (docs/MONITORS.md) agree:
// unknown fields are errors (a typo such as "interval_sec" must not be
// silently ignored), and every value that the Schedule record carries as a
// string is bounded by the Wire's string limit.
import JSON

/// One refused field: its path in the document and what is wrong.
public struct FieldError: Equatable, Sendable, CustomStringConvertible {
    /// e.g. "monitors[2].spec.url"
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// Every error found in a document (validation does not stop at the first).
public struct MonitorValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    public let errors: [FieldError]

    public var description: String { errors.map(\.description).joined(separator: "; ") }

    /// `[{"field": "...", "message": "..."}, ...]`, for a 422 body.
    public var json: JSON {
        .array(errors.map { .object(JSONObject([("field", .string($0.field)), ("message", .string($0.message))])) })
    }
}

/// Bounds on a project's definitions. Value type.
public struct MonitorLimits: Equatable, Sendable {
    public var maxMonitors = 4096
    public var maxIntervalSecs: UInt32 = 86_400
    public var maxTimeoutSecs: UInt32 = 3_600
    public var maxSteps = 64
    public var maxArgs = 256
    public var maxHeaders = 64
    public var maxGroups = 64
    /// Longest string value; the Wire's default `maxStringLength`, since the
    /// Schedule record carries each as one string.
    public var maxStringBytes = 4096
    /// Largest monitor as a Schedule entry, so any one fits in a record.
    public var maxEncodedBytes = 60_000
    public init() {}
    public static let `default` = MonitorLimits()
}

public enum MonitorDocument {
    /// Parses and validates a PUT body.
    public static func validate(json bytes: [UInt8], limits: MonitorLimits = .default) -> Result<[MonitorDefinition], MonitorValidationError> {
        let doc: JSON
        do {
            doc = try JSON.parse(bytes)
        } catch {
            return .failure(MonitorValidationError(errors: [FieldError(field: "(body)", message: error.description)]))
        }
        return validate(doc, limits: limits)
    }

    /// Validates a parsed document `{"monitors": [...]}`.
    public static func validate(_ doc: JSON, limits: MonitorLimits = .default) -> Result<[MonitorDefinition], MonitorValidationError> {
        var v = Validator(limits: limits)
        let defs = v.document(doc)
        return v.errors.isEmpty ? .success(defs) : .failure(MonitorValidationError(errors: v.errors))
    }

    /// The document for `definitions` (what GET returns; validates back to them).
    public static func json(_ definitions: [MonitorDefinition]) -> JSON {
        .object(JSONObject([("monitors", .array(definitions.map(\.json)))]))
    }
}

extension MonitorDefinition {
    /// The API form of this monitor, every field explicit.
    public var json: JSON {
        var o = JSONObject()
        o["id"] = .string(id)
        o["name"] = .string(name)
        o["kind"] = .string(kind.rawValue)
        o["interval_secs"] = .number(JSONNumber(Int(intervalSecs)))
        o["timeout_secs"] = .number(JSONNumber(Int(timeoutSecs)))
        o["groups"] = .array(groups.map { .string($0) })
        var s = JSONObject()
        switch check {
        case .http(let h):
            s["method"] = .string(h.method)
            s["url"] = .string(h.url)
            var hs = JSONObject()
            for hd in h.headers { hs[hd.name] = .string(hd.value) }
            s["headers"] = .object(hs)
            if let b = h.body { s["body"] = .string(b) }
            s["expect_status"] = .array(h.expectStatus.map {
                if case .code(let c) = $0 { return .number(JSONNumber(c)) }
                return .string($0.description)
            })
            s["follow_redirects"] = .bool(h.followRedirects)
            s["tls_verify"] = .bool(h.tlsVerify)
        case .tcp(let t):
            s["host"] = .string(t.host)
            s["port"] = .number(JSONNumber(Int(t.port)))
        case .exec(let e):
            s["command"] = .string(e.command)
            s["args"] = .array(e.args.map { .string($0) })
            s["steps"] = .array(e.steps.map {
                .object(JSONObject([("name", .string($0.name)), ("timeout_secs", .number(JSONNumber(Int($0.timeoutSecs))))]))
            })
            s["config"] = .object(e.config)
        }
        o["spec"] = .object(s)
        return .object(o)
    }
}

/// Walks a document, collecting definitions and errors.
struct Validator {
    let limits: MonitorLimits
    var errors: [FieldError] = []

    init(limits: MonitorLimits) { self.limits = limits }

    mutating func fail(_ field: String, _ message: String) {
        errors.append(FieldError(field: field, message: message))
    }

    mutating func document(_ doc: JSON) -> [MonitorDefinition] {
        guard let root = doc.objectValue else {
            fail("(body)", "expected an object with a \"monitors\" array, got \(doc.typeName)")
            return []
        }
        for k in root.keys where k != "monitors" { fail(k, "unknown field") }
        guard let m = root["monitors"] else { fail("monitors", "required"); return [] }
        guard let list = m.arrayValue else { fail("monitors", "expected an array, got \(m.typeName)"); return [] }
        guard list.count <= limits.maxMonitors else {
            fail("monitors", "\(list.count) monitors; at most \(limits.maxMonitors)")
            return []
        }
        var out: [MonitorDefinition] = []
        var byID: [String: Int] = [:]
        var byNumeric: [UInt64: Int] = [:]
        for (i, item) in list.enumerated() {
            let path = "monitors[\(i)]"
            let def = monitor(item, path)
            if let id = item["id"]?.stringValue, isIdentifier(id, max: 64) {
                if let first = byID[id] {
                    fail("\(path).id", "duplicate of monitors[\(first)].id")
                } else {
                    byID[id] = i
                    let n = MonitorID.numeric(id)
                    if let other = byNumeric[n] {
                        fail("\(path).id", "its numeric id collides with monitors[\(other)].id (\"\(list[other]["id"]?.stringValue ?? "")\"); rename one")
                    } else {
                        byNumeric[n] = i
                    }
                }
            }
            if let def { out.append(def) }
        }
        return out
    }

    mutating func monitor(_ item: JSON, _ path: String) -> MonitorDefinition? {
        guard let o = item.objectValue else { fail(path, "expected an object, got \(item.typeName)"); return nil }
        let before = errors.count
        let allowed: Set<String> = ["id", "name", "kind", "interval_secs", "timeout_secs", "groups", "spec"]
        for k in o.keys where !allowed.contains(k) { fail("\(path).\(k)", "unknown field") }

        let id = requiredString(o, "id", path).flatMap { s -> String? in
            guard isIdentifier(s, max: 64) else {
                fail("\(path).id", "expected 1 to 64 characters of letters, digits, '_', '-' or '.'")
                return nil
            }
            return s
        }
        let name = requiredString(o, "name", path).flatMap { s -> String? in
            guard !s.isEmpty, s.utf8.count <= 256 else { fail("\(path).name", "expected 1 to 256 bytes of text"); return nil }
            return s
        }
        var kind: MonitorKind?
        if let k = requiredString(o, "kind", path) {
            kind = MonitorKind(rawValue: k)
            if kind == nil { fail("\(path).kind", "expected one of \"http\", \"tcp\", \"exec\"") }
        }
        let interval = requiredInteger(o, "interval_secs", path, 1...Int64(limits.maxIntervalSecs))
        var timeout = requiredInteger(o, "timeout_secs", path, 1...Int64(limits.maxTimeoutSecs))
        if let t = timeout, let iv = interval, t > iv {
            fail("\(path).timeout_secs", "must not exceed interval_secs (\(iv))")
            timeout = nil
        }
        let groups = self.groups(o["groups"], "\(path).groups")

        var check: MonitorCheck?
        if let spec = o["spec"] {
            if let so = spec.objectValue {
                if let kind {
                    let sp = "\(path).spec"
                    switch kind {
                    case .http: check = http(so, sp).map { .http($0) }
                    case .tcp: check = tcp(so, sp).map { .tcp($0) }
                    case .exec: check = exec(so, sp, runTimeout: timeout).map { .exec($0) }
                    }
                }
            } else {
                fail("\(path).spec", "expected an object, got \(spec.typeName)")
            }
        } else {
            fail("\(path).spec", "required")
        }
        guard errors.count == before, let id, let name, let interval, let timeout, let groups, let check else { return nil }
        let def = MonitorDefinition(id: id, name: name, intervalSecs: UInt32(interval), timeoutSecs: UInt32(timeout),
                                    groups: groups, check: check)
        let size = ScheduleCodec.encodedSize(ScheduleCodec.spec(def))
        guard size <= limits.maxEncodedBytes else {
            fail(path, "\(size) bytes as a schedule entry; at most \(limits.maxEncodedBytes)")
            return nil
        }
        return def
    }

    mutating func groups(_ v: JSON?, _ path: String) -> [String]? {
        guard let v else { return ["default"] }
        guard let a = v.arrayValue else { fail(path, "expected an array of group names, got \(v.typeName)"); return nil }
        guard !a.isEmpty else { fail(path, "expected at least one group"); return nil }
        guard a.count <= limits.maxGroups else { fail(path, "at most \(limits.maxGroups) groups"); return nil }
        var out: [String] = []
        var ok = true
        for (i, g) in a.enumerated() {
            guard let s = g.stringValue, isIdentifier(s, max: 64) else {
                fail("\(path)[\(i)]", "expected 1 to 64 characters of letters, digits, '_', '-' or '.'")
                ok = false
                continue
            }
            if out.contains(s) { fail("\(path)[\(i)]", "duplicate group \"\(s)\""); ok = false; continue }
            out.append(s)
        }
        return ok ? out : nil
    }

    // MARK: kinds

    mutating func http(_ s: JSONObject, _ path: String) -> HTTPCheck? {
        let before = errors.count
        let allowed: Set<String> = ["method", "url", "headers", "body", "expect_status", "follow_redirects", "tls_verify"]
        for k in s.keys where !allowed.contains(k) { fail("\(path).\(k)", "unknown field") }
        var method = "GET"
        if let m = s["method"] {
            if let t = m.stringValue, (1...16).contains(t.utf8.count), t.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) {
                method = t
            } else {
                fail("\(path).method", "expected an upper-case HTTP method such as \"GET\" or \"POST\"")
            }
        }
        var url: String?
        if let u = requiredString(s, "url", path) {
            if let problem = urlProblem(u) { fail("\(path).url", problem) } else { url = u }
        }
        var headers: [HTTPHeader] = []
        if let h = s["headers"] {
            if let ho = h.objectValue {
                if ho.count > limits.maxHeaders { fail("\(path).headers", "at most \(limits.maxHeaders) headers") }
                for m in ho {
                    let hp = "\(path).headers.\(m.key)"
                    guard isToken(m.key) else { fail(hp, "header names are letters, digits and !#$%&'*+-.^_`|~"); continue }
                    guard let value = m.value.stringValue else { fail(hp, "expected a string, got \(m.value.typeName)"); continue }
                    guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                        fail(hp, "header values must not contain CR, LF or NUL"); continue
                    }
                    guard m.key.utf8.count + 2 + value.utf8.count <= limits.maxStringBytes else {
                        fail(hp, "longer than \(limits.maxStringBytes) bytes"); continue
                    }
                    if let e = EnvReference.syntaxError(in: value) { fail(hp, e); continue }
                    headers.append(HTTPHeader(m.key, value))
                }
            } else {
                fail("\(path).headers", "expected an object of header names to values, got \(h.typeName)")
            }
        }
        var body: String?
        if let b = s["body"] {
            if let t = b.stringValue {
                if t.utf8.count > limits.maxStringBytes { fail("\(path).body", "longer than \(limits.maxStringBytes) bytes") }
                else if let e = EnvReference.syntaxError(in: t) { fail("\(path).body", e) }
                else if method == "HEAD" { fail("\(path).body", "a HEAD request has no body") }
                else { body = t }
            } else {
                fail("\(path).body", "expected a string, got \(b.typeName)")
            }
        }
        var expect: [StatusMatch] = [.class(2)]
        if let e = s["expect_status"] {
            if let a = e.arrayValue, !a.isEmpty, a.count <= 64 {
                expect = []
                for (i, x) in a.enumerated() {
                    if let n = x.numberValue?.exactInteger, (100...599).contains(n) {
                        expect.append(.code(Int(n)))
                    } else if let t = x.stringValue, let m = StatusMatch(text: t), case .class = m {
                        expect.append(m)
                    } else {
                        fail("\(path).expect_status[\(i)]", "expected a status code 100-599 or a class \"1xx\"-\"5xx\"")
                    }
                }
            } else {
                fail("\(path).expect_status", "expected a non-empty array of status codes or classes such as [200, \"3xx\"]")
            }
        }
        let follow = optionalBool(s, "follow_redirects", path, default: false)
        let verify = optionalBool(s, "tls_verify", path, default: true)
        guard errors.count == before, let url, let follow, let verify else { return nil }
        return HTTPCheck(method: method, url: url, headers: headers, body: body, expectStatus: expect,
                         followRedirects: follow, tlsVerify: verify)
    }

    mutating func tcp(_ s: JSONObject, _ path: String) -> TCPCheck? {
        let before = errors.count
        for k in s.keys where k != "host" && k != "port" { fail("\(path).\(k)", "unknown field") }
        var host: String?
        if let h = requiredString(s, "host", path) {
            if let e = EnvReference.syntaxError(in: h) {
                fail("\(path).host", e)
            } else if EnvReference.containsReference(h) || isHost(h) {
                host = h
            } else {
                fail("\(path).host", "expected a host name or an IP address")
            }
        }
        let port = requiredInteger(s, "port", path, 1...65535)
        guard errors.count == before, let host, let port else { return nil }
        return TCPCheck(host: host, port: UInt16(port))
    }

    mutating func exec(_ s: JSONObject, _ path: String, runTimeout: Int64?) -> ExecCheck? {
        let before = errors.count
        let allowed: Set<String> = ["command", "args", "steps", "config"]
        for k in s.keys where !allowed.contains(k) { fail("\(path).\(k)", "unknown field") }
        var command: String?
        if let c = requiredString(s, "command", path) {
            if c.isEmpty || c.utf8.count > 1024 || c.utf8.contains(0) {
                fail("\(path).command", "expected 1 to 1024 bytes without NUL")
            } else if let e = EnvReference.syntaxError(in: c) {
                fail("\(path).command", e)
            } else {
                command = c
            }
        }
        var args: [String] = []
        if let a = s["args"] {
            if let list = a.arrayValue, list.count <= limits.maxArgs {
                for (i, x) in list.enumerated() {
                    let ap = "\(path).args[\(i)]"
                    guard let t = x.stringValue else { fail(ap, "expected a string, got \(x.typeName)"); continue }
                    guard t.utf8.count <= limits.maxStringBytes, !t.utf8.contains(0) else {
                        fail(ap, "expected at most \(limits.maxStringBytes) bytes without NUL"); continue
                    }
                    if let e = EnvReference.syntaxError(in: t) { fail(ap, e); continue }
                    args.append(t)
                }
            } else {
                fail("\(path).args", "expected an array of at most \(limits.maxArgs) strings")
            }
        }
        var steps: [ExecStep] = []
        if let st = s["steps"] {
            if let list = st.arrayValue, !list.isEmpty, list.count <= limits.maxSteps {
                for (i, x) in list.enumerated() {
                    let sp = "\(path).steps[\(i)]"
                    guard let so = x.objectValue else { fail(sp, "expected an object, got \(x.typeName)"); continue }
                    for k in so.keys where k != "name" && k != "timeout_secs" { fail("\(sp).\(k)", "unknown field") }
                    let name = requiredString(so, "name", sp)
                    if let name, !isIdentifier(name, max: 64) {
                        fail("\(sp).name", "expected 1 to 64 characters of letters, digits, '_', '-' or '.'")
                        continue
                    }
                    if let name, steps.contains(where: { $0.name == name }) {
                        fail("\(sp).name", "duplicate step \"\(name)\""); continue
                    }
                    guard let t = requiredInteger(so, "timeout_secs", sp, 1...Int64(limits.maxTimeoutSecs)) else { continue }
                    if let rt = runTimeout, t > rt {
                        fail("\(sp).timeout_secs", "exceeds the monitor's timeout_secs (\(rt))"); continue
                    }
                    if let name { steps.append(ExecStep(name: name, timeoutSecs: UInt32(t))) }
                }
            } else {
                fail("\(path).steps", "expected an array of 1 to \(limits.maxSteps) steps")
            }
        } else {
            fail("\(path).steps", "required")
        }
        var config = JSONObject()
        if let c = s["config"] {
            if let co = c.objectValue {
                let text = c.serialized
                if text.utf8.count > limits.maxStringBytes {
                    fail("\(path).config", "\(text.utf8.count) bytes as compact JSON; at most \(limits.maxStringBytes)")
                } else if let e = configEnvError(c) {
                    fail("\(path).config", e)
                } else {
                    config = co
                }
            } else {
                fail("\(path).config", "expected an object, got \(c.typeName)")
            }
        }
        guard errors.count == before, let command else { return nil }
        return ExecCheck(command: command, args: args, steps: steps, config: config)
    }

    // MARK: field helpers

    mutating func requiredString(_ o: JSONObject, _ key: String, _ path: String) -> String? {
        guard let v = o[key] else { fail("\(path).\(key)", "required"); return nil }
        guard let s = v.stringValue else { fail("\(path).\(key)", "expected a string, got \(v.typeName)"); return nil }
        guard s.utf8.count <= limits.maxStringBytes else {
            fail("\(path).\(key)", "longer than \(limits.maxStringBytes) bytes"); return nil
        }
        return s
    }

    mutating func requiredInteger(_ o: JSONObject, _ key: String, _ path: String, _ range: ClosedRange<Int64>) -> Int64? {
        guard let v = o[key] else { fail("\(path).\(key)", "required"); return nil }
        guard let n = v.numberValue?.exactInteger, range.contains(n) else {
            fail("\(path).\(key)", "expected an integer from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return n
    }

    mutating func optionalBool(_ o: JSONObject, _ key: String, _ path: String, default d: Bool) -> Bool? {
        guard let v = o[key] else { return d }
        guard let b = v.boolValue else { fail("\(path).\(key)", "expected true or false, got \(v.typeName)"); return nil }
        return b
    }

    func configEnvError(_ v: JSON) -> String? {
        switch v {
        case .string(let s): return EnvReference.syntaxError(in: s)
        case .array(let a): return a.lazy.compactMap { configEnvError($0) }.first
        case .object(let o): return o.lazy.compactMap { configEnvError($0.value) }.first
        default: return nil
        }
    }

    /// nil when `u` is an http(s) URL with a host (references replaced by
    /// "x" first); a URL that starts with a reference is checked at run time.
    func urlProblem(_ u: String) -> String? {
        if let e = EnvReference.syntaxError(in: u) { return e }
        if u.hasPrefix("${env:") { return nil }
        let t = EnvReference.scan(u, { _ in "x" }, onError: { _ in })
        guard t.utf8.count <= 2048 else { return "longer than 2048 bytes" }
        return HTTPURL.problem(t)
    }

    func isIdentifier(_ s: String, max: Int) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= max && u.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
        }
    }

    /// RFC 9110 token characters.
    func isToken(_ s: String) -> Bool {
        let extra = Array("!#$%&'*+-.^_`|~".utf8)
        return !s.isEmpty && s.utf8.count <= 256 && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || extra.contains(c)
        }
    }

    /// A DNS name (letters, digits, '-', '.', '_', ≤ 253 bytes), an IPv4
    /// literal, or an IPv6 literal with or without brackets.
    func isHost(_ h: String) -> Bool {
        let u = h.utf8
        guard !u.isEmpty, u.count <= 253 else { return false }
        if u.contains(UInt8(ascii: ":")) {
            var s = Substring(h)
            if s.hasPrefix("[") && s.hasSuffix("]") { s = s.dropFirst().dropLast() }
            return !s.isEmpty && s.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) || c == 0x3A || c == 0x2E
            }
        }
        return u.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_")
        }
    }
}

/// Minimal http(s) URL check: scheme, a host, an optional port, and no
/// whitespace or control characters anywhere. Validation and the engine
/// (a URL whose env references resolved at run time) both ask it.
public enum HTTPURL {
    /// The `host[:port]` part of an http(s) URL (after any `user:pass@`),
    /// as written; nil when `u` is not an http(s) URL. Used to check that no
    /// `${env:…}` value decides where a request goes.
    public static func hostPort(_ u: String) -> Substring? {
        let lower = u.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") { rest = Substring(u).dropFirst(7) }
        else if lower.hasPrefix("https://") { rest = Substring(u).dropFirst(8) }
        else { return nil }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" && $0 != "\\" }
        return authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
    }

    public static func problem(_ u: String) -> String? {
        let expected = "expected an http or https URL"
        let lower = u.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") { rest = Substring(u).dropFirst(7) }
        else if lower.hasPrefix("https://") { rest = Substring(u).dropFirst(8) }
        else { return expected }
        guard !u.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return "\(expected) without spaces or control characters" }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? ""
        var host = hostPort
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { return "\(expected) (unclosed IPv6 bracket)" }
            host = hostPort[...close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { return "\(expected) with a valid port" }
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(p) else {
                return "\(expected) with a valid port"
            }
        }
        guard !host.isEmpty else { return "\(expected) with a host" }
        return nil
    }
}
