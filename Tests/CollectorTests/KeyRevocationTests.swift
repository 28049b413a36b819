// Access keys through the API and the command line against a real collector:
// listed without secrets, created with the secret shown once, revoked — and
// a revoked key's live sessions closed within a second, whichever process
// revoked it. Each action is audited.
import Foundation
import Glibc
import XCTest
import Wire

final class KeyRevocationTests: XCTestCase {
    /// Seconds until `client` sees the collector close its session, nil if
    /// it stays open for `timeout`.
    func secondsUntilClosed(_ client: WireTestClient, timeout: Double = 3) -> Double? {
        let start = Date()
        guard client.waitForClose(timeout: timeout) else { return nil }
        return Date().timeIntervalSince(start)
    }

    func testKeysThroughTheAPIAndRevocationClosesSessions() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        // Create: unknown project refused unless asked; the key text once.
        XCTAssertEqual(c.api("POST", "/projects/shop/keys").status, 404)
        let created = c.api("POST", "/projects/shop/keys", body: #"{"create_project": true}"#)
        XCTAssertEqual(created.status, 200, created.body)
        let text = try XCTUnwrap(created.object["access_key"] as? String)
        let key = try AccessKey(parsing: text)
        XCTAssertEqual(key.collectorKey, c.collectorPublicKey)
        let keyID = try XCTUnwrap(created.object["id"] as? Int)
        let second = try AccessKey(parsing: try XCTUnwrap(c.api("POST", "/projects/shop/keys").object["access_key"] as? String))

        // List: ids and times, never a secret.
        let list = c.api("GET", "/projects/shop/keys")
        XCTAssertEqual(list.status, 200)
        XCTAssertEqual((list.object["keys"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }.count, 2)
        XCTAssertFalse(list.body.contains(Base64URL.encode(key.secret.bytes)), "a listing shows no secret")
        XCTAssertEqual(c.api("GET", "/projects/nope/keys").status, 404)

        // Two agents on the first key, one on the second.
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a"))
        XCTAssertNotNil(a.handshake())
        let probe = try WireTestClient(port: c.sessionPort, key: key, hello: nil)
        XCTAssertNotNil(probe.handshake())
        let b = try WireTestClient(port: c.sessionPort, key: second, hello: WireTestClient.hello("b"))
        XCTAssertNotNil(b.handshake())

        // Revoke the first through the API: its sessions close at once.
        XCTAssertEqual(c.api("DELETE", "/projects/other/keys/\(keyID)").status, 404, "a key of another project")
        let revoked = c.api("DELETE", "/projects/shop/keys/\(keyID)")
        XCTAssertEqual(revoked.status, 200, revoked.body)
        XCTAssertNotNil(revoked.object["revoked"] as? Int)
        let closedAfter = try XCTUnwrap(secondsUntilClosed(a), "the session of a revoked key stays open")
        XCTAssertLessThan(closedAfter, 1.0)
        XCTAssertEqual(a.peerError?.message, "access key revoked")
        XCTAssertNotNil(secondsUntilClosed(probe), "a probe session on the key closes too")
        XCTAssertNil(secondsUntilClosed(b, timeout: 0.5), "the other key's session stays")
        XCTAssertTrue(c.eventually { c.metric("vigil_sessions_closed_total{reason=\"key_revoked\"}") == 2 })
        let again = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a"))
        XCTAssertNil(again.handshake())
        XCTAssertEqual(again.peerError?.message, "access key revoked")

        let audit = c.api("GET", "/audit?target=shop").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.compactMap { $0["action"] as? String }.sorted(), ["keys.create", "keys.create", "keys.revoke"])
        XCTAssertTrue(audit.allSatisfy { ($0["actor"] as? String)?.hasPrefix("api") ?? false })
    }

    func testAKeyRevokedByTheCommandLineClosesItsSessionsWithinASecond() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a1"))
        XCTAssertNotNil(client.handshake())
        let revoke = runCollectorCommand(["keys", "revoke", "1", "--config", c.configPath])
        XCTAssertEqual(revoke.status, 0, revoke.err)
        // Measured from the command's end, when the revocation is committed.
        let closedAfter = try XCTUnwrap(secondsUntilClosed(client), "the session of a revoked key stays open")
        XCTAssertLessThan(closedAfter, 1.0)
        XCTAssertEqual(client.peerError?.message, "access key revoked")
    }
}
