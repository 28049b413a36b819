// The HTTP API's query parameters, against a real collector: unknown
// projects and misspelled parameters are refused naming them, and every
// time-ordered list takes `until` beside `since`.
import Foundation
import XCTest
import ConfigFile
import Wire

final class APIQueryTests: XCTestCase {
    var c: CollectorProcess!
    var key: AccessKey!

    override func setUpWithError() throws {
        c = try CollectorProcess()
        key = c.createKey(project: "acme")
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    func testUnknownProjectIs404NamingIt() {
        for path in ["/agents?project=acmee", "/measurements?project=acmee", "/events?project=acmee"] {
            let r = c.api("GET", path)
            XCTAssertEqual(r.status, 404, "\(path): \(r.body)")
            XCTAssertEqual(r.object["detail"] as? String, "project 'acmee'", r.body)
        }
        for path in ["/agents?project=acme", "/measurements?project=acme", "/events?project=acme"] {
            XCTAssertEqual(c.api("GET", path).status, 200, path)
        }
    }

    /// A misspelled parameter is refused, naming it and what the endpoint
    /// takes, on every endpoint: never ignored (which returned everything).
    func testUnknownQueryParametersAre400OnEveryEndpoint() {
        let cases: [(String, String, [String])] = [
            ("GET", "/agents?projct=acme", ["project", "state", "search", "limit", "cursor", "sort", "counts"]),
            ("GET", "/agents/a1?x=1", []),
            ("DELETE", "/agents/a1?x=1", []),
            ("GET", "/agents/a1/status?sinse=1", ["since", "until", "limit", "cursor"]),
            ("GET", "/agents/a1/states?x=1", ["since", "until", "limit", "cursor"]),
            ("GET", "/agents/a1/config?x=1", []),
            ("PUT", "/agents/a1/config?timeout=5", ["timeout_ms"]),
            ("POST", "/agents/a1/capture?timeout=5", ["timeout_ms"]),
            ("GET", "/projects?x=1", []),
            ("GET", "/projects/acme/patterns?x=1", []),
            ("PUT", "/projects/acme/patterns?x=1", []),
            ("GET", "/projects/acme/monitors?x=1", []),
            ("PUT", "/projects/acme/monitors?x=1", []),
            ("GET", "/projects/acme/monitors/m1/runs?agnt=a", ["agent", "since", "until", "limit", "cursor"]),
            ("GET", "/measurements?projct=acme", ["project", "agent", "monitor", "check", "source", "since", "until", "limit", "cursor",
                                                  "step", "group_by", "quantiles"]),
            ("GET", "/events?projct=acme", ["project", "agent", "monitor", "check", "since", "until", "limit", "cursor"]),
            ("GET", "/audit?actor=x", ["target", "action", "since", "until", "limit", "cursor"]),
            ("GET", "/config?x=1", []),
            ("GET", "/schema/agent-config?x=1", []),
            ("GET", "/session?x=1", []),
            ("DELETE", "/session?x=1", []),
        ]
        for (method, path, accepted) in cases {
            let r = c.api(method, path, body: method == "GET" || method == "DELETE" ? nil : "{}")
            XCTAssertEqual(r.status, 400, "\(method) \(path): \(r.body)")
            XCTAssertEqual(r.object["error"] as? String, "unknown query parameter", r.body)
            let detail = r.object["detail"] as? [String: Any] ?? [:]
            let bad = String(path[path.index(after: path.firstIndex(of: "?")!)...].prefix { $0 != "=" })
            XCTAssertEqual(detail["unknown"] as? [String], [bad], r.body)
            XCTAssertEqual(detail["accepted"] as? [String], accepted, r.body)
        }
    }

    func testUntilBesideSince() throws {
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("q-1"))
        XCTAssertNotNil(client.handshake())
        client.send(client.batch(1))
        XCTAssertNotNil(client.waitForRecord { $0 == .ack(Ack(sequence: 1)) })
        let ts = 1_700_000_010_000
        func count(_ path: String, _ list: String) -> Int? {
            let r = c.api("GET", path)
            XCTAssertEqual(r.status, 200, "\(path): \(r.body)")
            return (r.object[list] as? [Any])?.count
        }
        XCTAssertEqual(count("/measurements?since=\(ts)&until=\(ts + 1)", "measurements"), 1)
        XCTAssertEqual(count("/measurements?until=\(ts)", "measurements"), 0, "until is exclusive")
        XCTAssertEqual(count("/measurements?since=\(ts + 1)", "measurements"), 0)
        XCTAssertEqual(count("/events?until=1", "events"), 0)
        XCTAssertEqual(count("/audit?until=1", "audit"), 0)
        XCTAssertEqual(count("/agents/q-1/status?until=1", "status"), 0)
        XCTAssertEqual(count("/agents/q-1/states?until=1", "states"), 0)
        XCTAssertGreaterThan(count("/agents/q-1/states?until=9999999999999", "states") ?? 0, 0)
        let r = c.api("GET", "/measurements?since=5&until=5")
        XCTAssertEqual(r.status, 400, r.body)
        XCTAssertNotNil((r.object["detail"] as? [String: Any])?["until"], r.body)
        XCTAssertEqual(c.api("GET", "/events?until=soon").status, 400)
    }
}
