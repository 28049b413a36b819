import XCTest
@testable import Reactor

/// Turns for many waiting objects are given in bounded slices, one per
/// iteration, first come first served.
final class TurnQueueTests: XCTestCase {
    final class Waiter {
        let id: Int
        var turns = 0
        init(_ id: Int) { self.id = id }
    }

    func testTwentyThousandWaitersGetTheirTurnsAtMostPerTurnAnIteration() {
        let loop = EventLoop()
        var order: [Int] = []
        var perIteration: [UInt: Int] = [:]
        let q = TurnQueue<Waiter>(loop: loop, perTurn: 64, label: "input turns") { w in
            w.turns += 1
            order.append(w.id)
            perIteration[loop.iteration, default: 0] += 1
        }
        let waiters = (0..<20_000).map(Waiter.init)
        for w in waiters { q.append(w) }
        XCTAssertTrue(order.isEmpty, "no turn before append returns")

        var iterations = 0
        while q.count > 0 && iterations < 1_000 {
            loop.runOnce()
            iterations += 1
        }
        XCTAssertEqual(q.count, 0)
        XCTAssertEqual(order, Array(0..<20_000), "first come, first served")
        XCTAssertTrue(waiters.allSatisfy { $0.turns == 1 })
        XCTAssertLessThanOrEqual(perIteration.values.max() ?? 0, 64)
        XCTAssertEqual(q.slices, UInt64((20_000 + 63) / 64))
        XCTAssertEqual(q.turnsGiven, 20_000)
    }

    func testOneQueuedAgainByItsTurnWaitsForTheNextSlice() {
        let loop = EventLoop()
        var turns = 0
        var q: TurnQueue<Waiter>!
        q = TurnQueue<Waiter>(loop: loop, perTurn: 8, label: "retry") { w in
            turns += 1
            if turns < 5 { q.append(w) }     // refused again: back to the end of the line
        }
        q.append(Waiter(1))
        loop.runOnce()
        XCTAssertEqual(turns, 1)
        loop.runOnce()
        XCTAssertEqual(turns, 2)
        for _ in 0..<5 { loop.runOnce() }
        XCTAssertEqual(turns, 5)
        XCTAssertEqual(q.count, 0)
    }
}
