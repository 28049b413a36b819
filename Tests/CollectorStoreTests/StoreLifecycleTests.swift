import XCTest
import Glibc
import Reactor
@testable import CollectorStore

final class StoreLifecycleTests: XCTestCase {
    func testMigrationsFromEmpty() throws {
        let dir = TempDir()
        let loop = EventLoop()
        let data = dir.path + "/data"
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: data), now: 42)
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        var tables: [String] = []
        let s = try store.db.statement("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        while try s.step() { tables.append(s.text(0)) }
        s.reset()
        for t in ["agent_states", "agent_status", "agents", "audit", "batch_sequences", "config_overrides", "events",
                  "measurements", "monitor_definitions", "monitor_runs", "pattern_sets", "patterns", "project_keys",
                  "projects", "schema_migrations", "series"] {
            XCTAssertTrue(tables.contains(t), "missing table \(t)")
        }
        XCTAssertEqual(try store.db.scalarText("PRAGMA journal_mode"), "wal")
        XCTAssertEqual(try store.db.scalar("PRAGMA synchronous"), 2, "FULL")
        XCTAssertEqual(try store.db.scalar("SELECT applied_ms FROM schema_migrations WHERE version = 1"), 42)

        var st = stat()
        XCTAssertEqual(stat(data, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(stat(store.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "the database holds key secrets")
        close(store)
        chmod(store.path, 0o644)

        // Reopening applies nothing new.
        let again = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: data), now: 99)
        XCTAssertEqual(try again.db.scalar("SELECT count(*) FROM schema_migrations"), Int64(Migrations.all.count))
        XCTAssertEqual(stat(again.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "tightened on open")
        close(again)
    }

    func testVersion2DatabaseGetsTheTimeOrderedIndexAndKeepsItsRows() throws {
        let dir = TempDir()
        let path = dir.path + "/vigil.db"
        do {
            let old = try SQLiteConnection(path: path)
            try Migrations.migrate(old, now: 1, upTo: 2)
            try old.exec("""
                INSERT INTO projects(id, name, created_ms) VALUES (1, 'demo', 1);
                INSERT INTO series(id, project_id, agent_id, monitor, check_name, source) VALUES (7, 1, 'a1', 'm', 'c', 'ipa');
                INSERT INTO measurements(series_id, ts_ms, count, sum_ms, min_ms, max_ms, p50_ms, p95_ms, p99_ms)
                    VALUES (7, 1000, 3, 3, 1, 1, 1, 1, 1), (7, 2000, 4, 4, 1, 1, 1, 1, 1);
                """)
            old.close()
        }
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path), now: 5)
        XCTAssertEqual(store.schemaVersion, 3)
        var indexes: [String] = []
        let s = try store.db.statement("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'measurements' ORDER BY name")
        while try s.step() { indexes.append(s.text(0)) }
        s.reset()
        XCTAssertEqual(indexes, ["measurements_ts_series"])
        let rows = try wait(loop) { store.measurements(MeasurementQuery(agent: "a1", check: "c"), completion: $0) }
        XCTAssertEqual(rows.map(\.measurement.ts), [2000, 1000], "newest first, through the new index")
        close(store)
    }

    func testNewerSchemaIsRefusedUntouched() throws {
        let dir = TempDir()
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))
        try store.db.exec("PRAGMA user_version = 999")
        close(store)
        XCTAssertThrowsError(try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))) { e in
            XCTAssertEqual(e as? StoreError, .schemaTooNew(found: 999, known: Migrations.latest))
            XCTAssertEqual("\(e)", "database schema version 999 is newer than this program's \(Migrations.latest)")
        }
    }

    func testUnusableDataDirectory() {
        let loop = EventLoop()
        XCTAssertThrowsError(try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: "/proc/vigil-no"))) { e in
            guard case .io(let call, let path, _)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertEqual(call, "mkdir")
            XCTAssertEqual(path, "/proc/vigil-no")
        }
    }

    func testReopenAfterCloseKeepsData() throws {
        let f = try StoreFixture(self)
        let b = f.batch(seq: 0, measurements: [measurement(10_000), measurement(20_000)],
                        statuses: [StatusSnapshot(ts: 20_000, json: "{\"rss\":1}")])
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(b, completion: $0) }, .stored(rows: 3))
        close(f.store)
        XCTAssertTrue(f.store.isClosed)
        var st = stat()
        XCTAssertNotEqual(stat(f.store.path + "-wal", &st) == 0 ? st.st_size : 0, -1)

        let reopened = try SQLiteStore.open(loop: f.loop, options: StoreOptions(dataDirectory: f.dir.path))
        let rows = try wait(f.loop) { reopened.measurements(MeasurementQuery(), completion: $0) }
        XCTAssertEqual(rows.map(\.measurement.ts), [20_000, 10_000])
        XCTAssertEqual(try wait(f.loop) { reopened.agent(id: "a1", completion: $0) }.status, "{\"rss\":1}")
        XCTAssertEqual(try wait(f.loop) { reopened.submitBatch(b, completion: $0) }, .duplicate,
                       "de-duplication survives a restart")
        close(reopened)
    }

    func testClosedStoreRefusesWork() throws {
        let f = try StoreFixture(self)
        close(f.store)
        let r = try waitResult(f.loop) { f.store.submitBatch(f.batch(seq: 1), completion: $0) }
        XCTAssertEqual(r, .failure(.closed))
        let q = try waitResult(f.loop) { f.store.agents(project: nil, completion: $0) }
        XCTAssertEqual(q.map { $0.count }, Result<Int, StoreError>.failure(.closed))
        XCTAssertEqual(f.store.stats.refusedClosed, 2)
        var again = false
        f.store.close { again = true }
        XCTAssertFalse(again)
        XCTAssertTrue(f.loop.run(until: { again }, timeout: 5))
    }

    func testCloseFinishesQueuedWritesFirst() throws {
        let f = try StoreFixture(self)
        var outcomes: [BatchOutcome] = []
        for seq in 0..<5 {
            f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1_000)])) { outcomes.append(try! $0.get()) }
        }
        var closed = false
        f.store.close { closed = true }
        XCTAssertTrue(f.loop.run(until: { closed }, timeout: 20))
        XCTAssertEqual(outcomes.count, 5, "queued writes complete before close does")
        XCTAssertEqual(try f.committedCount("measurements"), 5)
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
        XCTAssertGreaterThan(f.store.db.walPages, 20 * 4, "the reader kept the WAL from being reset")
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
        let n = f.store.db.cachedStatements
        for seq in 2..<10 {
            _ = try wait(f.loop) { f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1)]), completion: $0) }
        }
        XCTAssertEqual(f.store.db.cachedStatements, n, "the same statements are reused, not prepared again")
        close(f.store)
    }
}
