// The Grafana queries docs/STORAGE.md gives ("Charting measurements from
// Grafana") run against the PostgreSQL schema as written there, with
// Grafana's macros expanded the way its PostgreSQL data source expands
// them, and chart what the store holds: the documentation cannot drift
// from the schema unnoticed. Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class GrafanaQueryTests: XCTestCase {
    /// 2025-12-06 00:00 UTC: the store opens with partitions around it.
    private let base: Int64 = 1_764_979_200_000

    func testTheDocumentedQueriesChartWhatTheStoreHolds() throws {
        guard let pg = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let store = try PostgreSQLStore.open(loop: loop, options: PostgreSQLOptions(conninfo: pg.socketConninfo(db)), now: base)
        defer { close(store, on: loop) }

        // Project demo: agent a1 with two checks of monitor shop over two
        // minutes, and one row of another monitor; project other: shop
        // too, which the project's query must leave out.
        var demo: [MeasurementRow] = []
        for i in Int64(0)..<12 {
            for (check, p95) in [("checkout", 30_000 + i * 1_000), ("cart", 8_000)] {
                var m = MeasurementRow(ts: base + i * 10_000, windowMs: 10_000, monitor: "shop", check: check, source: "ipa",
                                       count: 20, errors: i % 3 == 0 ? 2 : 0, sumUs: 20 * 12_500, minUs: 1_000, maxUs: 90_000,
                                       p50Us: 11_000, p95Us: p95, p99Us: 80_000)
                m.outcomes = Outcomes(s2xx: 15, s3xx: 0, s4xx: 3, s5xx: i % 3 == 0 ? 0 : 2, error: i % 3 == 0 ? 2 : 0)
                demo.append(m)
            }
        }
        demo.append(MeasurementRow(ts: base, windowMs: 10_000, monitor: "search", check: "q", source: "ipa", count: 7,
                                   sumUs: 7_000, minUs: 1_000, maxUs: 1_000, p50Us: 1_000, p95Us: 1_000, p99Us: 1_000))
        let demoProject = try stored(store, loop, project: "demo", agent: "a1", demo)
        let otherRow = MeasurementRow(ts: base, windowMs: 10_000, monitor: "shop", check: "checkout", source: "ipa", count: 1_000,
                                      sumUs: 1, minUs: 1, maxUs: 1, p50Us: 1, p95Us: 1, p99Us: 1)
        _ = try stored(store, loop, project: "other", agent: "b1", [otherRow])
        XCTAssertNotEqual(demoProject, 0)

        let queries = try documentedQueries()
        XCTAssertEqual(queries.count, 3, "docs/STORAGE.md's Grafana block holds three queries")
        // The dashboard's range: the two minutes written, at a 1m interval.
        let from = base / 1_000, to = base / 1_000 + 120
        let sql = queries.map { expandGrafanaMacros($0, from: from, to: to, interval: "1m", intervalSeconds: 60) }

        // 1: p95 per check of project demo's monitor shop, one series per check, in ms.
        let perCheck = try pg.rows(sql[0], in: db).get()
        XCTAssertEqual(perCheck.count, 24, "12 windows × 2 checks of demo's shop; not search, not project other's shop: \(perCheck)")
        let checkout = perCheck.filter { $0[1] == "checkout" }.compactMap { $0[2].flatMap(Double.init) }
        XCTAssertEqual(checkout, (0..<12).map { 30.0 + Double($0) }, "p95_ms is p95_us / 1000, in time order")
        XCTAssertEqual(Set(perCheck.compactMap { $0[1] }), ["checkout", "cart"])

        // 2: requests/s and error ratio per 1m bucket, project demo only.
        let perMinute = try pg.rows(sql[1], in: db).get()
        XCTAssertEqual(perMinute.count, 2, "two one-minute buckets: \(perMinute)")
        let firstMinute = try XCTUnwrap(perMinute.first)
        XCTAssertEqual(firstMinute[0], String(from), "the bucket starts at the range's first second")
        // Minute 1: windows 0...5 × 2 checks × 20 calls + search's 7.
        let calls = 6.0 * 2 * 20 + 7
        XCTAssertEqual(try XCTUnwrap(firstMinute[1].flatMap(Double.init)), calls / 60, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(firstMinute[2].flatMap(Double.init)), (2.0 * 2 * 2) / calls, accuracy: 1e-9,
                       "windows 0 and 3 of both checks had 2 errors each")

        // 3: calls by outcome class for agent a1, one row per window.
        let outcomes = try pg.rows(sql[2], in: db).get()
        XCTAssertEqual(outcomes.count, 12, "one row per window start: \(outcomes)")
        let first = try XCTUnwrap(outcomes.first)
        XCTAssertEqual(Array(first.dropFirst()), ["30", "6", "0", "4"], "window 0: both checks and search (no outcomes)")
        let second = outcomes[1]
        XCTAssertEqual(Array(second.dropFirst()), ["30", "6", "4", "0"])
    }

    /// Stores `rows` for `agent` of `project` (created); the project's id.
    private func stored(_ store: PostgreSQLStore, _ loop: EventLoop, project: String, agent: String,
                        _ rows: [MeasurementRow]) throws -> Int64 {
        _ = try wait(loop) { store.createKey(project: project, secret: "s-" + project, at: base, completion: $0) }
        let pid = try wait(loop) { store.activeKeys(project: project, completion: $0) }.projectId
        _ = try wait(loop) { store.agentConnected(AgentHello(id: agent, projectId: pid, name: agent, hostname: "h", version: "1",
                                                             bootId: "b", at: base), completion: $0) }
        let batch = Batch(projectId: pid, agentId: agent, bootId: "b", sequence: 0, receivedAt: base, measurements: rows)
        XCTAssertEqual(try wait(loop) { store.submitBatch(batch, completion: $0) }, .stored(rows: rows.count))
        return pid
    }

    /// The statements of the sql block under "Charting measurements from
    /// Grafana" in docs/STORAGE.md, comments dropped.
    private func documentedQueries() throws -> [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/STORAGE.md"), encoding: .utf8)
        let section = try XCTUnwrap(text.range(of: "### Charting measurements from Grafana"), "the section exists")
        let rest = text[section.upperBound...]
        let open = try XCTUnwrap(rest.range(of: "```sql\n"))
        let close = try XCTUnwrap(rest[open.upperBound...].range(of: "```"))
        let body = rest[open.upperBound..<close.lowerBound]
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
            .joined(separator: "\n")
        return body.split(separator: ";").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }
}

/// Grafana's PostgreSQL macros as its data source expands them: `$__interval`
/// becomes the dashboard's interval (`1m`), `$__unixEpochFrom()` and
/// `$__unixEpochTo()` the range in epoch seconds, and
/// `$__unixEpochGroup(expr, interval)` `floor((expr)/s)*s`.
func expandGrafanaMacros(_ sql: String, from: Int64, to: Int64, interval: String, intervalSeconds: Int) -> String {
    var s = sql.replacingOccurrences(of: "$__interval", with: interval)
        .replacingOccurrences(of: "$__unixEpochFrom()", with: String(from))
        .replacingOccurrences(of: "$__unixEpochTo()", with: String(to))
    let macro = "$__unixEpochGroup("
    while let start = s.range(of: macro) {
        var depth = 1, i = start.upperBound, lastComma: String.Index?
        while depth > 0, i < s.endIndex {
            switch s[i] {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 1: lastComma = i
            default: break
            }
            if depth > 0 { i = s.index(after: i) }
        }
        let expr = s[start.upperBound..<(lastComma ?? i)].trimmingCharacters(in: .whitespaces)
        s.replaceSubrange(start.lowerBound...i, with: "floor((\(expr))/\(intervalSeconds))*\(intervalSeconds)")
    }
    return s
}
