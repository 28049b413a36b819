// The console's serving and access, black-box against the real collector:
// its files with their security headers, sign-in with the admin token
// (cookie + anti-CSRF value), the cookie accepted for reading, changes
// refused without the CSRF header, sign-out, and the bounded session table;
// the agent configuration schema the console checks values with.
import Foundation
import XCTest
import ConfigFile
@testable import Collector

final class ConsoleAccessTests: XCTestCase {
    private func start(_ config: [String] = []) throws -> CollectorProcess {
        let c = try CollectorProcess(config: config)
        addTeardownBlock { c.stop(); c.removeDirectory() }
        return c
    }

    /// Without the bearer token: what the browser sends.
    private func browser(_ c: CollectorProcess, _ method: String, _ path: String, body: String? = nil,
                         cookie: String? = nil, csrf: String? = nil) -> HTTPResult {
        var headers: [String: String] = [:]
        if let cookie { headers["Cookie"] = cookie }
        if let csrf { headers["X-Vigil-CSRF"] = csrf }
        return HTTPResult.fetch(port: c.httpPort, method: method, path: path, body: body, token: nil, headers: headers)
    }

    private func signIn(_ c: CollectorProcess) -> (cookie: String, csrf: String) {
        let r = browser(c, "POST", "/api/v1/session", body: "{\"token\":\"\(c.token)\"}")
        XCTAssertEqual(r.status, 200, r.body)
        let set = r.headers["set-cookie"] ?? ""
        XCTAssertTrue(set.contains("HttpOnly"), set)
        XCTAssertTrue(set.contains("SameSite=Strict"), set)
        let cookie = String(set.split(separator: ";").first ?? "")
        XCTAssertTrue(cookie.hasPrefix("vigil_session="), set)
        XCTAssertGreaterThan(cookie.count, "vigil_session=".count + 30, "a random id")
        let csrf = r.object["csrf"] as? String ?? ""
        XCTAssertGreaterThan(csrf.count, 30)
        XCTAssertFalse(r.body.contains(c.token), "the token is not echoed")
        return (cookie, csrf)
    }

    func testTheConsoleIsServedWithItsSecurityHeaders() throws {
        let c = try start()
        let index = browser(c, "GET", "/")
        XCTAssertEqual(index.status, 200)
        XCTAssertEqual(index.headers["content-type"], "text/html; charset=utf-8")
        XCTAssertTrue(index.body.contains("<script type=\"module\" src=\"/console/app.js\">"), index.body)
        let csp = index.headers["content-security-policy"] ?? ""
        XCTAssertTrue(csp.contains("script-src 'self'"), csp)
        XCTAssertTrue(csp.contains("default-src 'none'"), csp)
        XCTAssertFalse(csp.contains("unsafe-inline"), csp)
        XCTAssertTrue(csp.contains("frame-ancestors 'none'"), csp)
        XCTAssertEqual(index.headers["x-content-type-options"], "nosniff")
        XCTAssertEqual(index.headers["x-frame-options"], "DENY")
        XCTAssertEqual(index.headers["cache-control"], "no-cache")

        let js = browser(c, "GET", "/console/app.js")
        XCTAssertEqual(js.status, 200)
        XCTAssertEqual(js.headers["content-type"], "text/javascript; charset=utf-8")
        XCTAssertEqual(browser(c, "GET", "/console/console.css").headers["content-type"], "text/css; charset=utf-8")
        XCTAssertEqual(browser(c, "GET", "/console/no-such.js").status, 404)
        XCTAssertEqual(browser(c, "GET", "/console/../admin_token").status, 404)
        XCTAssertEqual(browser(c, "POST", "/", body: "{}").status, 404)
        // No inline script anywhere in the page (the CSP would block it).
        XCTAssertNil(index.body.range(of: "<script>"), "inline script in index.html")
    }

    func testAConsoleDirWithoutIndexIsAStartError() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = runCollectorCommand(["run", "--set", "data_dir=\(dir.path)", "--set", "listen=127.0.0.1:0",
                                     "--set", "http_listen=127.0.0.1:0", "--set", "console_dir=\(dir.path)"], timeout: 20)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("console_dir \(dir.path): no index.html there"), r.err)
    }

    func testSignInCookieReadsChangesNeedTheCSRFHeaderAndSignOutEndsIt() throws {
        let c = try start()
        // A wrong token: 401 and no cookie.
        let bad = browser(c, "POST", "/api/v1/session", body: "{\"token\":\"not-the-token-at-all\"}")
        XCTAssertEqual(bad.status, 401, bad.body)
        XCTAssertNil(bad.headers["set-cookie"])
        XCTAssertEqual(browser(c, "POST", "/api/v1/session", body: "{}").status, 422)
        // No credentials at all.
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents").status, 401)

        let (cookie, csrf) = signIn(c)
        let agents = browser(c, "GET", "/api/v1/agents", cookie: cookie)
        XCTAssertEqual(agents.status, 200, agents.body)
        XCTAssertNotNil(agents.object["agents"])
        let info = browser(c, "GET", "/api/v1/session", cookie: cookie)
        XCTAssertEqual(info.object["csrf"] as? String, csrf, "a reloaded page gets its CSRF value back")
        XCTAssertEqual(info.object["via"] as? String, "cookie")

        _ = c.createKey(project: "acme")
        let change = "{\"status_interval_ms\":\"7000\"}"
        let noCSRF = browser(c, "PUT", "/api/v1/projects/acme/config", body: change, cookie: cookie)
        XCTAssertEqual(noCSRF.status, 403, noCSRF.body)
        XCTAssertEqual(noCSRF.object["error"] as? String, "missing or wrong anti-CSRF header")
        XCTAssertEqual(browser(c, "PUT", "/api/v1/projects/acme/config", body: change, cookie: cookie, csrf: csrf + "x").status, 403)
        XCTAssertEqual(browser(c, "PUT", "/api/v1/projects/acme/config", body: change, cookie: cookie, csrf: "").status, 403)
        let ok = browser(c, "PUT", "/api/v1/projects/acme/config", body: change, cookie: cookie, csrf: csrf)
        XCTAssertEqual(ok.status, 200, ok.body)
        // The bearer token needs no CSRF header (scripts are not browsers).
        XCTAssertEqual(c.api("PUT", "/projects/acme/config", body: change).status, 200)

        // Signing out is a change too.
        XCTAssertEqual(browser(c, "DELETE", "/api/v1/session", cookie: cookie).status, 403)
        let out = browser(c, "DELETE", "/api/v1/session", cookie: cookie, csrf: csrf)
        XCTAssertEqual(out.status, 200, out.body)
        XCTAssertTrue((out.headers["set-cookie"] ?? "").contains("Max-Age=0"))
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents", cookie: cookie).status, 401)
        XCTAssertEqual(browser(c, "GET", "/api/v1/session", cookie: cookie).status, 401)
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents", cookie: "vigil_session=made-up").status, 401)
    }

    func testTheSessionTableIsBounded() throws {
        let c = try start(["console_max_sessions = 2"])
        let first = signIn(c), second = signIn(c)
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents", cookie: second.cookie).status, 200)
        let third = signIn(c)
        // The least recently used session (the first) made room for the third.
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents", cookie: first.cookie).status, 401)
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents", cookie: second.cookie).status, 200)
        XCTAssertEqual(browser(c, "GET", "/api/v1/agents", cookie: third.cookie).status, 200)
    }

    func testCookieHeaderParsing() {
        XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: "a=1; vigil_session=abc; b=2"), "abc")
        XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: "vigil_session=\"q\""), "q")
        XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: "xvigil_session=abc"), nil)
        XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: "vigil_session"), nil)
        XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: nil), nil)
        XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: "vigil_session=first;vigil_session=second"), "first")
    }

    /// Random headers: never a trap, and a cookie placed among others is found.
    func testCookieParsingOfRandomHeaders() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("abcXYZ019=; \t\"%_-")
        for _ in 0..<2000 {
            let noise = String((0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            _ = ConsoleSessions.cookie("vigil_session", in: noise)
            let value = String((0..<Int.random(in: 1...43, using: &rng)).map { _ in Array("abcXYZ019-_").randomElement(using: &rng)! })
            let header = "a=1; vigil_session=\(value); " + noise.replacingOccurrences(of: "vigil_session", with: "x")
            XCTAssertEqual(ConsoleSessions.cookie("vigil_session", in: header), value, header)
        }
    }

    func testSessionsExpire() {
        var clock = 100.0
        let s = ConsoleSessions(maxSessions: 4, ttl: 60)
        s.now = { clock }
        let (id, _) = s.open()
        XCTAssertNotNil(s.session(for: "vigil_session=\(id)"))
        clock += 61
        XCTAssertNil(s.session(for: "vigil_session=\(id)"))
        XCTAssertEqual(s.count, 0)
        XCTAssertEqual(s.expired, 1)
    }
}

/// The agent configuration schema the console's editor checks values with.
final class AgentConfigSchemaTests: XCTestCase {
    func testEveryAgentKeyWithItsTypeRangeDefaultAndHelp() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let r = c.api("GET", "/schema/agent-config")
        XCTAssertEqual(r.status, 200, r.body)
        let keys = r.object["keys"] as? [[String: Any]] ?? []
        XCTAssertEqual(keys.compactMap { $0["key"] as? String }, ConfigFileKeys.agent)
        func key(_ name: String) -> [String: Any] { keys.first { $0["key"] as? String == name } ?? [:] }
        XCTAssertEqual(key("status_interval_ms")["type"] as? String, "milliseconds")
        XCTAssertEqual(key("status_interval_ms")["min"] as? Int, 100)
        XCTAssertEqual(key("status_interval_ms")["max"] as? Int, 3_600_000)
        XCTAssertEqual(key("status_interval_ms")["default"] as? String, "10000")
        XCTAssertEqual(key("status_interval_ms")["live"] as? Bool, true)
        XCTAssertFalse((key("status_interval_ms")["help"] as? String ?? "").isEmpty)
        XCTAssertEqual(key("capture")["type"] as? String, "bool")
        XCTAssertEqual(key("log_level")["choices"] as? [String], ["debug", "info", "warn", "error"])
        XCTAssertEqual((key("ipa_bind")["element"] as? [String: Any])?["type"] as? String, "ip_address")
        XCTAssertTrue(key("access_key")["default"] is NSNull)
        XCTAssertEqual(key("access_key")["live"] as? Bool, false)
        XCTAssertEqual(key("server_port")["live"] as? Bool, false)
    }
}

enum ConfigFileKeys {
    static var agent: [String] { AgentSchema.schema.keys.map(\.name) }
}
