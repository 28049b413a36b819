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
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            let token = Base64URL.encode(Key32.random().bytes)
            let line = Array((token + "\n").utf8)
            let ok = line.withUnsafeBytes { b in Glibc.write(fd, b.baseAddress, b.count) == b.count } && fsync(fd) == 0
            let err = errno
            close(fd)
            guard ok else {
                unlink(path)
                throw Failure(description: "writing \(path): \(String(cString: strerror(err)))")
            }
            return (token, .generated(path: path))
        }
        guard errno == EEXIST else { throw Failure(description: "creating \(path): \(String(cString: strerror(errno)))") }
        // An existing file from an earlier start: keep it private, then read it.
        if chmod(path, 0o600) != 0 { throw Failure(description: "chmod \(path): \(String(cString: strerror(errno)))") }
        guard let text = ProcessLimits.readSmallFile(path, max: 4096) else {
            throw Failure(description: "reading \(path): \(String(cString: strerror(errno)))")
        }
        let token = text.trimmingSpaces().filter { $0 != "\n" && $0 != "\r" }
        guard token.count >= 16 else { throw Failure(description: "\(path) holds no usable token (delete it to generate a new one)") }
        return (token, .file(path: path))
    }
}
