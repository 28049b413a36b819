// Paging of the HTTP API's lists, against a real collector: `limit` and
// cursor paging (`cursor` in, `next_cursor` out) of GET /api/v1/agents.
import Foundation
import XCTest
import Wire

final class APIPagingTests: XCTestCase {
    var c: CollectorProcess!

    override func setUpWithError() throws {
        // Every Status stored (no per-session interval): the status history is paged.
        c = try CollectorProcess(config: ["status_write_interval_ms = 0"])
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    private func ids(_ r: HTTPResult) -> [String] {
        (r.object["agents"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    func testAgentsArePagedByCursorInIdOrder() throws {
        let key = c.createKey(project: "acme")
        for id in ["p-3", "p-1", "p-5", "p-2", "p-4"] {
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello(id))
            XCTAssertNotNil(client.handshake())
        }
        XCTAssertTrue(c.eventually { self.ids(self.c.api("GET", "/agents")).count == 5 })
        var r = c.api("GET", "/agents")
        XCTAssertEqual(ids(r), ["p-1", "p-2", "p-3", "p-4", "p-5"], "id order")
        XCTAssertTrue(r.object["next_cursor"] is NSNull, "one page holds them all: \(r.body)")

        var seen: [String] = [], cursor: String? = nil, pages = 0
        repeat {
            r = c.api("GET", "/agents?limit=2" + (cursor.map { "&cursor=" + $0 } ?? ""))
            XCTAssertEqual(r.status, 200, r.body)
            seen += ids(r)
            cursor = r.object["next_cursor"] as? String
            pages += 1
        } while cursor != nil && pages < 10
        XCTAssertEqual(seen, ["p-1", "p-2", "p-3", "p-4", "p-5"])
        XCTAssertEqual(pages, 3)
        XCTAssertEqual(ids(c.api("GET", "/agents?limit=5")), ["p-1", "p-2", "p-3", "p-4", "p-5"])
        XCTAssertTrue(c.api("GET", "/agents?limit=5").object["next_cursor"] is NSNull, "a full last page is the last")
        XCTAssertEqual(ids(c.api("GET", "/agents?project=acme&cursor=p-4")), ["p-5"])

        for bad in ["0", "10001", "x"] {
            r = c.api("GET", "/agents?limit=" + bad)
            XCTAssertEqual(r.status, 400, r.body)
            XCTAssertNotNil((r.object["detail"] as? [String: Any])?["limit"], r.body)
        }
    }
}

extension APIPagingTests {
    /// Events and audit: `cursor` in, `next_cursor` out, newest first; a
    /// cursor that is not one is 400 naming it.
    func testAuditIsPagedByCursor() {
        _ = c.createKey(project: "acme")
        for i in 0..<5 {
            XCTAssertEqual(c.api("PUT", "/projects/acme/patterns", body: #"{"patterns":[]}"#).status, 200, "\(i)")
        }
        let all = (c.api("GET", "/audit?action=patterns.replace").object["audit"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
        XCTAssertEqual(all.count, 5)
        var seen: [Int] = [], cursor: String? = nil, pages = 0
        repeat {
            let r = c.api("GET", "/audit?action=patterns.replace&limit=2" + (cursor.map { "&cursor=" + $0 } ?? ""))
            XCTAssertEqual(r.status, 200, r.body)
            seen += (r.object["audit"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
            cursor = r.object["next_cursor"] as? String
            pages += 1
        } while cursor != nil && pages < 10
        XCTAssertEqual(seen, all)
        XCTAssertEqual(pages, 3)
        XCTAssertTrue(c.api("GET", "/events").object["next_cursor"] is NSNull)
        for path in ["/audit?cursor=abc", "/events?cursor=1.x", "/events?cursor=5"] {
            let r = c.api("GET", path)
            XCTAssertEqual(r.status, 400, r.body)
            XCTAssertNotNil((r.object["detail"] as? [String: Any])?["cursor"], r.body)
        }
    }
}

extension APIPagingTests {
    /// Measurements and monitor runs page the same way.
    func testMeasurementsAndRunsHaveCursors() {
        _ = c.createKey(project: "acme")
        for path in ["/measurements", "/measurements?project=acme&limit=1"] {
            let r = c.api("GET", path)
            XCTAssertEqual(r.status, 200, r.body)
            XCTAssertTrue(r.object["next_cursor"] is NSNull, "nothing stored: \(r.body)")
        }
        XCTAssertEqual(c.api("PUT", "/projects/acme/monitors",
                             body: #"{"monitors":[{"id":"db","name":"db","kind":"tcp","interval_secs":10,"timeout_secs":3,"spec":{"host":"db","port":5432}}]}"#).status,
                       200)
        var r = c.api("GET", "/projects/acme/monitors/db/runs?limit=1")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertTrue(r.object["next_cursor"] is NSNull, r.body)
        r = c.api("GET", "/projects/acme/monitors/db/runs?cursor=x")
        XCTAssertEqual(r.status, 400, r.body)
        XCTAssertNotNil((r.object["detail"] as? [String: Any])?["cursor"], r.body)
        r = c.api("GET", "/measurements?cursor=1700000000000.5")
        XCTAssertEqual(r.status, 200, r.body)
    }
}

extension APIPagingTests {
    /// An agent's status history pages like every time-ordered list.
    func testStatusHistoryIsPagedByCursor() throws {
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("st-1"))
        XCTAssertNotNil(client.handshake())
        for ts: UInt64 in [1, 2, 3] { client.send([.status(Status(timestampMs: ts, state: .stopped))]) }
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/st-1/status").object["status"] as? [Any])?.count == 3 })
        let all = c.api("GET", "/agents/st-1/status").object["status"] as? [[String: Any]] ?? []
        var seen = 0, cursor: String? = nil, pages = 0
        repeat {
            let r = c.api("GET", "/agents/st-1/status?limit=2" + (cursor.map { "&cursor=" + $0 } ?? ""))
            XCTAssertEqual(r.status, 200, r.body)
            seen += (r.object["status"] as? [Any])?.count ?? 0
            cursor = r.object["next_cursor"] as? String
            pages += 1
        } while cursor != nil && pages < 10
        XCTAssertEqual(seen, all.count)
        XCTAssertEqual(pages, 2)
    }
}
