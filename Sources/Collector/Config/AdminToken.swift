// AdminToken: the HTTP API's bearer token. Set with `admin_token`, or —
// when that is empty — generated at first start (32 random bytes from
// libsodium, base64url) into `data_dir/admin_token` with mode 0600 and read
// from there on later starts. The token itself is never logged; the log
// says where it is.
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

public enum AdminToken {
    public static let fileName = "admin_token"

    public enum Source: Equatable, Sendable {
        case configuration
        case generated(path: String)
        case file(path: String)
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `data_dir/admin_token`, absolute when the directory exists (so the
    /// log line is usable from any working directory).
    public static func path(dataDir: String) -> String {
        var dir = dataDir
        if let p = realpath(dataDir, nil) {
            dir = String(cString: p)
            free(p)
        }
        return dir.hasSuffix("/") ? dir + fileName : dir + "/" + fileName
    }

    /// The token to use, and where it came from. `dataDir` must exist.
    public static func resolve(configured: String, dataDir: String) throws(Failure) -> (token: String, source: Source) {
        if !configured.isEmpty { return (configured, .configuration) }
        let path = path(dataDir: dataDir)
        do {
            let fd = try Syscalls.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            let token = Base64URL.encode(Key32.random().bytes)
            do {
                defer { Syscalls.close(fd) }
                try Array((token + "\n").utf8).withUnsafeBytes { try Syscalls.writeAll(fd, $0, path) }
                try Syscalls.fsync(fd, path)
            } catch {
                unlink(path)
                throw Failure(description: "writing \(path): \(error)")
            }
            return (token, .generated(path: path))
        } catch let e as SyscallError where e.errno == EEXIST {
            // An existing file from an earlier start: keep it private, then read it.
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure(description: "creating \(path): \(error)")
        }
        do {
            let fd = try Syscalls.open(path, O_RDONLY)
            defer { Syscalls.close(fd) }
            try Syscalls.fchmod(fd, 0o600)
        } catch {
            throw Failure(description: "making \(path) private: \(error)")
        }
        guard let text = ProcessLimits.readSmallFile(path, max: 4096) else {
            throw Failure(description: "reading \(path): \(String(cString: strerror(errno)))")
        }
        let token = text.trimmingSpaces().filter { $0 != "\n" && $0 != "\r" }
        guard token.count >= 16 else { throw Failure(description: "\(path) holds no usable token (delete it to generate a new one)") }
        return (token, .file(path: path))
    }
}
