import XCTest
import Reactor
@testable import Agent

final class SendQueuesTests: XCTestCase {
    func testQueueOneDrainsFirstAndOverflowIsCountedPerQueue() {
        var q = SendQueues<String>(queue1Size: 2, queue2Size: 3)
        XCTAssertTrue(q.push("r1", priority: false))
        XCTAssertTrue(q.push("a1", priority: true))
        XCTAssertTrue(q.push("a2", priority: true))
        XCTAssertFalse(q.push("a3", priority: true))
        for i in 2...5 { q.push("r\(i)", priority: false) }
        XCTAssertEqual(q.dropped1, 1)
        XCTAssertEqual(q.dropped2, 2)
        var out: [String] = []
        while let x = q.pop() { out.append(x) }
        XCTAssertEqual(out, ["a1", "a2", "r1", "r2", "r3"], "newest dropped, order kept, queue 1 first")
    }
}

final class InFlightWindowTests: XCTestCase {
    func testCumulativeAcksSettleInOrderAndStaleAcksAreIgnored() {
        var w = InFlightWindow<String>(maxBatches: 10, maxBytes: 1000)
        let s1 = w.add("b1", bytes: 10), s2 = w.add("b2", bytes: 10), s3 = w.add("b3", bytes: 10)
        XCTAssertEqual([s1, s2, s3], [1, 2, 3])
        XCTAssertEqual(w.acknowledge(upTo: 2), 2)
        XCTAssertEqual(w.acknowledge(upTo: 1), 0, "a stale ack settles nothing")
        XCTAssertEqual(w.pending.map(\.batch), ["b3"], "only the unacknowledged batch would be re-sent")
        XCTAssertEqual(w.bytes, 10)
        XCTAssertEqual(w.acknowledge(upTo: 3), 1)
        XCTAssertTrue(w.isEmpty)
        XCTAssertEqual(w.bytes, 0)
    }

    func testBoundsEvictOldestAndCountIt() {
        var w = InFlightWindow<Int>(maxBatches: 3, maxBytes: 100)
        for i in 0..<5 { _ = w.add(i, bytes: 10, items: i + 1) }
        XCTAssertEqual(w.pending.map(\.batch), [2, 3, 4])
        XCTAssertEqual(w.evicted, 2)
        XCTAssertEqual(w.evictedItems, 3, "items of the evicted batches 0 and 1")
        _ = w.add(99, bytes: 95)
        XCTAssertEqual(w.pending.map(\.batch), [99], "byte bound evicts as many as needed")
        XCTAssertEqual(w.evicted, 5)
    }

    func testLongRunCompactsStorage() {
        var w = InFlightWindow<Int>(maxBatches: 8, maxBytes: 1 << 20)
        for i in 0..<10_000 {
            let s = w.add(i, bytes: 1)
            w.acknowledge(upTo: s)
        }
        XCTAssertLessThan(w.entries.count, 200)
        XCTAssertEqual(w.nextSequence, 10_001)
    }
}

final class CollectorListTests: XCTestCase {
    struct Half: RandomSource { mutating func nextUnit() -> Double { 0.5 } }

    func testNextHostAtOnceThenJitteredRoundsThenExponential() {
        var l = CollectorList(hosts: ["a", "b"], minDelay: 5, maxDelay: 10, random: Half())
        XCTAssertEqual(l.current, "a")
        XCTAssertEqual(l.failed(), 0); XCTAssertEqual(l.current, "b")
        XCTAssertEqual(l.failed(), 7.5); XCTAssertEqual(l.current, "a")   // round 1
        _ = l.failed(); XCTAssertEqual(l.failed(), 7.5)                    // round 2
        _ = l.failed(); XCTAssertEqual(l.failed(), 7.5)                    // round 3
        _ = l.failed(); XCTAssertEqual(l.failed(), 15)                     // round 4: doubled
        _ = l.failed(); XCTAssertEqual(l.failed(), 30)
        for _ in 0..<40 { XCTAssertLessThanOrEqual(l.failed(), 300) }
        l.connected()
        let before = l.current
        XCTAssertEqual(l.lost(after: CollectorList<Half>.healthySession), 0, "a healthy session's loss: at once")
        XCTAssertEqual(l.failedRounds, 0)
        XCTAssertNotEqual(l.current, before, "after a loss the next host is tried first")
        XCTAssertEqual(l.failed(), 0)
        XCTAssertEqual(l.failed(), 7.5, "backoff restarted from the flat rounds")
    }

    func testSessionsLostBeforeTheyAreHealthyBackOff() {
        var l = CollectorList(hosts: ["a"], minDelay: 5, maxDelay: 10, random: Half())
        l.connected()
        XCTAssertEqual(l.lost(after: 0.1), 0, "the first retry is immediate")
        l.connected()
        XCTAssertEqual(l.lost(after: 0.1), 7.5, "the second short session in a row waits")
        l.connected()
        XCTAssertEqual(l.lost(after: 0.1), 7.5)
        l.connected()
        XCTAssertEqual(l.lost(after: 0.1), 7.5)
        l.connected()
        XCTAssertEqual(l.lost(after: 0.1), 15, "then doubles, as failed rounds do")
        XCTAssertEqual(l.failed(), 30, "a failed connect continues the same backoff")
        l.connected()
        XCTAssertEqual(l.lost(after: 29.9), 60, "not yet healthy")
        l.connected()
        XCTAssertEqual(l.lost(after: 30), 0, "a session that lasted resets everything")
        XCTAssertEqual(l.shortLosses, 0)
        l.connected()
        XCTAssertEqual(l.lost(after: 1), 0, "first short loss after a healthy session: at once again")
        l.connected()
        XCTAssertEqual(l.lost(after: 1), 7.5)
    }
}
