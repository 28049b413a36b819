// GET /api/v1/agents narrowed by `state` and `search` (what the console's
// fleet page asks, a page at a time), against a real collector.
import Foundation
import XCTest
import Wire

final class APIAgentFilterTests: XCTestCase {
    private func ids(_ r: HTTPResult) -> [String] {
        (r.object["agents"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    func testStateAndSearchNarrowTheListAndPageWithTheCursor() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        var clients: [String: WireTestClient] = [:]
        for id in ["web-1", "web-2", "WEB-3", "db-1", "x_%"] {
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello(id))
            XCTAssertNotNil(client.handshake())
            clients[id] = client
        }
        XCTAssertTrue(c.eventually { self.ids(c.api("GET", "/agents?state=connecting")).count == 5 })
        XCTAssertEqual(ids(c.api("GET", "/agents?search=web")), ["WEB-3", "web-1", "web-2"], "case-insensitive")
        XCTAssertEqual(ids(c.api("GET", "/agents?search=%25")), ["x_%"], "% is a plain character")
        XCTAssertEqual(ids(c.api("GET", "/agents?search=_")), ["x_%"], "_ is a plain character")
        XCTAssertEqual(ids(c.api("GET", "/agents?state=capturing")), [])
        XCTAssertEqual(ids(c.api("GET", "/agents?project=acme&state=connecting&search=web&limit=2")), ["WEB-3", "web-1"])
        let page = c.api("GET", "/agents?state=connecting&search=web&limit=2")
        XCTAssertEqual(page.object["next_cursor"] as? String, "web-1")
        XCTAssertEqual(ids(c.api("GET", "/agents?state=connecting&search=web&limit=2&cursor=web-1")), ["web-2"])

        clients["db-1"] = nil   // closes its socket: the session ends
        XCTAssertTrue(c.eventually { self.ids(c.api("GET", "/agents?state=not_visible")) == ["db-1"] })
        XCTAssertEqual(ids(c.api("GET", "/agents?state=connecting")).count, 4)

        let bad = c.api("GET", "/agents?state=running")
        XCTAssertEqual(bad.status, 400, bad.body)
        XCTAssertTrue(((bad.object["detail"] as? [String: Any])?["state"] as? String ?? "").contains("capturing"), bad.body)
        XCTAssertEqual(c.api("GET", "/agents?search=" + String(repeating: "a", count: 257)).status, 400)
    }
}
