// UDPReceiver: batched, budgeted datagram reception on an IOWatcher.
//
// On each readable wakeup it calls recvmmsg(2) into buffers allocated once,
// `batchSize` datagrams at a time, and hands each batch to the handler in
// place. After `budget` datagrams it returns to the loop even if more are
// queued: the watcher stays active and libev (level-triggered) calls again on
// the next iteration, so timers and other sockets get their turn between
// batches — a flood costs the rest of the loop at most one batch of latency.
//
// Drops are counted by cause: `truncated` (larger than `maxDatagramSize`,
// MSG_TRUNC) and `kernelDrops` (receive queue full, from the SO_RXQ_OVFL
// counter the kernel attaches to datagrams).
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// Receives datagrams from a `UDPSocket` in batches on the loop thread.
///
/// Thread: loop thread only. Ownership: like a watcher, an active receiver is
/// retained by the loop (`start()` retains, `stop()` releases), so it keeps
/// running without another owner. The handler may call `stop()` or close the
/// socket; the receiver then reads nothing more. Buffers are allocated once in
/// `init`: `batchSize × maxDatagramSize` bytes plus headers, nothing per datagram.
public final class UDPReceiver {
    public typealias Handler = (UDPBatch) -> Void

    public struct Config: Sendable {
        /// Datagrams per recvmmsg call, and buffer slots held (1...1024).
        public var batchSize = 64
        /// Datagrams read per wakeup before yielding to the loop (≥ 1).
        public var budget = 256
        /// Largest datagram delivered whole; larger ones are counted as
        /// `truncated` and dropped. 65_535 fits any UDP payload.
        public var maxDatagramSize = 65_535

        public init(batchSize: Int = 64, budget: Int = 256, maxDatagramSize: Int = 65_535) {
            self.batchSize = batchSize
            self.budget = budget
            self.maxDatagramSize = maxDatagramSize
        }

        func validate() throws {
            guard (1...1024).contains(batchSize) else { throw ConfigError("batchSize must be 1...1024 (UIO_MAXIOV), got \(batchSize)") }
            guard budget >= 1 else { throw ConfigError("budget must be at least 1, got \(budget)") }
            guard (1...65_535).contains(maxDatagramSize) else { throw ConfigError("maxDatagramSize must be 1...65535, got \(maxDatagramSize)") }
        }
    }

    public struct ConfigError: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ d: String) { description = d }
    }

    public let socket: UDPSocket
    public let loop: EventLoop
    public let config: Config
    public var handler: Handler

    // Counters (monotonic since init).
    /// Datagrams and payload bytes delivered to the handler.
    public private(set) var datagrams: UInt64 = 0
    public private(set) var bytes: UInt64 = 0
    /// Readable callbacks, and those that stopped because the budget ran out.
    public private(set) var wakeups: UInt64 = 0
    public private(set) var budgetExhaustions: UInt64 = 0
    /// Datagrams dropped because they exceeded `maxDatagramSize`.
    public private(set) var truncated: UInt64 = 0
    /// Datagrams the kernel dropped on this socket (receive queue full), as
    /// of the latest datagram that carried the counter, or `refreshKernelDrops()`.
    public private(set) var kernelDrops: UInt64 = 0
    /// recvmmsg failures other than EAGAIN, and the latest one.
    public private(set) var receiveErrors: UInt64 = 0
    public private(set) var lastError: SyscallError?

    private var watcher: IOWatcher!
    private var loopRetain: Unmanaged<UDPReceiver>?
    private var lastDropCounter: UInt32 = 0

    private let messages: UnsafeMutablePointer<csys_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let control: UnsafeMutableRawPointer
    private let slab: UnsafeMutableRawPointer
    private let controlSize: Int
    private let nameSize = socklen_t(MemoryLayout<sockaddr_storage>.size)

    public init(socket: UDPSocket, loop: EventLoop, config: Config = Config(), handler: @escaping Handler) throws {
        try config.validate()
        self.socket = socket
        self.loop = loop
        self.config = config
        self.handler = handler

        let n = config.batchSize
        // Slots a power of two apart would put every datagram's first cache
        // line in the same cache set; one extra line of stride spreads them.
        var stride = (config.maxDatagramSize + 63) & ~63
        if stride & (stride - 1) == 0 || stride % 4096 == 0 { stride += 64 }
        // Room for one SO_RXQ_OVFL u32 and one more small cmsg, should a
        // caller enable e.g. a timestamp option on the socket.
        controlSize = csys_cmsg_space(MemoryLayout<UInt32>.size) + csys_cmsg_space(16)

        messages = .allocate(capacity: n)
        iovecs = .allocate(capacity: n)
        names = .allocate(capacity: n)
        names.initialize(repeating: sockaddr_storage(), count: n)
        control = .allocate(byteCount: n * controlSize, alignment: MemoryLayout<Int>.alignment)
        control.initializeMemory(as: UInt8.self, repeating: 0, count: n * controlSize)
        slab = .allocate(byteCount: n * stride, alignment: 4096)
        for i in 0..<n {
            iovecs[i] = iovec(iov_base: slab + i * stride, iov_len: config.maxDatagramSize)
            var h = msghdr()
            h.msg_name = UnsafeMutableRawPointer(names + i)
            h.msg_namelen = nameSize
            h.msg_iov = iovecs + i
            h.msg_iovlen = 1
            h.msg_control = control + i * controlSize
            h.msg_controllen = controlSize
            (messages + i).initialize(to: csys_mmsghdr(msg_hdr: h, msg_len: 0))
        }
        watcher = IOWatcher(loop: loop, fd: socket.fd, events: .read) { [unowned self] _, _ in
            withExtendedLifetime(self) { self.readable() }
        }
    }

    deinit {
        watcher.stop()
        messages.deinitialize(count: config.batchSize)
        messages.deallocate()
        iovecs.deallocate()
        names.deinitialize(count: config.batchSize)
        names.deallocate()
        control.deallocate()
        slab.deallocate()
    }

    public var isActive: Bool { loopRetain != nil }

    /// Starts watching the socket. The loop retains the receiver until `stop()`.
    public func start() {
        guard loopRetain == nil else { return }
        precondition(socket.isOpen, "UDPReceiver.start on a closed socket")
        socket.receiver = self
        watcher.set(fd: socket.fd, events: .read)
        watcher.start()
        loopRetain = Unmanaged.passRetained(self)
    }

    /// Stops watching. Safe inside the handler; the loop's retain is given
    /// back last, so the receiver may be freed when this returns.
    public func stop() {
        watcher.stop()
        if socket.receiver === self { socket.receiver = nil }
        guard let r = loopRetain else { return }
        loopRetain = nil
        r.release()
    }

    /// Reads the socket's drop counter now (SO_MEMINFO) instead of waiting for
    /// the next datagram to carry it: drops after the last queued datagram
    /// are otherwise only seen when another one arrives. Call it from a stats
    /// timer, not per batch (it is a syscall).
    public func refreshKernelDrops() throws {
        noteDropCounter(try socket.kernelDropCounter())
    }

    // MARK: receive path

    private func readable() {
        wakeups &+= 1
        var left = config.budget
        while left > 0 {
            guard loopRetain != nil, socket.isOpen else { return }  // stopped by the handler
            let want = min(config.batchSize, left)
            let got: Int
            do {
                switch try Syscalls.recvmmsg(socket.fd, messages, want) {
                case .wouldBlock: return
                case .value(let n): got = Int(n)
                }
            } catch let e as SyscallError {
                receiveErrors &+= 1
                // One line per change of cause, not per wakeup: a persistent
                // error would otherwise log on every loop iteration.
                if lastError?.errno != e.errno { Log.warn("udp receive failed", ["socket": "\(socket.localAddress)", "error": "\(e)"]) }
                lastError = e
                return
            } catch { return }
            left -= got
            let delivered = account(got)
            if delivered > 0 { handler(UDPBatch(messages: messages, count: delivered)) }
            // A short batch means the queue is empty: skip the EAGAIN call.
            if got < want { return }
        }
        budgetExhaustions &+= 1
    }

    /// Counts the batch, reads drop counters, re-arms the headers the kernel
    /// wrote, and moves truncated datagrams behind the delivered ones.
    /// Returns how many datagrams to deliver.
    @inline(__always)
    private func account(_ n: Int) -> Int {
        var delivered = 0
        var sawTruncated = false
        var total: UInt64 = 0
        for i in 0..<n {
            let m = messages + i
            if m.pointee.msg_hdr.msg_controllen != 0 { readControl(m) }
            m.pointee.msg_hdr.msg_namelen = nameSize
            m.pointee.msg_hdr.msg_controllen = controlSize
            if m.pointee.msg_hdr.msg_flags & CSYS_MSG_TRUNC != 0 {
                sawTruncated = true
                continue
            }
            delivered += 1
            total &+= UInt64(m.pointee.msg_len)
        }
        datagrams &+= UInt64(delivered)
        bytes &+= total
        if sawTruncated {
            truncated &+= UInt64(n - delivered)
            compactTruncated(n)
        }
        return delivered
    }

    /// Stable partition: complete datagrams first, in arrival order. Headers
    /// are self-contained (each points at its own slot), so moving them is safe.
    private func compactTruncated(_ n: Int) {
        var write = 0
        for read in 0..<n where messages[read].msg_hdr.msg_flags & CSYS_MSG_TRUNC == 0 {
            if read != write { swap(&messages[read], &messages[write]) }
            write += 1
        }
    }

    private func readControl(_ m: UnsafeMutablePointer<csys_mmsghdr>) {
        let hdr = UnsafeMutableRawPointer(m).assumingMemoryBound(to: msghdr.self)  // msg_hdr is at offset 0
        var c = csys_cmsg_firsthdr(hdr)
        while let cm = c {
            if cm.pointee.cmsg_level == SOL_SOCKET && cm.pointee.cmsg_type == CSYS_SO_RXQ_OVFL {
                noteDropCounter(UnsafeRawPointer(csys_cmsg_data(cm)).loadUnaligned(as: UInt32.self))
            }
            c = csys_cmsg_nxthdr(hdr, cm)
        }
    }

    /// The kernel's counter is a cumulative u32 that wraps; add the distance
    /// moved forward, and ignore an older value (from an earlier datagram).
    private func noteDropCounter(_ counter: UInt32) {
        let delta = counter &- lastDropCounter
        guard delta != 0, delta < 0x8000_0000 else { return }
        kernelDrops &+= UInt64(delta)
        lastDropCounter = counter
    }
}
