// TCPConnection: one TCP stream on the loop — an ev_io watcher on the
// socket, at most one ev_timer for the connect and idle timeouts, a write
// queue flushed with writev(2), and reads into a lent buffer.
//
// Built for 10^4–10^5 mostly idle connections on one thread:
//  - Reads go into the thread's scratch buffer (ReadScratch); only an
//    unparsed tail is copied into a buffer of the connection's own, which is
//    freed again once consumed. An idle connection holds no read memory.
//  - The write queue holds memory only while bytes wait for the socket.
//  - One timer serves the connect timeout and then the idle timeout, with
//    libev's "be smart about timeouts" technique: a read or write only
//    stores a timestamp; when the timer fires it either expires the
//    connection or re-arms itself for the time that is left. No timer work
//    per read, no timer at all without timeouts.
//  - Work per wakeup is bounded: at most `readBudget` bytes read and
//    `writeBudget` bytes written; the level-triggered watcher brings the
//    connection back on the next iteration for the rest.
// Writes made during an iteration are flushed together from the deferred
// queue at the end of it (one writev for many small frames), or, when the
// socket was full, when it becomes writable.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// A nonblocking TCP connection: accepted from a `TCPListener`
/// (`init(loop:fd:peer:options:handler:)`) or connected as a client
/// (`TCPConnection.connect(loop:to:options:handler:)`).
///
/// Thread: the loop's thread only. Ownership: from creation until its close
/// callback has run, an unclosed connection is kept alive by the loop, so a
/// caller may drop its reference; it holds its handler strongly and lets go
/// of it after `connectionDidClose`, which breaks the handler ⇄ connection
/// cycle. Every connection reports exactly one `TCPCloseReason`, delivered
/// from the loop on a later iteration (never from inside a call the owner
/// made). The watcher is stopped before the descriptor is closed.
public final class TCPConnection: CustomStringConvertible {
    public struct Options {
        /// Seconds a client connect may take; 0 leaves it to the kernel
        /// (about two minutes of SYN retries).
        public var connectTimeout = 10.0
        /// Seconds without a byte read or written after which the
        /// connection closes with `.idleTimeout`; 0 disables. It also bounds
        /// a graceful close whose peer stops reading.
        public var idleTimeout = 0.0
        /// Most bytes read per wakeup.
        public var readBudget = 64 * 1024
        /// Most unconsumed bytes kept between reads (the largest frame the
        /// consumer can wait for); beyond it: `.readBufferLimit`.
        public var maxReadBuffer = 1 << 20
        /// Most bytes written per wakeup.
        public var writeBudget = 256 * 1024
        /// Queued bytes at which `isWritable` turns false.
        public var highWatermark = 256 * 1024
        /// Queued bytes at which `isWritable` turns true again.
        public var lowWatermark = 64 * 1024
        /// Hard cap on queued bytes: a write beyond it is refused (returns
        /// false, counted in `writesRefused`).
        public var maxQueuedBytes = 4 << 20
        /// TCP_NODELAY: send small frames at once instead of waiting for
        /// the previous segment's ACK (Nagle).
        public var noDelay = true
        /// On the peer's FIN, keep the connection open for writing and call
        /// `connectionDidReadEOF` instead of closing.
        public var allowHalfOpen = false
        /// Client connects only: the local address to bind before
        /// connecting, e.g. 127.0.0.2 for a second range of ephemeral ports
        /// toward the same peer (one local address runs out after
        /// net.ipv4.ip_local_port_range, ~28,000 connections). With IPv4
        /// and port 0 the port is chosen by connect(2), not bind(2)
        /// (IP_BIND_ADDRESS_NO_PORT, ip(7)), so ports are shared across
        /// peers instead of being reserved per local address. A failed bind
        /// closes the connection with `.error` naming bind(2). nil: the
        /// kernel picks address and port.
        public var localAddress: SocketAddress?
        /// What the connection is, in slow-iteration reports
        /// (IterationProfile): its reads and writes show as "io LABEL",
        /// its end-of-iteration flushes as "deferred LABEL".
        public var label = "tcp"

        public init() {}
    }

    public enum State: UInt8 {
        case connecting
        case open
        /// Graceful close in progress: not reading, flushing the queue.
        case closing
        case closed
    }

    public let loop: EventLoop
    /// The remote address (connected to, or accepted from).
    public let peer: SocketAddress
    public let options: Options
    /// The socket, -1 once closed. Callers may set socket options on it
    /// (e.g. SO_SNDBUF) but must not read, write or close it.
    public private(set) var fd: Int32 = -1
    public private(set) var state: State
    /// Receives the events; released after `connectionDidClose`.
    public var handler: TCPConnectionHandler?
    /// False from the moment queued bytes reach the high watermark until
    /// they fall to the low one; producers should pause meanwhile.
    public private(set) var isWritable = true
    /// Why the connection closed; nil until it has.
    public private(set) var closeReason: TCPCloseReason?

    public private(set) var bytesRead: UInt64 = 0
    public private(set) var bytesWritten: UInt64 = 0
    /// Writes refused: after close or shutdown, or beyond `maxQueuedBytes`.
    public private(set) var writesRefused: UInt64 = 0
    /// Bytes still queued when the connection closed (not sent).
    public private(set) var unsentBytesAtClose = 0
    /// Bytes read but left unconsumed when the connection closed.
    public private(set) var unreadBytesAtClose = 0

    private var io: IOWatcher?
    private var timer: TimerWatcher?
    private var readBuffer: ByteBuffer?
    private var queue = WriteQueue()
    private var lastActivity = 0.0
    private var selfRetain: Unmanaged<TCPConnection>?
    private var closingReason = TCPCloseReason.localClose
    private var readEOF = false
    private var readingPaused = false
    private var outputShutdownRequested = false
    private var outputShutdownDone = false
    /// Waiting for EV_WRITE: the socket was full or the write budget ran out.
    private var writeArmed = false
    /// The one "run once, soon" flag left outside `DeferOnce`: a DeferOnce
    /// object per connection would add its object and closure context to
    /// each of 10^5 connections, and the pending slice holds the connection
    /// strongly on purpose (it may be closing).
    private var deferredScheduled = false
    private var writabilityNoticePending = false
    private var redeliverPending = false
    /// IterationProfile's site of `runDeferred`, interned once.
    private let flushSite: Int32

    private init(loop: EventLoop, peer: SocketAddress, state: State, options: Options, handler: TCPConnectionHandler) {
        precondition(options.readBudget > 0 && options.writeBudget > 0, "TCPConnection budgets must be positive")
        precondition(options.maxReadBuffer > 0, "TCPConnection.Options.maxReadBuffer must be positive")
        precondition(options.lowWatermark <= options.highWatermark, "TCPConnection low watermark above high watermark")
        self.loop = loop
        self.peer = peer
        self.state = state
        self.options = options
        self.handler = handler
        flushSite = loop.profile.site("deferred", label: options.label, file: #fileID, line: #line)
        selfRetain = Unmanaged.passRetained(self)
    }

    /// Wraps an accepted descriptor (from `TCPListener`), which it now owns,
    /// and starts reading. A socket option that cannot be set closes it with
    /// `.error`, reported like any other close.
    public convenience init(loop: EventLoop, fd: Int32, peer: SocketAddress,
                            options: Options = Options(), handler: TCPConnectionHandler) {
        self.init(loop: loop, peer: peer, state: .open, options: options, handler: handler)
        self.fd = fd
        do { try configureSocket() } catch { finish(.from(error, connecting: false)); return }
        lastActivity = Clock.monotonic()
        io = makeWatcher()
        if options.idleTimeout > 0 { armTimer(after: options.idleTimeout) }
        updateInterest()
    }

    /// Starts a nonblocking connect to `address`. The handler hears
    /// `connectionDidConnect`, or `connectionDidClose` with `.refused`,
    /// `.connectTimeout` or `.error` — also for a failure detected at once
    /// (e.g. EMFILE from socket(2)), always on a later iteration. Writes made
    /// while connecting are queued and sent once connected.
    public static func connect(loop: EventLoop, to address: SocketAddress,
                               options: Options = Options(), handler: TCPConnectionHandler) -> TCPConnection {
        let c = TCPConnection(loop: loop, peer: address, state: .connecting, options: options, handler: handler)
        do {
            c.fd = try Syscalls.socket(address.family, Int32(SOCK_STREAM.rawValue))
            try c.configureSocket()
            if let local = options.localAddress { try bindLocal(c.fd, local) }
            // Completion, even an immediate one, is seen as writability.
            _ = try Syscalls.connect(c.fd, address)
        } catch {
            c.finish(.from(error, connecting: true))
            return c
        }
        c.io = c.makeWatcher()
        if options.connectTimeout > 0 { c.armTimer(after: options.connectTimeout) }
        c.updateInterest()
        return c
    }

    /// Binds a client socket to `local` before its connect.
    private static func bindLocal(_ fd: Int32, _ local: SocketAddress) throws {
        if local.port == 0 && local.family == AF_INET {
            try Syscalls.setOption(fd, Int32(IPPROTO_IP), CSYS_IP_BIND_ADDRESS_NO_PORT, Int32(1), "IP_BIND_ADDRESS_NO_PORT")
        }
        try Syscalls.bind(fd, local)
    }

    deinit {
        // Only reachable closed (an unclosed connection retains itself);
        // kept exact anyway.
        queue.removeAll()
        if fd >= 0 { io?.stop(); Syscalls.close(fd) }
    }

    /// Bytes queued and not yet written to the socket.
    public var queuedBytes: Int { queue.count }
    public var isReadingPaused: Bool { readingPaused }

    /// The local address of the socket (getsockname), nil once closed.
    public var localAddress: SocketAddress? {
        fd >= 0 ? try? Syscalls.localAddress(fd) : nil
    }

    public var description: String { "tcp \(peer) fd=\(fd) \(state)" }

    // MARK: writing

    /// Queues a copy of `bytes`. Returns false — writing nothing — when the
    /// connection is closing or closed, its output is shut down, or the
    /// queue would exceed `maxQueuedBytes`.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard state == .open || state == .connecting, !outputShutdownRequested,
              queue.count + bytes.count <= options.maxQueuedBytes else {
            writesRefused &+= 1
            return false
        }
        guard bytes.count > 0 else { return true }
        queue.append(bytes)
        if isWritable && queue.count >= options.highWatermark {
            isWritable = false
            writabilityNoticePending = true
        }
        if (state == .open && !writeArmed) || writabilityNoticePending { scheduleDeferred() }
        return true
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write($0) }
    }

    // MARK: reading control

    /// Stops reading (the kernel's receive window then pushes back on the
    /// peer) until `resumeReading()`.
    public func pauseReading() {
        guard !readingPaused else { return }
        readingPaused = true
        updateInterest()
    }

    /// Resumes reading; bytes left unconsumed are offered to the handler
    /// again on a later iteration.
    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        updateInterest()
        if let b = readBuffer, !b.isEmpty {
            redeliverPending = true
            scheduleDeferred()
        }
    }

    // MARK: closing

    /// Graceful close: stops reading, sends what is queued, then closes
    /// (`.localClose`). Bounded by `idleTimeout` if the peer stops reading;
    /// `abort()` cuts it short.
    public func close() {
        switch state {
        case .closing, .closed:
            return
        case .connecting:
            finish(.localClose)
        case .open:
            if queue.isEmpty { finish(.localClose); return }
            state = .closing
            closingReason = .localClose
            updateInterest()
            if !writeArmed { scheduleDeferred() }
        }
    }

    /// Half-close: once the queue is sent, shutdown(SHUT_WR) so the peer
    /// reads EOF; reading goes on. Later writes are refused.
    public func shutdownOutput() {
        guard state == .open || state == .connecting, !outputShutdownRequested else { return }
        outputShutdownRequested = true
        if state == .open && queue.isEmpty { shutdownNow() }
    }

    /// Abortive close: discards queued bytes and resets the connection
    /// (SO_LINGER 0, so the peer gets RST). Reports `.localAbort`.
    public func abort() {
        finish(.localAbort)
    }

    // MARK: the watcher

    private func makeWatcher() -> IOWatcher {
        IOWatcher(loop: loop, fd: fd, events: .read, label: options.label) { [unowned self] _, events in self.ready(events) }
    }

    private func configureSocket() throws {
        if options.noDelay {
            try Syscalls.setOption(fd, Int32(IPPROTO_TCP), CSYS_TCP_NODELAY, Int32(1), "TCP_NODELAY")
        }
    }

    private func ready(_ events: IOEvents) {
        switch state {
        case .connecting:
            connectReady()
        case .open, .closing:
            if events.contains(.read) { readable() }
            if events.contains(.write) && state != .closed { flush() }
        case .closed:
            break
        }
    }

    /// The interest set follows the state: write while connecting; read
    /// unless paused or at EOF; write only while bytes wait for a full socket.
    private func updateInterest() {
        guard let io else { return }
        var events: IOEvents = []
        switch state {
        case .connecting:
            events = .write
        case .open:
            if !readEOF && !readingPaused { events.insert(.read) }
            if writeArmed { events.insert(.write) }
        case .closing:
            if writeArmed { events.insert(.write) }
        case .closed:
            break
        }
        if events.isEmpty {
            io.stop()
        } else {
            io.set(events: events)
            io.start()
        }
    }

    private func connectReady() {
        let err = Syscalls.socketError(fd)
        if err != 0 {
            finish(.from(SyscallError(call: "connect(\(peer))", errno: err), connecting: true))
            return
        }
        state = .open
        lastActivity = Clock.monotonic()
        if options.idleTimeout > 0 {
            armTimer(after: options.idleTimeout)
        } else {
            timer?.stop()
            timer = nil
        }
        updateInterest()
        handler?.connectionDidConnect(self)
        guard state == .open else { return }
        if !queue.isEmpty {
            flush()
        } else if outputShutdownRequested && !outputShutdownDone {
            shutdownNow()
        }
    }

    // MARK: reading

    private func readable() {
        var budget = options.readBudget
        while budget > 0 && state == .open && !readEOF && !readingPaused {
            handler?.connectionWillRead(self)
            if readingPaused || state != .open { return }
            let buffer: ByteBuffer
            var lent: ByteBuffer?
            if let own = readBuffer {
                // Room relative to what is pending: a short tail gets 4 KiB,
                // a large frame being assembled doubles.
                if !own.reserve(min(budget, max(4096, own.readableBytes))) && !own.reserve(1) {
                    finish(.readBufferLimit)
                    return
                }
                buffer = own
            } else if let scratch = ReadScratch.borrow() {
                lent = scratch
                buffer = scratch
            } else {
                let own = ByteBuffer(capacity: min(ReadScratch.size, options.maxReadBuffer), limit: options.maxReadBuffer)
                readBuffer = own
                buffer = own
            }
            let want = min(buffer.writableBytes, budget)
            let result: IOResult<Int>
            do {
                result = try Syscalls.read(fd, buffer.writable.baseAddress!, want)
            } catch {
                if let lent { ReadScratch.giveBack(lent) }
                finish(.from(error, connecting: false))
                return
            }
            guard case .value(let n) = result, n > 0 else {
                if let lent { ReadScratch.giveBack(lent) }
                if case .value = result { peerEOF() }
                return
            }
            buffer.didWrite(n)
            budget -= n
            bytesRead &+= UInt64(n)
            lastActivity = Clock.monotonic()
            if let handler { handler.connection(self, didRead: buffer) } else { buffer.consume(buffer.readableBytes) }
            if let lent {
                keepUnconsumed(of: lent)
                ReadScratch.giveBack(lent)
            } else {
                settle(buffer)
            }
            // A short read drained the socket; another would only say EAGAIN.
            if n < want { return }
        }
    }

    /// Copies the tail the consumer left in the scratch buffer into a
    /// buffer of the connection's own.
    private func keepUnconsumed(of scratch: ByteBuffer) {
        let left = scratch.readableBytes
        guard left > 0, state == .open else { return }
        guard left <= options.maxReadBuffer else { finish(.readBufferLimit); return }
        let own = ByteBuffer(capacity: min(options.maxReadBuffer, left + 4096), limit: options.maxReadBuffer)
        own.write(scratch.readable)
        readBuffer = own
    }

    /// After the consumer ran on the own buffer: free it when empty, and
    /// give back the memory of a past large frame.
    private func settle(_ own: ByteBuffer) {
        guard state == .open, readBuffer === own else { return }
        if own.isEmpty {
            readBuffer = nil
        } else if own.capacity > 2 * ReadScratch.size && own.readableBytes <= ReadScratch.size / 2 {
            let smaller = ByteBuffer(capacity: min(options.maxReadBuffer, own.readableBytes + 4096), limit: options.maxReadBuffer)
            smaller.write(own.readable)
            readBuffer = smaller
        }
    }

    private func peerEOF() {
        readEOF = true
        if outputShutdownDone { finish(.peerClosed); return }
        if options.allowHalfOpen {
            updateInterest()
            handler?.connectionDidReadEOF(self)
            return
        }
        if queue.isEmpty { finish(.peerClosed); return }
        state = .closing
        closingReason = .peerClosed
        updateInterest()
        if !writeArmed { flush() }
    }

    // MARK: flushing

    private func scheduleDeferred() {
        guard !deferredScheduled, state != .closed else { return }
        deferredScheduled = true
        loop.defer(site: flushSite) { [self] in self.runDeferred() }
    }

    /// End-of-iteration work: flush what this iteration's writes queued,
    /// re-offer unconsumed input after a resume, and deliver a writability
    /// change that a write() call caused.
    private func runDeferred() {
        deferredScheduled = false
        if (state == .open || state == .closing) && !writeArmed && !queue.isEmpty {
            flush()
        }
        if redeliverPending {
            redeliverPending = false
            if state == .open, !readingPaused, let b = readBuffer, !b.isEmpty {
                handler?.connection(self, didRead: b)
                settle(b)
            }
        }
        deliverWritabilityNotice()
    }

    private func flush() {
        guard state == .open || state == .closing else { return }
        var budget = options.writeBudget
        var wrote = 0
        while budget > 0 && !queue.isEmpty {
            let r: (result: IOResult<Int>, offered: Int)
            do {
                r = try queue.write(to: fd, budget: budget)
            } catch {
                finish(.from(error, connecting: false))
                return
            }
            guard case .value(let n) = r.result else { break }
            wrote += n
            budget -= n
            if n < r.offered { break }  // the socket is full
        }
        if wrote > 0 {
            bytesWritten &+= UInt64(wrote)
            lastActivity = Clock.monotonic()
        }
        // Still queued: the socket was full, or the budget ran out (then the
        // level-triggered EV_WRITE brings us back next iteration).
        writeArmed = !queue.isEmpty
        updateInterest()
        if !isWritable && queue.count <= options.lowWatermark {
            isWritable = true
            writabilityNoticePending = true
        }
        if queue.isEmpty {
            if state == .closing { finish(closingReason); return }
            if outputShutdownRequested && !outputShutdownDone {
                shutdownNow()
                guard state != .closed else { return }
            }
        }
        deliverWritabilityNotice()
        if wrote > 0 && state != .closed { handler?.connectionDidSend(self) }
    }

    private func deliverWritabilityNotice() {
        guard writabilityNoticePending, state != .closed else { return }
        writabilityNoticePending = false
        handler?.connectionWritabilityChanged(self)
    }

    private func shutdownNow() {
        do {
            try Syscalls.shutdown(fd, Int32(SHUT_WR))
        } catch {
            finish(.from(error, connecting: false))
            return
        }
        outputShutdownDone = true
        if readEOF { finish(.localClose) }
    }

    // MARK: timeouts

    private func armTimer(after seconds: Double) {
        if timer == nil {
            timer = TimerWatcher(loop: loop, label: options.label) { [unowned self] _ in self.timerFired() }
        }
        timer!.start(after: seconds)
    }

    private func timerFired() {
        switch state {
        case .connecting:
            finish(.connectTimeout)
        case .open, .closing:
            let timeout = options.idleTimeout
            guard timeout > 0 else { return }
            let idle = Clock.monotonic() - lastActivity
            // libev may fire a hair early relative to our clock reading.
            if idle >= timeout - 0.001 {
                finish(.idleTimeout)
            } else {
                timer?.start(after: timeout - idle)
            }
        case .closed:
            break
        }
    }

    // MARK: the one way out

    /// Closes for `reason`: stops the watchers, then closes the descriptor,
    /// frees the buffers, and schedules the single close callback.
    private func finish(_ reason: TCPCloseReason) {
        guard state != .closed else { return }
        state = .closed
        closeReason = reason
        io?.stop()
        io = nil
        timer?.stop()
        timer = nil
        if fd >= 0 {
            if reason == .localAbort { try? Syscalls.setLingerZero(fd) }
            Syscalls.close(fd)
            fd = -1
        }
        unreadBytesAtClose = readBuffer?.readableBytes ?? 0
        readBuffer = nil
        unsentBytesAtClose = queue.removeAll()
        isWritable = false
        writabilityNoticePending = false
        redeliverPending = false
        let keptAlive = selfRetain
        selfRetain = nil
        loop.defer { [self] in
            let h = self.handler
            self.handler = nil
            h?.connectionDidClose(self, reason: reason)
        }
        keptAlive?.release()
    }
}
