// Agent identity against a real collector process, with real Wire clients
// on loopback: an agent is (project, agent id, static key). The first
// completed handshake of an id enrolls it; another key, or a key of another
// project, is refused with an Error record and changes nothing the agent
// owns; an operator's reset lets a rebuilt host enroll again. Replaying an
// agent's first handshake message gets the replayer nowhere.
import Foundation
import Glibc
import XCTest
import Wire

final class IdentityTests: XCTestCase {
    /// The number of state rows the collector holds for `agent`.
    func stateRows(_ c: CollectorProcess, _ agent: String) -> Int {
        (c.api("GET", "/agents/\(agent)/states?limit=1000").object["states"] as? [Any])?.count ?? -1
    }

    /// A handshake, a Status (so the agent has data and a state), and the client.
    func connect(_ c: CollectorProcess, key: AccessKey, identity: StaticKeyPair, id: String) throws -> WireTestClient {
        let client = try WireTestClient(port: c.sessionPort, key: key, identity: identity, hello: WireTestClient.hello(id))
        XCTAssertNotNil(client.handshake(), "\(client.peerError.map { "\($0)" } ?? "no answer")")
        client.send([.status(Status(timestampMs: 1, state: .capturing))])
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/\(id)").object["state"] as? String) == "capturing" })
        return client
    }

    func testAKeyOfAnotherProjectCannotTakeAnEnrolledAgentID() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let keyA = c.createKey(project: "alpha")
        let keyB = c.createKey(project: "beta")
        let x = StaticKeyPair.generate()
        let real = try connect(c, key: keyA, identity: x, id: "agent-x")
        XCTAssertTrue(c.waitForLog("agent enrolled"), c.log)
        let rowsBefore = stateRows(c, "agent-x")

        // Project beta's key holder presents agent-x's id, with its own key
        // and — worse — with agent-x's key itself (a copied state_dir).
        for identity in [StaticKeyPair.generate(), x] {
            let intruder = try WireTestClient(port: c.sessionPort, key: keyB, identity: identity, hello: WireTestClient.hello("agent-x"))
            XCTAssertNil(intruder.handshake())
            XCTAssertEqual(intruder.peerError?.code, .identityMismatch)
            XCTAssertEqual(intruder.peerError?.message, "agent id 'agent-x' belongs to another project")
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_handshake_failures_total{reason=\"agent_in_other_project\"}") == 2 })

        // agent-x is unchanged: its project, its state, its session.
        let agent = c.api("GET", "/agents/agent-x").object
        XCTAssertEqual(agent["project"] as? String, "alpha")
        XCTAssertEqual(agent["state"] as? String, "capturing")
        XCTAssertEqual(agent["connected"] as? Bool, true)
        XCTAssertEqual(stateRows(c, "agent-x"), rowsBefore)
        XCTAssertEqual((c.api("GET", "/agents?project=beta").object["agents"] as? [Any])?.count, 0)
        real.send([.ping(Ping(7))])
        XCTAssertNotNil(real.waitForRecord { if case .pong = $0 { return true }; return false }, "the real session is untouched")
    }

    func testTheSameIDWithAnotherKeyIsRefusedUntilAnOperatorResetsIt() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let first = StaticKeyPair.generate()
        let real = try connect(c, key: key, identity: first, id: "a1")
        let rowsBefore = stateRows(c, "a1")

        // A clone with the same id and its own key: refused, again and
        // again, and the enrolled agent's session and rows stay as they are.
        let clone = StaticKeyPair.generate()
        for _ in 0..<3 {
            let other = try WireTestClient(port: c.sessionPort, key: key, identity: clone, hello: WireTestClient.hello("a1"))
            XCTAssertNil(other.handshake())
            XCTAssertEqual(other.peerError?.code, .identityMismatch)
            XCTAssertTrue(other.peerError?.message.contains("enrolled with another static key") ?? false, "\(String(describing: other.peerError))")
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_handshake_failures_total{reason=\"agent_key_mismatch\"}") == 3 })
        XCTAssertEqual(c.metric("vigil_sessions_replaced_total"), 0)
        XCTAssertEqual(stateRows(c, "a1"), rowsBefore, "no state flap")
        real.send([.ping(Ping(1))])
        XCTAssertNotNil(real.waitForRecord { if case .pong = $0 { return true }; return false })

        // The same key again replaces the session (a reconnect).
        let again = try WireTestClient(port: c.sessionPort, key: key, identity: first, hello: WireTestClient.hello("a1"))
        XCTAssertNotNil(again.handshake())
        XCTAssertTrue(real.waitForClose())
        XCTAssertEqual(real.peerError?.code, .duplicateAgent)

        // An operator resets the identity (a rebuilt host): audited, and the
        // next key enrolls; the old one is then refused.
        XCTAssertEqual(c.api("POST", "/agents/nobody/reset-identity").status, 404)
        let reset = c.api("POST", "/agents/a1/reset-identity")
        XCTAssertEqual(reset.status, 200, reset.body)
        let audit = c.api("GET", "/audit?target=a1").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.compactMap { $0["action"] as? String }, ["agent.reset-identity"])
        let rebuilt = try WireTestClient(port: c.sessionPort, key: key, identity: clone, hello: WireTestClient.hello("a1"))
        XCTAssertNotNil(rebuilt.handshake())
        let old = try WireTestClient(port: c.sessionPort, key: key, identity: first, hello: WireTestClient.hello("a1"))
        XCTAssertNil(old.handshake())
        XCTAssertEqual(old.peerError?.code, .identityMismatch)
    }
}
