// PGConnection against a real PostgreSQL (TestPostgreSQL): connecting in
// both conninfo forms, queries with parameters, several statements, COPY,
// errors, a server-side disconnect, an unreachable server, LISTEN/NOTIFY.
// Everything is driven by the test's loop; nothing blocks on libpq.
//
// Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class PGConnectionTests: XCTestCase {
    private func server() throws -> TestPostgreSQL {
        guard let s = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        return s
    }

    private func connected(_ loop: EventLoop, _ conninfo: String, password: String? = nil) throws -> PGConnection {
        let c = PGConnection(loop: loop)
        var result: Result<Void, StoreError>?
        c.connect(conninfo: conninfo, password: password, timeout: 10) { result = $0 }
        XCTAssertNil(result, "connect completed before it returned")
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 15))
        try result!.get()
        XCTAssertEqual(c.state, .ready)
        return c
    }

    private func run(_ c: PGConnection, _ command: PGConnection.Command) throws -> Result<[PGRows], StoreError> {
        var result: Result<[PGRows], StoreError>?
        c.run(command) { result = $0 }
        XCTAssertNil(result, "completed before it returned")
        guard c.loop.run(until: { result != nil }, timeout: 15) else { throw StoreTimeout() }
        return result!
    }

    func testQueriesParametersCopyAndErrorsOverTheSocket() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let c = try connected(loop, pg.socketConninfo(db))
        defer { c.close() }

        let one = try run(c, .query("SELECT $1::bigint + 1, $2::text, $3::text", ["41", "ünïcode 'q'", nil])).get()
        XCTAssertEqual(one.first?.rows, [["42", "ünïcode 'q'", nil]])

        let several = try run(c, .query("CREATE TABLE t (a bigint, b text); INSERT INTO t VALUES (1, 'x'), (2, 'y')", [])).get()
        XCTAssertEqual(several.count, 2)
        XCTAssertEqual(several.last?.affected, 2)

        // COPY in text format: tab-separated, escaped, \N is NULL.
        let rows = (3...1_002).map { "\($0)\ttab\\there\n" }.joined() + "1003\t\\N\n"
        let copied = try run(c, .copy("COPY t (a, b) FROM STDIN", Array(rows.utf8))).get()
        XCTAssertEqual(copied.last?.affected, 1_001)
        let check = try run(c, .query("SELECT count(*), count(b), max(a), min(b) FILTER (WHERE a = 3) FROM t", [])).get()
        XCTAssertEqual(check.first?.rows, [["1003", "1002", "1003", "tab\there"]])

        // An error fails its command only; the connection stays usable.
        guard case .failure(.backend(let why)) = try run(c, .query("SELECT * FROM missing_table", [])) else {
            return XCTFail("a bad statement should fail")
        }
        XCTAssertTrue(why.contains("missing_table"), why)
        guard case .failure(.backend) = try run(c, .copy("COPY t (a) FROM STDIN", Array("not a number\n".utf8))) else {
            return XCTFail("bad COPY data should fail")
        }
        XCTAssertEqual(try run(c, .query("SELECT count(*) FROM t", [])).get().first?.rows, [["1003"]])
        XCTAssertEqual(c.state, .ready)
    }

    func testCommandsCompleteInQueueOrder() throws {
        let pg = try server()
        let loop = EventLoop()
        let c = try connected(loop, pg.socketConninfo(pg.freshDatabase()))
        defer { c.close() }
        var order: [Int] = []
        for i in 0..<50 { c.run(.query("SELECT $1::int", [String(i)])) { r in order.append(Int(try! r.get()[0].rows[0][0]!)!) } }
        XCTAssertTrue(loop.run(until: { order.count == 50 }, timeout: 15))
        XCTAssertEqual(order, Array(0..<50))
    }

    func testURIWithPasswordOverTCPAndAWrongPassword() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let c = try connected(loop, pg.tcpURL(db), password: pg.password)
        XCTAssertEqual(try run(c, .query("SELECT current_database()", [])).get().first?.rows, [[db]])
        c.close()

        let bad = PGConnection(loop: loop)
        var result: Result<Void, StoreError>?
        bad.connect(conninfo: pg.tcpURL(db), password: "wrong", timeout: 10) { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 15))
        guard case .failure(.unavailable(let why))? = result else { return XCTFail("a wrong password should fail") }
        XCTAssertTrue(why.contains("password"), why)
        XCTAssertFalse(why.contains("wrong"), "the password is never in a message: \(why)")
    }

    func testAServerSideDisconnectFailsWhatIsQueued() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let c = try connected(loop, pg.socketConninfo(db))
        var failure: String?
        c.onFailure = { failure = $0 }
        let killer = try connected(loop, pg.socketConninfo(db))
        defer { killer.close() }
        var slow: Result<[PGRows], StoreError>?
        var queued: Result<[PGRows], StoreError>?
        c.run(.query("SELECT pg_sleep(30)", [])) { slow = $0 }
        c.run(.query("SELECT 1", [])) { queued = $0 }
        _ = try run(killer, .query("SELECT pg_sleep(0.2), pg_terminate_backend($1::int)", [String(c.backendPID)])).get()
        XCTAssertTrue(loop.run(until: { slow != nil && queued != nil }, timeout: 15))
        guard case .failure(.unavailable)? = slow, case .failure(.unavailable)? = queued else {
            return XCTFail("in flight and queued commands fail as unavailable: \(String(describing: slow)) \(String(describing: queued))")
        }
        XCTAssertNotNil(failure)
        guard case .failed = c.state else { return XCTFail("state \(c.state)") }
        guard case .failure(.unavailable) = try run(c, .query("SELECT 1", [])) else { return XCTFail("not ready") }
    }

    func testAnUnreachableServerFailsTheConnect() throws {
        let pg = try server()
        let loop = EventLoop()
        let c = PGConnection(loop: loop)
        var result: Result<Void, StoreError>?
        // Port 1 on loopback: nothing listens there.
        c.connect(conninfo: "host=127.0.0.1 port=1 user=vigil dbname=x", password: nil, timeout: 10) { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 15))
        guard case .failure(.unavailable)? = result else { return XCTFail("\(String(describing: result))") }
        _ = pg
    }

    func testNotificationsArriveOnTheirOwnConnection() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let listener = try connected(loop, pg.socketConninfo(db))
        defer { listener.close() }
        var got: [String] = []
        listener.onNotify = { channel, payload in got.append(channel + ":" + payload) }
        _ = try run(listener, .query("LISTEN vigil_test", [])).get()
        let other = try connected(loop, pg.socketConninfo(db))
        defer { other.close() }
        _ = try run(other, .query("SELECT pg_notify('vigil_test', $1)", ["hello"])).get()
        XCTAssertTrue(loop.run(until: { !got.isEmpty }, timeout: 15))
        XCTAssertEqual(got, ["vigil_test:hello"])
    }
}
