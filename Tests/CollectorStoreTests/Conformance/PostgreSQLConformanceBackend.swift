// PostgreSQLStore as the conformance suite runs it: a fresh database on the
// test process's PostgreSQL server (TestPostgreSQL), opened again by
// conninfo for the "another process" and "restart" cases. nil (skipped)
// where no server can run. Loop thread (the test's).
import Reactor
@testable import CollectorStore

final class PostgreSQLConformanceBackend: ConformanceBackend {
    let name = "PostgreSQL"
    private let conninfo: String

    init?() {
        guard let server = TestPostgreSQL.shared else { return nil }
        conninfo = server.socketConninfo(server.freshDatabase())
    }

    func open(loop: EventLoop, limits: StoreLimits) throws -> MeasurementStore {
        var options = PostgreSQLOptions(conninfo: conninfo)
        options.limits = limits
        return try PostgreSQLStore.open(loop: loop, options: options, now: 1_000)
    }
}
