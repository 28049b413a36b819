// PostgreSQLStore's own behaviour beyond the conformance suite, against a
// real server: versioned migrations (applied once, a newer schema refused,
// agents of a database from before identities keep their project),
// daily partitions created ahead and dropped whole by retention, a
// time-ordered and per-series index on every partition, connection
// strings redacted for logs, and the handshake lane (a handshake's store
// work does not wait for the write connection, and the store order holds).
// Every test starts from PGStoreFixture: the process's server, a database
// of its own (a copy of one migrated once, unless it tests the migrations),
// a loop, and stores closed when it ends. Loop thread (the test's).
import XCTest
import Reactor
import CPQ
@testable import CollectorStore

/// What every test here starts with: the test process's server (shared by
/// every suite; the test skips without one), a database of the test's own
/// and a loop. `migrated` databases are copies of one template migrated once
/// per process (`CREATE DATABASE … TEMPLATE`), so a test does not run every
/// migration again; opening a store still checks the version and creates
/// the partitions its `now` needs. A store from `open` is closed when the
/// test ends. Test thread (the loop's).
final class PGStoreFixture {
    let pg: TestPostgreSQL
    let db: String
    let loop = EventLoop()
    private unowned let test: XCTestCase

    init(_ test: XCTestCase, migrated: Bool = true) throws {
        guard let pg = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        self.pg = pg
        self.test = test
        db = migrated ? try PGStoreFixture.copyOfMigrated(pg) : pg.freshDatabase()
    }

    /// A store on the database (the store's clock at `now`), closed when the test ends.
    func open(now: Int64 = 1_000, limits: StoreLimits? = nil) throws -> PostgreSQLStore {
        var options = PostgreSQLOptions(conninfo: pg.socketConninfo(db))
        if let limits { options.limits = limits }
        let store = try PostgreSQLStore.open(loop: loop, options: options, now: now)
        let loop = self.loop
        test.addTeardownBlock { [unowned test] in if !store.isClosed { test.close(store, on: loop) } }
        return store
    }

    func scalar(_ sql: String) -> String? { pg.scalar(sql, in: db) }
    @discardableResult
    func execute(_ sql: String) -> String? { pg.execute(sql, in: db) }

    /// Sessions of this database waiting for a lock, as the server sees them.
    func lockWaiters() -> String? {
        scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    }

    /// A connection of the test's own (another session holding locks), finished when the test ends.
    func connection() -> OpaquePointer {
        let c = PQconnectdb(pg.socketConninfo(db))!
        test.addTeardownBlock { PQfinish(c) }
        return c
    }

    /// Project `demo` with a key, and `agents` connected with boot `boot` at 2,000: the project's id.
    func demoProject(_ store: PostgreSQLStore, agents: [String] = ["a1"], boot: String = "b") throws -> Int64 {
        _ = try test.wait(loop) { store.createKey(project: "demo", secret: "s", at: 1, completion: $0) }
        let pid = try test.wait(loop) { store.activeKeys(project: "demo", completion: $0) }.projectId
        for agent in agents {
            _ = try test.wait(loop) { store.agentConnected(AgentHello(id: agent, projectId: pid, name: "", hostname: "", version: "",
                                                                      bootId: boot, at: 2_000), completion: $0) }
        }
        return pid
    }

    private static var template: String?
    private static var copies = 0

    private static func copyOfMigrated(_ pg: TestPostgreSQL) throws -> String {
        if template == nil {
            let name = pg.freshDatabase()
            let conn = try XCTUnwrap(PQconnectdb(pg.socketConninfo(name)))
            defer { PQfinish(conn) }
            _ = try PGMigrations.migrate(conn, now: 1)
            template = name
        }
        copies += 1
        let name = "vigil_test_\(getpid())_m\(copies)"
        if let e = pg.execute("CREATE DATABASE \(name) TEMPLATE \(template!)", in: "postgres") { XCTFail("CREATE DATABASE \(name): \(e)") }
        return name
    }
}

final class PostgreSQLStoreTests: XCTestCase {

    func testMigrationsApplyOnceAndANewerSchemaIsRefused() throws {
        let f = try PGStoreFixture(self, migrated: false)
        let loop = f.loop
        let store = try f.open()
        XCTAssertEqual(store.schemaVersion, PGMigrations.latest)
        close(store, on: loop)
        let again = try f.open()
        close(again, on: loop)
        XCTAssertEqual(f.scalar("SELECT count(*) FROM schema_migrations"), String(PGMigrations.all.count))
        XCTAssertEqual(f.scalar("SELECT name FROM schema_migrations WHERE version = 1"), "initial schema")

        f.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
        XCTAssertThrowsError(try f.open()) { error in
            XCTAssertEqual(error as? StoreError, .schemaTooNew(found: 999, known: PGMigrations.latest))
        }
    }

    /// As SQLite's: the step adding identities binds each agent already
    /// known to its project with no key, so its next handshake enrolls the
    /// key it proves, and only in its project.
    func testAgentsFromBeforeIdentitiesKeepTheirProject() throws {
        let f = try PGStoreFixture(self, migrated: false)
        let step = try XCTUnwrap(PGMigrations.all.first { $0.name == "agent identities" }?.version)
        do {
            let conn = try XCTUnwrap(PQconnectdb(f.pg.socketConninfo(f.db)))
            defer { PQfinish(conn) }
            try PGMigrations.migrate(conn, now: 1, upTo: step - 1)
        }
        XCTAssertNil(f.execute("""
            INSERT INTO projects(name, created_ms) VALUES ('a', 1), ('b', 1);
            INSERT INTO agents(id, project_id, state, state_since_ms, first_seen_ms, last_seen_ms)
                SELECT 'x', id, 'not_visible', 1, 1, 1 FROM projects WHERE name = 'a';
            """))
        let a = try XCTUnwrap(f.scalar("SELECT id FROM projects WHERE name = 'a'").flatMap { Int64($0) })
        let b = try XCTUnwrap(f.scalar("SELECT id FROM projects WHERE name = 'b'").flatMap { Int64($0) })
        let loop = f.loop
        let store = try f.open()
        XCTAssertEqual(store.schemaVersion, PGMigrations.latest)
        XCTAssertEqual(try wait(loop) { store.agentIdentity(id: "x", completion: $0) }, nil, "no key yet")
        XCTAssertEqual(try wait(loop) { store.agent(id: "x", completion: $0) }.mode, AgentRecord.agentMode)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "x", projectId: b, publicKey: "k", at: 2, completion: $0) }, .otherProject)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "x", projectId: a, publicKey: "k", at: 2, completion: $0) }, .enrolled)
    }

    func testPartitionsAreCreatedAheadAndRetentionDropsWholeDays() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let day = PGPartitions.dayMillis
        let today: Int64 = 20_000
        let store = try f.open(now: today * day + 5_000)
        let parts = f.scalar("""
            SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'measurements'::regclass
            """)
        XCTAssertEqual(parts, "measurements_d19999,measurements_d20000,measurements_d20001,measurements_d20002,measurements_d20003,measurements_default")

        _ = try wait(loop) { store.createKey(project: "demo", secret: "s", at: 1, completion: $0) }
        let pid = try wait(loop) { store.activeKeys(project: "demo", completion: $0) }.projectId
        _ = try wait(loop) { store.agentConnected(AgentHello(id: "a1", projectId: pid, name: "", hostname: "", version: "",
                                                             bootId: "b", at: today * day), completion: $0) }
        let rows = (0..<30).map { measurement((today - 1) * day + Int64($0) * 1_000) }   // yesterday's partition
            + (0..<3).map { measurement(today * day + day / 2 + Int64($0)) }              // today's, after the cutoff
            + [measurement(day)]                                                           // 1970: the default partition
        let b = Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: 0, receivedAt: today * day + day / 2, measurements: rows)
        XCTAssertEqual(try wait(loop) { store.submitBatch(b, completion: $0) }, .stored(rows: 34))
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements_d19999"), "30")
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements_default"), "1")

        let report = try wait(loop) { store.removeExpired(olderThan: today * day + day / 4, completion: $0) }
        XCTAssertEqual(report.deleted["measurements"], 31, "a whole day dropped, the old row in the default partition deleted")
        XCTAssertNil(f.scalar("SELECT to_regclass('measurements_d19999')::text"), "yesterday's partition is gone")
        XCTAssertNotNil(f.scalar("SELECT to_regclass('measurements_d20000')::text"), "today's holds the cutoff: kept")
        XCTAssertEqual(try wait(loop) { store.measurements(MeasurementQuery(), completion: $0) }.count, 3)
    }

    func testEveryPartitionHasTheTimeAndPerSeriesIndexes() throws {
        let f = try PGStoreFixture(self)
        let store = try f.open()
        close(store, on: f.loop)
        let indexes = f.scalar("SELECT string_agg(indexdef, ';') FROM pg_indexes WHERE tablename = 'measurements_default'") ?? ""
        XCTAssertTrue(indexes.contains("(series_id, ts_ms, id)"), indexes)
        XCTAssertTrue(indexes.contains("(ts_ms, id)"), indexes)
    }

    /// Batches queued together share one transaction (group commit), each
    /// in a savepoint: one the server refuses fails alone.
    func testBatchesQueuedTogetherShareATransactionAndFailAlone() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store)
        let before = store.stats.transactions
        var results: [Int64: Result<BatchOutcome, StoreError>] = [:]
        for seq in Int64(0)..<20 {
            // PostgreSQL text cannot hold NUL: batch 7's COPY fails.
            let path = seq == 7 ? "/nul\u{0}" : "/p"
            let b = Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: seq, receivedAt: 5_000,
                          measurements: [measurement(10_000 + seq)],
                          events: [RawEvent(ts: 10_000 + seq, monitor: "m", check: "c", method: "GET", host: "h", path: path, durationUs: 1)])
            store.submitBatch(b) { results[seq] = $0 }
        }
        XCTAssertTrue(loop.run(until: { results.count == 20 }, timeout: 20))
        XCTAssertEqual(results.values.filter { (try? $0.get()) == .stored(rows: 2) }.count, 19)
        guard case .failure(.backend)? = results[7] else { return XCTFail("batch 7: \(String(describing: results[7]))") }
        XCTAssertLessThan(store.stats.transactions - before, 20, "batches queued together share transactions")
        XCTAssertGreaterThanOrEqual(store.stats.groupsSplit, 1, "the refused group was run again batch by batch")
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements"), "19")
        XCTAssertEqual(f.scalar("SELECT count(*) FROM events"), "19")
        // The failed one was not marked stored: sent again (fixed), it goes in.
        let fixed = Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: 7, receivedAt: 5_000, measurements: [measurement(10_007)])
        XCTAssertEqual(try wait(loop) { store.submitBatch(fixed, completion: $0) }, .stored(rows: 1))
    }

    /// A group of batches costs a fixed number of round trips, not a few
    /// per batch: a pipeline before the rows, one COPY per table, a
    /// pipeline with COMMIT. Re-sends in the same group are still answered
    /// `.duplicate`, and the agent's last-seen and latest status are set.
    func testAGroupOfBatchesTakesAFixedNumberOfRoundTrips() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store, agents: ["a1", "a2"])
        let before = store.stats.writeRoundTrips
        var results: [Result<BatchOutcome, StoreError>?] = Array(repeating: nil, count: 42)
        for i in 0..<42 {
            // 20 batches of each agent, then a re-send of a1's 3 and a2's 19.
            let agent = i < 40 ? (i % 2 == 0 ? "a1" : "a2") : (i == 40 ? "a1" : "a2")
            let seq = Int64(i < 40 ? i / 2 : (i == 40 ? 3 : 19))
            let b = Batch(projectId: pid, agentId: agent, bootId: "b", sequence: seq, receivedAt: 5_000 + Int64(i),
                          measurements: [measurement(10_000 + seq)],
                          events: [RawEvent(ts: 10_000 + seq, monitor: "m", check: "c", method: "GET", host: "h", path: "/p", durationUs: 1)],
                          statuses: [StatusSnapshot(ts: 9_000 + Int64(i), json: "{\"i\":\(i)}")])
            store.submitBatch(b) { results[i] = $0 }
        }
        XCTAssertTrue(loop.run(until: { results.allSatisfy { $0 != nil } }, timeout: 20))
        XCTAssertEqual(results[0..<40].filter { (try? $0?.get()) == .stored(rows: 3) }.count, 40)
        XCTAssertEqual(try results[40]?.get(), .duplicate)
        XCTAssertEqual(try results[41]?.get(), .duplicate)
        // BEGIN + locks + series, 3 COPYs, updates + COMMIT: at most 2 groups of 5.
        XCTAssertLessThanOrEqual(store.stats.writeRoundTrips - before, 10, "round trips for 42 batches")
        XCTAssertEqual(store.stats.groupsSplit, 0)
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements"), "40")
        XCTAssertEqual(f.scalar("SELECT count(*) FROM events"), "40")
        XCTAssertEqual(f.scalar("SELECT string_agg(high_seq || ':' || batches, ',' ORDER BY agent_id) FROM batch_sequences"),
                       "19:20,19:20")
        XCTAssertEqual(f.scalar("SELECT string_agg(last_seen_ms || ' ' || status, ',' ORDER BY id) FROM agents"),
                       "5038 {\"i\":38},5039 {\"i\":39}")
    }

    /// Measurements go in by binary COPY: extreme values, a missing, an
    /// empty and a large histogram come back from the server as they went
    /// in, and other rows of the same COPY are not shifted by them.
    func testBinaryCopyRoundTripsExtremeValues() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store)
        let large = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let rows: [MeasurementRow] = [
            MeasurementRow(ts: .max, windowMs: .min, monitor: "m", check: "max", source: "ipa", count: .max, errors: .min,
                           sumUs: .max, minUs: .min, maxUs: .max, p50Us: -1, p95Us: 0, p99Us: 1,
                           outcomes: Outcomes(s2xx: .max, s3xx: .min, s4xx: -256, s5xx: 256, error: 0x0102_0304_0506_0708),
                           histogram: nil),
            MeasurementRow(ts: .min, windowMs: 0, monitor: "m", check: "min", source: "ipa", count: 0, sumUs: 0, minUs: 0,
                           maxUs: 0, p50Us: 0, p95Us: 0, p99Us: 0, histogram: []),
            MeasurementRow(ts: 1_733_443_200_000, windowMs: 10_000, monitor: "m", check: "large", source: "ipa", count: 3,
                           sumUs: 9, minUs: 1, maxUs: 5, p50Us: 2, p95Us: 4, p99Us: 5, histogram: large),
            MeasurementRow(ts: 1_733_443_210_000, windowMs: 10_000, monitor: "m", check: "small", source: "ipa", count: 1,
                           sumUs: 1, minUs: 1, maxUs: 1, p50Us: 1, p95Us: 1, p99Us: 1, histogram: [0x00, 0xFF, 0x5C, 0x0A, 0x09]),
        ]
        let b = Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: 0, receivedAt: 5_000, measurements: rows)
        XCTAssertEqual(try wait(loop) { store.submitBatch(b, completion: $0) }, .stored(rows: 4))
        let back = try wait(loop) { store.measurements(MeasurementQuery(limit: 10), completion: $0) }.map(\.measurement)
        XCTAssertEqual(back.count, rows.count)
        for row in rows { XCTAssertEqual(back.first { $0.check == row.check }, row, row.check) }
        XCTAssertEqual(f.scalar("SELECT histogram IS NULL FROM measurements m JOIN series s ON s.id = m.series_id WHERE s.check_name = 'max'"), "t")
        XCTAssertEqual(f.scalar("SELECT length(histogram) FROM measurements m JOIN series s ON s.id = m.series_id WHERE s.check_name = 'min'"), "0")
    }

    /// Two collectors on one database: asked at once, exactly one holds the
    /// lease, also when it expires and both try to take it over; the one
    /// that lost it cannot record a state, the holder can.
    func testTwoCollectorsRacingForTheAlertLeaseCannotBothRecord() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let c1 = try f.open()
        let c2 = try f.open()
        _ = try wait(loop) { c1.createKey(project: "demo", secret: "s", at: 1, completion: $0) }
        let rule = try wait(loop) { c1.createAlertRule(project: "demo", name: "r", body: "{}", at: 1, completion: $0) }

        func race(at: Int64) throws -> [String: AlertLease] {
            var got: [String: AlertLease] = [:]
            var failed: [StoreError] = []
            for (holder, store) in [("c1", c1), ("c2", c2)] {
                store.acquireAlertLease(name: "alerts", holder: holder, ttlMs: 1_000, at: at) { r in
                    switch r {
                    case .success(let l): got[holder] = l
                    case .failure(let e): failed.append(e)
                    }
                }
            }
            XCTAssertTrue(loop.run(until: { got.count + failed.count == 2 }, timeout: 20))
            XCTAssertEqual(failed, [])
            return got
        }
        for at: Int64 in [100, 5_000] {
            let got = try race(at: at)
            let holders = Set(got.values.map(\.holder))
            XCTAssertEqual(holders.count, 1, "both answers name the same holder at \(at): \(got)")
            XCTAssertEqual(Set(got.values.map(\.epoch)).count, 1)
        }
        let lease = try wait(loop) { c1.acquireAlertLease(name: "alerts", holder: "c1", ttlMs: 1_000, at: 5_001, completion: $0) }
        let (holder, loser): (PostgreSQLStore, String) = lease.holder == "c1" ? (c1, "c2") : (c2, "c1")
        let holderName = lease.holder
        let stale = AlertLease(name: "alerts", holder: loser, epoch: lease.epoch - 1, expires: 0)
        let firing = AlertStateRecord(ruleId: rule.id, state: "firing", since: 5_002, evaluated: 5_002, value: 2.5, detail: "d")
        let other: PostgreSQLStore = holder === c1 ? c2 : c1
        guard case .failure(.invalid(let why)) = try waitResult(loop, { other.recordAlertState(firing, lease: stale, completion: $0) }) else {
            return XCTFail("the collector without the lease recorded a state")
        }
        XCTAssertTrue(why.contains("lease lost"), why)
        XCTAssertEqual(f.scalar("SELECT count(*) FROM alert_states"), "0")
        let current = AlertLease(name: "alerts", holder: holderName, epoch: lease.epoch, expires: lease.expires)
        let t = try wait(loop) { holder.recordAlertState(firing, lease: current, completion: $0) }
        XCTAssertEqual(t?.from, "ok")
        XCTAssertEqual(t?.to, "firing")
        XCTAssertEqual(try wait(loop) { other.alertStates(project: "demo", completion: $0) }.map(\.value), [2.5])
    }

    func testConnectionStringsAreRedacted() {
        XCTAssertEqual(PGConnInfo.redacted("postgresql://vigil:s3cret@db.example:5432/vigil?sslmode=require"),
                       "postgresql://vigil:***@db.example:5432/vigil?sslmode=require")
        XCTAssertEqual(PGConnInfo.redacted("postgres://db/vigil?user=v&password=s3cret&sslmode=disable"),
                       "postgres://db/vigil?user=v&password=***&sslmode=disable")
        XCTAssertEqual(PGConnInfo.redacted("postgresql://vigil@db/vigil"), "postgresql://vigil@db/vigil")
        XCTAssertEqual(PGConnInfo.redacted("host=db user=vigil password=s3cret dbname=vigil"),
                       "host=db user=vigil password=*** dbname=vigil")
        XCTAssertEqual(PGConnInfo.redacted("host=db password = 'with \\' quote and space' dbname=x"),
                       "host=db password = *** dbname=x")
        XCTAssertFalse(PGConnInfo.redacted("PASSWORD=abc host=h").contains("abc"))
    }
}

import CPQ

final class PostgreSQLStoreOutageTests: XCTestCase {
    /// A batch in flight when its connection is killed runs again on a new
    /// connection and completes `.stored` — never a failure (which would
    /// close the agent's session) and never stored twice.
    func testABatchInFlightWhenTheConnectionDiesIsRetried() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store)

        // Another session holds a lock the batch needs: the batch waits on the server, in flight.
        let locker = f.connection()
        PQclear(PQexec(locker, "BEGIN"))
        PQclear(PQexec(locker, "LOCK TABLE batch_sequences IN EXCLUSIVE MODE"))
        var result: Result<BatchOutcome, StoreError>?
        let b = Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: 0, receivedAt: 5_000, measurements: [measurement(7_000)])
        store.submitBatch(b) { result = $0 }
        var waiting = 0
        XCTAssertTrue(loop.run(until: {
            waiting = Int(f.lockWaiters() ?? "0") ?? 0
            return waiting == 1
        }, timeout: 10), "the batch waits for the lock")
        XCTAssertEqual(f.scalar("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
            """), "1")
        PQclear(PQexec(locker, "COMMIT"))
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 20))
        XCTAssertEqual(try result?.get(), .stored(rows: 1))
        XCTAssertEqual(store.stats.writesRetried, 1)
        XCTAssertEqual(store.stats.batchesFailed, 0)
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements"), "1")
        XCTAssertEqual(try wait(loop) { store.submitBatch(b, completion: $0) }, .duplicate)
    }
}

/// Batches over two ingest connections, each agent's over one.
final class PostgreSQLIngestConnectionTests: XCTestCase {
    /// With one agent's sequence row locked by another session, another
    /// agent's batches (on the other connection) still commit, in order,
    /// and its re-send is a duplicate; a state write queued after the
    /// stuck batches waits for them (a barrier), and so does the batch
    /// queued after it. Unlocked, everything completes, each agent's
    /// acknowledgements in order, every sequence counted once.
    func testAnotherAgentsBatchesDoNotWaitForALockedOne() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        XCTAssertEqual(store.options.ingestConnections, 2)
        let ids = (1...20).map { "agent-\($0)" }
        let a = try XCTUnwrap(ids.first { PostgreSQLStore.ingestShard(agent: $0, count: 2) == 0 })
        let b = try XCTUnwrap(ids.first { PostgreSQLStore.ingestShard(agent: $0, count: 2) == 1 })
        let pid = try f.demoProject(store, agents: [])
        func batch(_ agent: String, _ seq: Int64) -> Batch {
            Batch(projectId: pid, agentId: agent, bootId: "boot", sequence: seq, receivedAt: 5_000 + seq,
                  measurements: [measurement(10_000 + seq, check: agent)])
        }
        for agent in [a, b] {
            _ = try wait(loop) { store.agentConnected(AgentHello(id: agent, projectId: pid, name: "", hostname: "", version: "",
                                                                 bootId: "boot", at: 2_000), completion: $0) }
            XCTAssertEqual(try wait(loop) { store.submitBatch(batch(agent, 0), completion: $0) }, .stored(rows: 1))
        }

        let locker = f.connection()
        PQclear(PQexec(locker, "BEGIN"))
        PQclear(PQexec(locker, "SELECT 1 FROM batch_sequences WHERE agent_id = '\(a)' FOR UPDATE"))
        var done: [(String, Result<BatchOutcome, StoreError>)] = []
        func submit(_ agent: String, _ seq: Int64) { store.submitBatch(batch(agent, seq)) { done.append(("\(agent):\(seq)", $0)) } }
        submit(a, 1)
        XCTAssertTrue(loop.run(until: { f.lockWaiters() == "1" }, timeout: 10), "a's batch waits for the lock")
        submit(a, 2)
        for seq in Int64(1)...5 { submit(b, seq) }
        submit(b, 3)
        XCTAssertTrue(loop.run(until: { done.count == 6 }, timeout: 10), "b's batches do not wait for a's: \(done.map(\.0))")
        XCTAssertEqual(done.map(\.0), ["\(b):1", "\(b):2", "\(b):3", "\(b):4", "\(b):5", "\(b):3"])
        XCTAssertEqual(done.map { try? $0.1.get() }, Array(repeating: .stored(rows: 1), count: 5) + [.duplicate])

        var state: Result<Bool, StoreError>?
        store.setAgentState(agent: b, state: .capturing, messages: [], at: 6_000) { state = $0 }
        submit(b, 6)
        _ = loop.run(until: { state != nil || done.count > 6 }, timeout: 1)
        XCTAssertNil(state, "a write that is not a batch waits for every batch queued before it")
        XCTAssertEqual(done.count, 6, "a batch queued after that write waits for it")

        PQclear(PQexec(locker, "COMMIT"))
        XCTAssertTrue(loop.run(until: { done.count == 9 && state != nil }, timeout: 20))
        XCTAssertEqual(done[6...].map(\.0), ["\(a):1", "\(a):2", "\(b):6"])
        XCTAssertTrue(done[6...].allSatisfy { (try? $0.1.get()) == .stored(rows: 1) })
        XCTAssertEqual(try state?.get(), true)
        XCTAssertEqual(try wait(loop) { store.submitBatch(batch(a, 2), completion: $0) }, .duplicate)
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements"), "10")
        XCTAssertEqual(f.scalar("SELECT string_agg(agent_id || '=' || high_seq || ':' || batches, ',' ORDER BY agent_id = '\(a)' DESC) FROM batch_sequences"),
                       "\(a)=2:3,\(b)=6:7")
    }

    /// Many agents' batches and re-sends interleaved over both connections
    /// at once: every sequence stored once, every re-send a duplicate,
    /// each agent's acknowledgements in the order sent.
    func testInterleavedAgentsOverTwoConnectionsAreStoredOnce() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let agents = (1...8).map { "agent-\($0)" }
        XCTAssertEqual(Set(agents.map { PostgreSQLStore.ingestShard(agent: $0, count: 2) }), [0, 1])
        let pid = try f.demoProject(store, agents: agents, boot: "boot")
        var acks: [String: [Int64]] = [:]
        var outcomes: [BatchOutcome] = []
        for round in Int64(0)..<30 {
            for agent in agents {
                // Every third round re-sends the previous sequence.
                let seq = round % 3 == 2 ? round - 1 : round
                store.submitBatch(Batch(projectId: pid, agentId: agent, bootId: "boot", sequence: seq, receivedAt: 5_000 + round,
                                        measurements: [measurement(10_000 + round, check: agent)])) { r in
                    acks[agent, default: []].append(seq)
                    if let o = try? r.get() { outcomes.append(o) }
                }
            }
            if round % 5 == 0 { _ = loop.run(until: { false }, timeout: 0.01) }
        }
        XCTAssertTrue(loop.run(until: { outcomes.count == 240 }, timeout: 30))
        let sent = (Int64(0)..<30).map { $0 % 3 == 2 ? $0 - 1 : $0 }
        for agent in agents { XCTAssertEqual(acks[agent], sent, agent) }
        XCTAssertEqual(outcomes.filter { $0 == .duplicate }.count, 80)
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements"), "160")
        XCTAssertEqual(f.scalar("SELECT count(DISTINCT (series_id, ts_ms)) FROM measurements"), "160")
        XCTAssertEqual(f.scalar("SELECT string_agg(DISTINCT high_seq || ':' || batches, ',') FROM batch_sequences"), "28:20")
    }
}

/// The handshake lane: what a handshake waits for does not queue behind the
/// write connection's backlog, and still sees the writes it depends on.
final class PostgreSQLHandshakeLaneTests: XCTestCase {
    /// With the write connection held by a batch stuck on a lock (as an
    /// ingest backlog holds it), a handshake's key lookup, identity
    /// enrollment and check, and ownership claim all complete; a key made
    /// meanwhile is seen by the next lookup; the batch completes afterwards.
    func testAHandshakeDoesNotWaitForTheWriteConnection() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store)

        let locker = f.connection()
        PQclear(PQexec(locker, "BEGIN"))
        PQclear(PQexec(locker, "LOCK TABLE batch_sequences IN EXCLUSIVE MODE"))
        var batch: Result<BatchOutcome, StoreError>?
        store.submitBatch(Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: 0, receivedAt: 5_000,
                                measurements: [measurement(7_000)])) { batch = $0 }
        // A state write queued behind it: the write connection's queue is not empty.
        var state: Result<Bool, StoreError>?
        store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 6_000) { state = $0 }
        XCTAssertTrue(loop.run(until: { f.lockWaiters() == "1" }, timeout: 10), "the batch waits for the lock")

        XCTAssertEqual(try wait(loop) { store.handshakeKeys(project: "demo", completion: $0) }.keys.count, 1)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "new-1", projectId: pid, publicKey: "k1", at: 3_000, completion: $0) },
                       .enrolled)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "new-1", projectId: pid, publicKey: "k1", at: 3_001, completion: $0) },
                       .known)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "new-1", projectId: pid, publicKey: "k2", at: 3_002, completion: $0) },
                       .keyMismatch)
        XCTAssertEqual(try wait(loop) { store.agentIdentity(id: "new-1", completion: $0) }, "k1")
        XCTAssertEqual(try wait(loop) { store.claimAgent("new-1", collector: "c1", leaseMs: 10_000, completion: $0) }, 1)
        // A key created and a lookup queued right after it, without waiting: the lookup sees it.
        var created: Result<KeyInfo, StoreError>?
        store.createKey(project: "demo", secret: "s2", at: 4, completion: { created = $0 })
        XCTAssertEqual(try wait(loop) { store.handshakeKeys(project: "demo", completion: $0) }.keys.count, 2)
        XCTAssertNotNil(try created?.get())
        XCTAssertNil(batch, "the batch still waits for the lock")
        XCTAssertNil(state, "the state write still waits behind the batch")

        PQclear(PQexec(locker, "COMMIT"))
        XCTAssertTrue(loop.run(until: { batch != nil && state != nil }, timeout: 20))
        XCTAssertEqual(try batch?.get(), .stored(rows: 1))
        XCTAssertEqual(try state?.get(), true)
    }

    /// Forgetting an agent goes by the write connection; an identity read
    /// queued after it waits for it and finds the identity gone, and a key
    /// list read after a key write on the handshake lane sees it.
    func testTheLanesKeepTheStoreOrder() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store)
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "a1", projectId: pid, publicKey: "k1", at: 3_000, completion: $0) },
                       .enrolled)
        var forgot: Result<Void, StoreError>?
        store.forgetAgent(id: "a1") { forgot = $0 }
        let identity = try waitResult(loop) { store.agentIdentity(id: "a1", completion: $0) }
        XCTAssertNotNil(forgot, "the identity read ran after the forget completed")
        guard case .failure(.notFound) = identity else { return XCTFail("the forgotten identity was read: \(identity)") }
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "a1", projectId: pid, publicKey: "k2", at: 4_000, completion: $0) },
                       .enrolled)

        var created: Result<KeyInfo, StoreError>?
        store.createKey(project: "other", secret: "s3", at: 5, completion: { created = $0 })
        let keys = try wait(loop) { store.keys(project: nil, completion: $0) }
        XCTAssertNotNil(created)
        XCTAssertEqual(keys.map(\.project), ["demo", "other"])
        XCTAssertEqual(try wait(loop) { store.projects(completion: $0) }.map(\.name), ["demo", "other"])
    }

    /// A new session's registry reads (filter patterns, monitor
    /// definitions, configuration overrides) and the writes they depend on
    /// run on the handshake lane: with the write connection held by a batch
    /// stuck on a lock, they complete, each read seeing the write queued
    /// before it; a read on the other connections queued after such a write
    /// sees it too, once the batch is through.
    func testANewSessionsRegistryReadsDoNotWaitForTheWriteConnection() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        let pid = try f.demoProject(store)
        let locker = f.connection()
        PQclear(PQexec(locker, "BEGIN"))
        PQclear(PQexec(locker, "LOCK TABLE batch_sequences IN EXCLUSIVE MODE"))
        var batch: Result<BatchOutcome, StoreError>?
        store.submitBatch(Batch(projectId: pid, agentId: "a1", bootId: "b", sequence: 0, receivedAt: 5_000,
                                measurements: [measurement(7_000)])) { batch = $0 }
        XCTAssertTrue(loop.run(until: { f.lockWaiters() == "1" }, timeout: 10), "the batch waits for the lock")

        let rule = FilterPattern(method: "GET", host: "a.example", path: "/x", monitor: "m", check: "c")
        var replaced: Result<PatternSet, StoreError>?
        store.replacePatterns(project: "demo", patterns: [rule], at: 3, completion: { replaced = $0 })
        XCTAssertEqual(try wait(loop) { store.patterns(project: "demo", completion: $0) }.patterns, [rule])
        XCTAssertNotNil(replaced)
        var monitors: Result<MonitorDefinitions, StoreError>?
        store.replaceMonitorDefinitions(project: "demo", json: "[1]", at: 4, completion: { monitors = $0 })
        XCTAssertEqual(try wait(loop) { store.monitorDefinitions(project: "demo", completion: $0) }.json, "[1]")
        XCTAssertNotNil(monitors)
        var overrides: Result<[String: String], StoreError>?
        store.setConfigOverrides(project: "demo", agent: "a1", values: ["k": "v"], at: 5, completion: { overrides = $0 })
        XCTAssertEqual(try wait(loop) { store.configOverrides(project: "demo", agent: "a1", completion: $0) }, ["k": "v"])
        XCTAssertNotNil(overrides)
        XCTAssertNil(batch, "the batch still waits for the lock")

        // An ordered read after a lane write waits for the write connection
        // (the batch) and sees the lane write.
        var events: Result<[EventRecord], StoreError>?
        store.events(EventQuery(), completion: { events = $0 })
        PQclear(PQexec(locker, "COMMIT"))
        XCTAssertTrue(loop.run(until: { batch != nil && events != nil }, timeout: 20))
        XCTAssertEqual(try batch?.get(), .stored(rows: 1))
        XCTAssertEqual(try events?.get().count, 0)
    }

    /// Enrollments queued together share one transaction, each in its
    /// savepoint: the same answers as one by one (enrolled, known, key
    /// mismatch, other project), one commit for the group.
    func testEnrollmentsQueuedTogetherShareOneCommit() throws {
        let f = try PGStoreFixture(self)
        let loop = f.loop
        let store = try f.open()
        _ = try wait(loop) { store.createKey(project: "demo", secret: "s", at: 1, completion: $0) }
        _ = try wait(loop) { store.createKey(project: "other", secret: "s-other", at: 1, completion: $0) }
        let pid = try wait(loop) { store.activeKeys(project: "demo", completion: $0) }.projectId
        let other = try wait(loop) { store.activeKeys(project: "other", completion: $0) }.projectId
        XCTAssertEqual(try wait(loop) { store.enrollAgent(id: "old", projectId: pid, publicKey: "k-old", at: 2, completion: $0) }, .enrolled)
        let before = store.stats

        let asked: [(String, Int64, String)] = (0..<20).map { ("new-\($0)", pid, "k\($0)") }
            + [("old", pid, "k-old"), ("old", pid, "k-wrong"), ("old", other, "k-old"), ("new-3", pid, "k3"), ("new-4", pid, "k-x")]
        var answers = [Result<Enrollment, StoreError>?](repeating: nil, count: asked.count)
        for (i, a) in asked.enumerated() {
            store.enrollAgent(id: a.0, projectId: a.1, publicKey: a.2, at: 3, completion: { answers[i] = $0 })
        }
        XCTAssertTrue(loop.run(until: { answers.allSatisfy { $0 != nil } }, timeout: 20))
        let got = answers.map { try? $0?.get() }
        XCTAssertEqual(got, Array(repeating: Enrollment.enrolled, count: 20) + [.known, .keyMismatch, .otherProject, .known, .keyMismatch])
        let after = store.stats
        XCTAssertGreaterThanOrEqual(after.handshakeGroups - before.handshakeGroups, 1)
        XCTAssertLessThanOrEqual(after.transactions - before.transactions, 3, "one commit per group, not one per enrollment")
        XCTAssertEqual(f.scalar("SELECT count(*) FROM agent_identities"), "21")
        XCTAssertEqual(try wait(loop) { store.agentIdentity(id: "new-7", completion: $0) }, "k7")
    }
}

/// COPY's binary format as the server reads it: the signature and two zero
/// words, per row the field count, each bigint as length 8 and its bytes in
/// network order, NULL as length -1, bytea and text as their bytes.
final class PGBinaryCopyTests: XCTestCase {
    /// A group's COPY buffer grows by doubling: adding 200 batches moves it a
    /// handful of times, not once per batch (which copied the whole buffer
    /// each time), and hands it to its command without a copy.
    func testAGroupsBufferGrowsByDoublingAndIsHandedOverWhole() {
        var copies = CopyBuffers()
        var moves = 0
        var base: UnsafeRawPointer?
        for seq in 0..<200 {
            let rows = (0..<10).map { measurement(Int64(seq * 10 + $0) * 10_000, check: "c\($0)") }
            copies.add(Batch(projectId: 1, agentId: "a1", bootId: "b", sequence: Int64(seq), receivedAt: 0,
                             measurements: rows)) { _ in 7 }
            let now = copies.measurements.withUnsafeBytes { $0.baseAddress }
            if now != base { moves += 1; base = now }
        }
        XCTAssertLessThanOrEqual(moves, 12, "moved \(moves) times for 200 batches")
        let size = copies.measurements.count
        let commands = copies.takeCommands()
        XCTAssertEqual(commands.count, 1)
        guard case .copy(let sql, let data) = commands[0] else { return XCTFail("not a COPY") }
        XCTAssertTrue(sql.contains("COPY measurements"))
        XCTAssertEqual(data.count, size + PGBinaryCopy.trailer.count)
        XCTAssertEqual(Array(data.suffix(2)), PGBinaryCopy.trailer)
        XCTAssertEqual(data.count, PGBinaryCopy.header.count + 2_000 * (2 + 16 * 12 + 4) + 2, "2,000 rows without histograms")
        XCTAssertTrue(copies.measurements.isEmpty, "handed over")
    }

    func testRowsAreWrittenInCopyBinaryFormat() {
        XCTAssertEqual(Array(PGBinaryCopy.header.prefix(11)), Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00])
        XCTAssertEqual(PGBinaryCopy.header.count, 19)
        var out: [UInt8] = []
        PGBinaryCopy.beginRow(fields: 17, into: &out)
        PGBinaryCopy.appendInt8(.min, into: &out)
        PGBinaryCopy.appendInt8(0x0102_0304_0506_0708, into: &out)
        PGBinaryCopy.appendInt8(-2, into: &out)
        PGBinaryCopy.appendBytea(nil, into: &out)
        PGBinaryCopy.appendBytea([], into: &out)
        PGBinaryCopy.appendBytea([0x5C, 0x00], into: &out)
        XCTAssertEqual(out, [0x00, 0x11,
                             0, 0, 0, 8, 0x80, 0, 0, 0, 0, 0, 0, 0,
                             0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                             0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
                             0xFF, 0xFF, 0xFF, 0xFF,
                             0, 0, 0, 0,
                             0, 0, 0, 2, 0x5C, 0x00])
        XCTAssertEqual(PGBinaryCopy.trailer, [0xFF, 0xFF])
    }
}
