import XCTest
@testable import Reactor
#if canImport(Glibc)
import Glibc
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module
#endif

/// UDP over loopback only. Datagrams are sent before the loop runs, so each
/// test decides what is queued when the receiver first wakes up.
final class UDPTests: XCTestCase {
    // MARK: helpers

    /// Sends one datagram with sendto(2), bypassing UDPSender.
    private func sendRaw(_ from: UDPSocket, _ to: SocketAddress, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        let n = bytes.withUnsafeBytes { b in
            to.withSockaddr { sa, len in Glibc.sendto(from.fd, b.baseAddress, b.count, 0, sa, len) }
        }
        XCTAssertEqual(n, bytes.count, "sendto: errno \(errno)", file: file, line: line)
    }

    /// Datagram `i`: its index in the first 4 bytes (little endian), then `i & 0xff` repeated.
    private func payload(_ i: Int, size: Int = 32) -> [UInt8] {
        var b = [UInt8](repeating: UInt8(i & 0xff), count: max(size, 4))
        withUnsafeBytes(of: UInt32(i).littleEndian) { for k in 0..<4 { b[k] = $0[k] } }
        return b
    }

    private func index(of d: UDPDatagram) -> Int {
        Int(UInt32(littleEndian: d.bytes.loadUnaligned(as: UInt32.self)))
    }

    private func bigBuffer() -> UDPSocket.Options { UDPSocket.Options(receiveBufferBytes: 1 << 20) }

    // MARK: receive

    func testBatchReceiveDeliversAllInOrderAcrossWakeups() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(options: bigBuffer())
        let tx = try UDPSocket.loopback()
        let n = 100
        for i in 0..<n { sendRaw(tx, rx.localAddress, payload(i, size: 4 + i)) }

        var got: [[UInt8]] = []
        var sources = Set<SocketAddress>()
        var largestBatch = 0
        let r = try UDPReceiver(socket: rx, loop: loop, config: .init(batchSize: 8, budget: 16, maxDatagramSize: 2048)) { batch in
            largestBatch = max(largestBatch, batch.count)
            for d in batch {
                got.append(Array(d.bytes))
                sources.insert(d.source)
            }
        }
        r.start()
        XCTAssertTrue(loop.run(until: { got.count == n }, timeout: 5))
        r.stop()

        XCTAssertEqual(got, (0..<n).map { payload($0, size: 4 + $0) })
        XCTAssertEqual(sources, [tx.localAddress])
        XCTAssertEqual(r.datagrams, UInt64(n))
        XCTAssertEqual(r.bytes, UInt64((0..<n).reduce(0) { $0 + 4 + $1 }))
        XCTAssertLessThanOrEqual(largestBatch, 8)
        // 16 per wakeup at most: 100 datagrams need at least 7 wakeups.
        XCTAssertGreaterThanOrEqual(r.wakeups, 7)
        XCTAssertGreaterThanOrEqual(r.budgetExhaustions, 1)
        XCTAssertEqual(r.truncated, 0)
        XCTAssertEqual(r.kernelDrops, 0)
        XCTAssertEqual(r.receiveErrors, 0)
    }

    /// A flood on a budget-limited receiver: a 0-second timer started from a
    /// batch fires before the next-but-one batch, and a timer that re-arms
    /// itself runs between every two wakeups.
    func testFloodYieldsToTimersBetweenBatches() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(options: bigBuffer())
        let tx = try UDPSocket.loopback()
        let n = 400
        for i in 0..<n { sendRaw(tx, rx.localAddress, payload(i)) }

        var events: [Character] = []  // "B": a batch, "T": the timer fired
        var timerStartedAtWakeup: UInt64 = 0
        var timerFiredAtWakeup: UInt64 = 0
        var receivedWhenTimerFired: UInt64 = 0
        var received = 0
        var receiver: UDPReceiver!
        let zeroTimer = TimerWatcher(loop: loop) { _ in
            timerFiredAtWakeup = receiver.wakeups
            receivedWhenTimerFired = receiver.datagrams
        }
        let ticker = TimerWatcher(loop: loop) { t in
            events.append("T")
            if received < n { t.start(after: 0) }
        }
        receiver = try UDPReceiver(socket: rx, loop: loop, config: .init(batchSize: 8, budget: 8, maxDatagramSize: 2048)) { batch in
            events.append("B")
            received += batch.count
            if receiver.wakeups == 3 {
                zeroTimer.start(after: 0)
                timerStartedAtWakeup = receiver.wakeups
            }
        }
        receiver.start()
        ticker.start(after: 0)
        XCTAssertTrue(loop.run(until: { received == n }, timeout: 5))
        receiver.stop()
        ticker.stop()

        XCTAssertEqual(timerStartedAtWakeup, 3)
        XCTAssertGreaterThan(timerFiredAtWakeup, 0, "the 0-second timer never fired")
        XCTAssertLessThanOrEqual(timerFiredAtWakeup - timerStartedAtWakeup, 1, "timer delayed by more than one batch")
        XCTAssertLessThan(receivedWhenTimerFired, UInt64(n), "timer only fired after the flood was drained")
        XCTAssertGreaterThanOrEqual(receiver.budgetExhaustions, UInt64(n / 8 - 1))
        // Every wakeup but the first is preceded by a timer tick: no two batches in a row.
        let text = String(events)
        XCTAssertFalse(text.contains("BB"), "batches ran back to back: \(text)")
        XCTAssertEqual(events.filter { $0 == "B" }.count, n / 8)
        receiver = nil  // the handler and timers capture this variable: break the cycle
    }

    func testKernelDropsCountedWhenReceiveQueueOverflows() throws {
        let loop = EventLoop()
        // A tiny buffer (the kernel rounds it up to its minimum): only a
        // handful of datagrams fit while the loop is not running.
        let rx = try UDPSocket.loopback(options: .init(receiveBufferBytes: 4096))
        let tx = try UDPSocket.loopback()
        let sent = 300
        for i in 0..<sent { sendRaw(tx, rx.localAddress, payload(i, size: 200)) }

        var received = 0
        let r = try UDPReceiver(socket: rx, loop: loop, config: .init(batchSize: 64, budget: 1024, maxDatagramSize: 2048)) { batch in
            received += batch.count
        }
        r.start()
        XCTAssertTrue(loop.run(until: { received > 0 }, timeout: 5))
        for _ in 0..<3 { loop.runOnce() }
        XCTAssertGreaterThan(received, 0)
        XCTAssertLessThan(received, sent)

        // Drops after the last queued datagram travel on the next one: a
        // marker brings the cumulative SO_RXQ_OVFL counter up to date.
        sendRaw(tx, rx.localAddress, payload(sent, size: 200))
        XCTAssertTrue(loop.run(until: { received > 0 && r.datagrams == UInt64(received) && received + Int(r.kernelDrops) == sent + 1 }, timeout: 5),
                      "received \(received) + drops \(r.kernelDrops) != \(sent + 1)")
        XCTAssertGreaterThan(r.kernelDrops, 0)
        // SO_MEMINFO reads the same counter without waiting for a datagram.
        let before = r.kernelDrops
        try r.refreshKernelDrops()
        XCTAssertEqual(r.kernelDrops, before)
        XCTAssertEqual(UInt64(try rx.kernelDropCounter()), before)
        r.stop()
    }

    func testKernelDropsReadableWithoutAnotherDatagram() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(options: .init(receiveBufferBytes: 4096))
        let tx = try UDPSocket.loopback()
        let sent = 200
        for i in 0..<sent { sendRaw(tx, rx.localAddress, payload(i, size: 200)) }
        var received = 0
        let r = try UDPReceiver(socket: rx, loop: loop) { received += $0.count }
        r.start()
        XCTAssertTrue(loop.run(until: { received > 0 }, timeout: 5))
        for _ in 0..<3 { loop.runOnce() }
        try r.refreshKernelDrops()
        XCTAssertGreaterThan(r.kernelDrops, 0)
        XCTAssertEqual(received + Int(r.kernelDrops), sent)
        r.stop()
    }

    func testIPv6LoopbackBindAndReceive() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(ipv6: true)
        let tx = try UDPSocket.loopback(ipv6: true)
        XCTAssertEqual(rx.localAddress.family, AF_INET6)
        XCTAssertEqual(rx.localAddress.ip, "::1")
        XCTAssertNotEqual(rx.localAddress.port, 0)
        for i in 0..<10 { sendRaw(tx, rx.localAddress, payload(i)) }
        var got: [Int] = []
        var sources: [String] = []
        let r = try UDPReceiver(socket: rx, loop: loop) { batch in
            for d in batch {
                got.append(self.index(of: d))
                sources.append(d.source.description)
            }
        }
        r.start()
        XCTAssertTrue(loop.run(until: { got.count == 10 }, timeout: 5))
        r.stop()
        XCTAssertEqual(got, Array(0..<10))
        XCTAssertEqual(Set(sources), ["[::1]:\(tx.localAddress.port)"])
    }

    func testTruncatedDatagramsCountedAndNotDelivered() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback()
        let tx = try UDPSocket.loopback()
        let sizes = [10, 200, 20, 101, 100, 65_000]
        for (i, s) in sizes.enumerated() { sendRaw(tx, rx.localAddress, payload(i, size: s)) }
        var got: [(Int, Int)] = []
        let r = try UDPReceiver(socket: rx, loop: loop, config: .init(batchSize: 8, budget: 64, maxDatagramSize: 100)) { batch in
            for d in batch { got.append((self.index(of: d), d.bytes.count)) }
        }
        r.start()
        XCTAssertTrue(loop.run(until: { r.datagrams + r.truncated == UInt64(sizes.count) }, timeout: 5))
        r.stop()
        XCTAssertEqual(got.map { $0.0 }, [0, 2, 4])
        XCTAssertEqual(got.map { $0.1 }, [10, 20, 100])
        XCTAssertEqual(r.truncated, 3)
        XCTAssertEqual(r.bytes, 130)
    }

    func testMaximumSizeDatagramFitsByDefault() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(options: bigBuffer())
        let tx = try UDPSocket.loopback()
        let big = payload(7, size: 65_507)  // the largest IPv4 UDP payload
        sendRaw(tx, rx.localAddress, big)
        var got: [UInt8] = []
        let r = try UDPReceiver(socket: rx, loop: loop) { batch in got = Array(batch[0].bytes) }
        r.start()
        XCTAssertTrue(loop.run(until: { !got.isEmpty }, timeout: 5))
        r.stop()
        XCTAssertEqual(got, big)
        XCTAssertEqual(r.truncated, 0)
    }

    // MARK: lifetime

    func testHandlerMayStopReceiverAndCloseSocket() throws {
        let loop = EventLoop()
        let tx = try UDPSocket.loopback()
        weak var weakReceiver: UDPReceiver?
        var batches = 0
        var rxAddress: SocketAddress!
        do {
            let rx = try UDPSocket.loopback(options: bigBuffer())
            rxAddress = rx.localAddress
            for i in 0..<50 { sendRaw(tx, rxAddress, payload(i)) }
            let r = try UDPReceiver(socket: rx, loop: loop, config: .init(batchSize: 4, budget: 64)) { batch in
                batches += 1
                rx.close()  // stops the receiver first
            }
            r.start()
            weakReceiver = r
        }
        XCTAssertNotNil(weakReceiver, "an active receiver is retained by the loop")
        XCTAssertTrue(loop.run(until: { batches > 0 }, timeout: 5))
        for _ in 0..<3 { loop.runOnce() }
        XCTAssertEqual(batches, 1)
        XCTAssertNil(weakReceiver, "a stopped receiver is released by the loop")
        XCTAssertEqual(loop.activeWatchers, 0)
    }

    func testStoppedReceiverItsSocketAndLoopAreFreed() throws {
        weak var weakLoop: EventLoop?
        weak var weakReceiver: UDPReceiver?
        weak var weakSocket: UDPSocket?
        var fd: Int32 = -1
        try {
            let loop = EventLoop()
            let rx = try UDPSocket.loopback()
            fd = rx.fd
            let r = try UDPReceiver(socket: rx, loop: loop) { _ in }
            r.start()
            loop.runOnce()
            r.stop()
            (weakLoop, weakReceiver, weakSocket) = (loop, r, rx)
        }()
        XCTAssertNil(weakReceiver)
        XCTAssertNil(weakSocket)
        XCTAssertNil(weakLoop, "the loop leaked (a reference cycle through one of its parts)")
        XCTAssertEqual(fcntl(fd, F_GETFD), -1, "the socket's descriptor was not closed")
    }

    func testInvalidConfigIsRejected() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback()
        XCTAssertThrowsError(try UDPReceiver(socket: rx, loop: loop, config: .init(batchSize: 0)) { _ in })
        XCTAssertThrowsError(try UDPReceiver(socket: rx, loop: loop, config: .init(budget: 0)) { _ in })
        XCTAssertThrowsError(try UDPReceiver(socket: rx, loop: loop, config: .init(maxDatagramSize: 70_000)) { _ in })
        XCTAssertThrowsError(try UDPSender(socket: rx, capacity: 2000))
    }

    // MARK: socket options

    func testReceiveBufferReadBackIsComparableWithRequest() throws {
        let s = try UDPSocket.loopback(options: .init(receiveBufferBytes: 256 * 1024))
        let rb = try XCTUnwrap(s.receiveBuffer)
        XCTAssertEqual(rb.requested, 256 * 1024)
        // Linux doubles the value internally; the read-back is halved again.
        XCTAssertEqual(rb.granted, 256 * 1024)
        XCTAssertFalse(rb.clamped)
        XCTAssertFalse(rb.forced)
    }

    func testReceiveBufferAboveRmemMaxIsForcedOrWarned() throws {
        let rmemMax = Int(ProcessLimits.readSmallFile("/proc/sys/net/core/rmem_max")?.trimmingSpaces() ?? "") ?? 212_992
        let want = rmemMax * 4
        let (readFd, writeFd) = try Syscalls.pipe()
        defer { Syscalls.close(readFd); Syscalls.close(writeFd) }
        let savedFd = Log.fd
        Log.fd = writeFd
        defer { Log.fd = savedFd }
        let s = try UDPSocket.loopback(options: .init(receiveBufferBytes: want))
        Log.fd = savedFd
        let rb = try XCTUnwrap(s.receiveBuffer)
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { Glibc.read(readFd, $0.baseAddress, $0.count) }
        let logged = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
        if geteuid() == 0 {
            // CAP_NET_ADMIN: SO_RCVBUFFORCE passes rmem_max, nothing to warn about.
            XCTAssertTrue(rb.forced)
            XCTAssertGreaterThanOrEqual(rb.granted, want)
            XCTAssertFalse(rb.clamped)
            XCTAssertEqual(logged, "")
        } else {
            XCTAssertTrue(rb.clamped)
            XCTAssertEqual(rb.granted, rmemMax)
            XCTAssertTrue(logged.contains("warn udp receive buffer clamped"), logged)
            XCTAssertTrue(logged.contains("requested=\(want)"), logged)
        }
    }

    // MARK: send

    func testSendmmsgSendsBatchToOneDestination() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(options: bigBuffer())
        let tx = try UDPSocket.loopback()
        let sender = try UDPSender(socket: tx, capacity: 16)
        let n = 100
        let packets = (0..<n).map { payload($0, size: 8 + $0 % 50) }
        // One contiguous buffer with the datagrams back to back, as an aggregator would hold them.
        let flat = packets.flatMap { $0 }
        var offsets: [Int] = [0]
        for p in packets { offsets.append(offsets.last! + p.count) }
        let sent = try flat.withUnsafeBytes { all in
            try sender.send(to: rx.localAddress, count: n) { i in UnsafeRawBufferPointer(rebasing: all[offsets[i]..<offsets[i + 1]]) }
        }
        XCTAssertEqual(sent, n)
        XCTAssertEqual(sender.datagramsSent, UInt64(n))
        XCTAssertEqual(sender.bytesSent, UInt64(flat.count))
        XCTAssertEqual(sender.calls, 7)  // ceil(100 / 16)
        XCTAssertEqual(sender.wouldBlock, 0)

        var got: [[UInt8]] = []
        let r = try UDPReceiver(socket: rx, loop: loop) { batch in for d in batch { got.append(Array(d.bytes)) } }
        r.start()
        XCTAssertTrue(loop.run(until: { got.count == n }, timeout: 5))
        r.stop()
        XCTAssertEqual(got, packets)
    }

    func testSendmmsgToConnectedPeerOverIPv6() throws {
        let loop = EventLoop()
        let rx = try UDPSocket.loopback(ipv6: true)
        let tx = try UDPSocket.loopback(ipv6: true)
        try tx.connect(to: rx.localAddress)
        let sender = try UDPSender(socket: tx, capacity: 4)
        let flat = (0..<10).flatMap { payload($0, size: 32) }
        let sent = try flat.withUnsafeBytes { all in
            try sender.send(to: nil, count: 10) { i in UnsafeRawBufferPointer(rebasing: all[(i * 32)..<(i * 32 + 32)]) }
        }
        XCTAssertEqual(sent, 10)
        var got: [Int] = []
        let r = try UDPReceiver(socket: rx, loop: loop) { batch in for d in batch { got.append(self.index(of: d)) } }
        r.start()
        XCTAssertTrue(loop.run(until: { got.count == 10 }, timeout: 5))
        r.stop()
        XCTAssertEqual(got, Array(0..<10))
    }

    /// A full peer queue (a Unix datagram pair: loopback UDP never pushes
    /// back) ends the send early with the count of what went out.
    func testSendmmsgStopsAtWouldBlockAndReportsPartialCount() throws {
        let (a, b) = try Syscalls.socketpair(Int32(SOCK_DGRAM.rawValue))
        defer { Syscalls.close(b) }
        let s = try UDPSocket(adopting: a)
        let sender = try UDPSender(socket: s, capacity: 64)
        let datagram = [UInt8](repeating: 0xab, count: 64)
        let n = 100_000
        let sent = try datagram.withUnsafeBytes { d in try sender.send(to: nil, count: n) { _ in d } }
        XCTAssertGreaterThan(sent, 0)
        XCTAssertLessThan(sent, n)
        XCTAssertEqual(sender.wouldBlock, 1)
        XCTAssertEqual(sender.datagramsSent, UInt64(sent))
        XCTAssertEqual(sender.bytesSent, UInt64(sent * 64))
        // Nothing went out now: 0, not an error.
        let again = try datagram.withUnsafeBytes { d in try sender.send(to: nil, count: 10) { _ in d } }
        XCTAssertEqual(again, 0)
        XCTAssertEqual(sender.wouldBlock, 2)
    }

    func testSendErrorOnFirstDatagramIsThrown() throws {
        let tx = try UDPSocket.loopback()
        let sender = try UDPSender(socket: tx)
        let dest = try SocketAddress(ip: "127.0.0.1", port: 9)
        let tooBig = [UInt8](repeating: 0, count: 70_000)
        XCTAssertThrowsError(try tooBig.withUnsafeBytes { d in try sender.send(to: dest, count: 1) { _ in d } }) { e in
            XCTAssertEqual((e as? SyscallError)?.errno, EMSGSIZE)
        }
        // A good datagram first: the count says where the bad one is.
        let good = [UInt8](repeating: 1, count: 10)
        let sent = try good.withUnsafeBytes { g in
            try tooBig.withUnsafeBytes { t in try sender.send(to: dest, count: 3) { $0 == 0 ? g : t } }
        }
        XCTAssertEqual(sent, 1)
        XCTAssertEqual(sender.deferredErrors, 1)
    }
}
