// MonitorDocument.validate: the PUT body's rules, one error per field.
import XCTest
import JSON
@testable import MonitorModel
@testable import MonitorRunners

final class ValidationTests: XCTestCase {
    let httpMonitor: JSON = [
        "id": "api-health", "name": "API health", "kind": "http", "interval_secs": 30, "timeout_secs": 10,
        "groups": ["eu", "default"],
        "spec": ["method": "POST", "url": "https://api.example.com:8443/health?x=1",
                 "headers": ["Authorization": "Bearer ${env:API_TOKEN}", "X-Trace": "1"],
                 "body": "{\"ping\":true}", "expect_status": [200, "3xx"], "follow_redirects": true, "tls_verify": false],
    ]
    let tcpMonitor: JSON = [
        "id": "db", "name": "Database port", "kind": "tcp", "interval_secs": 10, "timeout_secs": 3,
        "spec": ["host": "db.internal", "port": 5432],
    ]
    let execMonitor: JSON = [
        "id": "host.basics", "name": "Host basics", "kind": "exec", "interval_secs": 60, "timeout_secs": 30,
        "spec": ["command": "/usr/lib/vigil/monitors/shell-steps.sh", "args": ["--verbose", "${env:HOME}"],
                 "steps": [["name": "disk", "timeout_secs": 5], ["name": "resolve", "timeout_secs": 10]],
                 "config": ["disk": "test -w /tmp", "nested": ["a": [1, "${env:X}"]]]],
    ]

    func document(_ monitors: JSON...) -> JSON { ["monitors": .array(monitors)] }

    func errors(_ doc: JSON, file: StaticString = #filePath, line: UInt = #line) -> [FieldError] {
        switch MonitorDocument.validate(doc) {
        case .success: XCTFail("expected errors", file: file, line: line); return []
        case .failure(let e): return e.errors
        }
    }

    /// `monitor` with `path` (dot-separated keys) set to `value` (nil removes it).
    func with(_ monitor: JSON, _ path: String, _ value: JSON?) -> JSON {
        func set(_ v: JSON, _ keys: ArraySlice<Substring>) -> JSON {
            guard var o = v.objectValue, let k = keys.first else { return v }
            if keys.count == 1 { o[String(k)] = value } else { o[String(k)] = set(o[String(k)] ?? [:], keys.dropFirst()) }
            return .object(o)
        }
        return set(monitor, path.split(separator: ".")[...])
    }

    func testValidDocumentBecomesDefinitions() throws {
        let defs = try MonitorDocument.validate(document(httpMonitor, tcpMonitor, execMonitor)).get()
        XCTAssertEqual(defs.count, 3)
        XCTAssertEqual(defs[0], MonitorDefinition(
            id: "api-health", name: "API health", intervalSecs: 30, timeoutSecs: 10, groups: ["eu", "default"],
            check: .http(HTTPCheck(method: "POST", url: "https://api.example.com:8443/health?x=1",
                                   headers: [HTTPHeader("Authorization", "Bearer ${env:API_TOKEN}"), HTTPHeader("X-Trace", "1")],
                                   body: "{\"ping\":true}", expectStatus: [.code(200), .class(3)],
                                   followRedirects: true, tlsVerify: false))))
        XCTAssertEqual(defs[1].check, .tcp(TCPCheck(host: "db.internal", port: 5432)))
        XCTAssertEqual(defs[1].groups, ["default"], "groups default to [\"default\"]")
        guard case .exec(let e) = defs[2].check else { return XCTFail() }
        XCTAssertEqual(e.args, ["--verbose", "${env:HOME}"], "references stay unresolved")
        XCTAssertEqual(e.steps, [ExecStep(name: "disk", timeoutSecs: 5), ExecStep(name: "resolve", timeoutSecs: 10)])
        XCTAssertEqual(JSON.object(e.config).serialized, #"{"disk":"test -w /tmp","nested":{"a":[1,"${env:X}"]}}"#)
        XCTAssertNotEqual(defs[0].numericID, defs[1].numericID)
        XCTAssertLessThanOrEqual(defs[0].numericID, MonitorID.mask)
    }

    func testDefaults() throws {
        let m: JSON = ["id": "a", "name": "A", "kind": "http", "interval_secs": 10, "timeout_secs": 10,
                            "spec": ["url": "http://127.0.0.1/"]]
        let d = try MonitorDocument.validate(document(m)).get()[0]
        XCTAssertEqual(d.check, .http(HTTPCheck(method: "GET", url: "http://127.0.0.1/", headers: [], body: nil,
                                               expectStatus: [.class(2)], followRedirects: false, tlsVerify: true)))
    }

    func testJSONFormValidatesBackToTheSameDefinitions() throws {
        let defs = try MonitorDocument.validate(document(httpMonitor, tcpMonitor, execMonitor)).get()
        let again = try MonitorDocument.validate(try JSON.parse(MonitorDocument.json(defs).serialized)).get()
        XCTAssertEqual(again, defs)
    }

    func testParseErrorIsOneBodyError() {
        guard case .failure(let e) = MonitorDocument.validate(json: Array("{\"monitors\": [}".utf8)) else { return XCTFail() }
        XCTAssertEqual(e.errors.map(\.field), ["(body)"])
        XCTAssertEqual(e.errors[0].message, "invalid JSON at line 1, column 15: unexpected '}', expected a value")
        XCTAssertEqual(e.json.serialized,
                       #"[{"field":"(body)","message":"invalid JSON at line 1, column 15: unexpected '}', expected a value"}]"#)
    }

    func testDocumentShape() {
        XCTAssertEqual(errors([1, 2]).map(\.description), ["(body): expected an object with a \"monitors\" array, got an array"])
        XCTAssertEqual(errors([:]).map(\.description), ["monitors: required"])
        XCTAssertEqual(errors(["monitors": "x"]).map(\.description), ["monitors: expected an array, got a string"])
        XCTAssertEqual(errors(["monitors": [], "extra": 1]).map(\.description), ["extra: unknown field"])
        XCTAssertEqual(errors(document(1)).map(\.description), ["monitors[0]: expected an object, got a number"])
        var limits = MonitorLimits()
        limits.maxMonitors = 1
        guard case .failure(let e) = MonitorDocument.validate(document(tcpMonitor, tcpMonitor), limits: limits) else { return XCTFail() }
        XCTAssertEqual(e.errors.map(\.description), ["monitors: 2 monitors; at most 1"])
    }

    /// Every field rule: (monitor, path to change, new value or nil, expected "field: message").
    func testEveryFieldError() {
        let h = httpMonitor, t = tcpMonitor, x = execMonitor
        let cases: [(JSON, String, JSON?, String)] = [
            (h, "id", nil, "monitors[0].id: required"),
            (h, "id", 5, "monitors[0].id: expected a string, got a number"),
            (h, "id", "has space", "monitors[0].id: expected 1 to 64 characters of letters, digits, '_', '-' or '.'"),
            (h, "id", .string(String(repeating: "a", count: 65)), "monitors[0].id: expected 1 to 64 characters of letters, digits, '_', '-' or '.'"),
            (h, "name", nil, "monitors[0].name: required"),
            (h, "name", "", "monitors[0].name: expected 1 to 256 bytes of text"),
            (h, "kind", "ftp", "monitors[0].kind: expected one of \"http\", \"tcp\", \"exec\""),
            (h, "interval_secs", 0, "monitors[0].interval_secs: expected an integer from 1 to 86400"),
            (h, "interval_secs", 1.5, "monitors[0].interval_secs: expected an integer from 1 to 86400"),
            (h, "interval_secs", "10", "monitors[0].interval_secs: expected an integer from 1 to 86400"),
            (h, "timeout_secs", nil, "monitors[0].timeout_secs: required"),
            (h, "timeout_secs", 3601, "monitors[0].timeout_secs: expected an integer from 1 to 3600"),
            (h, "timeout_secs", 31, "monitors[0].timeout_secs: must not exceed interval_secs (30)"),
            (h, "groups", [], "monitors[0].groups: expected at least one group"),
            (h, "groups", "eu", "monitors[0].groups: expected an array of group names, got a string"),
            (h, "groups", ["eu", "eu"], "monitors[0].groups[1]: duplicate group \"eu\""),
            (h, "groups", ["eu", 1], "monitors[0].groups[1]: expected 1 to 64 characters of letters, digits, '_', '-' or '.'"),
            (h, "spec", nil, "monitors[0].spec: required"),
            (h, "spec", [1], "monitors[0].spec: expected an object, got an array"),
            (h, "extra", true, "monitors[0].extra: unknown field"),
            (h, "spec.verb", "GET", "monitors[0].spec.verb: unknown field"),
            (h, "spec.method", "get", "monitors[0].spec.method: expected an upper-case HTTP method such as \"GET\" or \"POST\""),
            (h, "spec.url", nil, "monitors[0].spec.url: required"),
            (h, "spec.url", "ftp://x/", "monitors[0].spec.url: expected an http or https URL"),
            (h, "spec.url", "http:///path", "monitors[0].spec.url: expected an http or https URL with a host"),
            (h, "spec.url", "http://a b/", "monitors[0].spec.url: expected an http or https URL without spaces or control characters"),
            (h, "spec.url", "http://host:99999/", "monitors[0].spec.url: expected an http or https URL with a valid port"),
            (h, "spec.url", "http://[::1/", "monitors[0].spec.url: expected an http or https URL (unclosed IPv6 bracket)"),
            (h, "spec.url", "https://${env:HOST/x", "monitors[0].spec.url: malformed reference at character 9: expected ${env:NAME} with NAME of letters, digits and _"),
            (h, "spec.url", "https://${ENV:HOST}/", "monitors[0].spec.url: malformed reference at character 9: expected ${env:NAME}"),
            (h, "spec.headers", ["a b": "x"], "monitors[0].spec.headers.a b: header names are letters, digits and !#$%&'*+-.^_`|~"),
            (h, "spec.headers", ["X": 1], "monitors[0].spec.headers.X: expected a string, got a number"),
            (h, "spec.headers", ["X": "a\r\nInjected: 1"], "monitors[0].spec.headers.X: header values must not contain CR, LF or NUL"),
            (h, "spec.headers", ["X": "${env:1X}"], "monitors[0].spec.headers.X: malformed reference at character 1: expected ${env:NAME} with NAME of letters, digits and _"),
            (h, "spec.headers", [1], "monitors[0].spec.headers: expected an object of header names to values, got an array"),
            (h, "spec.body", 1, "monitors[0].spec.body: expected a string, got a number"),
            (h, "spec.body", .string(String(repeating: "b", count: 4097)), "monitors[0].spec.body: longer than 4096 bytes"),
            (h, "spec.expect_status", [], "monitors[0].spec.expect_status: expected a non-empty array of status codes or classes such as [200, \"3xx\"]"),
            (h, "spec.expect_status", [200, 600], "monitors[0].spec.expect_status[1]: expected a status code 100-599 or a class \"1xx\"-\"5xx\""),
            (h, "spec.expect_status", ["2XX"], "monitors[0].spec.expect_status[0]: expected a status code 100-599 or a class \"1xx\"-\"5xx\""),
            (h, "spec.expect_status", ["200"], "monitors[0].spec.expect_status[0]: expected a status code 100-599 or a class \"1xx\"-\"5xx\""),
            (h, "spec.follow_redirects", "yes", "monitors[0].spec.follow_redirects: expected true or false, got a string"),
            (h, "spec.tls_verify", 0, "monitors[0].spec.tls_verify: expected true or false, got a number"),
            (t, "spec.host", nil, "monitors[0].spec.host: required"),
            (t, "spec.host", "bad host!", "monitors[0].spec.host: expected a host name or an IP address"),
            (t, "spec.host", "${env:DB}x${Env:", "monitors[0].spec.host: malformed reference at character 11: expected ${env:NAME}"),
            (t, "spec.port", 0, "monitors[0].spec.port: expected an integer from 1 to 65535"),
            (t, "spec.port", nil, "monitors[0].spec.port: required"),
            (t, "spec.url", "x", "monitors[0].spec.url: unknown field"),
            (x, "spec.command", nil, "monitors[0].spec.command: required"),
            (x, "spec.command", "", "monitors[0].spec.command: expected 1 to 1024 bytes without NUL"),
            (x, "spec.args", "a", "monitors[0].spec.args: expected an array of at most 256 strings"),
            (x, "spec.args", [1], "monitors[0].spec.args[0]: expected a string, got a number"),
            (x, "spec.steps", nil, "monitors[0].spec.steps: required"),
            (x, "spec.steps", [], "monitors[0].spec.steps: expected an array of 1 to 64 steps"),
            (x, "spec.steps", [1], "monitors[0].spec.steps[0]: expected an object, got a number"),
            (x, "spec.steps", [["name": "a"]], "monitors[0].spec.steps[0].timeout_secs: required"),
            (x, "spec.steps", [["timeout_secs": 1]], "monitors[0].spec.steps[0].name: required"),
            (x, "spec.steps", [["name": "a b", "timeout_secs": 1]], "monitors[0].spec.steps[0].name: expected 1 to 64 characters of letters, digits, '_', '-' or '.'"),
            (x, "spec.steps", [["name": "a", "timeout_secs": 1], ["name": "a", "timeout_secs": 1]], "monitors[0].spec.steps[1].name: duplicate step \"a\""),
            (x, "spec.steps", [["name": "a", "timeout_secs": 31]], "monitors[0].spec.steps[0].timeout_secs: exceeds the monitor's timeout_secs (30)"),
            (x, "spec.steps", [["name": "a", "timeout_secs": 1, "retries": 2]], "monitors[0].spec.steps[0].retries: unknown field"),
            (x, "spec.config", [1], "monitors[0].spec.config: expected an object, got an array"),
            (x, "spec.config", ["big": .string(String(repeating: "c", count: 4096))], "monitors[0].spec.config: 4106 bytes as compact JSON; at most 4096"),
            (x, "spec.config", ["k": ["${env:}"]], "monitors[0].spec.config: malformed reference at character 1: expected ${env:NAME} with NAME of letters, digits and _"),
        ]
        for (monitor, path, value, expected) in cases {
            let got = errors(document(with(monitor, path, value))).map(\.description)
            XCTAssertEqual(got, [expected], "\(path) = \(value.map(\.serialized) ?? "removed")")
        }
    }

    func testAllErrorsAreReportedTogether() {
        var bad = with(httpMonitor, "interval_secs", 0)
        bad = with(bad, "spec.url", "nope")
        let got = errors(document(tcpMonitor, bad, with(tcpMonitor, "id", "db2"))).map(\.field)
        XCTAssertEqual(got, ["monitors[1].interval_secs", "monitors[1].spec.url"])
    }

    func testDuplicateIDs() {
        let got = errors(document(tcpMonitor, httpMonitor, with(httpMonitor, "name", "Other"))).map(\.description)
        XCTAssertEqual(got, ["monitors[2].id: duplicate of monitors[1].id"])
    }

    func testReferencesInURLsAreCheckedAroundTheReference() throws {
        for ok in ["https://${env:HOST}/x", "${env:FULL_URL}", "http://h/${env:PATH_PART}?t=${env:T}"] {
            XCTAssertNoThrow(try MonitorDocument.validate(document(with(httpMonitor, "spec.url", .string(ok)))).get(), ok)
        }
        XCTAssertEqual(errors(document(with(httpMonitor, "spec.url", "ftp://${env:H}/"))).map(\.message),
                       ["expected an http or https URL"])
    }

    func testEntryTooLargeForTheWire() {
        let args: [JSON] = (0..<20).map { _ in .string(String(repeating: "a", count: 4000)) }
        let got = errors(document(with(execMonitor, "spec.args", .array(args))))
        XCTAssertEqual(got.count, 1)
        XCTAssertEqual(got[0].field, "monitors[0]")
        XCTAssertTrue(got[0].message.hasSuffix("bytes as a schedule entry; at most 60000"), got[0].message)
    }

    func testNumericIDIsStableFNV1aMaskedTo53Bits() {
        // FNV-1a 64 of "" is the offset basis; masked to 53 bits.
        XCTAssertEqual(MonitorID.numeric(""), 0xcbf2_9ce4_8422_2325 & MonitorID.mask)
        XCTAssertEqual(MonitorID.numeric("a"), 0xaf63_dc4c_8601_ec8c & MonitorID.mask)
        XCTAssertEqual(MonitorID.numeric("api-health"), MonitorID.numeric("api-health"))
        var seen = Set<UInt64>()
        for i in 0..<10_000 { seen.insert(MonitorID.numeric("monitor-\(i)")) }
        XCTAssertEqual(seen.count, 10_000)
    }

    func testEnvironmentReferences() throws {
        XCTAssertEqual(EnvReference.names(in: "a${env:X}b${env:Y_2}"), ["X", "Y_2"])
        XCTAssertNil(EnvReference.syntaxError(in: "cost: $5, ${env:A}"))
        XCTAssertNotNil(EnvReference.syntaxError(in: "${env:A"))
        XCTAssertNil(EnvReference.syntaxError(in: "echo ${HOME} $${x}"), "other ${...} is plain text")
        XCTAssertNotNil(EnvReference.syntaxError(in: "${Env:HOME}"))
        XCTAssertNotNil(EnvReference.syntaxError(in: "${env HOME}"))
        let values = ["TOKEN": "s3cr3t-value", "H": "example.org", "S": "ab", "VIGIL_ACCESS_KEY": "p.k", "OTHER": "x"]
        var env = EnvResolver(lookup: { values[$0] }, allowed: { ["TOKEN", "H", "S", "MISSING", "VIGIL_ACCESS_KEY"].contains($0) })
        XCTAssertEqual(try env.resolve("https://${env:H}/?t=${env:TOKEN}&s=${env:S}"), "https://example.org/?t=s3cr3t-value&s=ab")
        XCTAssertEqual(env.redact("GET https://example.org/?t=s3cr3t-value&s=ab failed"),
                       "GET https://${env:H}/?t=${env:TOKEN}&s=ab failed", "values under 4 bytes are left alone")
        XCTAssertThrowsError(try env.resolve("${env:MISSING}")) { e in
            XCTAssertEqual("\(e)", "environment variable MISSING is not set")
        }
        XCTAssertEqual(try env.resolve(["a": ["${env:H}", 1]] as JSON), ["a": ["example.org", 1]])
        // Only allowed names, and never VIGIL_* even when allowed.
        XCTAssertThrowsError(try env.resolve("${env:OTHER}")) { e in
            XCTAssertEqual("\(e)", "environment variable OTHER is not available to monitors on this agent (monitor_env)")
        }
        XCTAssertThrowsError(try env.resolve("k=${env:VIGIL_ACCESS_KEY}")) { e in
            XCTAssertEqual((e as? MissingEnvironmentVariable)?.notAllowed, true)
        }
        XCTAssertFalse(EnvResolver.mayEverRead("vigil_access_key"))
        XCTAssertTrue(EnvResolver.mayEverRead("API_TOKEN"))
    }

    func testURLHostPart() {
        XCTAssertEqual(HTTPURL.hostPort("https://u:p@example.org:8443/x?y#z"), "example.org:8443")
        XCTAssertEqual(HTTPURL.hostPort("http://[::1]:80"), "[::1]:80")
        XCTAssertEqual(HTTPURL.hostPort("http://h\\@evil/"), "h")
        XCTAssertNil(HTTPURL.hostPort("${env:FULL_URL}"))
    }
}
