// Schema versions: a new database gets every step; older databases, written
// the way the program of their version wrote them, are brought up to date
// and read back; a newer one is refused untouched.
import XCTest
import Reactor
@testable import CollectorStore

final class StoreMigrationTests: XCTestCase {
    func testMigrationsFromEmpty() throws {
        let dir = TempDir()
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path + "/data"), now: 42)
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        let tables = try sql(store) { db in
            var names: [String] = []
            let s = try db.statement("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            defer { s.reset() }
            while try s.step() { names.append(s.text(0)) }
            return names
        }
        for t in ["agent_states", "agent_status", "agents", "audit", "batch_sequences", "config_overrides", "events",
                  "measurements", "monitor_definitions", "monitor_runs", "pattern_sets", "patterns", "project_keys",
                  "projects", "schema_migrations", "series"] {
            XCTAssertTrue(tables.contains(t), "missing table \(t)")
        }
        XCTAssertEqual(try sql(store) { try $0.scalar("SELECT applied_ms FROM schema_migrations WHERE version = 1") }, 42)
        close(store)

        // Reopening applies nothing new.
        let again = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path + "/data"), now: 99)
        XCTAssertEqual(try sql(again) { try $0.scalar("SELECT count(*) FROM schema_migrations") }, Int64(Migrations.all.count))
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
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        XCTAssertEqual(try indexes(store, "measurements"), ["measurements_ts_series"])
        let rows = try wait(loop) { store.measurements(MeasurementQuery(agent: "a1", check: "c"), completion: $0) }
        XCTAssertEqual(rows.map(\.measurement.ts), [2000, 1000], "newest first, through the new index")
        XCTAssertEqual(rows.map(\.measurement.sumUs), [4_000, 3_000])
        close(store)
    }

    /// Agents registered before identities existed keep their project: the
    /// step that adds identities binds each to its project with no key, so
    /// its next handshake enrolls the key it proves, and only in its project.
    func testAgentsFromBeforeIdentitiesKeepTheirProject() throws {
        let dir = TempDir()
        let path = dir.path + "/vigil.db"
        let step = try XCTUnwrap(Migrations.all.first { $0.name == "agent identities" }?.version)
        do {
            let old = try SQLiteConnection(path: path)
            try Migrations.migrate(old, now: 1, upTo: step - 1)
            try old.run("INSERT INTO projects(name, created_ms) VALUES ('a', 1), ('b', 1)")
            try old.run("""
                INSERT INTO agents(id, project_id, state, state_since_ms, first_seen_ms, last_seen_ms)
                VALUES ('x', 1, 'not_visible', 1, 1, 1)
                """)
            old.close()
        }
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path), now: 50_000)
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        XCTAssertEqual(try wait(loop) { store.agentIdentity(id: "x", completion: $0) }, nil, "no key yet")
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "x", projectId: 2, publicKey: "k", at: 2, completion: $0) }, .otherProject)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "x", projectId: 1, publicKey: "k", at: 2, completion: $0) }, .enrolled)
        close(store)
    }

    /// A version-3 database with rows exactly as the version-3 program wrote
    /// them (its statements, REAL milliseconds computed from the agent's
    /// microseconds, and `meta` JSON), read back right after migrating.
    func testVersion3DatabaseAsWrittenThenReadsBackInMicroseconds() throws {
        let dir = TempDir()
        let path = dir.path + "/vigil.db"
        func ms(_ us: UInt64) -> Double { Double(us) / 1000 }      // the version-3 translator's conversion
        do {
            let old = try SQLiteConnection(path: path)
            try Migrations.migrate(old, now: 1, upTo: 3)
            try old.run("INSERT INTO projects(name, created_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [.text("demo"), .integer(1_000)])
            try old.run("INSERT INTO project_keys(project_id, secret, created_ms) VALUES (?, ?, ?)", [.integer(1), .text("s-1"), .integer(1_000)])
            try old.run("""
                INSERT INTO agents(id, project_id, name, hostname, version, boot_id, state, state_since_ms, first_seen_ms, last_seen_ms)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'not_visible', ?7, ?7, ?7)
                """, [.text("a1"), .integer(1), .text("a1-name"), .text("host"), .text("1.0"), .text("boot-1"), .integer(2_000)])
            try old.run("INSERT INTO series(project_id, agent_id, monitor, check_name, source) VALUES (?, ?, ?, ?, ?)",
                        [.integer(1), .text("a1"), .text("shop"), .text("checkout"), .text("ipa")])
            let m = try old.statement("""
                INSERT INTO measurements(series_id, ts_ms, count, sum_ms, min_ms, max_ms, p50_ms, p95_ms, p99_ms, meta)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            // (ts, µs values, meta as JSON.object(…).serialized produced it)
            let rows: [(Int64, [UInt64], String?)] = [
                (10_000, [1_234_567, 1, 999_999_999, 12_345, 67_891, 123_456_789], "{\"window_ms\":10000}"),
                (20_000, [42_000, 1_000, 20_000, 4_100, 19_000, 19_999], "{\"window_ms\":10000,\"errors\":2}"),
                (20_000, [7, 1, 3, 2, 3, 3], "{\"window_ms\":5000}"),          // same time: insertion order breaks the tie
                (30_000, [5, 5, 5, 5, 5, 5], nil),
            ]
            for (ts, us, meta) in rows {
                m.bind(1, Int64(1)); m.bind(2, ts); m.bind(3, Int64(7))
                for (i, v) in us.enumerated() { m.bind(Int32(4 + i), ms(v)) }
                m.bind(10, meta)
                try m.run()
                m.reset()
            }
            let e = try old.statement("""
                INSERT INTO events(ts_ms, project_id, agent_id, monitor, check_name, method, host, path, duration_ms, meta)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for (ts, us, meta) in [(Int64(11_000), UInt64(12_500), "{\"status\":200}" as String?), (12_000, 3, nil)] {
                e.bind(1, ts); e.bind(2, Int64(1)); e.bind(3, "a1"); e.bind(4, "shop"); e.bind(5, "checkout")
                e.bind(6, "GET"); e.bind(7, "shop.example"); e.bind(8, "/cart/:id"); e.bind(9, ms(us)); e.bind(10, meta)
                try e.run()
                e.reset()
            }
            try old.run("""
                INSERT INTO monitor_runs(ts_ms, project_id, agent_id, monitor, check_name, ok, duration_ms, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [.integer(13_000), .integer(1), .text("a1"), .text("7"), .text(""), .integer(1), .real(ms(1_100)),
                      .text("{\"run_id\":1,\"status\":\"ok\",\"phases_ms\":{\"connect\":1.1}}")])
            try old.run("INSERT INTO batch_sequences(agent_id, boot_id, high_seq, gaps, batches, updated_ms) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                        [.text("a1"), .text("boot-1"), .integer(3), .text("0-1"), .integer(5_000)])
            old.close()
        }

        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path), now: 50_000)
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        XCTAssertEqual(try sql(store) { try $0.scalar("SELECT applied_ms FROM schema_migrations WHERE version = 4") }, 50_000)
        XCTAssertEqual(try columns(store, "patterns").last, "exclude", "step 5")
        XCTAssertEqual(Array(try columns(store, "measurements").prefix(11)),
                       ["series_id", "ts_ms", "window_ms", "count", "errors", "sum_us", "min_us", "max_us", "p50_us", "p95_us", "p99_us"])
        XCTAssertFalse(try columns(store, "events").contains("meta"))
        XCTAssertTrue(try columns(store, "monitor_runs").contains("duration_us"))
        XCTAssertEqual(try indexes(store, "measurements"), ["measurements_ts_series"])
        XCTAssertEqual(try indexes(store, "events"), ["events_agent_ts", "events_ts"])
        XCTAssertEqual(try indexes(store, "monitor_runs"), ["monitor_runs_agent_monitor", "monitor_runs_project_ts", "monitor_runs_ts"])

        func row(_ ts: Int64, _ us: [Int64], window: Int64, errors: Int64 = 0) -> MeasurementRow {
            MeasurementRow(ts: ts, windowMs: window, monitor: "shop", check: "checkout", source: "ipa", count: 7, errors: errors,
                           sumUs: us[0], minUs: us[1], maxUs: us[2], p50Us: us[3], p95Us: us[4], p99Us: us[5])
        }
        let measurements = try wait(loop) { store.measurements(MeasurementQuery(agent: "a1"), completion: $0) }
        XCTAssertEqual(measurements.map(\.measurement), [
            row(30_000, [5, 5, 5, 5, 5, 5], window: 0),
            row(20_000, [7, 1, 3, 2, 3, 3], window: 5_000),
            row(20_000, [42_000, 1_000, 20_000, 4_100, 19_000, 19_999], window: 10_000, errors: 2),
            row(10_000, [1_234_567, 1, 999_999_999, 12_345, 67_891, 123_456_789], window: 10_000),
        ], "every microsecond back, newest first, ties in insertion order")
        let events = try wait(loop) { store.events(EventQuery(), completion: $0) }
        XCTAssertEqual(events.map(\.event), [
            RawEvent(ts: 12_000, monitor: "shop", check: "checkout", method: "GET", host: "shop.example", path: "/cart/:id",
                     status: 0, durationUs: 3),
            RawEvent(ts: 11_000, monitor: "shop", check: "checkout", method: "GET", host: "shop.example", path: "/cart/:id",
                     status: 200, durationUs: 12_500),
        ])
        XCTAssertEqual(events.map(\.id), [2, 1], "ids kept")
        let runs = try wait(loop) { store.monitorRuns(MonitorRunQuery(), completion: $0) }
        XCTAssertEqual(runs.map(\.run), [MonitorRun(ts: 13_000, monitor: "7", check: "", ok: true, durationUs: 1_100,
                                                    detail: "{\"run_id\":1,\"status\":\"ok\",\"phases_ms\":{\"connect\":1.1}}")])
        XCTAssertEqual(try wait(loop) { store.lastMonitorRuns(project: "demo", agent: "a1", completion: $0) }, ["7": 13_000])
        XCTAssertEqual(try wait(loop) { store.handshakeKeys(project: "demo", completion: $0) }.keys.map(\.secret), ["s-1"])

        // The migrated database takes new writes, and what it recorded as
        // stored still counts: batch 3 of boot-1 is a duplicate, 1 is not.
        func batch(_ seq: Int64) -> Batch {
            Batch(projectId: 1, agentId: "a1", bootId: "boot-1", sequence: seq, receivedAt: 60_000,
                  measurements: [row(40_000 + seq, [1, 1, 1, 1, 1, 1], window: 10_000)])
        }
        XCTAssertEqual(try wait(loop) { store.submitBatch(batch(3), completion: $0) }, .duplicate)
        XCTAssertEqual(try wait(loop) { store.submitBatch(batch(1), completion: $0) }, .stored(rows: 1))
        XCTAssertEqual(try wait(loop) { store.measurements(MeasurementQuery(limit: 1), completion: $0) }.map(\.measurement.ts), [40_001])
        close(store)
    }

    /// A version-5 database's measurements and events read back with no
    /// outcomes and no error class after the step that adds them.
    func testVersion5RowsReadBackWithoutOutcomes() throws {
        let dir = TempDir()
        let path = dir.path + "/vigil.db"
        do {
            let old = try SQLiteConnection(path: path)
            try Migrations.migrate(old, now: 1, upTo: 5)
            try old.exec("""
                INSERT INTO projects(id, name, created_ms) VALUES (1, 'demo', 1);
                INSERT INTO series(id, project_id, agent_id, monitor, check_name, source) VALUES (7, 1, 'a1', 'm', 'c', 'ipa');
                INSERT INTO measurements(series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us)
                    VALUES (7, 1000, 10000, 3, 1, 30, 10, 10, 10, 10, 10);
                INSERT INTO events(ts_ms, project_id, agent_id, monitor, check_name, method, host, path, status, duration_us)
                    VALUES (1001, 1, 'a1', 'm', 'c', 'GET', 'h', '/', 503, 12);
                """)
            old.close()
        }
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path), now: 5)
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        let rows = try wait(loop) { store.measurements(MeasurementQuery(agent: "a1"), completion: $0) }
        XCTAssertEqual(rows.map(\.measurement.count), [3])
        XCTAssertEqual(rows.map(\.measurement.outcomes), [Outcomes()])
        let events = try wait(loop) { store.events(EventQuery(agent: "a1"), completion: $0) }
        XCTAssertEqual(events.map(\.event.status), [503])
        XCTAssertEqual(events.map(\.event.errorClass), [""])
        close(store)
    }

    /// A database from before the histogram step keeps its rows (read back
    /// without a histogram); rows stored after it keep theirs.
    func testDatabaseBeforeHistogramsKeepsItsRowsWithoutOne() throws {
        let step = try XCTUnwrap(Migrations.all.first { $0.name == "measurement histograms" }).version
        let dir = TempDir()
        do {
            let old = try SQLiteConnection(path: dir.path + "/vigil.db")
            try Migrations.migrate(old, now: 1, upTo: step - 1)
            try old.exec("""
                INSERT INTO projects(id, name, created_ms) VALUES (1, 'demo', 1);
                INSERT INTO series(id, project_id, agent_id, monitor, check_name, source) VALUES (7, 1, 'a1', 'm', 'c', 'ipa');
                INSERT INTO measurements(series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us)
                    VALUES (7, 1000, 10000, 3, 0, 3000, 1000, 1000, 1000, 1000, 1000);
                """)
            old.close()
        }
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path), now: 5)
        XCTAssertEqual(store.schemaVersion, Migrations.latest)
        XCTAssertTrue(try columns(store, "measurements").contains("histogram"))
        let row = MeasurementRow(ts: 2000, windowMs: 10_000, monitor: "m", check: "c", source: "ipa", count: 1, sumUs: 5,
                                 minUs: 5, maxUs: 5, p50Us: 5, p95Us: 5, p99Us: 5, histogram: [0, 1, 82, 1])
        let b = Batch(projectId: 1, agentId: "a1", bootId: "b", sequence: 1, receivedAt: 2, measurements: [row])
        XCTAssertEqual(try wait(loop) { store.submitBatch(b, completion: $0) }, .stored(rows: 1))
        let rows = try wait(loop) { store.measurements(MeasurementQuery(agent: "a1"), completion: $0) }
        XCTAssertEqual(rows.map(\.measurement.histogram), [[0, 1, 82, 1], nil])
        close(store)
    }

    func testNewerSchemaIsRefusedUntouched() throws {
        let dir = TempDir()
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))
        try sql(store) { try $0.exec("PRAGMA user_version = 999") }
        close(store)
        XCTAssertThrowsError(try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))) { e in
            XCTAssertEqual(e as? StoreError, .schemaTooNew(found: 999, known: Migrations.latest))
            XCTAssertEqual("\(e)", "database schema version 999 is newer than this program's \(Migrations.latest)")
        }
        let db = try SQLiteConnection(path: dir.path + "/vigil.db", readOnly: true)
        XCTAssertEqual(try db.scalar("PRAGMA user_version"), 999, "untouched")
        db.close()
    }

    private func columns(_ store: SQLiteStore, _ table: String) throws -> [String] {
        try sql(store) { db in
            var names: [String] = []
            let s = try db.statement("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            defer { s.reset() }
            s.bind(1, table)
            while try s.step() { names.append(s.text(0)) }
            return names
        }
    }

    private func indexes(_ store: SQLiteStore, _ table: String) throws -> [String] {
        try sql(store) { db in
            var names: [String] = []
            let s = try db.statement("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name")
            defer { s.reset() }
            s.bind(1, table)
            while try s.step() { names.append(s.text(0)) }
            return names
        }
    }
}
