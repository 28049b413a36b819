// The change log's contract, on every backend: each write that changes
// what agents are told appends one row in its own transaction (and a
// refused or no-op write none), ingest and agent states never do, rows
// come back in seq order from the one asked for, other processes' rows
// carry their origin, and retention keeps the newest row.
//
// Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class ChangeLogConformanceTests: XCTestCase {
    func testEveryChangeAppendsOneRowAndIngestNone() throws {
        try forEachBackend { f in
            let start = try f.wait { f.store.latestChange(completion: $0) }
            XCTAssertGreaterThan(start, 0, "the fixture's key created a row")
            f.store.changeOrigin = "collector-a"
            // Not changes: ingest, agent states, a known enrollment.
            XCTAssertEqual(try f.submit(f.batch(seq: 1, measurements: [measurement(1_000)])), .stored(rows: 1))
            _ = try f.wait { f.store.setAgentState(agent: "a1", state: .stopped, messages: [], at: 3_000, completion: $0) }
            XCTAssertEqual(try f.wait { f.store.latestChange(completion: $0) }, start, "ingest and states write no change")

            _ = try f.wait { f.store.replacePatterns(project: "demo", patterns: [FilterPattern(method: "GET", host: "*", path: "/*",
                                                                                                monitor: "m", check: "c")],
                                                     at: 10, completion: $0) }
            _ = try f.wait { f.store.replaceMonitorDefinitions(project: "demo", json: "[]", at: 11, completion: $0) }
            _ = try f.wait { f.store.setConfigOverrides(project: "demo", agent: nil, values: ["b.key": "1", "a.key": nil],
                                                        at: 12, completion: $0) }
            _ = try f.wait { f.store.setConfigOverrides(project: "demo", agent: "a1", values: ["c.key": "2"], at: 13, completion: $0) }
            let k = try f.wait { f.store.createKey(project: "other", secret: "s-other", at: 14, completion: $0) }
            _ = try f.wait { f.store.revokeKey(id: k.id, at: 15, completion: $0) }
            _ = try f.wait { f.store.revokeKey(id: k.id, at: 16, completion: $0) }   // already revoked: no change
            XCTAssertEqual(try f.wait { f.store.enrollAgent(id: "a1", projectId: f.projectId, publicKey: "pk", at: 17, completion: $0) },
                           .enrolled)
            XCTAssertEqual(try f.wait { f.store.enrollAgent(id: "a1", projectId: f.projectId, publicKey: "pk", at: 18, completion: $0) },
                           .known)
            try f.wait { f.store.resetAgentIdentity(id: "a1", completion: $0) }
            try f.wait { f.store.forgetAgent(id: "a1", completion: $0) }
            // Refused writes append nothing.
            guard case .failure(.notFound) = try f.waitResult({ f.store.replacePatterns(project: "nope", patterns: [], at: 19,
                                                                                          completion: $0) }) else {
                return XCTFail("unknown project")
            }

            let rows = try f.wait { f.store.changes(from: start, limit: 100, completion: $0) }
            XCTAssertEqual(rows.first?.seq, start, "the row asked for comes first")
            XCTAssertEqual(rows.first?.kind, .key)
            let mine = Array(rows.dropFirst())
            // Enrolling (an agent's own first connect) is not logged; a reset
            // and a forget (an operator's) are.
            XCTAssertEqual(mine.map(\.kind), [.patterns, .monitors, .config, .config, .key, .key, .identity, .identity])
            XCTAssertEqual(mine.map(\.project), ["demo", "demo", "demo", "demo", "other", "other", "demo", "demo"])
            XCTAssertEqual(mine.map(\.agent), ["", "", "", "a1", "", "", "a1", "a1"])
            XCTAssertEqual(mine[2].detail, "a.key,b.key", "the keys set or removed, sorted")
            XCTAssertEqual(mine[3].detail, "c.key")
            XCTAssertEqual(Array(mine.prefix(6).map(\.at)), [10, 11, 12, 13, 14, 15])
            XCTAssertTrue(mine.allSatisfy { $0.origin == "collector-a" })
            XCTAssertEqual(mine.map(\.seq), mine.map(\.seq).sorted())
            XCTAssertEqual(Set(mine.map(\.seq)).count, mine.count)
            XCTAssertEqual(try f.wait { f.store.latestChange(completion: $0) }, mine.last?.seq)
            XCTAssertEqual(try f.wait { f.store.changes(from: start, limit: 2, completion: $0) }.count, 2)
            XCTAssertEqual(try f.wait { f.store.changes(from: mine.last!.seq + 1, limit: 10, completion: $0) }, [])

            // Another process on the same database sees the rows, and its own carry its origin.
            try f.withSecondStore { other, loop in
                let seen = try self.wait(loop) { other.changes(from: start, limit: 100, completion: $0) }
                XCTAssertEqual(seen, rows)
                _ = try self.wait(loop) { other.replacePatterns(project: "demo", patterns: [], at: 20, completion: $0) }
            }
            let last = try f.wait { f.store.changes(from: mine.last!.seq + 1, limit: 10, completion: $0) }
            XCTAssertEqual(last.map(\.kind), [.patterns])
            XCTAssertEqual(last.first?.origin, "")
        }
    }

    func testRetentionKeepsTheNewestRow() throws {
        try forEachBackend { f in
            for i in 0..<3 {
                _ = try f.wait { f.store.replaceMonitorDefinitions(project: "demo", json: "[]", at: 100 + Int64(i), completion: $0) }
            }
            let newest = try f.wait { f.store.latestChange(completion: $0) }
            // By age, not by seq: the fixture's key row (at 1000) stays.
            XCTAssertEqual(try f.wait { f.store.removeExpiredChanges(olderThan: 101, completion: $0) }, 1)
            XCTAssertEqual(try f.wait { f.store.changes(from: 0, limit: 10, completion: $0) }.map(\.at), [1_000, 101, 102])
            // Everything expired: the newest row stays, so a follower can tell quiet from a gap.
            XCTAssertEqual(try f.wait { f.store.removeExpiredChanges(olderThan: Int64.max, completion: $0) }, 2)
            XCTAssertEqual(try f.wait { f.store.changes(from: 0, limit: 10, completion: $0) }.map(\.seq), [newest])
            XCTAssertEqual(try f.wait { f.store.latestChange(completion: $0) }, newest)
        }
    }
}
