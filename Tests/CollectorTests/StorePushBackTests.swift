// Push-back, black-box: a real collector whose store cannot keep up (its
// SQLite database write-locked by another process, a small pending-rows
// bound) keeps the sessions whose batches it refuses, stops reading them,
// keeps them alive past the idle timeout with Pings, and stores and
// acknowledges every batch exactly once after the store drained. The
// paused-sessions gauge comes back to 0 however a paused session ends:
// read again after the drain, its agent gone, closed by the collector for
// a newer session of its agent, across a configuration reload.
import Foundation
import Glibc
import XCTest
import CPQ
import Wire

final class StorePushBackTests: XCTestCase {
    func testRefusedBatchesPauseTheSessionAndAreStoredOnceAfterTheStoreDrains() throws {
        let c = try CollectorProcess(config: ["store_max_pending_rows = 1000", "session_idle_timeout_ms = 2000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let clients = try (0..<8).map { i -> WireTestClient in
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("agent-\(i)"))
            XCTAssertNotNil(client.handshake())
            return client
        }

        // The write lock held elsewhere: nothing commits, pending rows grow.
        let lock = try SQLiteWriteLock(path: c.dataDir + "/vigil.db")

        // 8 × 10 batches of 50 rows: 4,000 rows against a bound of 1,000.
        let batches: UInt64 = 10, rows = 50
        for client in clients {
            for seq in 1...batches { client.send(bigBatch(client, seq, rows: rows)) }
        }
        XCTAssertTrue(c.eventually { (c.metric("vigil_sessions_pushed_back") ?? 0) > 0 }, c.log)
        // Three idle timeouts with the store stalled; the clients answer
        // what they read, as agents do.
        let until = Date().addingTimeInterval(6)
        while Date() < until {
            for client in clients { client.read(until: { _ in false }, timeout: 0.02) }
        }
        XCTAssertGreaterThan(c.metric("vigil_sessions_pushed_back") ?? 0, 0, "still paused while the lock is held")
        for client in clients { XCTAssertFalse(client.peerClosed, "\(client.session) kept: \(c.log)") }
        let paused = clients.filter { client in !client.records.contains { if case .ack = $0 { return true }; return false } }
        XCTAssertFalse(paused.isEmpty)
        for client in paused {
            // Pings every quarter of the idle timeout, in place of the
            // silence checks (which would have closed it after 2 s).
            XCTAssertGreaterThanOrEqual(client.session.counters.pingsAnswered, 3, "a paused session is sent Pings")
        }

        try lock.release()   // the lock is gone; the store drains
        for client in clients {
            XCTAssertNotNil(client.waitForRecord(timeout: 30) { $0 == .ack(Ack(sequence: batches)) },
                            "every batch of \(client.session) acknowledged: \(client.records.suffix(3))")
            XCTAssertFalse(client.peerClosed)
            XCTAssertNil(client.peerError)
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_rows_stored_total") == Double(clients.count * Int(batches) * rows) })
        XCTAssertEqual(c.metric("vigil_batches_total{outcome=\"stored\"}"), Double(clients.count) * Double(batches))
        XCTAssertEqual(c.metric("vigil_batches_total{outcome=\"duplicate\"}"), 0)
        XCTAssertEqual(c.metric("vigil_batches_total{outcome=\"failed\"}"), c.metric("vigil_store_failures_total{cause=\"overloaded\"}"),
                       "the only failures are the refusals, each submitted again")
        XCTAssertGreaterThan(c.metric("vigil_store_pushbacks_total") ?? 0, 0)
        XCTAssertGreaterThan(c.metric("vigil_batches_resubmitted_total") ?? 0, 0)
        XCTAssertEqual(c.metric("vigil_sessions_pushed_back"), 0)
        XCTAssertEqual(c.metric("vigil_sessions_closed_total{reason=\"idle_timeout\"}") ?? 0, 0)
        XCTAssertEqual(c.metric("vigil_sessions{phase=\"established\"}"), Double(clients.count))
        XCTAssertTrue(c.log.contains("store over its pending-rows bound"), c.log)
        XCTAssertTrue(c.eventually { c.log.contains("store drained: push-back over") }, c.log)
        XCTAssertTrue(c.log.contains("ended_meanwhile=0"), c.log)
    }
}

extension StorePushBackTests {
    func testThePausedSessionsGaugeReturnsToZeroHoweverAPausedSessionEnds() throws {
        let c = try CollectorProcess(config: ["store_max_pending_rows = 1000", "session_idle_timeout_ms = 2000"])
        defer { c.stop(); c.removeDirectory() }
        var lock: SQLiteWriteLock?
        try pausedSessionsEnding(c, stall: { lock = try SQLiteWriteLock(path: c.dataDir + "/vigil.db") },
                                 drain: { try lock?.release() })
    }

    /// On PostgreSQL a handshake does not wait for the stalled ingest, so a
    /// newer session of a paused one's agent can connect — to the same
    /// collector, or to another collector of the cluster — and the collector
    /// closes the paused one.
    func testThePausedSessionsGaugeReturnsToZeroOnPostgreSQLWhenTheCollectorClosesAPausedSession() throws {
        guard let pg = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        let db = pg.freshDatabase()
        let common = ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))"]
        let c = try CollectorProcess(config: common + ["collector_id = a", "store_max_pending_rows = 1000", "session_idle_timeout_ms = 2000"])
        defer { c.stop(); c.removeDirectory() }
        // Another collector of the cluster: the installation's collector key.
        let dirB = CollectorProcess.makeDirectory()
        let dataB = dirB.appendingPathComponent("data").path
        try FileManager.default.createDirectory(atPath: dataB, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: c.dataDir + "/collector_key", toPath: dataB + "/collector_key")
        let other = try CollectorProcess(directory: dirB, config: common + ["collector_id = b"])
        defer { other.stop(); other.removeDirectory() }
        var lock: PGTableLock?
        try pausedSessionsEnding(c, sameCollector: true, elsewhere: other, stall: { lock = try PGTableLock(conninfo: pg.socketConninfo(db), table: "measurements") },
                                 drain: { lock?.release() })
    }

    /// Sessions paused by a stalled store end in every way they can; the
    /// paused-sessions gauge follows each and is 0 once the store drained.
    /// A filler session fills the pending-rows bound first, so every
    /// other session's first batch is refused and it is paused.
    private func pausedSessionsEnding(_ c: CollectorProcess, sameCollector: Bool = false, elsewhere: CollectorProcess? = nil,
                                      stall: () throws -> Void, drain: () throws -> Void) throws {
        let key = c.createKey(project: "acme")
        let filler = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("filler"))
        XCTAssertNotNil(filler.handshake())
        let clients = try (0..<5).map { i -> WireTestClient in
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("agent-\(i)"))
            XCTAssertNotNil(client.handshake())
            return client
        }
        try stall()
        let gauge = { c.metric("vigil_sessions_pushed_back") ?? -1 }
        let fillerBatches: UInt64 = 25, batches: UInt64 = 10, rows = 50
        for seq in 1...fillerBatches { filler.send(bigBatch(filler, seq, rows: rows)) }
        XCTAssertTrue(c.eventually { gauge() == 1 }, "the filler is paused: \(gauge()) \(c.log)")
        for seq in 1...batches {
            for client in clients { client.send(bigBatch(client, seq, rows: rows)) }
        }
        XCTAssertTrue(c.eventually { gauge() == 6 }, "\(gauge()) \(c.log)")

        // Its agent goes away while paused.
        shutdown(clients[0].fd, Int32(SHUT_RDWR))
        XCTAssertTrue(c.eventually { gauge() == 5 }, "\(gauge())")
        var ended = 1
        var newer: WireTestClient?
        if sameCollector {
            // The collector closes it: a newer session of its agent connected.
            newer = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("agent-\(ended)"))
            XCTAssertNotNil(newer?.handshake())
            XCTAssertTrue(clients[ended].waitForClose(timeout: 5))
            XCTAssertEqual(clients[ended].peerError?.code, .duplicateAgent)
            ended += 1
            XCTAssertTrue(c.eventually { gauge() == Double(6 - ended) }, "\(gauge())")
        }
        var moved: WireTestClient?
        if let elsewhere {
            // Its agent connected to another collector: this one's next heartbeat learns it and closes it.
            moved = try WireTestClient(port: elsewhere.sessionPort, key: key, hello: WireTestClient.hello("agent-\(ended)"))
            XCTAssertNotNil(moved?.handshake())
            XCTAssertTrue(clients[ended].waitForClose(timeout: 5), c.log)
            XCTAssertEqual(clients[ended].peerError?.code, .duplicateAgent)
            XCTAssertEqual(clients[ended].peerError?.message, "the agent connected to another collector")
            ended += 1
            XCTAssertTrue(c.eventually { gauge() == Double(6 - ended) }, "\(gauge())")
        }
        // A configuration reload while paused leaves the paused sessions as they are.
        let base = try String(contentsOfFile: c.configPath, encoding: .utf8)
        try base.replacingOccurrences(of: "session_idle_timeout_ms = 2000", with: "session_idle_timeout_ms = 3000")
            .write(toFile: c.configPath, atomically: true, encoding: .utf8)
        c.signal(SIGHUP)
        XCTAssertTrue(c.waitForLog("configuration reloaded"), c.log)
        let kept = [filler] + clients[ended...]
        for client in kept { client.read(until: { _ in false }, timeout: 0.3) }
        XCTAssertEqual(gauge(), Double(6 - ended))

        // The rest are read again once the store drains, and every batch of theirs is stored once.
        try drain()
        for (client, last) in kept.map({ ($0, $0 === filler ? fillerBatches : batches) }) {
            XCTAssertNotNil(client.waitForRecord(timeout: 30) { $0 == .ack(Ack(sequence: last)) },
                            "every batch of \(client.session) acknowledged: \(client.records.suffix(3))")
            XCTAssertFalse(client.peerClosed)
        }
        XCTAssertTrue(c.eventually { gauge() == 0 }, "\(gauge()) \(c.log)")
        XCTAssertTrue(c.eventually { c.log.contains("store drained: push-back over") }, c.log)
        XCTAssertTrue(c.log.contains("sessions_paused=6 read_again=\(6 - ended) ended_meanwhile=\(ended)"), c.log)
        // Held batches of the sessions that ended are dropped, not stored
        // (their agent sends them again); each batch stored is stored once.
        let kinds = ["stored", "duplicate", "failed"].map { "vigil_batches_total{outcome=\"\($0)\"}" }
        XCTAssertTrue(c.eventually { c.metric("vigil_rows_stored_total") == (c.metric(kinds[0]) ?? 0) * Double(rows) })
        let stored = try XCTUnwrap(c.metric(kinds[0]))
        XCTAssertGreaterThanOrEqual(stored, Double(fillerBatches) + Double(5 - ended) * Double(batches))
        XCTAssertLessThan(stored, Double(fillerBatches) + 5 * Double(batches))
        XCTAssertEqual(c.metric(kinds[1]), 0)
        // Refusals of batches, and of other writes (the ended sessions' states).
        let refused = try XCTUnwrap(c.metric(kinds[2]))
        XCTAssertGreaterThan(refused, 0)
        XCTAssertLessThanOrEqual(refused, try XCTUnwrap(c.metric("vigil_store_failures_total{cause=\"overloaded\"}")))
        let resubmitted = try XCTUnwrap(c.metric("vigil_batches_resubmitted_total"))
        XCTAssertGreaterThan(resubmitted, 0)
        XCTAssertLessThan(resubmitted, refused, "the held batches of the sessions that ended are not submitted again")
        XCTAssertEqual(c.metric("vigil_sessions{phase=\"established\"}"), Double(kept.count + (newer == nil ? 0 : 1)))
    }
}

/// Test support: a table of a PostgreSQL database locked (ACCESS EXCLUSIVE,
/// in an open transaction on a connection of the test's) until `release`:
/// writes to it wait, the rest of the database works.
private final class PGTableLock {
    private var conn: OpaquePointer?

    init(conninfo: String, table: String) throws {
        conn = PQconnectdb(conninfo)
        guard PQstatus(conn) == CONNECTION_OK else {
            throw NSError(domain: "PGTableLock", code: 1, userInfo: [NSLocalizedDescriptionKey: String(cString: PQerrorMessage(conn))])
        }
        let r = PQexec(conn, "BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE")
        defer { PQclear(r) }
        guard PQresultStatus(r) == PGRES_COMMAND_OK else {
            throw NSError(domain: "PGTableLock", code: 2, userInfo: [NSLocalizedDescriptionKey: String(cString: PQresultErrorMessage(r))])
        }
    }

    func release() {
        guard let c = conn else { return }
        PQclear(PQexec(c, "ROLLBACK"))
        PQfinish(c)
        conn = nil
    }

    deinit { release() }
}

/// One DataBatch of `rows` aggregates (one series, consecutive windows).
private func bigBatch(_ client: WireTestClient, _ sequence: UInt64, rows: Int) -> [Record] {
    let m = try! client.session.stringRef("shop"), ch = try! client.session.stringRef("GET /cart"), s = try! client.session.stringRef("ipa")
    let start: UInt64 = 1_700_000_000_000 + sequence * UInt64(rows) * 10_000
    return [.dataBatch(DataBatch(sequence: sequence, items: (0..<UInt64(rows)).map { i in
        .aggregate(Aggregate(windowStartMs: start + i * 10_000, windowLengthMs: 10_000, monitor: m, check: ch, source: s,
                             count: 10, sumUs: 1_500_000, minUs: 20_000, maxUs: 400_000,
                             p50Us: 100_000, p95Us: 300_000, p99Us: 390_000))
    }))]
}
