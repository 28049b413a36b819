// UDPSocket: one bound, nonblocking datagram socket and its kernel tuning.
//
// Reading and writing live elsewhere (UDPReceiver, UDPSender); this type
// owns the descriptor and the options that decide whether datagrams survive
// a burst: the receive buffer size (read back, because Linux clamps it
// silently) and SO_RXQ_OVFL, which makes the kernel count what it dropped.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// A nonblocking UDP socket bound to an IPv4 or IPv6 address.
///
/// Thread: loop thread (or any single thread). Ownership: the socket owns its
/// descriptor and closes it in `close()` or `deinit`. A `UDPReceiver` started
/// on it is stopped by `close()` first, so libev never watches a closed fd.
public final class UDPSocket {
    public struct Options: Sendable {
        /// Requested SO_RCVBUF in bytes (what the application may queue, as
        /// in setsockopt(2); the kernel reserves twice that). nil: the
        /// kernel default (net.core.rmem_default).
        public var receiveBufferBytes: Int?
        public var reuseAddress = false
        /// SO_REUSEPORT: several sockets on one port, the kernel spreads flows.
        public var reusePort = false
        /// IPV6_V6ONLY for IPv6 sockets; nil keeps the system default
        /// (net.ipv6.bindv6only). false lets "::" receive IPv4 as well.
        public var v6Only: Bool?
        /// Ask the kernel for SO_RXQ_OVFL drop counts on received datagrams.
        public var countKernelDrops = true

        public init(receiveBufferBytes: Int? = nil, reuseAddress: Bool = false, reusePort: Bool = false,
                    v6Only: Bool? = nil, countKernelDrops: Bool = true) {
            self.receiveBufferBytes = receiveBufferBytes
            self.reuseAddress = reuseAddress
            self.reusePort = reusePort
            self.v6Only = v6Only
            self.countKernelDrops = countKernelDrops
        }
    }

    /// What SO_RCVBUF became. Linux stores twice the requested value and
    /// getsockopt returns that doubled figure (socket(7)), so `granted` is the
    /// read-back value halved: directly comparable with `requested`.
    public struct ReceiveBuffer: Equatable, Sendable {
        public let requested: Int
        public let granted: Int
        /// SO_RCVBUFFORCE (CAP_NET_ADMIN) was used to pass net.core.rmem_max.
        public let forced: Bool
        public var clamped: Bool { granted < requested }
    }

    public private(set) var fd: Int32
    public let localAddress: SocketAddress
    /// The outcome of the last receive-buffer request, if any.
    public private(set) var receiveBuffer: ReceiveBuffer?
    /// Set by a receiver while it is started; `close()` stops it first.
    weak var receiver: UDPReceiver?

    public var isOpen: Bool { fd >= 0 }

    /// Creates a socket of `address`'s family, applies `options`, and binds.
    /// Port 0 picks a free port; read it back from `localAddress`.
    public init(bind address: SocketAddress, options: Options = Options()) throws {
        let fd = try Syscalls.socket(address.family, Int32(SOCK_DGRAM.rawValue))
        do {
            try UDPSocket.applyBeforeBind(fd, address.family, options)
            try Syscalls.bind(fd, address)
            localAddress = try Syscalls.localAddress(fd)
        } catch {
            Syscalls.close(fd)
            throw error
        }
        self.fd = fd
        if let bytes = options.receiveBufferBytes {
            do { _ = try setReceiveBuffer(bytes) } catch { close(); throw error }
        }
    }

    /// Takes ownership of an open datagram socket (socket activation, or a
    /// socketpair in tests). It is made nonblocking; options are not touched.
    public init(adopting fd: Int32) throws {
        try Syscalls.setNonBlocking(fd)
        self.fd = fd
        localAddress = (try? Syscalls.localAddress(fd)) ?? .v4(sockaddr_in())
    }

    /// A socket on the loopback interface only (127.0.0.1 or ::1).
    public static func loopback(port: UInt16 = 0, ipv6: Bool = false, options: Options = Options()) throws -> UDPSocket {
        try UDPSocket(bind: SocketAddress(ip: ipv6 ? "::1" : "127.0.0.1", port: port), options: options)
    }

    /// A socket on every interface (0.0.0.0 or ::).
    public static func any(port: UInt16, ipv6: Bool = false, options: Options = Options()) throws -> UDPSocket {
        try UDPSocket(bind: SocketAddress(ip: ipv6 ? "::" : "0.0.0.0", port: port), options: options)
    }

    deinit {
        if fd >= 0 { Syscalls.close(fd) }
    }

    /// Stops any receiver on this socket, then closes the descriptor. Idempotent.
    public func close() {
        guard fd >= 0 else { return }
        receiver?.stop()
        Syscalls.close(fd)
        fd = -1
    }

    /// Sets the default destination, so `UDPSender.send(to: nil, …)` works
    /// and the kernel filters datagrams from other peers.
    public func connect(to peer: SocketAddress) throws {
        try Syscalls.connectDatagram(fd, peer)
    }

    private static func applyBeforeBind(_ fd: Int32, _ family: Int32, _ o: Options) throws {
        if o.reuseAddress { try Syscalls.setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), "SO_REUSEADDR") }
        if o.reusePort { try Syscalls.setOption(fd, SOL_SOCKET, CSYS_SO_REUSEPORT, Int32(1), "SO_REUSEPORT") }
        if family == AF_INET6, let only = o.v6Only {
            try Syscalls.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, Int32(only ? 1 : 0), "IPV6_V6ONLY")
        }
        if o.countKernelDrops {
            try Syscalls.setOption(fd, SOL_SOCKET, CSYS_SO_RXQ_OVFL, Int32(1), "SO_RXQ_OVFL")
        }
    }

    /// Requests `bytes` of receive buffer and reads back what the kernel
    /// granted. When net.core.rmem_max clamped it, SO_RCVBUFFORCE is tried
    /// (it works with CAP_NET_ADMIN, e.g. as root); if the grant is still
    /// short, a warning is logged with the sysctl to raise.
    @discardableResult
    public func setReceiveBuffer(_ bytes: Int) throws -> ReceiveBuffer {
        // The kernel doubles the value in an int; keep the request where
        // doubling cannot overflow.
        let request = Int32(clamping: min(bytes, Int(Int32.max / 2)))
        try Syscalls.setOption(fd, SOL_SOCKET, SO_RCVBUF, request, "SO_RCVBUF=\(request)")
        var granted = try grantedReceiveBuffer()
        var forced = false
        if granted < Int(request) {
            do {
                try Syscalls.setOption(fd, SOL_SOCKET, CSYS_SO_RCVBUFFORCE, request, "SO_RCVBUFFORCE=\(request)")
                forced = true
                granted = try grantedReceiveBuffer()
            } catch let e as SyscallError where e.errno == EPERM {
                // Not privileged: the clamp stands; warned about below.
            }
        }
        let result = ReceiveBuffer(requested: Int(request), granted: granted, forced: forced)
        receiveBuffer = result
        if result.clamped {
            Log.warn("udp receive buffer clamped by the kernel; raise net.core.rmem_max or run with CAP_NET_ADMIN", [
                "socket": "\(localAddress)", "requested": "\(result.requested)", "granted": "\(result.granted)",
                "rmem_max": ProcessLimits.readSmallFile("/proc/sys/net/core/rmem_max")?.trimmingSpaces() ?? "?",
            ])
        }
        return result
    }

    /// SO_RCVBUF as read back, halved to undo the kernel's doubling.
    public func grantedReceiveBuffer() throws -> Int {
        Int(try Syscalls.getOption(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF")) / 2
    }

    /// The socket's cumulative kernel drop counter right now (sk_drops via
    /// SO_MEMINFO, the counter SO_RXQ_OVFL reports). A u32 that wraps.
    public func kernelDropCounter() throws -> UInt32 {
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: Int(CSYS_SK_MEMINFO_VARS)) { buf in
            buf.initialize(repeating: 0)
            let len = try Syscalls.getOption(fd, SOL_SOCKET, CSYS_SO_MEMINFO, into: UnsafeMutableRawBufferPointer(buf), "SO_MEMINFO")
            let i = Int(CSYS_SK_MEMINFO_DROPS)
            guard len >= (i + 1) * MemoryLayout<UInt32>.size else {
                throw SyscallError(call: "getsockopt(SO_MEMINFO) returned \(len) bytes", errno: EINVAL)
            }
            return buf[i]
        }
    }
}
