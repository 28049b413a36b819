import XCTest
import Glibc
import CEv
import CSystem
@testable import Reactor

/// Records everything a connection reports.
final class TCPProbe: TCPConnectionHandler {
    var connected = 0
    var received: [UInt8] = []
    var eofs = 0
    var writability: [Bool] = []
    var closes: [TCPCloseReason] = []
    var willReads = 0
    /// `queuedBytes` at each connectionDidSend.
    var sendNotices: [Int] = []
    var onWillRead: ((TCPConnection) -> Void)?
    var onConnect: ((TCPConnection) -> Void)?
    var onRead: ((TCPConnection, ByteBuffer) -> Void)?
    var onEOF: ((TCPConnection) -> Void)?
    var onWritability: ((TCPConnection) -> Void)?
    var onClose: ((TCPConnection) -> Void)?

    func connectionDidConnect(_ c: TCPConnection) { connected += 1; onConnect?(c) }
    func connectionWillRead(_ c: TCPConnection) { willReads += 1; onWillRead?(c) }
    func connection(_ c: TCPConnection, didRead b: ByteBuffer) {
        if let onRead { onRead(c, b); return }
        received += b.readable
        b.consume(b.readableBytes)
    }
    func connectionDidReadEOF(_ c: TCPConnection) { eofs += 1; onEOF?(c) }
    func connectionWritabilityChanged(_ c: TCPConnection) { writability.append(c.isWritable); onWritability?(c) }
    func connectionDidSend(_ c: TCPConnection) { sendNotices.append(c.queuedBytes) }
    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) { closes.append(reason); onClose?(c) }
}

final class TCPTests: XCTestCase {
    let loopback = try! SocketAddress(ip: "127.0.0.1", port: 0)

    /// A listener that wraps each accepted descriptor in a TCPConnection
    /// with `options` and a fresh probe.
    final class Server {
        let listener: TCPListener
        var connections: [TCPConnection] = []
        var probes: [TCPProbe] = []
        var configure: ((TCPConnection, TCPProbe) -> Void)?

        init(loop: EventLoop, address: SocketAddress, options: TCPConnection.Options = .init(),
             listenerOptions: TCPListener.Options = .init()) throws {
            var accept: ((Int32, SocketAddress) -> Void)?
            listener = try TCPListener(loop: loop, address: address, options: listenerOptions) { fd, peer in accept?(fd, peer) }
            accept = { [unowned self] fd, peer in
                let probe = TCPProbe()
                let c = TCPConnection(loop: loop, fd: fd, peer: peer, options: options, handler: probe)
                self.connections.append(c)
                self.probes.append(probe)
                self.configure?(c, probe)
            }
            listener.start()
        }
    }

    private struct WeakLoop { weak var loop: EventLoop? }
    private var loops: [WeakLoop] = []

    /// A loop for one test. An unclosed connection keeps itself, and so its
    /// loop, alive; a loop still alive at teardown must have nothing left
    /// open once its deferred work (close callbacks) is delivered.
    func makeLoop() -> EventLoop {
        let loop = EventLoop()
        loops.append(WeakLoop(loop: loop))
        return loop
    }

    override func tearDown() {
        for case let loop? in loops.map(\.loop) {
            loop.run(until: { loop.deferred.count == 0 }, timeout: 2)
            XCTAssertEqual(loop.deferred.count, 0, "deferred work left")
            XCTAssertEqual(loop.activeWatchers, 0, "a connection or watcher was left open")
        }
        loops = []  // XCTest keeps test case objects; do not keep loops with them
        super.tearDown()
    }

    static func pattern(_ n: Int, seed: Int = 0) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ ($0 >> 8) &+ seed) }
    }

    /// A raw nonblocking client socket connecting to `address`.
    func rawConnect(_ address: SocketAddress) throws -> Int32 {
        let fd = try Syscalls.socket(address.family, Int32(SOCK_STREAM.rawValue))
        _ = try Syscalls.connect(fd, address)
        return fd
    }

    /// Waits (outside the loop) until `fd` is ready for `events`.
    @discardableResult
    func pollFD(_ fd: Int32, _ events: Int16, timeoutMs: Int32 = 2000) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return poll(&p, 1, timeoutMs) == 1
    }

    /// Reads whatever is available on a raw nonblocking descriptor; nil at EOF.
    func rawRead(_ fd: Int32) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n == 0 { return nil }
        return n > 0 ? Array(buf[0..<n]) : []
    }

    // MARK: round trip

    func echoRoundTrip(_ address: SocketAddress) throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: address)
        server.configure = { _, probe in
            probe.onRead = { c, b in
                XCTAssertTrue(c.write(b.readable))
                b.consume(b.readableBytes)
            }
        }
        let port = server.listener.localAddress.port
        XCTAssertNotEqual(port, 0, "the kernel chose a port")
        let client = TCPProbe()
        let message = Self.pattern(300_000)  // several read and write budgets
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        XCTAssertEqual(c.state, .connecting)
        XCTAssertTrue(c.write(message), "writes while connecting are queued")
        XCTAssertTrue(loop.run(until: { client.received.count >= message.count }, timeout: 10))
        XCTAssertEqual(client.connected, 1)
        XCTAssertEqual(client.received, message, "every byte echoed intact and in order")
        XCTAssertEqual(c.bytesWritten, UInt64(message.count))
        XCTAssertEqual(c.bytesRead, UInt64(message.count))
        XCTAssertEqual(c.localAddress?.port, server.connections.first?.peer.port)

        c.close()
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 && server.probes.first?.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(client.closes, [.localClose])
        XCTAssertEqual(server.probes[0].closes, [.peerClosed])
        server.listener.close()
        XCTAssertEqual(loop.activeWatchers, 0, "closed connections leave nothing active")
    }

    func testAcceptAndEchoRoundTripIPv4() throws {
        try echoRoundTrip(loopback)
    }

    func testAcceptAndEchoRoundTripIPv6() throws {
        let any6 = try SocketAddress(ip: "::1", port: 0)
        do {
            _ = try TCPListener(loop: EventLoop(), address: any6) { fd, _ in Syscalls.close(fd) }
        } catch let e as SyscallError where e.errno == EADDRNOTAVAIL || e.errno == EAFNOSUPPORT {
            throw XCTSkip("no IPv6 loopback here: \(e)")
        }
        try echoRoundTrip(any6)
    }

    func testConnectionIsReleasedAfterItsCloseCallback() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        weak var weakConn: TCPConnection?
        weak var weakProbe: TCPProbe?
        do {
            let probe = TCPProbe()
            probe.onConnect = { $0.close() }
            weakProbe = probe
            weakConn = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: probe)
        }
        XCTAssertNotNil(weakConn, "an unclosed connection is kept alive by the loop")
        XCTAssertTrue(loop.run(until: { weakConn == nil }, timeout: 5))
        XCTAssertNil(weakProbe, "the handler is let go after the close callback")
        server.listener.close()
        for c in server.connections { c.abort() }
        loop.run(until: { server.probes.allSatisfy { $0.closes.count == 1 } }, timeout: 5)
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    // MARK: connect failures

    func testConnectRefused() throws {
        let loop = makeLoop()
        // A port that was just bound and released: nothing listens there.
        let s = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
        try Syscalls.bind(s, loopback)
        let address = try Syscalls.localAddress(s)
        Syscalls.close(s)

        let probe = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: address, handler: probe)
        XCTAssertTrue(loop.run(until: { probe.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(probe.closes, [.refused])
        XCTAssertEqual(probe.connected, 0)
        XCTAssertEqual(c.state, .closed)
        XCTAssertEqual(c.closeReason, .refused)
        XCTAssertFalse(c.write([1, 2, 3]), "writes after close are refused")
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testConnectTimeoutWhenTheAcceptQueueIsFull() throws {
        let loop = makeLoop()
        var lo = TCPListener.Options()
        lo.backlog = 0
        // Never started: nothing is accepted, so the queue (backlog 0 holds
        // one connection) fills and later SYNs are dropped.
        let listener = try TCPListener(loop: loop, address: loopback, options: lo) { fd, _ in Syscalls.close(fd) }
        var fillers: [Int32] = []
        defer { fillers.forEach { Syscalls.close($0) } }
        for _ in 0..<3 { fillers.append(try rawConnect(listener.localAddress)) }
        pollFD(fillers[0], Int16(POLLOUT))

        var o = TCPConnection.Options()
        o.connectTimeout = 0.3
        let probe = TCPProbe()
        probe.onConnect = { $0.abort() }
        let started = Clock.monotonic()
        _ = TCPConnection.connect(loop: loop, to: listener.localAddress, options: o, handler: probe)
        XCTAssertTrue(loop.run(until: { probe.closes.count == 1 }, timeout: 10))
        if probe.connected > 0 {
            listener.close()
            throw XCTSkip("this kernel completed a handshake despite a full accept queue (net.ipv4.tcp_abort_on_overflow/syncookies settings); no SYN is dropped on loopback")
        }
        XCTAssertEqual(probe.closes, [.connectTimeout])
        XCTAssertEqual(probe.connected, 0)
        XCTAssertGreaterThanOrEqual(Clock.monotonic() - started, 0.25, "not before the timeout")
        XCTAssertEqual(loop.activeWatchers, 0)
        listener.close()
    }

    func testConnectFailingAtOnceIsStillReportedLater() throws {
        let loop = makeLoop()
        // Port 0 is not connectable: connect(2) fails synchronously.
        let probe = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: try SocketAddress(ip: "0.0.0.0", port: 0), handler: probe)
        XCTAssertEqual(probe.closes.count, 0, "never called back from inside connect()")
        loop.run(until: { probe.closes.count == 1 }, timeout: 5)
        XCTAssertEqual(probe.closes.count, 1)
        XCTAssertEqual(c.state, .closed)
    }

    // MARK: local address of a client

    func testConnectFromAChosenLoopbackSourceAddress() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        server.configure = { _, probe in
            probe.onRead = { c, b in
                XCTAssertTrue(c.write(b.readable))
                b.consume(b.readableBytes)
            }
        }
        var o = TCPConnection.Options()
        o.localAddress = try SocketAddress(ip: "127.0.0.2", port: 0)
        let client = TCPProbe()
        var local: SocketAddress?
        client.onConnect = { c in local = c.localAddress }
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, options: o, handler: client)
        XCTAssertTrue(c.write([1, 2, 3, 4]))
        XCTAssertTrue(loop.run(until: { client.received.count == 4 }, timeout: 5))
        XCTAssertEqual(client.received, [1, 2, 3, 4])
        XCTAssertEqual(server.connections.first?.peer.ip, "127.0.0.2", "the server sees the chosen source")
        XCTAssertEqual(local?.ip, "127.0.0.2")
        XCTAssertNotEqual(local?.port, 0, "connect(2) chose a port")
        c.close()
        server.connections.forEach { $0.close() }
        server.listener.close()
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 }, timeout: 5))
    }

    func testLocalAddressBindFailureIsReportedLaterNamingBind() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        let taken = server.listener.localAddress
        var o = TCPConnection.Options()
        o.localAddress = taken  // the listener holds this address and port
        let probe = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: taken, options: o, handler: probe)
        XCTAssertEqual(probe.closes.count, 0, "never called back from inside connect()")
        XCTAssertTrue(loop.run(until: { probe.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(probe.closes, [.error(SyscallError(call: "bind(\(taken))", errno: EADDRINUSE))])
        XCTAssertEqual(probe.connected, 0)
        XCTAssertEqual(c.state, .closed)
        server.listener.close()
    }

    // MARK: timeouts

    func testIdleTimeoutIsPushedBackByActivity() throws {
        let loop = makeLoop()
        var o = TCPConnection.Options()
        o.idleTimeout = 0.5
        let server = try Server(loop: loop, address: loopback, options: o)
        let client = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        XCTAssertTrue(loop.run(until: { client.connected == 1 && server.connections.count == 1 }, timeout: 5))
        // Activity every 0.1 s for 1 s — twice the timeout — keeps it open.
        for i in 0..<10 {
            c.write([UInt8(i)])
            loop.run(until: { false }, timeout: 0.1)
            XCTAssertEqual(server.probes[0].closes.count, 0, "closed while active, after \(i + 1) writes")
        }
        XCTAssertEqual(server.probes[0].received.count, 10)
        let quietSince = Clock.monotonic()
        XCTAssertTrue(loop.run(until: { server.probes[0].closes.count == 1 && client.closes.count == 1 }, timeout: 5))
        XCTAssertGreaterThanOrEqual(Clock.monotonic() - quietSince, 0.35)
        XCTAssertEqual(server.probes[0].closes, [.idleTimeout])
        XCTAssertEqual(client.closes, [.peerClosed])
        server.listener.close()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    // MARK: backpressure

    func testWriteBackpressureHighAndLowWatermarks() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        // A small receive window on the peer so the kernel absorbs little.
        try Syscalls.setOption(server.listener.fd, SOL_SOCKET, SO_RCVBUF, Int32(4096), "SO_RCVBUF")
        server.configure = { c, _ in c.pauseReading() }  // a peer that does not read

        var o = TCPConnection.Options()
        o.highWatermark = 64 * 1024
        o.lowWatermark = 16 * 1024
        o.writeBudget = 32 * 1024
        let total = 1 << 20
        let chunk = 8 * 1024
        let data = Self.pattern(total, seed: 7)
        var sent = 0
        var maxQueued = 0
        let client = TCPProbe()
        func produce(_ c: TCPConnection) {
            while sent < total && c.isWritable {
                XCTAssertTrue(data[sent..<sent + chunk].withUnsafeBytes { c.write($0) })
                sent += chunk
                maxQueued = max(maxQueued, c.queuedBytes)
            }
        }
        client.onConnect = { c in
            try? Syscalls.setOption(c.fd, SOL_SOCKET, SO_SNDBUF, Int32(4096), "SO_SNDBUF")
            produce(c)
        }
        client.onWritability = { c in if c.isWritable { produce(c) } }
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, options: o, handler: client)

        XCTAssertTrue(loop.run(until: { client.writability.contains(false) }, timeout: 10), "high watermark reported")
        loop.run(until: { false }, timeout: 0.3)  // the peer still does not read
        XCTAssertFalse(c.isWritable)
        XCTAssertLessThan(sent, total, "the producer paused")
        XCTAssertLessThanOrEqual(maxQueued, o.highWatermark + chunk, "queued bytes bounded by the watermark")
        XCTAssertGreaterThanOrEqual(c.queuedBytes, o.highWatermark - o.writeBudget)

        server.connections[0].resumeReading()
        let peer = server.probes[0]
        XCTAssertTrue(loop.run(until: { peer.received.count == total }, timeout: 20))
        XCTAssertEqual(sent, total)
        XCTAssertEqual(peer.received, data, "all bytes arrive intact and in order")
        XCTAssertTrue(client.writability.contains(true), "low watermark reported")
        XCTAssertTrue(c.isWritable)
        XCTAssertEqual(c.queuedBytes, 0)
        XCTAssertEqual(client.writability.first, false)
        // Every flush that sent bytes was reported, down to an empty queue.
        XCTAssertGreaterThan(client.sendNotices.count, 1)
        XCTAssertTrue(client.sendNotices.contains { $0 > 0 }, "a flush that left bytes queued")
        XCTAssertEqual(client.sendNotices.last, 0)
        c.close()
        XCTAssertTrue(loop.run(until: { peer.closes.count == 1 }, timeout: 5))
        server.listener.close()
    }

    func testWritesBeyondTheQueueLimitAreRefusedAndCounted() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        var o = TCPConnection.Options()
        o.maxQueuedBytes = 64 * 1024
        let probe = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, options: o, handler: probe)
        XCTAssertTrue(c.write(Self.pattern(60 * 1024)))
        XCTAssertFalse(c.write(Self.pattern(8 * 1024)), "would exceed maxQueuedBytes")
        XCTAssertEqual(c.writesRefused, 1)
        XCTAssertEqual(c.queuedBytes, 60 * 1024)
        XCTAssertTrue(loop.run(until: { server.probes.first?.received.count == 60 * 1024 }, timeout: 5))
        c.abort()
        XCTAssertTrue(loop.run(until: { probe.closes.count == 1 }, timeout: 5))
        server.listener.close()
    }

    // MARK: closing

    func testHalfCloseThePeerSeesEOFAndCanStillReply() throws {
        let loop = makeLoop()
        var so = TCPConnection.Options()
        so.allowHalfOpen = true
        let server = try Server(loop: loop, address: loopback, options: so)
        server.configure = { _, probe in
            probe.onEOF = { [unowned probe] c in
                // The request is complete: answer on the still-open direction.
                XCTAssertTrue(c.write(Array("re: ".utf8) + probe.received))
                c.close()
            }
        }
        let client = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        c.write(Array("request".utf8))
        c.shutdownOutput()
        XCTAssertFalse(c.write([1]), "no writes after shutdownOutput")
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 && server.probes.first?.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(server.probes[0].received, Array("request".utf8))
        XCTAssertEqual(server.probes[0].eofs, 1)
        XCTAssertEqual(client.received, Array("re: request".utf8), "the reply arrives after our half-close")
        XCTAssertEqual(client.closes, [.peerClosed])
        XCTAssertEqual(server.probes[0].closes, [.localClose])
        server.listener.close()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testHalfCloseSeenByARawPeer() throws {
        let loop = makeLoop()
        var peerFD: Int32 = -1
        let listener = try TCPListener(loop: loop, address: loopback) { fd, _ in peerFD = fd }
        listener.start()
        let probe = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: listener.localAddress, handler: probe)
        c.write(Array("bye".utf8))
        c.shutdownOutput()
        XCTAssertTrue(loop.run(until: { peerFD >= 0 && probe.connected == 1 }, timeout: 5))
        defer { Syscalls.close(peerFD) }
        var got: [UInt8] = []
        var eof = false
        XCTAssertTrue(loop.run(until: {
            while let chunk = self.rawRead(peerFD) { if chunk.isEmpty { return false }; got += chunk }
            eof = true
            return true
        }, timeout: 5))
        XCTAssertTrue(eof)
        XCTAssertEqual(got, Array("bye".utf8))
        _ = Array("still here".utf8).withUnsafeBytes { Glibc.write(peerFD, $0.baseAddress, $0.count) }
        XCTAssertTrue(loop.run(until: { probe.received == Array("still here".utf8) }, timeout: 5))
        XCTAssertEqual(c.state, .open, "reading goes on after a half-close")
        c.close()
        loop.run(until: { probe.closes.count == 1 }, timeout: 5)
        listener.close()
    }

    func testGracefulCloseFlushesQueuedBytesFirst() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        let payload = Self.pattern(2 << 20, seed: 3)
        server.configure = { c, _ in
            XCTAssertTrue(c.write(payload))
            c.close()  // right away: the queue must still be delivered
            XCTAssertEqual(c.state, .closing)
        }
        let client = TCPProbe()
        _ = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 }, timeout: 20))
        XCTAssertEqual(client.received.count, payload.count)
        XCTAssertEqual(client.received, payload)
        XCTAssertEqual(client.closes, [.peerClosed])
        XCTAssertTrue(loop.run(until: { server.probes[0].closes.count == 1 }, timeout: 5))
        XCTAssertEqual(server.probes[0].closes, [.localClose])
        XCTAssertEqual(server.connections[0].unsentBytesAtClose, 0)
        server.listener.close()
    }

    func testPeerResetIsReported() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        let client = TCPProbe()
        _ = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        XCTAssertTrue(loop.run(until: { client.connected == 1 && server.connections.count == 1 }, timeout: 5))
        server.connections[0].abort()
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(client.closes, [.reset])
        XCTAssertEqual(server.probes[0].closes, [.localAbort])
        server.listener.close()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testCloseCallbackExactlyOnceAndNeverFromInsideTheCall() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        let probe = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: probe)
        XCTAssertTrue(loop.run(until: { probe.connected == 1 }, timeout: 5))
        c.close()
        XCTAssertEqual(probe.closes.count, 0, "not called back from inside close()")
        c.close()
        c.abort()
        c.shutdownOutput()
        XCTAssertFalse(c.write([1]))
        c.pauseReading()
        c.resumeReading()
        XCTAssertTrue(loop.run(until: { probe.closes.count >= 1 }, timeout: 5))
        loop.run(until: { false }, timeout: 0.1)
        XCTAssertEqual(probe.closes, [.localClose])

        // A connection that fails while its owner also closes it: still one.
        let failing = TCPProbe()
        let s = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
        try Syscalls.bind(s, loopback)
        let dead = try Syscalls.localAddress(s)
        Syscalls.close(s)
        let f = TCPConnection.connect(loop: loop, to: dead, handler: failing)
        failing.onClose = { $0.close() }
        loop.runOnce()
        f.abort()
        f.close()
        XCTAssertTrue(loop.run(until: { failing.closes.count >= 1 }, timeout: 5))
        loop.run(until: { false }, timeout: 0.1)
        XCTAssertEqual(failing.closes.count, 1)
        server.listener.close()
        for conn in server.connections { conn.abort() }
        loop.run(until: { server.probes.allSatisfy { $0.closes.count == 1 } }, timeout: 5)
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testClosingFromInsideTheReadCallbackIsSafe() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        var reads = 0
        server.configure = { _, probe in
            probe.onRead = { c, b in
                reads += 1
                c.abort()                  // closes the descriptor under our feet
                XCTAssertFalse(c.write([1]))
                c.close()
                b.consume(b.readableBytes)  // the lent buffer is still valid
            }
        }
        let client = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        c.write(Self.pattern(200_000))  // more than one read budget
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 && server.probes.first?.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(reads, 1, "no read after the close")
        XCTAssertEqual(server.probes[0].closes, [.localAbort])
        XCTAssertEqual(client.closes, [.reset])

        // The scratch buffer was given back: the next connection reads fine.
        XCTAssertNotNil(ReadScratch.borrow().map { ReadScratch.giveBack($0); return true })
        server.configure = nil
        let client2 = TCPProbe()
        let c2 = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client2)
        c2.write(Array("ok".utf8))
        XCTAssertTrue(loop.run(until: { server.probes.count == 2 && server.probes[1].received == Array("ok".utf8) }, timeout: 5))
        c2.close()
        XCTAssertTrue(loop.run(until: { server.probes[1].closes.count == 1 }, timeout: 5))
        server.listener.close()
    }

    // MARK: reading

    func testPartialFramesStayInTheBufferUntilComplete() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        var frames: [[UInt8]] = []
        server.configure = { _, probe in
            // Frames: 2-byte big-endian length, then the body.
            probe.onRead = { _, b in
                while b.readableBytes >= 2 {
                    let r = b.readable
                    let len = Int(r[0]) << 8 | Int(r[1])
                    guard r.count >= 2 + len else { break }
                    frames.append(Array(r[2..<2 + len]))
                    b.consume(2 + len)
                }
            }
        }
        var wire: [UInt8] = []
        var expected: [[UInt8]] = []
        for i in 0..<50 {
            let body = Self.pattern(i * 97 % 3000 + 1, seed: i)
            expected.append(body)
            wire += [UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
        }
        let fd = try rawConnect(server.listener.localAddress)
        defer { Syscalls.close(fd) }
        pollFD(fd, Int16(POLLOUT))
        // Dribble the stream in odd-sized pieces so frames straddle reads.
        var off = 0
        var piece = 1
        while off < wire.count {
            let n = min(piece, wire.count - off)
            _ = wire[off..<off + n].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, n) }
            off += n
            piece = piece * 3 % 1777 + 1
            loop.run(until: { false }, timeout: 0.002)
        }
        XCTAssertTrue(loop.run(until: { frames.count == expected.count }, timeout: 5))
        XCTAssertEqual(frames, expected)
        server.listener.close()
        server.connections[0].close()
        loop.run(until: { server.probes[0].closes.count == 1 }, timeout: 5)
    }

    func testReadBudgetBoundsBytesPerWakeup() throws {
        let loop = makeLoop()
        var o = TCPConnection.Options()
        o.readBudget = 4096
        let server = try Server(loop: loop, address: loopback, options: o)
        var perIteration: [UInt: Int] = [:]
        var total = 0
        server.configure = { _, probe in
            probe.onRead = { _, b in
                perIteration[loop.iteration, default: 0] += b.readableBytes
                total += b.readableBytes
                b.consume(b.readableBytes)
            }
        }
        // A timer that must keep firing while the flood is read.
        var ticks = 0
        let t = TimerWatcher(loop: loop) { _ in ticks += 1 }
        t.start(after: 0.001, repeat: 0.001)
        let fd = try rawConnect(server.listener.localAddress)
        defer { Syscalls.close(fd) }
        pollFD(fd, Int16(POLLOUT))
        let flood = Self.pattern(256 * 1024)
        var off = 0
        XCTAssertTrue(loop.run(until: {
            if off < flood.count {
                let n = flood[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n > 0 { off += n }
            }
            return total == flood.count
        }, timeout: 10))
        t.stop()
        XCTAssertLessThanOrEqual(perIteration.values.max() ?? 0, 4096, "never more than the budget per iteration")
        XCTAssertGreaterThanOrEqual(perIteration.count, flood.count / 4096)
        XCTAssertGreaterThan(ticks, 0)
        server.listener.close()
        server.connections[0].abort()
        loop.run(until: { server.probes[0].closes.count == 1 }, timeout: 5)
    }

    func testUnconsumedInputBeyondTheLimitCloses() throws {
        let loop = makeLoop()
        var o = TCPConnection.Options()
        o.maxReadBuffer = 1024
        let server = try Server(loop: loop, address: loopback, options: o)
        server.configure = { _, probe in probe.onRead = { _, _ in } }  // never consumes
        let client = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        c.write(Self.pattern(4096))
        XCTAssertTrue(loop.run(until: { server.probes.first?.closes.count == 1 }, timeout: 5))
        XCTAssertEqual(server.probes[0].closes, [.readBufferLimit])
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 }, timeout: 5))
        server.listener.close()
    }

    func testResumeReadingRedeliversUnconsumedBytes() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        var calls = 0
        var got: [UInt8] = []
        server.configure = { _, probe in
            probe.onRead = { c, b in
                calls += 1
                if calls == 1 { c.pauseReading(); return }  // leave it all for later
                got += b.readable
                b.consume(b.readableBytes)
            }
        }
        let client = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        c.write(Array("hello".utf8))
        XCTAssertTrue(loop.run(until: { calls == 1 }, timeout: 5))
        loop.run(until: { false }, timeout: 0.05)
        XCTAssertEqual(calls, 1, "paused: no more reads")
        server.connections[0].resumeReading()
        XCTAssertEqual(calls, 1, "not from inside resumeReading()")
        XCTAssertTrue(loop.run(until: { got == Array("hello".utf8) }, timeout: 5))
        c.close()
        XCTAssertTrue(loop.run(until: { server.probes[0].closes.count == 1 }, timeout: 5))
        server.listener.close()
    }

    // MARK: listener

    func testPausingInWillReadLeavesTheBytesInTheKernel() throws {
        let loop = makeLoop()
        let server = try Server(loop: loop, address: loopback)
        var admit = false
        server.configure = { _, probe in
            probe.onWillRead = { c in if !admit { c.pauseReading() } }
        }
        let client = TCPProbe()
        let c = TCPConnection.connect(loop: loop, to: server.listener.localAddress, handler: client)
        let message = Self.pattern(10_000)
        XCTAssertTrue(c.write(message))
        XCTAssertTrue(loop.run(until: { (server.probes.first?.willReads ?? 0) > 0 }, timeout: 5))
        for _ in 0..<20 { loop.runOnce(wait: false) }
        let conn = server.connections[0], probe = server.probes[0]
        XCTAssertEqual(probe.willReads, 1, "a paused connection is not asked again")
        XCTAssertEqual(conn.bytesRead, 0, "nothing was read")
        XCTAssertTrue(probe.received.isEmpty)
        admit = true
        conn.resumeReading()
        XCTAssertTrue(loop.run(until: { probe.received.count == message.count }, timeout: 5))
        XCTAssertEqual(probe.received, message, "every byte arrives once reading resumes")
        c.close()
        XCTAssertTrue(loop.run(until: { client.closes.count == 1 && probe.closes.count == 1 }, timeout: 5))
        server.listener.close()
    }

    func testReusePortLetsTwoListenersShareAPort() throws {
        let loop = makeLoop()
        var o = TCPListener.Options()
        o.reusePort = true
        let a = try TCPListener(loop: loop, address: loopback, options: o) { fd, _ in Syscalls.close(fd) }
        let b = try TCPListener(loop: loop, address: a.localAddress, options: o) { fd, _ in Syscalls.close(fd) }
        XCTAssertEqual(a.localAddress, b.localAddress)
        XCTAssertThrowsError(try TCPListener(loop: loop, address: a.localAddress) { fd, _ in Syscalls.close(fd) }) { e in
            XCTAssertEqual((e as? SyscallError)?.errno, EADDRINUSE)
            XCTAssertTrue("\(e)".contains("bind(127.0.0.1:"), "the error names the call and address: \(e)")
        }
    }

    func testAcceptBatchIsBounded() throws {
        let loop = makeLoop()
        var o = TCPListener.Options()
        o.acceptBatch = 2
        var perIteration: [UInt: Int] = [:]
        var fds: [Int32] = []
        let l = try TCPListener(loop: loop, address: loopback, options: o) { fd, _ in
            perIteration[loop.iteration, default: 0] += 1
            fds.append(fd)
        }
        var clients: [Int32] = []
        defer { (clients + fds).forEach { Syscalls.close($0) } }
        for _ in 0..<7 { clients.append(try rawConnect(l.localAddress)) }
        clients.forEach { pollFD($0, Int16(POLLOUT)) }
        l.start()
        XCTAssertTrue(loop.run(until: { fds.count == 7 }, timeout: 5))
        XCTAssertLessThanOrEqual(perIteration.values.max() ?? 0, 2)
        XCTAssertEqual(l.accepted, 7)
        l.close()
    }

    /// Lowers RLIMIT_NOFILE to the lowest free descriptor number, so the
    /// next descriptor the process would get is refused with EMFILE.
    func exhaustDescriptors() throws {
        let probe = try Syscalls.open("/dev/null", O_RDONLY)
        Syscalls.close(probe)
        try ProcessLimits.setDescriptorLimit(UInt64(probe))
    }

    func testEMFILEOnAcceptDropsWithTheReserveDescriptorWithoutSpinning() throws {
        let loop = makeLoop()
        var fds: [Int32] = []
        let l = try TCPListener(loop: loop, address: loopback) { fd, _ in fds.append(fd) }
        var clients: [Int32] = []
        defer { (clients + fds).forEach { Syscalls.close($0) } }
        for _ in 0..<5 { clients.append(try rawConnect(l.localAddress)) }
        clients.forEach { pollFD($0, Int16(POLLOUT)) }

        let saved = ProcessLimits.descriptorLimit()
        defer { try? ProcessLimits.setDescriptorLimit(saved) }
        try exhaustDescriptors()
        l.start()
        let first = loop.iteration
        XCTAssertTrue(loop.run(until: { l.emfileDrops == 5 }, timeout: 5))
        let settle = loop.iteration
        loop.run(until: { false }, timeout: 0.3)
        XCTAssertLessThan(loop.iteration - first, 40, "no busy loop on EMFILE (\(loop.iteration - first) iterations)")
        XCTAssertLessThan(loop.iteration - settle, 20, "the listener went quiet once the queue was drained")
        XCTAssertEqual(fds.count, 0)
        // One more failed accept4 per wakeup: at the limit it says EMFILE
        // even for an empty queue (the reserve dance then finds it empty).
        XCTAssertGreaterThanOrEqual(l.acceptErrors, 5)
        XCTAssertLessThanOrEqual(l.acceptErrors, 10)
        XCTAssertEqual(l.pauses, 0, "the reserve descriptor made pausing unnecessary")
        // The dropped peers saw an orderly close, not a hang in the backlog.
        for c in clients {
            XCTAssertTrue(pollFD(c, Int16(POLLIN)))
            XCTAssertNil(rawRead(c), "EOF")
        }

        try ProcessLimits.setDescriptorLimit(saved)
        clients.append(try rawConnect(l.localAddress))
        XCTAssertTrue(loop.run(until: { fds.count == 1 }, timeout: 5), "accepting recovers when descriptors free up")
        XCTAssertEqual(l.emfileDrops, 5)
        l.close()
    }

    func testEMFILEWithoutAReservePausesAndRecovers() throws {
        let loop = makeLoop()
        var o = TCPListener.Options()
        o.reserveDescriptor = false
        o.pauseOnError = 0.1
        var fds: [Int32] = []
        let l = try TCPListener(loop: loop, address: loopback, options: o) { fd, _ in fds.append(fd) }
        var clients: [Int32] = []
        defer { (clients + fds).forEach { Syscalls.close($0) } }
        for _ in 0..<3 { clients.append(try rawConnect(l.localAddress)) }
        clients.forEach { pollFD($0, Int16(POLLOUT)) }

        let saved = ProcessLimits.descriptorLimit()
        defer { try? ProcessLimits.setDescriptorLimit(saved) }
        try exhaustDescriptors()
        l.start()
        let first = loop.iteration
        loop.run(until: { false }, timeout: 0.5)
        let iterations = loop.iteration - first
        XCTAssertLessThan(iterations, 60, "paused on a timer, not spinning (\(iterations) iterations)")
        XCTAssertGreaterThanOrEqual(l.pauses, 2, "retried after each pause")
        XCTAssertEqual(l.acceptErrors, l.pauses, "one failed accept per pause")
        XCTAssertEqual(fds.count, 0)
        XCTAssertEqual(l.emfileDrops, 0)

        try ProcessLimits.setDescriptorLimit(saved)
        XCTAssertTrue(loop.run(until: { fds.count == 3 }, timeout: 5), "the queued connections are accepted after the pause")
        XCTAssertFalse(l.isPaused)
        l.close()
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    // MARK: footprint

    /// Heap per idle connection, measured with mallinfo2 over many
    /// connections, plus the size of each piece. Prints the figures.
    func testIdleConnectionFootprint() throws {
        let n = 2000
        let needed = UInt64(2 * n + 64)
        if ProcessLimits.descriptorLimit() < needed {
            _ = try? ProcessLimits.raiseDescriptorLimit()
            guard ProcessLimits.descriptorLimit() >= needed else { throw XCTSkip("needs \(needed) descriptors") }
        }
        let loop = makeLoop()
        var accepted: [(Int32, SocketAddress)] = []
        let l = try TCPListener(loop: loop, address: loopback) { fd, peer in accepted.append((fd, peer)) }
        l.start()
        var clients: [Int32] = []
        defer { clients.forEach { Syscalls.close($0) } }
        for _ in 0..<n {
            clients.append(try rawConnect(l.localAddress))
            if clients.count % 200 == 0 { loop.run(until: { accepted.count == clients.count }, timeout: 5) }
        }
        XCTAssertTrue(loop.run(until: { accepted.count == n }, timeout: 10))

        let sink = TCPCallbacks()  // one shared handler: consumes and drops
        var o = TCPConnection.Options()
        o.idleTimeout = 600
        var conns: [TCPConnection] = []
        conns.reserveCapacity(n)
        let heap0 = ProcessLimits.heapBytesInUse()
        for (fd, peer) in accepted { conns.append(TCPConnection(loop: loop, fd: fd, peer: peer, options: o, handler: sink)) }
        loop.runOnce()
        let heap1 = ProcessLimits.heapBytesInUse()

        // Traffic on every connection, then idle again: buffers must be gone.
        var read = 0
        sink.onRead = { _, b in read += b.readableBytes; b.consume(b.readableBytes) }
        let msg = Self.pattern(1000)
        for fd in clients { _ = msg.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
        XCTAssertTrue(loop.run(until: { read == n * msg.count }, timeout: 10))
        for c in conns { c.write(msg) }
        loop.run(until: { conns.allSatisfy { $0.queuedBytes == 0 } }, timeout: 10)
        let heap2 = ProcessLimits.heapBytesInUse()

        let idle = (Int(heap1) - Int(heap0)) / n
        let afterTraffic = (Int(heap2) - Int(heap0)) / n
        // Held in an array so they are heap objects (a local that does not
        // escape may be promoted to the stack).
        let samples: [AnyObject] = [conns[0], IOWatcher(loop: loop, fd: 0, events: .read) { _, _ in }, TimerWatcher(loop: loop) { _ in }]
        func blockSize(_ o: AnyObject) -> Int { malloc_usable_size(Unmanaged.passUnretained(o).toOpaque()) }
        let pieces: [(String, Int)] = [
            ("TCPConnection instance", blockSize(samples[0])),
            ("IOWatcher instance", blockSize(samples[1])),
            ("ev_io", MemoryLayout<ev_io>.size),
            ("TimerWatcher instance", blockSize(samples[2])),
            ("ev_timer", MemoryLayout<ev_timer>.size),
            ("TCPConnection.Options", MemoryLayout<TCPConnection.Options>.size),
            ("WriteQueue (empty)", MemoryLayout<WriteQueue>.size),
        ]
        print("tcp footprint: \(n) idle connections with an idle timeout")
        for (name, size) in pieces { print("  \(name): \(size) B") }
        print("  heap per idle connection (mallinfo2): \(idle) B; after a 1000 B read and write each: \(afterTraffic) B")
        print("  read buffer per idle connection: 0 B (thread scratch \(ReadScratch.size) B shared)")
        if heap1 > heap0 {  // mallinfo2 reports nothing under the sanitizers' allocators
            XCTAssertLessThan(idle, 2048, "per-connection heap")
            XCTAssertLessThan(afterTraffic, 2048, "buffers released after traffic")
        }

        for c in conns { c.abort() }
        var closed = 0
        sink.onClose = { _, _ in closed += 1 }
        XCTAssertTrue(loop.run(until: { closed == n }, timeout: 10))
        l.close()
        XCTAssertEqual(loop.activeWatchers, 0)
    }
}
