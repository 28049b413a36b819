// SQLiteStore's writer thread: SQLite work off the loop, group commit
// under load, a clean stop, and the read deadline.
import XCTest
import Glibc
import Reactor
@testable import CollectorStore

/// The writer thread: SQLite work off the loop, group commit under load,
/// and a clean stop.
final class StoreWriterTests: XCTestCase {
    /// A write that holds the writer for `millis`; completes with true. When
    /// it starts on the writer thread it writes a byte to `started` if given.
    private func slowWrite(_ store: SQLiteStore, millis: UInt32, started: Int32 = -1, done: @escaping (Bool) -> Void) {
        store.enqueueWrite(rows: 1, { _ in
            if started >= 0 { var b: UInt8 = 1; _ = Glibc.write(started, &b, 1) }
            usleep(millis * 1000)
            return true
        }) { done((try? $0.get()) ?? false) }
    }

    func testLoopRunsWhileTheWriterIsBusy() throws {
        let f = try StoreFixture(self)
        var ticks = 0
        let timer = TimerWatcher(loop: f.loop) { _ in ticks += 1 }
        timer.start(after: 0.005, repeat: 0.005)
        var done = false
        slowWrite(f.store, millis: 300) { done = $0 }
        XCTAssertTrue(f.loop.run(until: { done }, timeout: 10))
        timer.stop()
        // On the loop thread the 300 ms write would have allowed one tick.
        XCTAssertGreaterThanOrEqual(ticks, 5, "timers ran while the writer held its transaction")
        close(f.store)
    }

    func testWritesQueuedWhileTheWriterIsBusyShareTheNextCommit() throws {
        let f = try StoreFixture(self)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
        var blockerDone = false
        slowWrite(f.store, millis: 300, started: fds[1]) { blockerDone = $0 }
        f.loop.runOnce(wait: false)                       // hands the blocker over
        var b: UInt8 = 0
        XCTAssertEqual(Glibc.read(fds[0], &b, 1), 1)      // the writer is inside it now
        let before = f.loop.iteration
        let transactionsBefore = f.store.stats.transactions
        var stored = 0
        var seq: Int64 = 0
        while seq < 10 {
            f.store.submitBatch(f.batch(seq: seq, measurements: [measurement(seq)])) { r in
                if case .success(.stored) = r { stored += 1 }
            }
            seq += 1
            if seq % 3 == 0 { f.loop.runOnce(wait: false) }
        }
        XCTAssertGreaterThan(f.loop.iteration, before + 2, "batches were queued in several iterations")
        XCTAssertFalse(blockerDone, "the writer was still busy")
        XCTAssertTrue(f.loop.run(until: { stored == 10 }, timeout: 10))
        XCTAssertTrue(blockerDone)
        let s = f.store.stats
        XCTAssertEqual(s.transactions - transactionsBefore, 2, "the blocker's, then one for the ten batches")
        XCTAssertEqual(s.transactionRows.max, 10, "the ten batches went in one transaction")
        XCTAssertEqual(try f.committedCount("measurements"), 10)
        close(f.store)
    }

    func testDroppedStoreStopsItsWriter() throws {
        let dir = TempDir()
        let loop = EventLoop()
        weak var weakStore: SQLiteStore?
        do {
            let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path), now: 1)
            weakStore = store
            _ = try wait(loop) { store.createKey(project: "demo", secret: "s", at: 1, completion: $0) }
        }
        XCTAssertNil(weakStore, "nothing keeps a store alive once its work is done")
        // The database is closed and unlocked: another connection can write.
        let other = try SQLiteConnection(path: dir.path + "/vigil.db")
        try other.exec("BEGIN IMMEDIATE; COMMIT")
        XCTAssertEqual(try other.scalar("SELECT count(*) FROM project_keys"), 1)
        other.close()
    }
}

/// Reads run on the writer thread: one that scans too long is stopped.
final class StoreReadLimitTests: XCTestCase {
    func testAReadPastItsDeadlineIsStoppedAndWritesGoOn() throws {
        let f = try StoreFixture(self) { $0.limits.maxReadMillis = 1 }
        // 400,000 rows of one series, written directly as one write job.
        try f.sql(self) {
            try $0.exec("""
                INSERT INTO series(id, project_id, agent_id, monitor, check_name, source) VALUES (900, 1, 'busy', 'm', 'c', 'ipa');
                WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 400000)
                INSERT INTO measurements(series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us)
                    SELECT 900, x, 1000, 1, 0, 1, 1, 1, 1, 1, 1 FROM n;
                """)
        }
        // A series with no rows: the scan goes through the whole index.
        let r = try waitResult(f.loop) { f.store.measurements(MeasurementQuery(agent: "a1", check: "nothing"), completion: $0) }
        XCTAssertEqual(r.failureValue, .readTooLong(millis: 1))
        XCTAssertEqual(f.store.stats.readsInterrupted, 1)
        XCTAssertTrue("\(StoreError.readTooLong(millis: 1))".contains("narrow it"))
        // The writer goes on: a write and a bounded read after it succeed.
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(500_000)]), completion: $0) },
                       .stored(rows: 1))
        let newest = try wait(f.loop) { f.store.measurements(MeasurementQuery(limit: 1), completion: $0) }
        XCTAssertEqual(newest.map(\.measurement.ts), [500_000])
        close(f.store)
    }
}

private extension Result {
    var failureValue: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
