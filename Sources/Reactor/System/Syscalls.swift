// Syscalls: every system call the Reactor makes goes through here.
//
// The rules (after SwiftNIO's System.swift): errno is captured right after
// the call, EINTR is retried, EAGAIN/EWOULDBLOCK come back as a value
// (`.wouldBlock`), and anything else is a `SyscallError` naming the call.
// EBADF and EFAULT mean the caller holds a dead descriptor or a bad pointer:
// that is a programmer error, so it traps instead of being handled.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSystem

/// A failed system call: which call, and the errno it left.
public struct SyscallError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call) failed: \(Syscalls.errorName(errno)) (\(errno))"
    }
}

/// The outcome of a nonblocking call: a value, or "try again when ready".
public enum IOResult<T> {
    case value(T)
    case wouldBlock
}

public enum Syscalls {
    /// Runs `body`, retrying on EINTR; returns its non-negative result,
    /// `.wouldBlock` on EAGAIN, or throws naming `call`.
    @inline(__always)
    static func retrying<T: BinaryInteger>(_ call: String, _ body: () -> T) throws -> IOResult<T> {
        while true {
            let r = body()
            if r >= 0 { return .value(r) }
            let err = Glibc.errno
            switch err {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EBADF, EFAULT:
                fatalError("\(call): \(errorName(err)) — descriptor or buffer misuse is a bug")
            default: throw SyscallError(call: call, errno: err)
            }
        }
    }

    /// Like `retrying`, for calls where EAGAIN cannot happen or is an error.
    @inline(__always)
    static func blocking<T: BinaryInteger>(_ call: String, _ body: () -> T) throws -> T {
        switch try retrying(call, body) {
        case .value(let v): return v
        case .wouldBlock: throw SyscallError(call: call, errno: EAGAIN)
        }
    }

    public static func errorName(_ err: Int32) -> String {
        switch err {
        case EAGAIN: return "EAGAIN"
        case ECONNREFUSED: return "ECONNREFUSED"
        case ECONNRESET: return "ECONNRESET"
        case ETIMEDOUT: return "ETIMEDOUT"
        case EPIPE: return "EPIPE"
        case EMFILE: return "EMFILE"
        case ENFILE: return "ENFILE"
        case EADDRINUSE: return "EADDRINUSE"
        case EADDRNOTAVAIL: return "EADDRNOTAVAIL"
        case EACCES: return "EACCES"
        case EINVAL: return "EINVAL"
        case ENOBUFS: return "ENOBUFS"
        case ENOMEM: return "ENOMEM"
        case EHOSTUNREACH: return "EHOSTUNREACH"
        case ENETUNREACH: return "ENETUNREACH"
        case EINPROGRESS: return "EINPROGRESS"
        case ENOTCONN: return "ENOTCONN"
        case ECONNABORTED: return "ECONNABORTED"
        default:
            guard let s = strerror(err) else { return "errno \(err)" }
            return String(cString: s)
        }
    }

    // MARK: descriptors

    @inline(never)
    public static func close(_ fd: Int32) {
        // close(2) must not be retried on EINTR on Linux: the fd is gone.
        if Glibc.close(fd) < 0 && Glibc.errno == EBADF {
            fatalError("close(\(fd)): EBADF — double close is a bug")
        }
    }

    @inline(never)
    public static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws -> IOResult<Int> {
        try retrying("read") { Glibc.read(fd, buf, count) }
    }

    @inline(never)
    public static func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws -> IOResult<Int> {
        try retrying("write") { Glibc.write(fd, buf, count) }
    }

    @inline(never)
    public static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) throws -> IOResult<Int> {
        try retrying("writev") { Glibc.writev(fd, iov, count) }
    }

    /// Opens `path` as a close-on-exec descriptor (the TCP listener keeps
    /// /dev/null open as its reserve descriptor).
    @inline(never)
    public static func open(_ path: String, _ flags: Int32) throws -> Int32 {
        try blocking("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC) }
    }

    /// Opens `path`, creating it with `mode` (less the umask) if missing,
    /// as a close-on-exec descriptor; `fchmod` sets the mode of an existing
    /// one; `mkdir` creates a directory, false when it already exists.
    @inline(never)
    public static func open(_ path: String, _ flags: Int32, mode: mode_t) throws -> Int32 {
        try blocking("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    @inline(never)
    public static func fchmod(_ fd: Int32, _ mode: mode_t) throws {
        _ = try blocking("fchmod") { Glibc.fchmod(fd, mode) }
    }

    @inline(never)
    public static func mkdir(_ path: String, _ mode: mode_t) throws -> Bool {
        do {
            _ = try blocking("mkdir(\(path))") { Glibc.mkdir(path, mode) }
            return true
        } catch let e as SyscallError where e.errno == EEXIST {
            return false
        }
    }

    /// Writes all of `bytes` to a blocking descriptor (a file), going on
    /// after short writes; `label` names the file in errors.
    @inline(never)
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ label: String) throws {
        var done = 0
        while done < bytes.count {
            done += try blocking("write(\(label))") { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
        }
    }

    @inline(never)
    public static func fsync(_ fd: Int32, _ label: String) throws {
        _ = try blocking("fsync(\(label))") { Glibc.fsync(fd) }
    }

    @inline(never)
    public static func setNonBlocking(_ fd: Int32) throws {
        let flags = try blocking("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        _ = try blocking("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    @inline(never)
    public static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        _ = try blocking("pipe2") { csys_pipe2(&fds, Int32(O_NONBLOCK | O_CLOEXEC)) }
        return (fds[0], fds[1])
    }

    // MARK: sockets

    @inline(never)
    public static func socket(_ domain: Int32, _ type: Int32, _ proto: Int32 = 0) throws -> Int32 {
        try blocking("socket") { Glibc.socket(domain, type | Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), proto) }
    }

    @inline(never)
    public static func socketpair(_ type: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        _ = try blocking("socketpair") {
            Glibc.socketpair(AF_UNIX, type | Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (fds[0], fds[1])
    }

    @inline(never)
    public static func setOption<T: BitwiseCopyable>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T, _ label: String) throws {
        var v = value
        _ = try blocking("setsockopt(\(label))") {
            setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<T>.size))
        }
    }

    @inline(never)
    public static func getOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ label: String) throws -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = try blocking("getsockopt(\(label))") { getsockopt(fd, level, name, &v, &len) }
        return v
    }

    /// getsockopt into a caller's buffer, for options wider than an int
    /// (e.g. SO_MEMINFO). Returns the length the kernel wrote.
    @inline(never)
    public static func getOption(_ fd: Int32, _ level: Int32, _ name: Int32, into buffer: UnsafeMutableRawBufferPointer, _ label: String) throws -> Int {
        var len = socklen_t(buffer.count)
        _ = try blocking("getsockopt(\(label))") { getsockopt(fd, level, name, buffer.baseAddress, &len) }
        return Int(len)
    }

    @inline(never)
    public static func connectDatagram(_ fd: Int32, _ address: SocketAddress) throws {
        // connect(2) on a datagram socket only sets the default peer: it
        // completes at once, so EINPROGRESS cannot happen.
        _ = try blocking("connect(\(address))") {
            address.withSockaddr { sa, len in Glibc.connect(fd, sa, len) }
        }
    }

    @inline(never)
    public static func bind(_ fd: Int32, _ address: SocketAddress) throws {
        _ = try blocking("bind(\(address))") {
            address.withSockaddr { sa, len in Glibc.bind(fd, sa, len) }
        }
    }

    /// bind(2) of an AF_UNIX socket to a filesystem path (at most 107 bytes).
    @inline(never)
    public static func bindUnix(_ fd: Int32, path: String) throws {
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: sa.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw SyscallError(call: "bind(\(path)): path longer than \(capacity - 1) bytes or empty", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &sa.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        _ = try blocking("bind(\(path))") {
            withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
    }

    /// bind(2) of a netlink socket to the multicast `groups` (a bit mask,
    /// e.g. RTMGRP_LINK); the kernel assigns the port id.
    @inline(never)
    public static func bindNetlink(_ fd: Int32, groups: UInt32) throws {
        _ = try blocking("bind(netlink groups \(groups))") { csys_bind_netlink(fd, groups) }
    }

    @inline(never)
    public static func listen(_ fd: Int32, _ backlog: Int32) throws {
        _ = try blocking("listen") { Glibc.listen(fd, backlog) }
    }

    /// Starts a nonblocking connect. Returns true when it completed at once,
    /// false when it is in progress (wait for writability, then `socketError`).
    @inline(never)
    public static func connect(_ fd: Int32, _ address: SocketAddress) throws -> Bool {
        while true {
            let r = address.withSockaddr { sa, len in Glibc.connect(fd, sa, len) }
            if r == 0 { return true }
            let err = Glibc.errno
            switch err {
            case EINTR: continue
            case EINPROGRESS: return false
            case EBADF, EFAULT: fatalError("connect: \(errorName(err)) — descriptor misuse is a bug")
            default: throw SyscallError(call: "connect(\(address))", errno: err)
            }
        }
    }

    /// Accepts one connection as a nonblocking, close-on-exec descriptor.
    /// EMFILE/ENFILE are thrown so the listener can apply its policy.
    @inline(never)
    public static func accept(_ fd: Int32) throws -> IOResult<(Int32, SocketAddress)> {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let r = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    csys_accept4(fd, $0, &len, CSYS_SOCK_NONBLOCK | CSYS_SOCK_CLOEXEC)
                }
            }
            if r >= 0 { return .value((r, SocketAddress(storage: storage))) }
            let err = Glibc.errno
            switch err {
            case EINTR, ECONNABORTED: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EBADF, EFAULT: fatalError("accept4: \(errorName(err)) — descriptor misuse is a bug")
            default: throw SyscallError(call: "accept4", errno: err)
            }
        }
    }

    /// The pending error of a socket (SO_ERROR), 0 when none.
    @inline(never)
    public static func socketError(_ fd: Int32) -> Int32 {
        (try? getOption(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")) ?? EINVAL
    }

    /// SO_LINGER {on, 0 s}: the next close(2) discards unsent data and sends
    /// RST instead of FIN (an abortive close; socket(7)).
    @inline(never)
    public static func setLingerZero(_ fd: Int32) throws {
        try setOption(fd, SOL_SOCKET, SO_LINGER, linger(l_onoff: 1, l_linger: 0), "SO_LINGER")
    }

    @inline(never)
    public static func shutdown(_ fd: Int32, _ how: Int32) throws {
        do { _ = try blocking("shutdown") { Glibc.shutdown(fd, how) } }
        catch let e as SyscallError where e.errno == ENOTCONN { return }
    }

    @inline(never)
    public static func send(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws -> IOResult<Int> {
        try retrying("send") { Glibc.send(fd, buf, count, Int32(MSG_NOSIGNAL)) }
    }

    @inline(never)
    public static func sendmsg(_ fd: Int32, _ msg: UnsafePointer<msghdr>) throws -> IOResult<Int> {
        try retrying("sendmsg") { Glibc.sendmsg(fd, msg, Int32(MSG_NOSIGNAL)) }
    }

    @inline(never)
    public static func recvmmsg(_ fd: Int32, _ vec: UnsafeMutablePointer<csys_mmsghdr>, _ count: Int) throws -> IOResult<Int32> {
        try retrying("recvmmsg") { csys_recvmmsg(fd, vec, UInt32(count), CSYS_MSG_DONTWAIT) }
    }

    @inline(never)
    public static func sendmmsg(_ fd: Int32, _ vec: UnsafeMutablePointer<csys_mmsghdr>, _ count: Int) throws -> IOResult<Int32> {
        try retrying("sendmmsg") { csys_sendmmsg(fd, vec, UInt32(count), CSYS_MSG_NOSIGNAL | CSYS_MSG_DONTWAIT) }
    }

    @inline(never)
    public static func localAddress(_ fd: Int32) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try blocking("getsockname") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
        }
        return SocketAddress(storage: storage)
    }

    /// Clears O_NONBLOCK, e.g. on the end of a pipe a child process or a
    /// helper thread writes to.
    @inline(never)
    public static func setBlocking(_ fd: Int32) throws {
        let flags = try blocking("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        _ = try blocking("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
    }

    // MARK: processes

    /// kill(2). Returns false when no such process (group) exists (ESRCH).
    @inline(never)
    @discardableResult
    public static func kill(_ pid: pid_t, _ signal: Int32) throws -> Bool {
        if Glibc.kill(pid, signal) == 0 { return true }
        let err = Glibc.errno
        if err == ESRCH { return false }
        throw SyscallError(call: "kill(\(pid), \(signal))", errno: err)
    }

    /// posix_spawn(3) (posix_spawnp with `searchPath`): runs `path` with
    /// `arguments` (argv[0] first) and exactly `environment` ("K=V"), with
    /// stdin/stdout/stderr dup2'ed from the given descriptors. The child gets
    /// an empty signal mask (libev may block signals in the parent) and
    /// SIG_DFL for `defaultSignals` (an ignored signal stays ignored across
    /// exec otherwise, e.g. SIGPIPE); with `newProcessGroup` it leads a new
    /// process group, so kill(-pid, …) reaches whatever it starts. glibc
    /// reports an exec failure (ENOENT, EACCES) as this call's error.
    @inline(never)
    public static func spawn(path: String, arguments: [String], environment: [String],
                             stdin: Int32, stdout: Int32, stderr: Int32, searchPath: Bool = false,
                             newProcessGroup: Bool = true,
                             defaultSignals: [Int32] = [SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        var attr = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attr)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attr)
        }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in defaultSignals { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = searchPath ? posix_spawnp(&pid, path, &actions, &attr, argv, envp)
                            : posix_spawn(&pid, path, &actions, &attr, argv, envp)
        guard rc == 0 else { throw SyscallError(call: "posix_spawn(\(path))", errno: rc) }
        return pid
    }

    // MARK: memory

    /// madvise(2) over `[address, address + length)`. EINVAL (a locked or
    /// special mapping, an advice the kernel lacks) and ENOMEM (a range no
    /// longer mapped) come back as errors for the caller to count.
    /// The call's name is formatted only on failure: the agent's page trim
    /// calls this right after dropping its own code, and formatting an
    /// integer would fault the string code back in for nothing.
    @inline(never)
    public static func madvise(_ address: UInt, _ length: Int, _ advice: Int32) throws {
        do {
            _ = try blocking("madvise") {
                Glibc.madvise(UnsafeMutableRawPointer(bitPattern: address), length, advice)
            }
        } catch let e as SyscallError {
            throw SyscallError(call: "madvise(\(advice))", errno: e.errno)
        }
    }

    /// Sets the calling thread's nice value (setpriority on its thread id):
    /// a helper thread can yield the CPU to its loop thread. Raising the
    /// value needs no privilege; lowering it below 0 does (EACCES/EPERM).
    public static func setThreadNice(_ value: Int32) throws {
        let tid = csys_gettid()
        _ = try blocking("setpriority(thread \(tid), \(value))") {
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), value)
        }
    }

    /// SIGPIPE must never kill a Vigil process: sends use MSG_NOSIGNAL, and
    /// this covers write(2)/writev(2) on sockets and pipes.
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }

    // MARK: messages

    /// Writes a message to stderr or stdout, retrying EINTR and short
    /// writes. Best effort, unlike `writeAll`: false when the descriptor
    /// refused it — EBADF included, since a process started with stderr
    /// closed must not trap on its last words, and there is nowhere left to
    /// report the failure.
    @discardableResult
    @inline(never)
    public static func writeMessage(_ fd: Int32, _ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && Glibc.errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
    }
}
