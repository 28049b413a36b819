// StateDirectory: the agent's own directory (`state_dir`) for what must
// outlive a process — its static key, the filter rules it last received,
// its disk spool. Created at start with mode 0700 (each missing component);
// an existing directory must be a directory the agent can write, and one
// that others can read or enter is made private again (its files may hold
// the agent's private key), with a log line saying so.
//
// Thread: main thread, before the loop runs (blocking file-system calls).
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public enum StateDirectory {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let why: String
        public var description: String { "state_dir \(path): \(why)" }
    }

    /// Creates `path` (and missing parents, 0700) or checks the existing
    /// one; returns it unchanged.
    @discardableResult
    public static func prepare(_ path: String) throws(Failure) -> String {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            do { _ = try Syscalls.mkdir(prefix, 0o700) } catch {
                let why = (error as? SyscallError).map { Syscalls.errorName($0.errno) } ?? "\(error)"
                throw Failure(path: path, why: "cannot create \(prefix): \(why)")
            }
            prefix += "/"
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw Failure(path: path, why: "cannot read it: \(Syscalls.errorName(errno))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw Failure(path: path, why: "not a directory") }
        guard access(path, W_OK | X_OK) == 0 else {
            throw Failure(path: path, why: "not writable by this user: \(Syscalls.errorName(errno))")
        }
        if st.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else {
                throw Failure(path: path, why: "others may read it and chmod 0700 failed: \(Syscalls.errorName(errno))")
            }
            Log.warn("state_dir was readable by others; made private (0700)", ["path": path])
        }
        return path
    }
}
