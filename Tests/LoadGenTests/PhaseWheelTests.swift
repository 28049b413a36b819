import XCTest
@testable import LoadGen

final class PhaseWheelTests: XCTestCase {
    func testEveryIdOncePerPeriodAtItsPhase() {
        var w = PhaseWheel(period: 10, tick: 0.01, origin: 100)
        XCTAssertEqual(w.slotCount, 1000)
        w.insert(1, phase: 0)
        w.insert(2, phase: 0.5)
        w.insert(3, phase: 0.999)
        var fired: [(Int32, Double)] = []
        var t = 100.0
        while t < 130 {
            w.advance(to: t) { fired.append(($0, t)) }
            t += 0.01
        }
        for id: Int32 in [1, 2, 3] {
            let times = fired.filter { $0.0 == id }.map(\.1)
            XCTAssertEqual(times.count, 3, "id \(id) once per 10 s turn over 30 s")
            for (a, b) in zip(times, times.dropFirst()) { XCTAssertEqual(b - a, 10, accuracy: 0.02) }
        }
        XCTAssertEqual(fired.first { $0.0 == 2 }!.1, 105, accuracy: 0.02, "phase 0.5 fires half-way through the turn")
        XCTAssertEqual(w.skippedSlots, 0)
    }

    func testAStalledLoopFiresEachIdAtMostOnceAndCountsTheSkip() {
        var w = PhaseWheel(period: 1, tick: 0.1, origin: 0)
        for i in 0..<10 { w.insert(Int32(i), phase: Double(i) / 10) }
        var fired: [Int32] = []
        w.advance(to: 5.05) { fired.append($0) }   // five turns late
        XCTAssertEqual(fired.sorted(), Array(0..<10), "one turn, every id once")
        XCTAssertGreaterThan(w.skippedSlots, 0)
        fired = []
        w.advance(to: 5.15) { fired.append($0) }
        XCTAssertEqual(fired, [1], "resumes at the slot after `now`")
    }

    func testDueQueuePopsInTimeOrderOnlyWhenDue() {
        var q = DueQueue()
        let times: [Double] = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0]
        for (i, t) in times.enumerated() { q.push(Int32(i), at: t) }
        XCTAssertEqual(q.nextDue, 0)
        XCTAssertNil(DueQueue().nextDue)
        var out: [Double] = []
        while let id = q.popDue(4.5) { out.append(times[Int(id)]) }
        XCTAssertEqual(out, [0, 1, 2, 3, 4])
        XCTAssertEqual(q.count, 5)
        while let id = q.popDue(100) { out.append(times[Int(id)]) }
        XCTAssertEqual(out, (0...9).map(Double.init))
        XCTAssertTrue(q.isEmpty)
    }

    func testSummaryFieldsRendering() {
        var s = SummaryFields()
        s.add("sessions", 50_000)
        s.add("rate", 1234.567, decimals: 1)
        s.add("lag", 0.004, decimals: 2)
        s.add("neg", -1.25, decimals: 1)
        s.add("closes", text: "local:3,peer_closed:1")
        s.add("note", text: "two words")
        XCTAssertEqual(s.line(prefix: "load-run:"),
                       "load-run: sessions=50000 rate=1234.6 lag=0.00 neg=-1.3 closes=local:3,peer_closed:1 note=\"two words\"")
        XCTAssertEqual(s.json, "{\"sessions\":50000,\"rate\":1234.6,\"lag\":0.00,\"neg\":-1.3,\"closes\":\"local:3,peer_closed:1\",\"note\":\"two words\"}")
        XCTAssertEqual(s["rate"], "1234.6")
    }
}
