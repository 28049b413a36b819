// UDPSender: many datagrams to one destination per sendmmsg(2) call.
//
// Headers are allocated once for `capacity` datagrams and refilled per call,
// so sending allocates nothing. The datagram bytes stay the caller's: they are
// only read during the call.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// Sends batches of datagrams from a `UDPSocket` with sendmmsg.
///
/// Thread: one thread at a time (normally the loop thread). Ownership: holds
/// its socket; borrows the datagram buffers for the duration of `send` only.
/// It never blocks and never waits for writability: a full socket buffer
/// (EAGAIN) ends the call early and the return value says how many went out.
public final class UDPSender {
    public let socket: UDPSocket
    /// Datagrams per sendmmsg call (1...1024); larger sends are split.
    public let capacity: Int

    /// Datagrams and payload bytes the kernel accepted.
    public private(set) var datagramsSent: UInt64 = 0
    public private(set) var bytesSent: UInt64 = 0
    /// sendmmsg calls made, and calls that ended early on EAGAIN.
    public private(set) var calls: UInt64 = 0
    public private(set) var wouldBlock: UInt64 = 0
    /// Errors swallowed because earlier datagrams of the same `send` went
    /// out (the count returned tells the caller where to resume), and the latest.
    public private(set) var deferredErrors: UInt64 = 0
    public private(set) var lastError: SyscallError?

    private let messages: UnsafeMutablePointer<csys_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let destination: UnsafeMutablePointer<sockaddr_storage>

    public init(socket: UDPSocket, capacity: Int = 64) throws {
        guard (1...1024).contains(capacity) else {
            throw UDPReceiver.ConfigError("UDPSender capacity must be 1...1024 (UIO_MAXIOV), got \(capacity)")
        }
        self.socket = socket
        self.capacity = capacity
        messages = .allocate(capacity: capacity)
        messages.initialize(repeating: csys_mmsghdr(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        iovecs.initialize(repeating: iovec(), count: capacity)
        destination = .allocate(capacity: 1)
        destination.initialize(to: sockaddr_storage())
    }

    deinit {
        messages.deallocate()
        iovecs.deallocate()
        destination.deallocate()
    }

    /// Sends `count` datagrams to `destination` (nil: the connected peer);
    /// `datagram(i)` gives the bytes of datagram `i`, which must stay valid
    /// until this returns. Returns how many were sent, from the front: fewer
    /// than `count` when the socket buffer filled (EAGAIN), or when a later
    /// datagram failed — sendmmsg reports an error only for the first
    /// datagram of a call, so that datagram fails again, and throws, when the
    /// caller resumes from it. Throws only when the first datagram fails.
    public func send(to destination: SocketAddress?, count: Int, datagram: (Int) -> UnsafeRawBufferPointer) throws -> Int {
        precondition(count >= 0, "UDPSender.send count must not be negative")
        var nameLength: socklen_t = 0
        if let d = destination {
            nameLength = d.withSockaddr { sa, len in
                UnsafeMutableRawPointer(self.destination).copyMemory(from: sa, byteCount: Int(len))
                return len
            }
        }
        var sent = 0
        while sent < count {
            let chunk = min(capacity, count - sent)
            for i in 0..<chunk {
                let b = datagram(sent + i)
                iovecs[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count)
                messages[i].msg_hdr.msg_name = nameLength == 0 ? nil : UnsafeMutableRawPointer(self.destination)
                messages[i].msg_hdr.msg_namelen = nameLength
                messages[i].msg_hdr.msg_iov = iovecs + i
                messages[i].msg_hdr.msg_iovlen = 1
                messages[i].msg_hdr.msg_control = nil
                messages[i].msg_hdr.msg_controllen = 0
            }
            var done = 0
            while done < chunk {
                calls &+= 1
                let r: IOResult<Int32>
                do {
                    r = try Syscalls.sendmmsg(socket.fd, messages + done, chunk - done)
                } catch let e as SyscallError {
                    lastError = e
                    if sent + done == 0 { throw e }
                    deferredErrors &+= 1
                    tally(done)
                    return sent + done
                }
                switch r {
                case .wouldBlock:
                    wouldBlock &+= 1
                    tally(done)
                    return sent + done
                case .value(let n):
                    done += Int(n)
                }
            }
            tally(chunk)
            sent += chunk
        }
        return sent
    }

    /// Sends the datagrams in `buffers` (see `send(to:count:datagram:)`).
    public func send(_ buffers: UnsafeBufferPointer<UnsafeRawBufferPointer>, to destination: SocketAddress?) throws -> Int {
        try send(to: destination, count: buffers.count) { buffers[$0] }
    }

    /// Adds the first `n` headers of the current chunk to the counters.
    private func tally(_ n: Int) {
        var b: UInt64 = 0
        for i in 0..<n { b &+= UInt64(messages[i].msg_len) }
        datagramsSent &+= UInt64(n)
        bytesSent &+= b
    }
}
