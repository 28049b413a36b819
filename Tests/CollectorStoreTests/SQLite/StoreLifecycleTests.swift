// SQLiteStore's life: files and modes, opening failures, closing, WAL
// checkpoints and the statement cache. Closing's contract (queued work
// first, refusals after) is in the conformance suite.
import XCTest
import Glibc
import Reactor
@testable import CollectorStore

final class StoreLifecycleTests: XCTestCase {
    func testFilesAndModes() throws {
        let dir = TempDir()
        let loop = EventLoop()
        let data = dir.path + "/data"
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: data), now: 42)
        XCTAssertEqual(try sql(store) { try $0.scalarText("PRAGMA journal_mode") }, "wal")
        XCTAssertEqual(try sql(store) { try $0.scalar("PRAGMA synchronous") }, 2, "FULL")
        var st = stat()
        XCTAssertEqual(stat(data, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(stat(store.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "the database holds key secrets")
        close(store)
        chmod(store.path, 0o644)

        let again = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: data), now: 99)
        XCTAssertEqual(stat(again.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "tightened on open")
        close(again)
    }

    func testUnusableDataDirectory() {
        let loop = EventLoop()
        XCTAssertThrowsError(try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: "/proc/vigil-no"))) { e in
            guard case .unavailable(let why)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("mkdir(/proc/vigil-no)"), why)
        }
    }

    func testCloseFoldsTheWALIntoTheDatabase() throws {
        let f = try StoreFixture(self)
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(1)]), completion: $0) },
                       .stored(rows: 1))
        XCTAssertFalse(f.store.isClosed)
        close(f.store)
        XCTAssertTrue(f.store.isClosed)
        var st = stat()
        XCTAssertTrue(stat(f.store.path + "-wal", &st) != 0 || st.st_size == 0, "nothing left in a WAL")
        XCTAssertEqual(try f.committedCount("measurements"), 1)
    }

    func testCheckpointRunsPastTheThreshold() throws {
        let f = try StoreFixture(self) { $0.checkpointPages = 4 }
        for seq in 0..<20 {
            let ms = (0..<50).map { measurement(Int64($0), check: "c\($0)") }
            _ = try wait(f.loop) { f.store.submitBatch(f.batch(seq: Int64(seq), measurements: ms), completion: $0) }
        }
        XCTAssertTrue(f.loop.run(until: { f.store.stats.checkpoints > 0 }, timeout: 5))
        XCTAssertGreaterThan(f.store.stats.checkpointMicros.count, 0)
        close(f.store)
    }

    func testCheckpointBlockedByAReaderDoesNotStarveWrites() throws {
        let f = try StoreFixture(self) { $0.checkpointPages = 4 }
        let reader = try SQLiteConnection(path: f.store.path, readOnly: true)
        try reader.exec("BEGIN")
        _ = try reader.scalar("SELECT count(*) FROM measurements")      // holds a snapshot: frames cannot be copied
        for seq in 0..<20 {
            let ms = (0..<50).map { measurement(Int64($0), check: "c\($0)") }
            XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: Int64(seq), measurements: ms), completion: $0) },
                           .stored(rows: 50))
        }
        XCTAssertGreaterThan(f.store.stats.checkpoints, 0)
        XCTAssertLessThanOrEqual(f.store.stats.checkpoints, f.store.stats.transactions,
                                 "at most one attempt per threshold of WAL growth, i.e. per transaction here")
        XCTAssertGreaterThan(try f.sql(self) { $0.walPages }, 20 * 4, "the reader kept the WAL from being reset")
        try reader.exec("COMMIT")
        reader.close()
        close(f.store)
    }

    func testStatementsAreCached() throws {
        let f = try StoreFixture(self)
        // Two batches warm the cache: the first of a boot inserts its sequence row, later ones update it.
        for seq in 0..<2 {
            _ = try wait(f.loop) { f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1)]), completion: $0) }
        }
        let n = try f.sql(self) { $0.cachedStatements }
        for seq in 2..<10 {
            _ = try wait(f.loop) { f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1)]), completion: $0) }
        }
        XCTAssertEqual(try f.sql(self) { $0.cachedStatements }, n, "the same statements are reused, not prepared again")
        close(f.store)
    }
}
