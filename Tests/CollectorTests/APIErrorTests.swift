// The HTTP API's failures, against a real collector: every endpoint refuses
// bad input the same way, with a JSON body that names what was wrong.
import Foundation
import XCTest

final class APIErrorTests: XCTestCase {
    var c: CollectorProcess!

    override func setUpWithError() throws {
        c = try CollectorProcess()
        _ = c.createKey(project: "acme")
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    /// Bodies are read by one function: the same status and error body on
    /// every endpoint that takes one, whatever its own checks are.
    func testInvalidBodiesAnswerTheSame400Everywhere() {
        let endpoints = [("POST", "/agents/a1/capture"), ("PUT", "/agents/a1/config"),
                         ("PUT", "/projects/acme/patterns"), ("PUT", "/projects/acme/monitors")]
        for (method, path) in endpoints {
            var r = c.api(method, path, body: "{nope")
            XCTAssertEqual(r.status, 400, "\(method) \(path): \(r.body)")
            XCTAssertEqual(r.object["error"] as? String, "request body is not JSON", r.body)
            XCTAssertTrue((r.object["detail"] as? String ?? "").hasPrefix("invalid JSON at line 1, column "), r.body)
            r = c.api(method, path, body: "[1]")
            XCTAssertEqual(r.status, 400, "\(method) \(path): \(r.body)")
            XCTAssertEqual(r.object["error"] as? String, "request body is not a JSON object", r.body)
            XCTAssertEqual(r.object["detail"] as? String, "expected a JSON object, got an array", r.body)
            r = c.api(method, path, body: "")
            XCTAssertEqual(r.status, 400, "\(method) \(path): \(r.body)")
            XCTAssertEqual(r.object["error"] as? String, "request body is empty", r.body)
        }
    }

    /// A request target longer than the limit is refused in JSON, never
    /// with libmicrohttpd's HTML page.
    func testLongRequestTargetsAnswerJSON() {
        for size in [9_000, 60_000, 120_000] {
            let r = c.api("GET", "/measurements?project=" + String(repeating: "a", count: size))
            XCTAssertEqual(r.status, 414, "\(size): \(r.body.prefix(200))")
            XCTAssertEqual(r.headers["content-type"], "application/json")
            XCTAssertEqual(r.object["error"] as? String, "request target too long", r.body)
            XCTAssertEqual((r.object["detail"] as? [String: Any])?["limit_bytes"] as? Int, 8192, r.body)
        }
        XCTAssertEqual(c.api("GET", "/measurements?source=" + String(repeating: "a", count: 7_000)).status, 200,
                       "below the limit the request is served")
    }

    /// Path segments are decoded one by one: `%00` is a byte of the id (and
    /// refused, naming it), not the end of the path; `%2F` stays in its segment.
    func testIdentifiersWithControlBytesAre400() {
        for path in ["/agents/%00", "/agents/a%00b/status", "/agents/a%0Ab/config", "/projects/ac%7Fme/patterns",
                     "/projects/acme/monitors/m%01/runs"] {
            let r = c.api("GET", path)
            XCTAssertEqual(r.status, 400, "\(path): \(r.body)")
            let detail = r.object["detail"] as? [String: Any] ?? [:]
            let why = detail.values.first as? String ?? ""
            XCTAssertTrue(why.contains("control character U+00"), "\(path): \(r.body)")
            XCTAssertTrue(["id", "project", "monitor"].contains(detail.keys.first ?? ""), r.body)
        }
        XCTAssertEqual(c.api("GET", "/agents/%zz").status, 400)
        XCTAssertEqual(c.api("GET", "/agents/%FF").status, 400, "not UTF-8")
        let long = c.api("GET", "/agents/" + String(repeating: "x", count: 257))
        XCTAssertEqual(long.status, 400, long.body)
        XCTAssertEqual(c.api("GET", "/agents/a%2Fb").status, 404, "an id with a slash is looked up, not split")
        XCTAssertEqual(c.api("GET", "/agents/a%2Fb").object["detail"] as? String, "agent 'a/b'")
        XCTAssertEqual(c.api("GET", "/measurements?project=a%00").status, 400)
        XCTAssertEqual(c.api("GET", "/measurements?limit=1&limit=2").status, 400, "a parameter given twice")
    }

    /// Asking for something that does not exist is no failure of the store.
    func testNotFoundIsNoStoreFailure() {
        let before = c.metric(#"vigil_store_failures_total{cause="read_failed"}"#)
        XCTAssertNotNil(before)
        for path in ["/agents/nope", "/agents/nope/status", "/agents/nope/config", "/projects/nope/patterns",
                     "/projects/nope/monitors", "/projects/nope/monitors/m1/runs"] {
            XCTAssertEqual(c.api("GET", path).status, 404, path)
        }
        XCTAssertEqual(c.api("PUT", "/projects/nope/patterns", body: #"{"patterns":[]}"#).status, 404)
        XCTAssertEqual(c.api("PUT", "/projects/nope/monitors", body: #"{"monitors":[]}"#).status, 404)
        XCTAssertEqual(c.metric(#"vigil_store_failures_total{cause="read_failed"}"#), before)
        XCTAssertEqual(c.metric(#"vigil_store_failures_total{cause="write_failed"}"#), 0)
    }
}
