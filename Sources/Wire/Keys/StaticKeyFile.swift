// StaticKeyFile: a static key pair kept in a file of its own — the agent's
// identity in `state_dir/agent_key`, the collector installation's key in
// `data_dir/collector_key`. The file holds the 32-byte secret as one line
// of base64url; the public key is derived from it.
//
// Created at first start with O_EXCL and mode 0600. On every later start
// it is refused, naming the file, when it is unreadable, does not hold a
// key, or is readable by group or others: a key that others may have read
// is not a secret, and the operator decides what happens to it (a chmod,
// or a new key and a reset identity). Called once at start, before the
// loop runs; blocking I/O is fine here.
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public enum StaticKeyFile {
    /// Why the key file could not be used; always names the file.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// `directory/name`.
    public static func path(directory: String, name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The key pair in `path`, created there if the file does not exist.
    /// `created` says which happened (for the start-up log line).
    public static func loadOrCreate(path: String) throws(Failure) -> (key: StaticKeyPair, created: Bool) {
        do {
            let fd = try Syscalls.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            let key = StaticKeyPair.generate()
            do {
                defer { Syscalls.close(fd) }
                try Syscalls.fchmod(fd, 0o600)      // whatever the umask
                try Array((Base64URL.encode(key.secret.bytes) + "\n").utf8).withUnsafeBytes { try Syscalls.writeAll(fd, $0, path) }
                try Syscalls.fsync(fd, path)
            } catch {
                unlink(path)
                throw Failure(description: "writing key file \(path): \(error)")
            }
            return (key, true)
        } catch let e as SyscallError where e.errno == EEXIST {
            // A file from an earlier start: load it below.
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure(description: "creating key file \(path): \(error)")
        }
        return (try load(path: path), false)
    }

    /// The key pair in an existing file, checked as described above.
    public static func load(path: String) throws(Failure) -> StaticKeyPair {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw Failure(description: "key file \(path) is unreadable: \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw Failure(description: "key file \(path): fstat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(description: "key file \(path) is not a regular file")
        }
        let mode = st.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            let octal = String(mode, radix: 8)
            throw Failure(description: "key file \(path) is readable by group or others (mode 0\(octal)); it must be 0600 (chmod 600 \(path))")
        }
        var bytes = [UInt8](repeating: 0, count: 128)
        let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
        guard n >= 0 else {
            throw Failure(description: "key file \(path) is unreadable: \(String(cString: strerror(errno)))")
        }
        var text = bytes[0..<n]
        while let last = text.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") {
            text = text.dropLast()
        }
        guard text.count == AccessKey.secretTextLength, let raw = Base64URL.decode(text), var secret = Key32(bytes: raw) else {
            for i in bytes.indices { bytes[i] = 0 }
            throw Failure(description: "key file \(path) is corrupt: it must hold one line of 43 base64url characters")
        }
        for i in bytes.indices { bytes[i] = 0 }
        let key = StaticKeyPair(secret: secret)
        secret.wipe()
        return key
    }
}
