// TCPListener: a listening TCP socket that accepts in bounded batches
// (an ev_io read watcher on the listening descriptor, accept4(2) per
// connection).
//
// Running out of descriptors is the classic way an accept loop spins: the
// listening socket stays readable (the connection is still queued), every
// accept4 fails with EMFILE, and the loop burns a core doing nothing. Two
// defences, in order:
//  1. The reserve descriptor (libev's ev.pod, "the special problem of
//     accept()ing when you can't"; also nginx, libuv): keep one descriptor
//     open on /dev/null; on EMFILE/ENFILE close it, accept the connection,
//     close that at once, and reopen the reserve. The peer sees an orderly
//     close instead of hanging in the backlog, and the socket stops being
//     readable, so nothing spins.
//  2. If the reserve cannot be had back (another part of the process took
//     the descriptor) or accept4 fails for a non-transient reason (ENOBUFS,
//     ENOMEM, ...), accepting pauses for `pauseOnError` seconds on a timer.
// Each event is counted, and at most one log line per second says so.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// A bound, listening TCP socket that hands each accepted connection —
/// a nonblocking, close-on-exec descriptor and the peer's address — to
/// `onAccept`, which then owns the descriptor.
///
/// Thread: the loop's thread only. Ownership: the caller holds the listener;
/// dropping it (or `close()`) stops accepting and closes the socket. While
/// started, up to `acceptBatch` connections are accepted per wakeup; more
/// wait for the next iteration so one flood cannot starve other watchers.
public final class TCPListener {
    public struct Options {
        /// listen(2) backlog; the kernel silently caps it at net.core.somaxconn
        /// (a warning is logged when it does).
        public var backlog: Int32 = 1024
        /// SO_REUSEPORT: several listeners (processes or loops) on one port,
        /// the kernel spreading connections among them.
        public var reusePort = false
        /// IPV6_V6ONLY for an IPv6 address; nil keeps the system default
        /// (net.ipv6.bindv6only, normally dual-stack).
        public var v6Only: Bool? = nil
        /// Most connections accepted per wakeup.
        public var acceptBatch = 64
        /// Keep the reserve descriptor (see the file comment).
        public var reserveDescriptor = true
        /// How long accepting pauses after an error it cannot work around.
        public var pauseOnError = 0.1

        public init() {}
    }

    public typealias AcceptHandler = (_ fd: Int32, _ peer: SocketAddress) -> Void

    public let loop: EventLoop
    public let options: Options
    /// The bound address; with port 0 this holds the port the kernel chose.
    public let localAddress: SocketAddress
    /// The listening descriptor, -1 once closed.
    public private(set) var fd: Int32

    /// Connections accepted and handed to `onAccept`.
    public private(set) var accepted: UInt64 = 0
    /// accept4 calls that failed (EMFILE/ENFILE included).
    public private(set) var acceptErrors: UInt64 = 0
    /// Connections accepted and closed at once because descriptors ran out.
    public private(set) var emfileDrops: UInt64 = 0
    /// Times accepting was paused on a timer.
    public private(set) var pauses: UInt64 = 0
    /// True while accepting is paused after an error.
    public private(set) var isPaused = false

    private let onAccept: AcceptHandler
    private var io: IOWatcher!
    private var resumeTimer: TimerWatcher?
    private var started = false
    private var reserveFD: Int32 = -1
    private var logLimiter = LogLimiter(interval: 1, maxKeys: 1)

    /// Creates the socket, binds it to `address` (SO_REUSEADDR always) and
    /// listens. Does not accept until `start()`. Throws the failing call
    /// (e.g. `bind(127.0.0.1:6600) failed: EADDRINUSE`).
    public init(loop: EventLoop, address: SocketAddress, options: Options = Options(),
                onAccept: @escaping AcceptHandler) throws {
        self.loop = loop
        self.options = options
        self.onAccept = onAccept
        let fd = try Syscalls.socket(address.family, Int32(SOCK_STREAM.rawValue))
        do {
            try Syscalls.setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), "SO_REUSEADDR")
            if options.reusePort {
                try Syscalls.setOption(fd, SOL_SOCKET, SO_REUSEPORT, Int32(1), "SO_REUSEPORT")
            }
            if case .v6 = address, let only = options.v6Only {
                try Syscalls.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, Int32(only ? 1 : 0), "IPV6_V6ONLY")
            }
            try Syscalls.bind(fd, address)
            try Syscalls.listen(fd, options.backlog)
            localAddress = try Syscalls.localAddress(fd)
        } catch {
            Syscalls.close(fd)
            throw error
        }
        self.fd = fd
        if let cap = ProcessLimits.somaxconn(), Int(options.backlog) > cap {
            Log.warn("listen backlog capped by net.core.somaxconn",
                     ["listen": "\(localAddress)", "backlog": "\(options.backlog)", "somaxconn": "\(cap)"])
        }
        if options.reserveDescriptor { reopenReserve() }
        io = IOWatcher(loop: loop, fd: fd, events: .read, label: "accept") { [unowned self] _, _ in self.acceptBatch() }
    }

    deinit { close() }

    /// Starts accepting.
    public func start() {
        guard fd >= 0 else { return }
        started = true
        if !isPaused { io.start() }
    }

    /// Stops accepting; connections keep queueing in the kernel's backlog.
    public func stop() {
        started = false
        io.stop()
    }

    /// Stops accepting and closes the socket (and the reserve descriptor).
    /// Connections still in the backlog are reset by the kernel.
    public func close() {
        guard fd >= 0 else { return }
        stop()
        resumeTimer?.stop()
        resumeTimer = nil
        isPaused = false
        Syscalls.close(fd)
        fd = -1
        if reserveFD >= 0 { Syscalls.close(reserveFD); reserveFD = -1 }
    }

    // MARK: accepting

    private func acceptBatch() {
        var budget = options.acceptBatch
        while budget > 0 && fd >= 0 && started && !isPaused {
            budget -= 1
            let r: IOResult<(Int32, SocketAddress)>
            do {
                r = try Syscalls.accept(fd)
            } catch {
                if !acceptFailed(error as? SyscallError ?? SyscallError(call: "accept4", errno: EIO)) { return }
                continue
            }
            guard case .value(let (cfd, peer)) = r else { return }
            accepted &+= 1
            onAccept(cfd, peer)  // may stop or close this listener; the loop condition re-checks
        }
    }

    /// Applies the error policy; returns whether the batch may go on.
    private func acceptFailed(_ e: SyscallError) -> Bool {
        acceptErrors &+= 1
        switch e.errno {
        case EMFILE, ENFILE:
            switch dropOneWithReserve() {
            case .dropped:
                emfileDrops &+= 1
                logLimited("accept: out of descriptors, dropping new connections", e)
                return true
            case .queueEmpty:
                // accept4 takes the descriptor before it looks at the queue,
                // so at the limit even an empty queue says EMFILE.
                return false
            case .unavailable:
                pause(because: e)
                return false
            }
        // accept(2), "Error handling": on Linux these are errors of the one
        // pending connection, already consumed; treat them like EAGAIN.
        case EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, ENETDOWN, EPERM:
            logLimited("accept: connection failed before it was accepted", e)
            return true
        default:
            pause(because: e)
            return false
        }
    }

    private enum ReserveOutcome { case dropped, queueEmpty, unavailable }

    /// The reserve-descriptor dance: free one descriptor, accept with it,
    /// close the connection at once, take the descriptor back.
    private func dropOneWithReserve() -> ReserveOutcome {
        guard reserveFD >= 0 else { return .unavailable }
        Syscalls.close(reserveFD)
        reserveFD = -1
        var outcome = ReserveOutcome.unavailable
        switch try? Syscalls.accept(fd) {
        case .value(let (cfd, _))?:
            Syscalls.close(cfd)
            outcome = .dropped
        case .wouldBlock?:
            outcome = .queueEmpty
        case nil:
            outcome = .unavailable  // still failing: someone else took the descriptor
        }
        reopenReserve()
        return reserveFD >= 0 ? outcome : .unavailable
    }

    private func reopenReserve() {
        guard reserveFD < 0 else { return }
        reserveFD = (try? Syscalls.open("/dev/null", O_RDONLY)) ?? -1
    }

    private func pause(because e: SyscallError) {
        guard !isPaused else { return }
        isPaused = true
        pauses &+= 1
        io.stop()
        logLimited("accept: pausing for \(options.pauseOnError) s", e)
        if resumeTimer == nil {
            resumeTimer = TimerWatcher(loop: loop, label: "accept resume") { [unowned self] _ in self.resume() }
        }
        resumeTimer!.start(after: options.pauseOnError)
    }

    private func resume() {
        isPaused = false
        if options.reserveDescriptor { reopenReserve() }
        if started && fd >= 0 { io.start() }
    }

    /// At most one line per second about accept trouble, whatever the
    /// kind; each line carries the running counters, so nothing suppressed
    /// is lost from the totals.
    private func logLimited(_ msg: String, _ e: SyscallError) {
        guard logLimiter.allow("accept", now: loop.now) else { return }
        Log.warn(msg, ["listen": "\(localAddress)", "error": "\(e)", "errors": "\(acceptErrors)",
                       "dropped": "\(emfileDrops)", "pauses": "\(pauses)", "suppressed": "\(logLimiter.suppressed)"])
    }
}
