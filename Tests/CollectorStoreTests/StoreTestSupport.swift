// Test support shared by the conformance suite and the SQLite tests: a
// temporary directory, waiting for a completion on a loop, and rows.
// Loop thread (the test's).
import XCTest
import Glibc
import Reactor
@testable import CollectorStore

struct StoreTimeout: Error {}

/// A fresh data directory under /tmp, removed by `cleanUp`.
final class TempDir {
    let path: String

    init() {
        var template = Array("/tmp/vigil-store-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(cString: p!)
    }

    deinit {
        for name in ["vigil.db", "vigil.db-wal", "vigil.db-shm"] { unlink(path + "/" + name) }
        unlink(path + "/data/vigil.db"); unlink(path + "/data/vigil.db-wal"); unlink(path + "/data/vigil.db-shm")
        rmdir(path + "/data")
        rmdir(path)
    }
}

extension XCTestCase {
    /// Runs `op`, checks its completion did not run before `op` returned,
    /// drives the loop until it runs, and returns its result.
    func wait<T>(_ loop: EventLoop, file: StaticString = #filePath, line: UInt = #line,
                 _ op: (@escaping StoreCompletion<T>) -> Void) throws -> T {
        try waitResult(loop, file: file, line: line, op).get()
    }

    func waitResult<T>(_ loop: EventLoop, file: StaticString = #filePath, line: UInt = #line,
                       _ op: (@escaping StoreCompletion<T>) -> Void) throws -> Result<T, StoreError> {
        var result: Result<T, StoreError>?
        op { result = $0 }
        XCTAssertNil(result, "completion ran before the call returned", file: file, line: line)
        guard loop.run(until: { result != nil }, timeout: 20) else { throw StoreTimeout() }
        return result!
    }

    func close(_ store: SQLiteStore) {
        close(store, on: store.loop)
    }

    /// Runs `body` with an SQLite store's own connection, on its writer
    /// thread (as a write: inside a transaction, without the read deadline),
    /// and waits for it.
    func sql<T>(_ store: SQLiteStore, file: StaticString = #filePath, line: UInt = #line,
                _ body: @escaping (SQLiteConnection) throws -> T) throws -> T {
        try wait(store.loop, file: file, line: line) { done in
            store.enqueueWrite(rows: 1, { writer in try body(writer.db) }, completion: done)
        }
    }

    func close(_ store: MeasurementStore, on loop: EventLoop, file: StaticString = #filePath, line: UInt = #line) {
        var done = false
        store.close { done = true }
        XCTAssertTrue(loop.run(until: { done }, timeout: 20), "the store closed", file: file, line: line)
    }
}

/// An aggregate with latencies in µs (sum 12.5 ms per request).
func measurement(_ ts: Int64, monitor: String = "shop", check: String = "checkout", source: String = "ipa",
                 count: Int64 = 10) -> MeasurementRow {
    MeasurementRow(ts: ts, windowMs: 10_000, monitor: monitor, check: check, source: source, count: count,
                   sumUs: count * 12_500, minUs: 1_000, maxUs: 40_000, p50Us: 11_000, p95Us: 30_000, p99Us: 39_000)
}

/// An SQLite store with one project ("demo"), one key and one connected agent ("a1").
final class StoreFixture {
    let dir = TempDir()
    let loop = EventLoop()
    var store: SQLiteStore!
    var projectId: Int64 = 0

    init(_ test: XCTestCase, configure: (inout StoreOptions) -> Void = { _ in }) throws {
        var options = StoreOptions(dataDirectory: dir.path)
        configure(&options)
        store = try SQLiteStore.open(loop: loop, options: options, now: 1_000)
        _ = try test.wait(loop) { self.store.createKey(project: "demo", secret: "secret-1", at: 1_000, completion: $0) }
        projectId = try test.wait(loop) { self.store.activeKeys(project: "demo", completion: $0) }.projectId
        try connect(test, agent: "a1", boot: "boot-1")
    }

    func connect(_ test: XCTestCase, agent: String, boot: String, project: Int64? = nil, at: Int64 = 2_000) throws {
        _ = try test.wait(loop) {
            self.store.agentConnected(AgentHello(id: agent, projectId: project ?? self.projectId, name: agent + "-name",
                                                 hostname: "host-" + agent, version: "1.0", bootId: boot, at: at), completion: $0)
        }
    }

    func batch(agent: String = "a1", boot: String = "boot-1", seq: Int64, project: Int64? = nil,
               measurements: [MeasurementRow] = [], events: [RawEvent] = [], statuses: [StatusSnapshot] = []) -> Batch {
        Batch(projectId: project ?? projectId, agentId: agent, bootId: boot, sequence: seq, receivedAt: 5_000 + seq,
              measurements: measurements, events: events, statuses: statuses)
    }

    /// `sql(store, body)` for the fixture's store.
    func sql<T>(_ test: XCTestCase, file: StaticString = #filePath, line: UInt = #line,
                _ body: @escaping (SQLiteConnection) throws -> T) throws -> T {
        try test.sql(store, file: file, line: line, body)
    }

    /// Row count of `table` through an independent connection: sees only
    /// what was committed.
    func committedCount(_ table: String) throws -> Int64 {
        let c = try SQLiteConnection(path: store.path, readOnly: true)
        defer { c.close() }
        return try c.scalar("SELECT count(*) FROM \(table)") ?? -1
    }
}
