// SQLiteStore as the conformance suite runs it: a database in a fresh
// temporary directory, opened again by path for the "another process" and
// "restart" cases. Loop thread (the test's).
import Reactor
@testable import CollectorStore

final class SQLiteConformanceBackend: ConformanceBackend {
    let name = "SQLite"
    private let dir = TempDir()

    func open(loop: EventLoop, limits: StoreLimits) throws -> MeasurementStore {
        var options = StoreOptions(dataDirectory: dir.path)
        options.limits = limits
        return try SQLiteStore.open(loop: loop, options: options, now: 1_000)
    }
}
