import XCTest
@testable import Reactor
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class RingBufferTests: XCTestCase {
    func testDropNewestRefusesAndCounts() {
        var r = RingBuffer<Int>(capacity: 3, overflow: .dropNewest)
        XCTAssertTrue(r.append(1)); XCTAssertTrue(r.append(2)); XCTAssertTrue(r.append(3))
        XCTAssertTrue(r.isFull)
        XCTAssertFalse(r.append(4))
        XCTAssertFalse(r.append(5))
        XCTAssertEqual(r.dropped, 2)
        XCTAssertEqual([r.popFirst(), r.popFirst(), r.popFirst(), r.popFirst()], [1, 2, 3, nil])
    }

    func testDropOldestEvictsAndCounts() {
        var r = RingBuffer<Int>(capacity: 3, overflow: .dropOldest)
        for i in 1...5 { XCTAssertTrue(r.append(i)) }
        XCTAssertEqual(r.dropped, 2)
        XCTAssertEqual(r.count, 3)
        XCTAssertEqual([r[0], r[1], r[2]], [3, 4, 5])
    }

    func testGrowKeepsOrderAcrossWrapAround() {
        var r = RingBuffer<Int>(capacity: 4, overflow: .grow)
        for i in 0..<3 { r.append(i) }
        _ = r.popFirst(); _ = r.popFirst()
        for i in 3..<20 { r.append(i) }
        XCTAssertEqual(r.dropped, 0)
        var out: [Int] = []
        while let v = r.popFirst() { out.append(v) }
        XCTAssertEqual(out, Array(2..<20))
    }

    func testCapacityIsExactForNonPowerOfTwo() {
        var r = RingBuffer<Int>(capacity: 5, overflow: .dropNewest)
        var accepted = 0
        for i in 0..<9 where r.append(i) { accepted += 1 }
        XCTAssertEqual(accepted, 5)
        XCTAssertEqual(r.dropped, 4)
    }
}

final class ByteBufferTests: XCTestCase {
    func testWriteConsumeCompactAndLimit() {
        let b = ByteBuffer(capacity: 8, limit: 32)
        XCTAssertTrue(b.write([1, 2, 3, 4, 5, 6]))
        b.consume(4)
        XCTAssertEqual(b.readableArray, [5, 6])
        XCTAssertTrue(b.reserve(6))        // fits after compaction, no growth
        XCTAssertEqual(b.capacity, 8)
        XCTAssertEqual(b.readableArray, [5, 6])
        XCTAssertTrue(b.write([UInt8](repeating: 9, count: 20)))
        XCTAssertEqual(b.capacity, 32)
        XCTAssertFalse(b.write([UInt8](repeating: 1, count: 11)), "past the limit is refused")
        XCTAssertEqual(b.readableBytes, 22, "a refused write writes nothing")
        b.consume(22)
        XCTAssertTrue(b.isEmpty)
        b.shrink(to: 8)
        XCTAssertEqual(b.capacity, 8)
    }

    func testReadIntoWritableRegion() throws {
        let (a, c) = try Syscalls.socketpair()
        defer { Syscalls.close(a); Syscalls.close(c) }
        let b = ByteBuffer(capacity: 16)
        guard case .wouldBlock = try Syscalls.read(a, b.writable.baseAddress!, b.writableBytes) else {
            return XCTFail("empty nonblocking socket must report wouldBlock")
        }
        _ = try Syscalls.write(c, [UInt8]([7, 8, 9]), 3)
        guard case .value(let n) = try Syscalls.read(a, b.writable.baseAddress!, b.writableBytes) else {
            return XCTFail("expected data")
        }
        b.didWrite(n)
        XCTAssertEqual(b.readableArray, [7, 8, 9])
    }
}

final class LogHistogramTests: XCTestCase {
    func testQuantilesWithinOnePercent() {
        var h = LogHistogram()
        var rng = XorShiftRandom(seed: 42)
        var values: [UInt64] = []
        for _ in 0..<20_000 {
            let v = UInt64(1 + rng.nextUnit() * rng.nextUnit() * 5_000_000)
            values.append(v)
            h.record(v)
        }
        values.sort()
        for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
            let exact = Double(values[Int((Double(values.count) * q).rounded(.up)) - 1])
            let got = Double(h.quantile(q))
            XCTAssertLessThanOrEqual(abs(got - exact) / exact, 0.01, "q=\(q) exact=\(exact) got=\(got)")
        }
        XCTAssertEqual(h.count, 20_000)
        XCTAssertEqual(h.min, values.first)
        XCTAssertEqual(h.max, values.last)
        XCTAssertLessThan(h.relativeError, 0.01)
    }

    func testSmallValuesAreExactAndMergeAdds() {
        var a = LogHistogram(), b = LogHistogram()
        for v in 0..<100 { a.record(UInt64(v)) }
        for v in 100..<200 { b.record(UInt64(v)) }
        XCTAssertEqual(a.quantile(0.5), 49)
        a.merge(b)
        XCTAssertEqual(a.count, 200)
        XCTAssertEqual(a.quantile(1.0), 199)
        XCTAssertEqual(a.quantile(0.0), 0)
        XCTAssertEqual(LogHistogram().quantile(0.5), 0)
    }

    /// What one thread hands another (the store's writer its counters to
    /// the loop) must not leave the receiver holding the sender's storage.
    func testOwnCopyHasTheSameCountsAndSharesNoStorage() {
        var h = LogHistogram()
        for v in [3, 200, 5_000, 70_000, 70_001, 9_000_000] as [UInt64] { h.record(v) }
        let plain = h
        let own = h.ownCopy()
        XCTAssertEqual(plain.blockAddresses, h.blockAddresses, "a plain copy shares the blocks")
        XCTAssertEqual(own.blockAddresses.count, h.blockAddresses.count)
        XCTAssertTrue(Set(own.blockAddresses).isDisjoint(with: h.blockAddresses))
        for q in [0.0, 0.25, 0.5, 0.9, 1.0] { XCTAssertEqual(own.quantile(q), h.quantile(q), "q=\(q)") }
        XCTAssertEqual([own.count, own.sum, own.min, own.max], [h.count, h.sum, h.min, h.max])
        XCTAssertEqual(own.subBits, h.subBits)
    }

    func testSubtractingAnEarlierCopyLeavesOnlyTheNewerValues() {
        var h = LogHistogram()
        for _ in 0..<1000 { h.record(1_000_000) }      // an old, slow period
        let earlier = h
        for v in 10..<20 { h.record(UInt64(v)) }       // the recent, fast one
        let recent = h.subtracting(earlier)
        XCTAssertEqual(recent.count, 10)
        XCTAssertEqual(recent.sum, (10..<20).reduce(0) { $0 + UInt64($1) })
        XCTAssertEqual(recent.quantile(0.5), 14)
        XCTAssertEqual(recent.quantile(1), 19)
        XCTAssertEqual(recent.max, 19, "the old maximum is not in the window")
        XCTAssertEqual(recent.min, 10)
        XCTAssertEqual(h.count, 1010, "the cumulative histogram is unchanged")
        XCTAssertEqual(h.subtracting(h).count, 0)
        XCTAssertEqual(h.subtracting(h).quantile(0.99), 0)
    }
}

final class BackoffTests: XCTestCase {
    struct Fixed: RandomSource {
        var values: [Double]; var i = 0
        mutating func nextUnit() -> Double { defer { i += 1 }; return values[i % values.count] }
    }

    func testFlatRoundsThenExponentialToCap() {
        var b = Backoff(min: 5, max: 10, flatRounds: 3, cap: 300, random: Fixed(values: [0, 0.999999, 0.5]))
        XCTAssertEqual(b.next(), 5, accuracy: 1e-6)
        XCTAssertEqual(b.next(), 10, accuracy: 1e-4)
        XCTAssertEqual(b.next(), 7.5, accuracy: 1e-6)
        XCTAssertEqual(b.next(), 10, accuracy: 1e-6)       // round 4: [10, 20], jitter 0
        XCTAssertEqual(b.next(), 40, accuracy: 1e-3)       // round 5: [20, 40], jitter ~1
        XCTAssertEqual(b.next(), 60, accuracy: 1e-6)       // round 6: [40, 80], jitter 0.5
        for _ in 0..<100 { XCTAssertLessThanOrEqual(b.next(), 300) }
        XCTAssertEqual(b.round, 106)
        b.reset()
        XCTAssertEqual(b.round, 0)
        let d = b.next()
        XCTAssertTrue(d >= 5 && d <= 10)
    }

    func testSeededRandomIsDeterministicAndInRange() {
        var r1 = XorShiftRandom(seed: 7), r2 = XorShiftRandom(seed: 7)
        for _ in 0..<1000 {
            let a = r1.nextUnit()
            XCTAssertEqual(a, r2.nextUnit())
            XCTAssertTrue(a >= 0 && a < 1)
        }
    }
}

final class SystemTests: XCTestCase {
    /// mallinfo2 walks malloc's free lists: the gauge reads it again only
    /// once its interval (at least a second, or a thousand times the last
    /// read's cost) has passed, and serves the cached figure before that.
    func testHeapGaugeReadsAtMostOncePerIntervalScaledByItsCost() {
        let g = HeapGauge()
        _ = g.value(now: 100)
        XCTAssertEqual(g.reads, 1)
        _ = g.value(now: 100.5)
        XCTAssertEqual(g.reads, 1, "within a second: the cached figure")
        _ = g.value(now: 101.1)
        XCTAssertEqual(g.reads, 2)
        g.costFactor = 1e12        // as if the last read had cost seconds
        _ = g.value(now: 102.2)
        XCTAssertEqual(g.reads, 2, "a costly read is repeated less often")
        _ = g.value(now: 101.1 + 1e12 * Double(max(g.lastCostNanos, 1)) / 1e9 + 1)
        XCTAssertEqual(g.reads, 3)
    }

    /// A read that cost more than an iteration's budget (1 ms) is repeated
    /// only after 100,000 times its cost, however often the page is asked
    /// for; the cached figure is served meanwhile.
    func testHeapGaugeReadsASlowHeapRarely() {
        var calls = 0
        let g = HeapGauge(read: { calls += 1; usleep(2_000); return 42 })
        XCTAssertEqual(g.value(now: 100), 42)
        XCTAssertGreaterThan(g.lastCostNanos, 1_000_000)
        XCTAssertGreaterThanOrEqual(g.interval, 200)
        for t in stride(from: 105.0, to: 295, by: 5) { XCTAssertEqual(g.value(now: t), 42) }
        XCTAssertEqual(calls, 1, "a scrape every 5 s for over 3 minutes: one walk")
        _ = g.value(now: 100 + g.interval + 1)
        XCTAssertEqual(calls, 2)
    }

    func testSyscallErrorNamesTheCall() throws {
        let fd = try Syscalls.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
        defer { Syscalls.close(fd) }
        let bad = try SocketAddress(ip: "192.0.2.1", port: 1)  // not a local address: EADDRNOTAVAIL
        XCTAssertThrowsError(try Syscalls.bind(fd, bad)) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("bind(192.0.2.1:1)"), s)
            XCTAssertTrue(s.contains("EADDRNOTAVAIL"), s)
        }
    }

    func testAddressParsing() throws {
        XCTAssertEqual(try SocketAddress(parsing: "127.0.0.1:6600").description, "127.0.0.1:6600")
        XCTAssertEqual(try SocketAddress(parsing: "[::1]:80").description, "[::1]:80")
        XCTAssertEqual(try SocketAddress(parsing: "::1", defaultPort: 9).description, "[::1]:9")
        XCTAssertEqual(try SocketAddress(parsing: "10.1.2.3", defaultPort: 7).port, 7)
        XCTAssertThrowsError(try SocketAddress(parsing: "localhost:80"))
        XCTAssertThrowsError(try SocketAddress(parsing: "1.2.3.4:99999"))
        XCTAssertThrowsError(try SocketAddress(parsing: "1.2.3.4"))
    }

    func testProcessLimits() throws {
        let r = try ProcessLimits.raiseDescriptorLimit()
        XCTAssertGreaterThanOrEqual(r.after, r.before)
        XCTAssertEqual(r.after, r.hard)
        XCTAssertNotNil(ProcessLimits.somaxconn())
        XCTAssertGreaterThan(ProcessLimits.residentBytes(), 0)
        XCTAssertGreaterThan(ProcessLimits.openDescriptorCount(), 2)
        // The count follows the descriptors actually open.
        let before = ProcessLimits.openDescriptorCount()
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        XCTAssertEqual(ProcessLimits.openDescriptorCount(), before + 2)
        close(fds[0]); close(fds[1])
        XCTAssertEqual(ProcessLimits.openDescriptorCount(), before)
    }

    func testResidentBytesAgreesWithStatusAndParsesStatmStrictly() throws {
        // VmRSS (kB) and statm (pages) are read a moment apart: within 5 MiB.
        let status = try XCTUnwrap(ProcessLimits.readSmallFile("/proc/self/status"))
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        let kib = try XCTUnwrap(UInt64(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        let rss = ProcessLimits.residentBytes()
        XCTAssertLessThan(abs(Int64(rss / 1024) - Int64(kib)), 5 * 1024, "statm \(rss) B, status \(kib) kB")
        func parse(_ s: String) -> UInt64? {
            Array(s.utf8).withUnsafeBufferPointer { ProcessLimits.statmResidentPages($0) }
        }
        XCTAssertEqual(parse("5316 1530 1100 1204 0 340 0\n"), 1530)
        XCTAssertEqual(parse("5316 7\n"), 7)
        XCTAssertNil(parse("5316\n"))
        XCTAssertNil(parse("5316  1530 0"), "an empty second field")
        XCTAssertNil(parse("5316 15x0 0"))
        XCTAssertNil(parse("1 99999999999999999999 0"), "more digits than a UInt64 holds")
        XCTAssertNil(parse(""))
    }

    func testLogLimiterAllowsOneLinePerKeyPerInterval() {
        var l = LogLimiter(interval: 60, maxKeys: 2)
        XCTAssertTrue(l.allow("a", now: 0))
        XCTAssertFalse(l.allow("a", now: 30))
        XCTAssertTrue(l.allow("b", now: 30))
        XCTAssertFalse(l.allow("c", now: 31), "table full of fresh keys: suppressed, not grown")
        XCTAssertTrue(l.allow("a", now: 61))
        XCTAssertEqual(l.suppressed, 2)
    }

    func testJSONStringEscaping() {
        XCTAssertEqual(Log.jsonString("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"")
        XCTAssertEqual(Log.timestamp(millis: 0), "1970-01-01T00:00:00.000Z")
    }
}
