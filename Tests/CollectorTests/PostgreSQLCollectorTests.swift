// The real vigil-collector on the test process's PostgreSQL server
// (TestPostgreSQL): `store = postgresql` for `run` and `keys`, batches
// acknowledged after they are in PostgreSQL, /healthz 503 with the reason
// while the server is down, and acknowledgements held (not lost) until it
// is back; the password from `postgresql_password_file` over TCP, never in
// the log or check-config's output.
import Foundation
import XCTest
import Wire

final class PostgreSQLCollectorTests: XCTestCase {
    private func server() throws -> TestPostgreSQL {
        guard let s = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        return s
    }

    func testBatchesGoToPostgreSQLAndWaitOutAnOutage() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let c = try CollectorProcess(config: ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))"])
        defer { c.stop(); c.removeDirectory() }
        XCTAssertTrue(c.log.contains("store=postgresql") || c.log.contains("postgresql"), c.log)
        let key = c.createKey(project: "demo")
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM project_keys", in: db), "1", "keys create wrote to PostgreSQL")
        let listed = runCollectorCommand(["keys", "list", "--config", c.configPath])
        XCTAssertEqual(listed.status, 0, listed.err)
        XCTAssertTrue(listed.out.contains("demo"), listed.out)

        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("pg-agent"))
        XCTAssertNotNil(client.handshake())
        for seq in 1...3 { client.send(client.batch(UInt64(seq))) }
        XCTAssertNotNil(client.waitForRecord(timeout: 20) { $0 == .ack(Ack(sequence: 3)) })
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM measurements", in: db), "3")
        XCTAssertEqual(c.http("GET", "/healthz").status, 200)
        XCTAssertGreaterThan(c.metric("vigil_store_write_round_trips_total") ?? 0, 0)
        XCTAssertEqual(c.metric("vigil_store_writes_retried_total"), 0)
        XCTAssertEqual(c.metric("vigil_store_groups_split_total"), 0)

        pg.pause()
        var resumed = false
        defer { if !resumed { pg.resume() } }
        XCTAssertTrue(c.eventually(timeout: 10) { c.http("GET", "/healthz").status == 503 })
        let health = c.http("GET", "/healthz")
        XCTAssertTrue(health.body.contains(#""reasons":[{"cause":"store_unavailable","detail":"PostgreSQL "#), "listed first: \(health.body)")
        // Sent while the server is down: not acknowledged, the session stays.
        client.clearEvents()
        client.send(client.batch(4))
        XCTAssertNil(client.waitForRecord(timeout: 1.5) { $0 == .ack(Ack(sequence: 4)) }, "no acknowledgement without a commit")
        XCTAssertFalse(client.peerClosed)

        pg.resume()
        resumed = true
        XCTAssertNotNil(client.waitForRecord(timeout: 20) { $0 == .ack(Ack(sequence: 4)) }, "acknowledged once the server is back")
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM measurements", in: db), "4")
        XCTAssertTrue(c.eventually(timeout: 10) { c.http("GET", "/healthz").status == 200 })
    }

    func testPasswordFileOverTCPIsNeverShown() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let url = pg.tcpURL(db)
        let c = try CollectorProcess(config: ["store = postgresql", "postgresql_url = \(url)",
                                              "postgresql_password_file = \(pg.passwordFile)"])
        defer { c.stop(); c.removeDirectory() }
        // The store's loop connections come up just after start.
        XCTAssertTrue(c.eventually(timeout: 10) { c.http("GET", "/healthz").status == 200 })
        XCTAssertFalse(c.log.contains(pg.password), "the password is never logged")
        let checked = runCollectorCommand(["check-config", "--config", c.configPath])
        XCTAssertEqual(checked.status, 0, checked.err)
        XCTAssertFalse(checked.out.contains(pg.password) || checked.err.contains(pg.password))
        XCTAssertFalse(checked.out.contains(url), "postgresql_url is shown redacted: \(checked.out)")

        // A wrong password: start fails, saying why, without the password.
        let wrong = c.directory.appendingPathComponent("wrong-password").path
        try "not-the-password\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        let r = runCollectorCommand(["keys", "list", "--config", c.configPath, "--set", "postgresql_password_file=\(wrong)"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("password authentication failed"), r.err)
        XCTAssertFalse(r.err.contains("not-the-password"), r.err)
    }
}
