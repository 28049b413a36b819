// A real PostgreSQL server for tests (CollectorStoreTests; CollectorTests
// links this file): one per test process, shared by every
// suite, started on first use by scripts/lib/postgres.sh (Debian's
// postgresql, initdb and pg_ctl as the unprivileged `vigiltest` user, the
// socket in a temporary directory and TCP on 127.0.0.1 only, fsync on) and
// stopped and removed when the process exits — by an atexit handler, or by
// the script's watchdog if the process was killed. Each test gets a
// database of its own (`freshDatabase`). Without a server (no initdb, not
// root) `shared` is nil and PostgreSQL tests skip.
//
// Test thread (the loop's).
import Foundation
import Glibc
import CPQ

final class TestPostgreSQL {
    let directory: String
    let port: Int
    let password: String
    private var databases = 0

    /// The process's server, started on first use; nil when it cannot run here.
    static let shared: TestPostgreSQL? = start()

    /// key=value conninfo for `database` over the Unix socket (no password).
    func socketConninfo(_ database: String) -> String {
        "host=\(directory) port=\(port) user=vigil dbname=\(database)"
    }

    /// URI for `database` over TCP; the password goes separately.
    func tcpURL(_ database: String) -> String {
        "postgresql://vigil@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    var passwordFile: String { directory + "/password" }

    /// A new, empty database; its name.
    func freshDatabase() -> String {
        databases += 1
        let name = "vigil_test_\(getpid())_\(databases)"
        let ok = execute("CREATE DATABASE \(name)", in: "postgres")
        precondition(ok == nil, "CREATE DATABASE \(name): \(ok!)")
        return name
    }

    /// Runs `sql` synchronously (libpq, blocking; test set-up only); nil or the error.
    @discardableResult
    func execute(_ sql: String, in database: String) -> String? {
        guard let c = PQconnectdb(socketConninfo(database)) else { return "out of memory" }
        defer { PQfinish(c) }
        guard PQstatus(c) == CONNECTION_OK else { return String(cString: PQerrorMessage(c)) }
        let r = PQexec(c, sql)
        defer { PQclear(r) }
        let st = PQresultStatus(r)
        return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? nil : String(cString: PQresultErrorMessage(r))
    }

    /// The first column of the first row of `sql`.
    func scalar(_ sql: String, in database: String) -> String? {
        guard let c = PQconnectdb(socketConninfo(database)) else { return nil }
        defer { PQfinish(c) }
        let r = PQexec(c, sql)
        defer { PQclear(r) }
        guard PQresultStatus(r) == PGRES_TUPLES_OK, PQntuples(r) > 0, PQgetisnull(r, 0, 0) == 0 else { return nil }
        return String(cString: PQgetvalue(r, 0, 0))
    }

    /// Every row of `sql` as text (NULL as nil), or the server's error.
    func rows(_ sql: String, in database: String) -> Result<[[String?]], PGQueryFailure> {
        guard let c = PQconnectdb(socketConninfo(database)) else { return .failure(PGQueryFailure(message: "out of memory")) }
        defer { PQfinish(c) }
        let r = PQexec(c, sql)
        defer { PQclear(r) }
        guard PQresultStatus(r) == PGRES_TUPLES_OK else {
            return .failure(PGQueryFailure(message: r.map { String(cString: PQresultErrorMessage($0)) } ?? "no result"))
        }
        return .success((0..<PQntuples(r)).map { row in
            (0..<PQnfields(r)).map { col in PQgetisnull(r, row, col) != 0 ? nil : String(cString: PQgetvalue(r, row, col)) }
        })
    }

    /// `pg_ctl stop -m fast` (pause) or start again on the same port (resume).
    func pause() { precondition(Self.script(["pause", directory]).status == 0, "pg_ctl stop failed") }
    func resume() { precondition(Self.script(["resume", directory]).status == 0, "pg_ctl start failed") }

    private init(directory: String, port: Int, password: String) {
        self.directory = directory
        self.port = port
        self.password = password
    }

    private static var stopDirectory: String?

    private static func start() -> TestPostgreSQL? {
        guard getuid() == 0, !(try! FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")).isEmpty
        else { return nil }
        var template = Array("/tmp/vigil-pg-test-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { return nil }
        let dir = String(cString: p)
        let r = script(["start", dir, String(getpid())])
        guard r.status == 0, let portText = r.out.split(separator: " ").first(where: { $0.hasPrefix("port=") }),
              let port = Int(portText.dropFirst(5)),
              let password = try? String(contentsOfFile: dir + "/password", encoding: .utf8)
        else {
            print("TestPostgreSQL: could not start a server: \(r.out) \(r.err)")
            return nil
        }
        stopDirectory = dir
        atexit {
            if let d = TestPostgreSQL.stopDirectory { _ = TestPostgreSQL.script(["stop", d]) }
        }
        return TestPostgreSQL(directory: dir, port: port,
                              password: password.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// scripts/lib/postgres.sh of the checkout this file is in (the
    /// directories above it; CollectorTests links this file from here).
    static var scriptPath: String {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.path + "/scripts/lib/postgres.sh"
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return "scripts/lib/postgres.sh"
    }

    /// Runs the script to completion; (status, stdout, stderr). posix_spawn
    /// and waitpid, not Foundation's Process: the loop's SIGCHLD handling
    /// (libev's default loop) keeps Process from ever seeing its child exit.
    @discardableResult
    static func script(_ args: [String]) -> (status: Int32, out: String, err: String) {
        let outPath = "/tmp/vigil-pg-script-\(getpid()).out", errPath = "/tmp/vigil-pg-script-\(getpid()).err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var pid: pid_t = 0
        let argv = ["/bin/bash", scriptPath] + args
        let spawned = withCStringArray(argv) { posix_spawn(&pid, "/bin/bash", &actions, nil, $0, environ) }
        guard spawned == 0 else { return (-1, "", "posix_spawn: \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : -1, out, err)
    }

    private static func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        return (copies + [nil]).withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// A query the test server refused, with its message.
struct PGQueryFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
