// ServiceNotify: the service manager's notify protocol (sd_notify(3)),
// spoken directly — one datagram per state change to the Unix socket named
// by $NOTIFY_SOCKET, so neither program links libsystemd.
//
//   READY=1                       once the program listens (Type=notify)
//   RELOADING=1 MONOTONIC_USEC=…  at the start of a SIGHUP reload, READY=1 after
//   STOPPING=1                    when shutdown begins
//   STATUS=…                      one line for `systemctl status`
//   WATCHDOG=1                    from a loop timer at half $WATCHDOG_USEC, so
//                                 a loop that stops turning stops the pings
//                                 and the manager restarts the service
//
// $NOTIFY_SOCKET is a filesystem path or, with a leading '@', an abstract
// socket (unix(7)). The watchdog runs only when $WATCHDOG_PID is unset or
// names this process (sd_watchdog_enabled(3)). Both variables are removed
// from the environment once read, so children (exec monitors) do not speak
// for the service. Without $NOTIFY_SOCKET nothing is sent and nothing runs.
//
// Sends never block: the socket is nonblocking, and a datagram the manager
// cannot take at once is dropped and counted (`dropped`) — the next state
// change or ping says the same again.
//
// Thread: loop thread (the watchdog timer is a TimerWatcher on the loop).
#if canImport(Glibc)
import Glibc
#endif
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

public final class ServiceNotify {
    /// The messages, as sd_notify(3) spells them. Newlines inside a status
    /// text would start a new assignment: they become spaces.
    public enum Message {
        public static func ready(status: String? = nil) -> String { "READY=1" + statusLine(status) }
        public static func reloading(monotonicUsec: UInt64, status: String? = nil) -> String {
            "RELOADING=1\nMONOTONIC_USEC=\(monotonicUsec)" + statusLine(status)
        }
        public static func stopping(status: String? = nil) -> String { "STOPPING=1" + statusLine(status) }
        public static func status(_ text: String) -> String { "STATUS=" + oneLine(text) }
        public static func watchdog(status: String? = nil) -> String { "WATCHDOG=1" + statusLine(status) }

        static func statusLine(_ status: String?) -> String {
            guard let status else { return "" }
            return "\n" + Message.status(status)
        }

        static func oneLine(_ text: String) -> String {
            String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
        }
    }

    /// What the environment asks for; `parse` is pure, so tests give it any
    /// environment and pid.
    public struct Settings: Equatable, Sendable {
        /// $NOTIFY_SOCKET as given ("/run/systemd/notify", "@name").
        public var socket: String
        /// Seconds between watchdog pings (half $WATCHDOG_USEC); nil: no watchdog.
        public var watchdogInterval: Double?

        public init(socket: String, watchdogInterval: Double?) {
            self.socket = socket
            self.watchdogInterval = watchdogInterval
        }

        /// nil when $NOTIFY_SOCKET is unset or empty. A $WATCHDOG_USEC that
        /// is not a positive number, or a $WATCHDOG_PID naming another
        /// process, leaves the watchdog off.
        public static func parse(_ env: [String: String], pid: Int32) -> Settings? {
            guard let socket = env["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
            var interval: Double?
            if let usec = env["WATCHDOG_USEC"].flatMap({ UInt64($0) }), usec > 0 {
                let forUs = env["WATCHDOG_PID"].map { Int32($0) == pid } ?? true
                if forUs { interval = Double(usec) / 2 / 1_000_000 }
            }
            return Settings(socket: socket, watchdogInterval: interval)
        }
    }

    /// Why $NOTIFY_SOCKET cannot be used.
    public struct AddressError: Error, CustomStringConvertible, Equatable {
        public let socket: String
        public let problem: String
        public var description: String { "NOTIFY_SOCKET \"\(socket)\": \(problem)" }
    }

    /// The sockaddr_un bytes and length for `socket`: a path (absolute),
    /// or '@' + name for the abstract namespace (no trailing NUL counted).
    public static func address(_ socket: String) throws(AddressError) -> (sockaddr_un, socklen_t) {
        var bytes = Array(socket.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract {
            bytes[0] = 0
        } else if bytes.first != UInt8(ascii: "/") {
            throw AddressError(socket: socket, problem: "not an absolute path or an @abstract name")
        }
        var addr = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        // A path needs its NUL inside sun_path; an abstract name does not.
        guard bytes.count + (abstract ? 0 : 1) <= capacity, bytes.count > 1 else {
            throw AddressError(socket: socket, problem: "length \(bytes.count) outside 2...\(capacity - (abstract ? 0 : 1)) bytes")
        }
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        return (addr, socklen_t(offset + bytes.count + (abstract ? 0 : 1)))
    }

    public let settings: Settings
    /// Datagrams sent, and dropped (manager's queue full, socket gone).
    public private(set) var sent: UInt64 = 0
    public private(set) var dropped: UInt64 = 0
    /// What the status line should say now; asked at every watchdog tick,
    /// and sent when it changed.
    public var statusText: (() -> String)?

    private let fd: Int32
    private var addr: sockaddr_un
    private let addrLength: socklen_t
    private var timer: TimerWatcher?
    private var lastStatus: String?

    /// Opens the socket for `settings` (no datagram yet).
    public init(settings: Settings) throws {
        let (a, n) = try ServiceNotify.address(settings.socket)
        self.settings = settings
        addr = a
        addrLength = n
        fd = try Syscalls.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue))
    }

    deinit {
        timer?.stop()
        Syscalls.close(fd)
    }

    /// The service manager's notifier when the process runs under one
    /// ($NOTIFY_SOCKET set), else nil. Reads and clears the variables; a
    /// socket that cannot be used is logged, and the service runs without.
    public static func fromEnvironment() -> ServiceNotify? {
        var env: [String: String] = [:]
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let v = getenv(name) { env[name] = String(cString: v) }
            unsetenv(name)
        }
        guard let settings = Settings.parse(env, pid: getpid()) else { return nil }
        do {
            return try ServiceNotify(settings: settings)
        } catch {
            Log.warn("service manager notifications off", ["error": "\(error)"])
            return nil
        }
    }

    // MARK: - State changes

    /// READY=1 (after start-up, and after a reload), with the status line.
    public func ready() { send(Message.ready(status: currentStatus())) }

    /// RELOADING=1 with the monotonic time the reload began (systemd 253's
    /// Type=notify-reload reads it; older managers ignore it).
    public func reloading() {
        send(Message.reloading(monotonicUsec: Clock.monotonicNanos() / 1000, status: "reloading the configuration"))
    }

    public func stopping(status: String = "stopping") {
        timer?.stop()
        send(Message.stopping(status: status))
    }

    /// Starts the watchdog pings (when the manager asked for them) and the
    /// status updates, at half the watchdog period or every
    /// `statusInterval` seconds without one.
    public func startTimer(loop: EventLoop, statusInterval: Double = 10) {
        let period = settings.watchdogInterval ?? statusInterval
        let t = TimerWatcher(loop: loop) { [unowned self] _ in self.tick() }
        t.start(after: period, repeat: period)
        timer = t
    }

    public func stopTimer() { timer?.stop() }

    private func tick() {
        let text = statusText?()
        let changed = text != nil && text != lastStatus
        if changed { lastStatus = text }
        if settings.watchdogInterval != nil {
            send(Message.watchdog(status: changed ? text : nil))
        } else if changed, let text {
            send(Message.status(text))
        }
    }

    private func currentStatus() -> String? {
        let text = statusText?()
        if text != nil { lastStatus = text }
        return text
    }

    /// One datagram to the manager; never blocks.
    public func send(_ message: String) {
        var bytes = Array(message.utf8)
        let ok: Bool = bytes.withUnsafeMutableBytes { buf in
            withUnsafeMutablePointer(to: &addr) { a in
                var iov = iovec(iov_base: buf.baseAddress, iov_len: buf.count)
                return withUnsafeMutablePointer(to: &iov) { iovp in
                    var msg = msghdr()
                    msg.msg_name = UnsafeMutableRawPointer(a)
                    msg.msg_namelen = addrLength
                    msg.msg_iov = iovp
                    msg.msg_iovlen = 1
                    switch try? Syscalls.sendmsg(fd, &msg) {
                    case .value(let n)?: return n == buf.count
                    default: return false
                    }
                }
            }
        }
        if ok {
            sent &+= 1
        } else {
            dropped &+= 1
            if dropped == 1 { Log.warn("service manager notification not delivered", ["socket": settings.socket]) }
        }
    }
}
