// StoreSelection: the store the collector runs on, chosen by `store`
// (sqlite: data_dir/vigil.db; postgresql: postgresql_url), opened the same
// way by every subcommand (`run`, `keys …`) so they all see one database.
// The PostgreSQL password comes from `postgresql_password_file` when set
// (read here, never logged), else from libpq's own sources (the URL,
// PGPASSWORD, ~/.pgpass). Logs name the database by `location`: a path, or
// the URL with any password replaced by ***.
//
// Thread: start-up, on the loop's thread.
import CollectorStore
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public enum StoreKind: String, Sendable { case sqlite, postgresql }

enum StoreSelection {
    /// Opens the configured store on `loop` (blocking until its schema is current).
    static func open(loop: EventLoop, settings: CollectorSettings) throws(StoreError) -> any OperatedStore {
        switch settings.store {
        case .sqlite:
            var options = StoreOptions(dataDirectory: settings.dataDir)
            options.synchronous = .full
            options.limits.maxPendingRows = settings.storeMaxPendingRows
            options.limits.maxPendingReads = settings.storeMaxPendingReads
            return try SQLiteStore.open(loop: loop, options: options)
        case .postgresql:
            // data_dir still holds the generated admin token.
            do { try makeDirectories(settings.dataDir) } catch { throw .unavailable("data_dir \(settings.dataDir): \(error)") }
            var options = PostgreSQLOptions(conninfo: settings.postgresqlURL, password: try password(settings))
            options.limits.maxPendingRows = settings.storeMaxPendingRows
            options.limits.maxPendingReads = settings.storeMaxPendingReads
            let store = try PostgreSQLStore.open(loop: loop, options: options)
            store.startPartitionMaintenance()
            return store
        }
    }

    /// Names the configured database without secrets, for messages.
    static func describe(_ settings: CollectorSettings) -> String {
        switch settings.store {
        case .sqlite: return "the database in \(settings.dataDir)"
        case .postgresql: return "the PostgreSQL database \(PGConnInfo.redacted(settings.postgresqlURL))"
        }
    }

    private static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            _ = try Syscalls.mkdir(prefix, 0o700)
            prefix += "/"
        }
    }

    private static func password(_ settings: CollectorSettings) throws(StoreError) -> String? {
        let path = settings.postgresqlPasswordFile
        guard !path.isEmpty else { return nil }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unavailable("postgresql_password_file \(path): cannot open (errno \(errno))") }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 65_536 {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .unavailable("postgresql_password_file \(path): read failed (errno \(errno))") }
            if n == 0 { break }
            bytes += buf[0..<n]
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        guard !bytes.isEmpty else { throw .unavailable("postgresql_password_file \(path) is empty") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
