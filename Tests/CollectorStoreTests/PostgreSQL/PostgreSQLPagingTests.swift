// Cursor pages of measurements on PostgreSQL across daily partitions: rows
// spread over four days, many rows per timestamp so page boundaries fall
// between rows of equal time, paged newest first with and without a
// project — every row exactly once, in (ts, id) order; and the statement a
// cursor page sends prunes the partitions newer than the cursor when it is
// planned; and a read the server cancels at the read limit fails as
// `.readTooLong` (the API's "query too broad"), not as a backend error.
// Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class PostgreSQLPagingTests: XCTestCase {
    private let day = PGPartitions.dayMillis
    private let days: [Int64] = [6, 7, 8, 9]

    /// A store whose partitions cover `days` (the store creates 8…12 around
    /// its `now`; 6 and 7 are made here), with projects `demo` (5 series) and
    /// `other` (2), and at three timestamps of each day one row per series,
    /// inserted in an order that makes ids disagree with time.
    private func populated(_ f: PGStoreFixture) throws -> PostgreSQLStore {
        let store = try f.open(now: 10 * day - 1)
        for d in days where d < 8 { XCTAssertNil(f.execute(PGPartitions.createSQL(day: d))) }
        XCTAssertNil(f.execute("""
            INSERT INTO projects (name, created_ms) VALUES ('demo', 1), ('other', 1);
            INSERT INTO series (project_id, agent_id, monitor, check_name, source)
                SELECT p.id, p.name || '-a' || g, 'web', 'get', 'http'
                FROM projects p, generate_series(1, 5) g WHERE p.name = 'demo' OR g <= 2;
            INSERT INTO measurements (series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us)
                SELECT s.id, d * \(day) + t * 1000, 1000, 1, 0, 1, 1, 1, 1, 1, 1
                FROM unnest(ARRAY[\(days.map(String.init).joined(separator: ","))]) d, generate_series(1, 3) t, series s
                ORDER BY (d * 7 + t * 3 + s.id) % 5, s.id DESC;
            """))
        XCTAssertEqual(f.scalar("SELECT count(DISTINCT tableoid) FROM measurements"), "4", "rows in four daily partitions")
        XCTAssertEqual(f.scalar("SELECT count(*) FROM measurements_default"), "0")
        return store
    }

    /// Every (ts, id) of the query, newest first, as the server orders them.
    private func expected(_ f: PGStoreFixture, project: String?) throws -> [[Int64]] {
        let filter = project.map { "WHERE p.name = '\($0)'" } ?? ""
        let rows = try f.pg.rows("""
            SELECT m.ts_ms, m.id FROM measurements m JOIN series s ON s.id = m.series_id JOIN projects p ON p.id = s.project_id
            \(filter) ORDER BY m.ts_ms DESC, m.id DESC
            """, in: f.db).get()
        return rows.map { $0.map { Int64($0!)! } }
    }

    private func pages(_ f: PGStoreFixture, _ store: PostgreSQLStore, project: String?, limit: Int) throws -> [[Int64]] {
        var seen: [[Int64]] = [], after: ListPosition? = nil
        for _ in 0..<200 {
            let page = try wait(f.loop) { store.measurements(MeasurementQuery(project: project, limit: limit, after: after), completion: $0) }
            XCTAssertLessThanOrEqual(page.count, limit)
            seen += page.map { [$0.measurement.ts, $0.id] }
            if let project { XCTAssertTrue(page.allSatisfy { $0.project == project }) }
            guard let last = page.last else { return seen }
            after = ListPosition(ts: last.measurement.ts, id: last.id)
        }
        XCTFail("paging did not end")
        return seen
    }

    func testCursorPagesAcrossPartitionsReturnEveryRowOnceInOrder() throws {
        let f = try PGStoreFixture(self)
        let store = try populated(f)
        // 7 rows per timestamp over all projects, 5 in demo: pages of 4 and 3 end inside a timestamp.
        for (project, limit, total) in [(nil, 4, 84), ("demo", 3, 60), ("other", 5, 24)] as [(String?, Int, Int)] {
            let want = try expected(f, project: project)
            XCTAssertEqual(want.count, total)
            let got = try pages(f, store, project: project, limit: limit)
            XCTAssertEqual(got, want, "project \(project ?? "any"), pages of \(limit)")
            XCTAssertEqual(Set(got.map { $0[1] }).count, got.count, "no row twice")
        }
        XCTAssertEqual(try wait(f.loop) { store.measurements(MeasurementQuery(project: "nope"), completion: $0) }.count, 0)
        // A cursor with since/until still pages within the range.
        let inRange = try wait(f.loop) {
            store.measurements(MeasurementQuery(since: 7 * day, until: 9 * day, limit: 1000, after: ListPosition(ts: 8 * day + 2000, id: .max)),
                               completion: $0)
        }
        XCTAssertEqual(inRange.map { [$0.measurement.ts, $0.id] },
                       try expected(f, project: nil).filter { $0[0] >= 7 * day && $0[0] <= 8 * day + 2000 })
    }

    func testReadPastTheLimitFailsAsTooLong() throws {
        let f = try PGStoreFixture(self)
        var limits = StoreLimits()
        limits.maxReadMillis = 20
        let store = try f.open(limits: limits)
        let r = try waitResult(f.loop) { (done: @escaping StoreCompletion<Int>) in
            store.enqueueRead({ (tx: PGTransaction<Int>) in tx.query("SELECT pg_sleep(2)") { _ in tx.done(1) } }, completion: done)
        }
        guard case .failure(let e) = r else { return XCTFail("a 2 s read with a 20 ms limit answered") }
        XCTAssertEqual(e, .readTooLong(millis: 20))
    }

    func testCursorPagePrunesPartitionsNewerThanTheCursor() throws {
        let f = try PGStoreFixture(self)
        _ = try populated(f)
        let pid = try XCTUnwrap(f.scalar("SELECT id FROM projects WHERE name = 'demo'"))
        let (sql, values) = PostgreSQLStore.measurementsSQL(
            MeasurementQuery(after: ListPosition(ts: 7 * day + 2000, id: 1_000_000)), projectId: Int64(pid), limit: 10)
        // Constants in place of the parameters, as the server plans the statement with the values bound.
        var text = sql
        for (i, v) in values.enumerated().reversed() { text = text.replacing("$\(i + 1)", with: v ?? "NULL") }
        let plan = try f.pg.rows("EXPLAIN (COSTS off) " + text, in: f.db).get().map { $0[0] ?? "" }.joined(separator: "\n")
        XCTAssertTrue(plan.contains(PGPartitions.name(day: 7)), plan)
        XCTAssertTrue(plan.contains(PGPartitions.name(day: 6)), plan)
        for d: Int64 in [8, 9, 10, 12] { XCTAssertFalse(plan.contains(PGPartitions.name(day: d)), "day \(d) not pruned:\n\(plan)") }
    }
}
