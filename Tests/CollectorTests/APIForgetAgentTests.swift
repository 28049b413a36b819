// DELETE /api/v1/agents/{id} against a real collector: refused while the
// agent is connected, audited, and what the agent measured stays.
import Foundation
import XCTest
import Wire

final class APIForgetAgentTests: XCTestCase {
    var c: CollectorProcess!

    override func setUpWithError() throws {
        c = try CollectorProcess()
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    func testForgetADeadAgentOnly() throws {
        let key = c.createKey(project: "acme")
        var client: WireTestClient? = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("gone-1"))
        XCTAssertNotNil(client?.handshake())
        client?.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/gone-1").object["state"] as? String) == "stopped" })

        var r = c.api("DELETE", "/agents/gone-1")
        XCTAssertEqual(r.status, 409, r.body)
        XCTAssertEqual(r.object["error"] as? String, "agent connected", r.body)
        XCTAssertEqual((r.object["detail"] as? [String: Any])?["state"] as? String, "stopped", r.body)
        XCTAssertEqual(c.api("GET", "/agents/gone-1").status, 200, "still there")

        client = nil   // the session closes
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/gone-1").object["connected"] as? Bool) == false })
        r = c.api("DELETE", "/agents/gone-1")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.object["result"] as? String, "ok", r.body)
        XCTAssertEqual(c.api("GET", "/agents/gone-1").status, 404)
        XCTAssertEqual((c.api("GET", "/agents").object["agents"] as? [Any])?.count, 0)
        XCTAssertEqual(c.api("GET", "/agents/gone-1/states").status, 404)

        r = c.api("DELETE", "/agents/gone-1")
        XCTAssertEqual(r.status, 404, r.body)
        XCTAssertEqual(r.object["detail"] as? String, "agent 'gone-1'", r.body)

        let audit = c.api("GET", "/audit?action=agent.forget").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.map { $0["result"] as? String }, ["ok", "connected"], "newest first; the 404 is not audited")
        XCTAssertEqual(audit.first?["target"] as? String, "gone-1")
    }
}
