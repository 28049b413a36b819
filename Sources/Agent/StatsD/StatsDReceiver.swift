// StatsDReceiver: the StatsD sockets — UDP on `statsd_port` at each
// `statsd_bind` address (an IPAReceiver with the StatsD pipeline as its
// sink: the same recvmmsg batches, per-wakeup budget, SO_RCVBUF and
// kernel-drop counting as IPA), and optionally a Unix datagram socket at
// `statsd_socket` read by the same batched UDPReceiver.
//
// A Unix datagram sender blocks (or gets EAGAIN) when the queue is full,
// so that socket has no kernel drops to count. An existing socket file at
// the path is replaced (a previous run's); any other file there is an
// error naming the path.
//
// Thread: loop thread; owned by the runtime.
#if canImport(Glibc)
import Glibc
#endif
import Reactor

public final class StatsDReceiver {
    public struct Settings: Equatable, Sendable {
        /// UDP addresses (with `statsd_port`); empty when the port is 0.
        public var addresses: [SocketAddress]
        /// Unix datagram socket path; empty for none.
        public var socketPath: String
        public var receiveBuffer: Int

        public init(addresses: [SocketAddress], socketPath: String = "", receiveBuffer: Int = 0) {
            self.addresses = addresses
            self.socketPath = socketPath
            self.receiveBuffer = receiveBuffer
        }

        public var isEnabled: Bool { !addresses.isEmpty || !socketPath.isEmpty }
    }

    public let loop: EventLoop
    public let pipeline: StatsDPipeline
    public let udp: IPAReceiver
    private var unixSocket: UDPSocket?
    private var unixReceiver: UDPReceiver?
    private var closedUnixDatagrams: UInt64 = 0
    private var closedUnixTruncated: UInt64 = 0
    public private(set) var settings: Settings?

    public init(loop: EventLoop, pipeline: StatsDPipeline) {
        self.loop = loop
        self.pipeline = pipeline
        udp = IPAReceiver(loop: loop) { pipeline.ingest($0) }
    }

    deinit { close() }

    public var isOpen: Bool { udp.isOpen || unixSocket != nil }
    public var localAddresses: [SocketAddress] { udp.localAddresses }
    public var socketPath: String? { unixSocket == nil ? nil : settings?.socketPath }
    public var kernelDrops: UInt64 { udp.kernelDrops }
    public var truncated: UInt64 { udp.truncated &+ closedUnixTruncated &+ (unixReceiver?.truncated ?? 0) }
    public var datagrams: UInt64 { udp.datagrams &+ closedUnixDatagrams &+ (unixReceiver?.datagrams ?? 0) }

    public func refreshKernelDrops() { udp.refreshKernelDrops() }

    /// Receives on exactly `new`; throws the first failure (naming the
    /// address or path), leaving the UDP side as it was.
    public func open(_ new: Settings) throws {
        if new.addresses.isEmpty {
            udp.close()
        } else {
            try udp.open(IPAReceiver.Settings(addresses: new.addresses, receiveBuffer: new.receiveBuffer))
        }
        if new.socketPath != settings?.socketPath || unixSocket == nil {
            closeUnix()
            if !new.socketPath.isEmpty { try openUnix(new.socketPath, receiveBuffer: new.receiveBuffer) }
        }
        settings = new
    }

    public func close() {
        udp.close()
        closeUnix()
        settings = nil
    }

    private func openUnix(_ path: String, receiveBuffer: Int) throws {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw SyscallError(call: "bind(\(path)): a file that is not a socket is in the way", errno: EEXIST)
            }
            unlink(path)
        }
        let fd = try Syscalls.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue))
        do {
            try Syscalls.bindUnix(fd, path: path)
        } catch {
            Syscalls.close(fd)
            throw error
        }
        let socket = try UDPSocket(adopting: fd)
        if receiveBuffer > 0 { _ = try? socket.setReceiveBuffer(receiveBuffer) }
        let pipeline = self.pipeline
        do {
            let receiver = try UDPReceiver(
                socket: socket, loop: loop,
                config: .init(batchSize: IPAReceiver.batchSize, budget: IPAReceiver.budget,
                              maxDatagramSize: IPAReceiver.maxDatagramSize)) { batch in
                for d in batch { pipeline.ingest(d.bytes) }
            }
            receiver.start()
            unixSocket = socket
            unixReceiver = receiver
        } catch {
            socket.close()
            unlink(path)
            throw error
        }
    }

    private func closeUnix() {
        guard let socket = unixSocket else { return }
        if let r = unixReceiver {
            closedUnixDatagrams &+= r.datagrams
            closedUnixTruncated &+= r.truncated
            r.stop()
        }
        socket.close()
        if let path = settings?.socketPath, !path.isEmpty { unlink(path) }
        unixSocket = nil
        unixReceiver = nil
    }
}
