import XCTest
import Glibc
import Reactor
import CollectorStore
@testable import LoadGen

/// `vigil-load verify` on databases with the collector's schema, filled by
/// hand so each failure is known.
final class VerifierTests: XCTestCase {
    var dirs: [String] = []

    override func tearDown() {
        for d in dirs {
            for f in ["vigil.db", "vigil.db-wal", "vigil.db-shm"] { unlink(d + "/" + f) }
            rmdir(d)
        }
        super.tearDown()
    }

    /// A database with the collector's schema (made by SQLiteStore).
    func database() throws -> SQLiteConnection {
        var template = Array("/tmp/vigil-load-verify-XXXXXX".utf8CString)
        let dir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        dirs.append(dir)
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir))
        var closed = false
        store.close { closed = true }
        XCTAssertTrue(loop.run(until: { closed }, timeout: 20))
        return try SQLiteConnection(path: dir + "/vigil.db")
    }

    /// Stores aggregate `item` of batch `seq` of `agent` (window base + seq).
    func store(_ db: SQLiteConnection, agent: String, seq: Int64, item: Int, base: Int64 = 1_000_000, count: Int64 = 5) throws {
        try db.run("INSERT OR IGNORE INTO series(project_id, agent_id, monitor, check_name, source) VALUES (1, ?, 'load', ?, 'load')",
                   [.text(agent), .text("c\(item)")])
        let series = try db.scalar("SELECT id FROM series WHERE agent_id = ? AND check_name = ?", [.text(agent), .text("c\(item)")])!
        try db.run("INSERT INTO measurements(series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us) VALUES (?, ?, 1000, ?, 0, 1, 1, 1, 1, 1, 1)",
                   [.integer(series), .integer(base + seq), .integer(count)])
    }

    func ledger(_ acks: [String: [AckedRange]], items: Int = 2, collectors: Int = 1) -> LedgerContents {
        LedgerContents(header: LedgerHeader(bootID: "b", instance: 1, baseMs: 1_000_000, items: items, prefix: "load",
                                            collectors: (0..<collectors).map { "127.0.0.1:\(6600 + $0)" }),
                       acks: acks, complete: true)
    }

    func testEverythingAcknowledgedIsThereOnce() throws {
        let db = try database()
        defer { db.close() }
        for seq in 1...3 { for item in 0..<2 { try store(db, agent: "load-0", seq: Int64(seq), item: item) } }
        try store(db, agent: "load-0", seq: 4, item: 0)   // in flight at the end: stored, never acked
        let (s, ok) = try Verifier.check(ledger(["load-0": [AckedRange(from: 1, to: 3, records: 6, collector: 0)]]), [db])
        XCTAssertTrue(ok)
        XCTAssertEqual(s["acked_records"], "6")
        XCTAssertEqual(s["lost_records"], "0")
        XCTAssertEqual(s["duplicate_rows"], "0")
        XCTAssertEqual(s["stored_unacked_batches"], "1")
        XCTAssertEqual(s["ok"], "1")
    }

    func testAMissingAggregateIsLostAndADoubleRowIsADuplicate() throws {
        let db = try database()
        defer { db.close() }
        try store(db, agent: "load-0", seq: 1, item: 0)
        try store(db, agent: "load-0", seq: 1, item: 1)
        try store(db, agent: "load-0", seq: 2, item: 0)        // item 1 of batch 2 missing
        try store(db, agent: "load-0", seq: 1, item: 0)        // batch 1 item 0 twice
        try store(db, agent: "real-agent", seq: 7, item: 0, count: 40)
        try store(db, agent: "real-agent", seq: 8, item: 0, count: 2)
        let (s, ok) = try Verifier.check(ledger(["load-0": [AckedRange(from: 1, to: 2, records: 4, collector: 0)]]), [db])
        XCTAssertFalse(ok)
        XCTAssertEqual(s["lost_batches"], "1")
        XCTAssertEqual(s["lost_records"], "1")
        XCTAssertEqual(s["duplicate_rows"], "1")
        XCTAssertEqual(s["duplicate_rows_all"], "1")
        XCTAssertEqual(s["other_agent_rows"], "2")
        XCTAssertEqual(s["other_agent_records"], "42")
    }

    func testBatchesAreLookedUpInTheDatabaseOfTheCollectorThatAcknowledgedThem() throws {
        let a = try database(), b = try database()
        defer { a.close(); b.close() }
        // Batch 1 acked by collector 0; batch 2 committed by 0 (its ack
        // lost to a kill) and re-sent to collector 1, which acked it.
        for item in 0..<2 {
            try store(a, agent: "load-0", seq: 1, item: item)
            try store(a, agent: "load-0", seq: 2, item: item)
            try store(b, agent: "load-0", seq: 2, item: item)
            try store(b, agent: "real", seq: 5, item: item, count: 10)
            try store(a, agent: "real", seq: 5, item: item, count: 10)   // the same aggregate in both
        }
        let acks = ["load-0": [AckedRange(from: 1, to: 1, records: 2, collector: 0), AckedRange(from: 2, to: 2, records: 2, collector: 1)]]
        let (s, ok) = try Verifier.check(ledger(acks, collectors: 2), [a, b])
        XCTAssertTrue(ok)
        XCTAssertEqual(s["cross_collector_batches"], "1")
        XCTAssertEqual(s["other_agent_records"], "20", "counted once across databases")
        // The same ledger checked against the wrong order loses batch 1.
        let (swapped, swappedOK) = try Verifier.check(ledger(acks, collectors: 2), [b, a])
        XCTAssertFalse(swappedOK)
        XCTAssertEqual(swapped["lost_records"], "2")
    }

    func testASharedDatabaseHoldsWhatEveryCollectorAcknowledgedOnce() throws {
        let db = try database()
        defer { db.close() }
        // Three collectors on one store: batch 1 acked by 0, 2 by 2 (after a
        // failover), 3 by 1; the batch re-sent after a failover is stored once.
        for seq in 1...3 { for item in 0..<2 { try store(db, agent: "load-0", seq: Int64(seq), item: item) } }
        let acks = ["load-0": [AckedRange(from: 1, to: 1, records: 2, collector: 0), AckedRange(from: 2, to: 2, records: 2, collector: 2),
                               AckedRange(from: 3, to: 3, records: 2, collector: 1)]]
        let (s, ok) = try Verifier.check(ledger(acks, collectors: 3), [db], shared: true)
        XCTAssertTrue(ok)
        XCTAssertEqual(s["lost_records"], "0")
        XCTAssertEqual(s["cross_collector_batches"], "0")
        // Without `shared` the batches of collectors 1 and 2 are looked for in databases that are not there.
        let (_, separateOK) = try Verifier.check(ledger(acks, collectors: 3), [db])
        XCTAssertFalse(separateOK)
        // A batch stored twice in the shared database is a duplicate.
        try store(db, agent: "load-0", seq: 2, item: 0)
        let (d, dupOK) = try Verifier.check(ledger(acks, collectors: 3), [db], shared: true)
        XCTAssertFalse(dupOK)
        XCTAssertEqual(d["duplicate_rows"], "1")
    }
}
