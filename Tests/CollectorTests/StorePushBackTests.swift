// Push-back, black-box: a real collector whose store cannot keep up (its
// SQLite database write-locked by another process, a small pending-rows
// bound) keeps the sessions whose batches it refuses, stops reading them,
// keeps them alive past the idle timeout with Pings, and stores and
// acknowledges every batch exactly once after the store drained.
import Foundation
import Glibc
import XCTest
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
