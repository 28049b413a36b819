// scripts/lib/postgres.sh's two servers, as docs/STORAGE.md describes them
// ("Server settings for heavy ingest", "Tests against a real server"): the
// tests' small one, and `start --tuned`, the one the load scripts measure on,
// sized for heavy ingest with durability untouched. Each setting is read
// back from the running server (SHOW), so a value the server ignores or
// refuses fails here, not in a load run. Test thread.
import XCTest
import Glibc
import CPQ

final class PostgresServerScriptTests: XCTestCase {
    /// `SHOW name` for each name, over the Unix socket of the server in `directory`.
    private func settings(_ names: [String], directory: String, port: Int) -> [String: String] {
        guard let c = PQconnectdb("host=\(directory) port=\(port) user=vigil dbname=postgres") else { return [:] }
        defer { PQfinish(c) }
        var values: [String: String] = [:]
        for name in names {
            let r = PQexec(c, "SHOW \(name)")
            defer { PQclear(r) }
            if PQresultStatus(r) == PGRES_TUPLES_OK, PQntuples(r) == 1 { values[name] = String(cString: PQgetvalue(r, 0, 0)) }
        }
        return values
    }

    private let durability = ["fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"]

    func testTheTestServerIsSmallAndDurable() throws {
        guard let pg = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        let expected = durability.merging(["shared_buffers": "64MB", "max_wal_size": "1GB", "checkpoint_timeout": "5min",
                                           "log_checkpoints": "on"]) { $1 }
        XCTAssertEqual(settings(Array(expected.keys), directory: pg.directory, port: pg.port), expected)
    }

    func testTheTunedServerIsSizedForIngestAndAsDurable() throws {
        guard TestPostgreSQL.shared != nil else { throw XCTSkip("no PostgreSQL server can run here") }
        var template = Array("/tmp/vigil-pg-tuned-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { return XCTFail("mkdtemp") }
        let dir = String(cString: p)
        let started = TestPostgreSQL.script(["start", "--tuned", dir, String(getpid())])
        defer { TestPostgreSQL.script(["stop", dir]) }
        XCTAssertEqual(started.status, 0, started.err)
        guard let portText = started.out.split(separator: " ").first(where: { $0.hasPrefix("port=") }),
              let port = Int(portText.dropFirst(5)) else { return XCTFail("no port in \(started.out)") }
        let expected = durability.merging(["shared_buffers": "2GB", "wal_buffers": "64MB", "wal_compression": "lz4",
                                           "max_wal_size": "16GB", "min_wal_size": "2GB", "checkpoint_timeout": "30min",
                                           "log_checkpoints": "on"]) { $1 }
        XCTAssertEqual(settings(Array(expected.keys), directory: dir, port: port), expected)
    }
}
