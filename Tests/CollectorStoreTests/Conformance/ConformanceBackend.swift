// The conformance suite's view of a backend: how to open a store over a
// fresh database and open it again, and the list of backends the suite
// runs against. A new backend (PostgreSQL) adds one ConformanceBackend and
// one line to `ConformanceBackends.all`; the suite itself stays unchanged.
//
// Why a list and not a subclass per backend: on Linux, XCTest finds test
// methods by reading the test sources, and a subclass does not inherit its
// base class's test methods there (swift-package-manager issue 5573), so a
// per-backend subclass would silently run nothing.
//
// Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

protocol ConformanceBackend: AnyObject {
    /// Names the backend in the test log.
    var name: String { get }
    /// A store over this backend's database, on `loop`. The first call finds
    /// the database empty; later calls open the same database again — after
    /// the previous store closed (a restart), or while it is still open
    /// (another process or connection).
    func open(loop: EventLoop, limits: StoreLimits) throws -> MeasurementStore
}

enum ConformanceBackends {
    /// A fresh backend (an empty database) per test and backend; nil when
    /// the backend cannot run here (e.g. no database server), so it is skipped.
    static let all: [() throws -> ConformanceBackend?] = [
        { SQLiteConformanceBackend() },
        { PostgreSQLConformanceBackend() },
    ]
}

/// A store with one project ("demo"), one key and one connected agent ("a1"),
/// reached through MeasurementStore only.
final class ConformanceFixture {
    let backend: ConformanceBackend
    let test: XCTestCase
    let loop = EventLoop()
    let limits: StoreLimits
    var store: MeasurementStore
    var projectId: Int64 = 0

    init(_ backend: ConformanceBackend, _ test: XCTestCase, limits: StoreLimits) throws {
        self.backend = backend
        self.test = test
        self.limits = limits
        store = try backend.open(loop: loop, limits: limits)
        _ = try wait { self.store.createKey(project: "demo", secret: "secret-1", at: 1_000, completion: $0) }
        projectId = try wait { self.store.activeKeys(project: "demo", completion: $0) }.projectId
        try connect(agent: "a1", boot: "boot-1")
    }

    func wait<T>(file: StaticString = #filePath, line: UInt = #line,
                 _ op: (@escaping StoreCompletion<T>) -> Void) throws -> T {
        try test.wait(loop, file: file, line: line, op)
    }

    func waitResult<T>(file: StaticString = #filePath, line: UInt = #line,
                       _ op: (@escaping StoreCompletion<T>) -> Void) throws -> Result<T, StoreError> {
        try test.waitResult(loop, file: file, line: line, op)
    }

    func connect(agent: String, boot: String, project: Int64? = nil, at: Int64 = 2_000) throws {
        _ = try wait {
            self.store.agentConnected(AgentHello(id: agent, projectId: project ?? self.projectId, name: agent + "-name",
                                                 hostname: "host-" + agent, version: "1.0", bootId: boot, at: at), completion: $0)
        }
    }

    func batch(agent: String = "a1", boot: String = "boot-1", seq: Int64, project: Int64? = nil,
               measurements: [MeasurementRow] = [], events: [RawEvent] = [], statuses: [StatusSnapshot] = [],
               monitorRuns: [MonitorRun] = []) -> Batch {
        Batch(projectId: project ?? projectId, agentId: agent, bootId: boot, sequence: seq, receivedAt: 5_000 + seq,
              measurements: measurements, events: events, statuses: statuses, monitorRuns: monitorRuns)
    }

    func submit(_ b: Batch, file: StaticString = #filePath, line: UInt = #line) throws -> BatchOutcome {
        try wait(file: file, line: line) { self.store.submitBatch(b, completion: $0) }
    }

    /// Measurement timestamps of a query, newest first.
    func measurementTimes(_ q: MeasurementQuery = MeasurementQuery(limit: 10_000),
                          file: StaticString = #filePath, line: UInt = #line) throws -> [Int64] {
        try wait(file: file, line: line) { self.store.measurements(q, completion: $0) }.map(\.measurement.ts)
    }

    /// Another store over the same database on its own loop, as another
    /// process would open it; `body` runs with it, then it is closed.
    func withSecondStore<T>(_ body: (MeasurementStore, EventLoop) throws -> T) throws -> T {
        let otherLoop = EventLoop()
        let other = try backend.open(loop: otherLoop, limits: limits)
        defer { test.close(other, on: otherLoop) }
        return try body(other, otherLoop)
    }

    /// Closes the store and opens the database again (a restart).
    func reopen() throws {
        test.close(store, on: loop)
        store = try backend.open(loop: loop, limits: limits)
    }

    func close() { test.close(store, on: loop) }
}

extension XCTestCase {
    /// Runs `body` once for every backend that can run here, each with a
    /// fresh fixture (closed afterwards); skips when none can.
    func forEachBackend(limits: StoreLimits = StoreLimits(), file: StaticString = #filePath, line: UInt = #line,
                        _ body: (ConformanceFixture) throws -> Void) throws {
        var ran = 0
        for make in ConformanceBackends.all {
            guard let backend = try make() else { continue }
            print("conformance: \(name) on \(backend.name)")
            let f = try ConformanceFixture(backend, self, limits: limits)
            defer { f.close() }
            try body(f)
            ran += 1
        }
        if ran == 0 { throw XCTSkip("no store backend can run here") }
    }
}
