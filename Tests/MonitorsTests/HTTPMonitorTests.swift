// HTTP monitors against a local HTTPServer (libmicrohttpd on the same loop):
// success with phases, a failing status, a slow endpoint (timeout), TLS
// failure, a refused port, request details, redirects, env references.
import XCTest
import Reactor
import Wire
import HTTPServer
@testable import MonitorModel
@testable import MonitorRunners
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class HTTPMonitorTests: XCTestCase {
    var harness: EngineHarness!
    var server: HTTPServer!
    var seen: [HTTPRequest] = []
    var slowTimers: [TimerWatcher] = []
    var slowResponders: [HTTPResponder] = []

    override func setUpWithError() throws {
        var options = MonitorEngine.Options()
        options.environment = { ["TOKEN": "tok-12345", "PORT_VAR": "1", "VIGIL_ACCESS_KEY": "proj.secret-key-value"][$0] }
        options.policy.environment = ["TOKEN", "NOT_SET", "PORT_VAR", "VIGIL_ACCESS_KEY"]
        harness = EngineHarness(options: options)
        server = HTTPServer(loop: harness.loop) { [unowned self] req, responder in
            self.seen.append(req)
            switch req.path {
            case "/ok": responder.respond(HTTPResponse(status: 200, contentType: "text/plain", text: "hello"))
            case "/fail": responder.respond(HTTPResponse(status: 503, text: "{\"error\":\"down\"}"))
            case "/created": responder.respond(HTTPResponse(status: 201, text: ""))
            case "/redirect": responder.respond(HTTPResponse(status: 302, body: [], headers: [("Location", "/ok")]))
            case "/slow":
                let t = TimerWatcher(loop: self.harness.loop) { _ in
                    responder.respond(HTTPResponse(status: 200, text: "late"))
                }
                t.start(after: 3)
                self.slowTimers.append(t)
                self.slowResponders.append(responder)
            default: responder.respond(HTTPResponse(status: 404, text: ""))
            }
        }
        try server.start(address: SocketAddress(parsing: "127.0.0.1:0"))
    }

    override func tearDown() {
        harness.shutdown()
        // libmicrohttpd aborts when stopped with a suspended connection:
        // answer the slow requests first.
        for t in slowTimers { t.stop() }
        for r in slowResponders { r.respond(HTTPResponse(status: 200, text: "")) }
        harness.idle(0.1)
        server.stop()
        harness.idle(0.05)
    }

    var base: String { "http://127.0.0.1:\(server.port)" }

    func testSuccessReportsStatusBytesAndPhases() throws {
        let r = try XCTUnwrap(harness.first(.http("ok", url: base + "/ok")))
        XCTAssertEqual(r.status, .ok, r.message)
        XCTAssertEqual(r.message, "")
        XCTAssertEqual(r.protocolStatus, 200)
        XCTAssertEqual(r.bytes, 5)
        XCTAssertEqual(r.phases.map(\.name), ["dns", "connect", "ttfb", "transfer"])
        XCTAssertGreaterThan(r.durationUs, 0)
        XCTAssertLessThanOrEqual(r.phases.reduce(0) { $0 + $1.durationUs }, r.durationUs)
        XCTAssertEqual(r.monitorKey, "ok")
        XCTAssertEqual(r.kind, .http)
        XCTAssertTrue(harness.engine.isHTTPLoaded)
        XCTAssertTrue(harness.engine.httpLibraryVersion.hasPrefix("libcurl/"))
        XCTAssertEqual(seen.last?.method, "GET")
        XCTAssertEqual(seen.last?.header("User-Agent"), "vigil-agent-monitor/1")
        XCTAssertEqual(harness.engine.stats.runsCompleted, 1)
        XCTAssertEqual(harness.engine.stats.runsFailed, 0)
    }

    func testFailingStatusIsAnErrorNamingTheStatus() throws {
        let r = try XCTUnwrap(harness.first(.http("fail", url: base + "/fail")))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(r.protocolStatus, 503)
        XCTAssertEqual(r.message, "unexpected HTTP status 503 (expected 2xx)")
        XCTAssertEqual(r.bytes, 16)
        XCTAssertEqual(harness.engine.stats.runsFailed, 1)
    }

    func testExpectedStatusList() throws {
        let ok = try XCTUnwrap(harness.first(.http("a", url: base + "/fail", expect: [.code(503)])))
        XCTAssertEqual(ok.status, .ok, ok.message)
        harness.results = []
        let bad = try XCTUnwrap(harness.first(.http("b", url: base + "/created", expect: [.code(200), .class(3)])))
        XCTAssertEqual(bad.message, "unexpected HTTP status 201 (expected 200, 3xx)")
    }

    func testSlowEndpointTimesOut() throws {
        let r = try XCTUnwrap(harness.first(.http("slow", url: base + "/slow", timeout: 1)))
        XCTAssertEqual(r.status, .timeout)
        XCTAssertEqual(r.message, "timeout after 1000 ms waiting for the first byte")
        XCTAssertGreaterThanOrEqual(r.durationUs, 900_000)
        XCTAssertLessThan(r.durationUs, 2_900_000)
        XCTAssertEqual(r.protocolStatus, 0)
    }

    func testTLSFailureAgainstAPlainServer() throws {
        let r = try XCTUnwrap(harness.first(.http("tls", url: "https://127.0.0.1:\(server.port)/ok")))
        XCTAssertEqual(r.status, .error)
        XCTAssertTrue(r.message.hasPrefix("TLS failure (curl error 35): "), r.message)
    }

    func testRefusedPort() throws {
        let port = try unusedPort()
        let r = try XCTUnwrap(harness.first(.http("refused", url: "http://127.0.0.1:\(port)/")))
        XCTAssertEqual(r.status, .error)
        XCTAssertTrue(r.message.hasPrefix("connect failed (curl error 7): "), r.message)
    }

    func testMethodHeadersAndBodyAreSent() throws {
        let d = MonitorDefinition.http("post", url: base + "/ok", method: "PUT",
                                       headers: [HTTPHeader("X-Token", "Bearer ${env:TOKEN}")], body: "{\"a\":1}")
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .ok, r.message)
        let req = try XCTUnwrap(seen.last)
        XCTAssertEqual(req.method, "PUT")
        XCTAssertEqual(req.header("X-Token"), "Bearer tok-12345", "resolved on the agent at the run")
        XCTAssertEqual(req.body, Array("{\"a\":1}".utf8))
    }

    func testRedirectsFollowedOnlyWhenAsked() throws {
        let plain = try XCTUnwrap(harness.first(.http("r1", url: base + "/redirect")))
        XCTAssertEqual(plain.message, "unexpected HTTP status 302 (expected 2xx)")
        harness.results = []
        var d = MonitorDefinition.http("r2", url: base + "/redirect")
        if case .http(var h) = d.check { h.followRedirects = true; d.check = .http(h) }
        let followed = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(followed.status, .ok, followed.message)
        XCTAssertEqual(followed.protocolStatus, 200)
        XCTAssertTrue(followed.phases.contains { $0.name == "redirect" })
    }

    func testUnsetEnvironmentVariableFailsTheRun() throws {
        let r = try XCTUnwrap(harness.first(.http("env", url: base + "/ok?k=${env:NOT_SET}")))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(r.message, "environment variable NOT_SET is not set")
        XCTAssertTrue(seen.isEmpty, "no request was made")
    }

    func testVariablesNeverDecideTheHost() throws {
        let port = server.port
        let cases: [(String, String)] = [
            ("port", "http://127.0.0.1:${env:PORT_VAR}/ok"),
            ("host", "http://${env:TOKEN}.example/ok"),
            ("whole", "${env:TOKEN}"),
        ]
        for (id, url) in cases {
            harness.results = []
            let r = try XCTUnwrap(harness.first(.http(id, url: url)))
            XCTAssertEqual(r.status, .refused, "\(id): \(r.message)")
            XCTAssertTrue(r.message.hasPrefix("spec.url: "), r.message)
        }
        // A value that would move the host (here: through the user part) is refused after resolution.
        var options = MonitorEngine.Options()
        options.environment = { $0 == "PASS" ? "x@127.0.0.2:\(port)/" : nil }
        options.policy.environment = ["PASS"]
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        let moved = try XCTUnwrap(h.first(.http("moved", url: "http://user:${env:PASS}@127.0.0.1:\(port)/ok")))
        XCTAssertEqual(moved.status, .refused, moved.message)
        XCTAssertEqual(moved.message, "spec.url: a ${env:…} value would change the URL's host")
        XCTAssertTrue(seen.isEmpty, "no request was made")
    }

    func testVariablesOutsideMonitorEnvAndVigilOnesAreRefused() throws {
        var options = MonitorEngine.Options()
        options.environment = { ["TOKEN": "tok-12345", "VIGIL_ACCESS_KEY": "proj.secret-key-value"][$0] }
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        let r = try XCTUnwrap(h.first(.http("unlisted", url: base + "/ok?t=${env:TOKEN}")))
        XCTAssertEqual(r.status, .refused)
        XCTAssertEqual(r.message, "environment variable TOKEN is not available to monitors on this agent (monitor_env)")
        // Listed or not, VIGIL_* is never read.
        harness.results = []
        let k = try XCTUnwrap(harness.first(.http("key", url: base + "/ok?k=${env:VIGIL_ACCESS_KEY}")))
        XCTAssertEqual(k.status, .refused)
        XCTAssertTrue(seen.isEmpty, "no request was made")
        XCTAssertEqual(harness.engine.stats.refused, 1)
    }

    func testManyMonitorsAtOnce() throws {
        let defs = (0..<50).map { MonitorDefinition.http("m\($0)", url: base + "/ok") }
        let results = harness.run(defs, until: 50)
        XCTAssertEqual(results.filter { $0.status == .ok }.count, 50)
        XCTAssertEqual(Set(results.map(\.monitorID)).count, 50)
        harness.idle(0.05)
        XCTAssertEqual(harness.engine.httpSocketsWatched, 0, "every socket's watcher was removed")
    }

    func testWarmHookOncePerSchemeAfterTheFirstRunsAndNotFromInsideThem() throws {
        var warm: [String] = []
        var resultsWhenCalled: [Int] = []
        harness.engine.onHTTPWarm = { [unowned self] scheme in
            warm.append(scheme)
            resultsWhenCalled.append(self.harness.results.count)
        }
        // One http run: the hook comes on a later iteration.
        harness.run([.http("a", url: base + "/ok", interval: 1)], until: 1)
        XCTAssertTrue(warm.isEmpty, "delivered on a later iteration, not inside the completion")
        harness.idle(0.05)
        XCTAssertEqual(warm, ["http"])
        XCTAssertEqual(resultsWhenCalled, [1])
        // More http runs, a second monitor and a second round: not again.
        harness.run([.http("a", url: base + "/ok", interval: 1), .http("b", url: base + "/ok", interval: 1)], until: 4)
        harness.idle(0.05)
        XCTAssertEqual(warm, ["http"], "once per scheme")
        // An https run (a TLS failure against this plain server still ran
        // the TLS library's first context): "https" once.
        let before = harness.results.count
        harness.run([.http("s", url: "https://127.0.0.1:\(server.port)/ok")], until: before + 1)
        harness.idle(0.05)
        XCTAssertEqual(warm, ["http", "https"])
    }

    func testNoWarmHookWithoutARequestThroughLibcurl() throws {
        var warm: [String] = []
        harness.engine.onHTTPWarm = { warm.append($0) }
        // A tcp run, and an http run that fails before libcurl (an unset
        // variable): libcurl's paths have not run yet.
        let t = try XCTUnwrap(harness.first(.tcp("t", host: "127.0.0.1", port: server.port)))
        XCTAssertEqual(t.status, .ok, t.message)
        harness.run([.http("unset", url: base + "/ok?k=${env:NOT_SET}")], until: 2)
        XCTAssertNotEqual(harness.results.last?.status, .ok)
        XCTAssertTrue(seen.isEmpty, "no request was made")
        harness.idle(0.05)
        XCTAssertEqual(warm, [])
    }

    /// A port with nothing listening (bound, then closed).
    func unusedPort() throws -> UInt16 {
        let fd = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
        defer { Syscalls.close(fd) }
        try Syscalls.bind(fd, SocketAddress(parsing: "127.0.0.1:0"))
        return try Syscalls.localAddress(fd).port
    }
}
