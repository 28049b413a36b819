// GET /api/v1/agents narrowed by `state` and `search`, in name order with
// `sort=name` and with the count per state (`counts=state`) — what the
// console's fleet page asks, a page at a time — against a real collector.
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

    func testSortByNamePagesInProjectNameIdOrderAndCountsByState() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let acme = c.createKey(project: "acme"), zeta = c.createKey(project: "zeta")
        var clients: [WireTestClient] = []
        // (key, id, name): names out of id order, one name twice.
        for (key, id, name) in [(zeta, "a1", "mango"), (acme, "z9", "apple"), (acme, "b2", "cherry"),
                                (acme, "c3", "apple"), (acme, "a0", "banana")] {
            let hello = Hello(agentID: id, name: name, host: "h", version: "test", bootID: "boot-1", instance: 0,
                              capabilities: ["aggregates", "capture"], groups: ["default"])
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: hello)
            XCTAssertNotNil(client.handshake())
            clients.append(client)
        }
        XCTAssertTrue(c.eventually { self.ids(c.api("GET", "/agents?state=connecting")).count == 5 })
        XCTAssertEqual(ids(c.api("GET", "/agents")), ["a0", "a1", "b2", "c3", "z9"], "id order without sort")
        XCTAssertEqual(ids(c.api("GET", "/agents?sort=name")), ["c3", "z9", "a0", "b2", "a1"],
                       "project name, then name, then id")
        // Paging in name order: each page after the cursor, none twice, none left out.
        var seen: [String] = [], cursor: String? = nil, pages = 0
        repeat {
            let page = c.api("GET", "/agents?sort=name&limit=2" + (cursor.map { "&cursor=" + percentEncoded($0) } ?? ""))
            XCTAssertEqual(page.status, 200, page.body)
            seen += ids(page)
            cursor = page.object["next_cursor"] as? String
            pages += 1
        } while cursor != nil && pages < 10
        XCTAssertEqual(seen, ["c3", "z9", "a0", "b2", "a1"])
        XCTAssertEqual(pages, 3)
        XCTAssertEqual(ids(c.api("GET", "/agents?project=acme&sort=name&search=APP")), ["c3", "z9"])

        let counted = c.api("GET", "/agents?project=acme&state=capturing&counts=state&limit=1")
        XCTAssertEqual(ids(counted), [], "the state filter narrows the list")
        let counts = try XCTUnwrap(counted.object["counts"] as? [String: Int], counted.body)
        XCTAssertEqual(counts, ["not_visible": 0, "connecting": 4, "stopped": 0, "capturing": 0,
                                "wrong_configuration": 0, "total": 4], "counts ignore state, cursor and limit")
        clients.removeFirst()   // mango (zeta) goes away
        XCTAssertTrue(c.eventually {
            (c.api("GET", "/agents?counts=state").object["counts"] as? [String: Int])?["not_visible"] == 1
        })
        XCTAssertNil(c.api("GET", "/agents").object["counts"], "only when asked")

        for (bad, parameter) in [("sort=size", "sort"), ("counts=project", "counts"), ("sort=name&cursor=z9", "cursor"),
                                 ("sort=name&cursor=4%3Aacme", "cursor")] {
            let r = c.api("GET", "/agents?" + bad)
            XCTAssertEqual(r.status, 400, "\(bad): \(r.body)")
            XCTAssertNotNil((r.object["detail"] as? [String: Any])?[parameter], "\(bad): \(r.body)")
        }
    }

    private func percentEncoded(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s
    }
}
