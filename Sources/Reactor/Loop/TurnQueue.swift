// TurnQueue: objects waiting for a turn on a later loop iteration — a
// session whose read the iteration's input budget refused — given their
// turns first come first served, at most `perTurn` per iteration.
//
// Why bounded: giving every waiting object its turn at once makes the work of
// the next iteration proportional to how many wait, not to what the budget
// allows. With 10^4 sessions paused by a 16 KiB input budget, each turn
// re-armed all of them, the next iteration's epoll returned all of them, and
// all but a few were refused and paused again: tens of milliseconds per
// iteration spent on turns nobody could use, which made iterations longer,
// which let more input pile up. A turn per iteration for what the budget can
// serve keeps the cost of waiting O(perTurn) per iteration, however many wait.
//
// One deferred slice (DeferOnce) per iteration gives the turns; an object
// queued again while its turn runs waits for the next slice. Holds its
// elements strongly until their turn; `turn` must cope with one that has
// ended meanwhile.
//
// Thread: the loop's thread only.
public final class TurnQueue<Element: AnyObject> {
    /// Most turns given per iteration.
    public let perTurn: Int
    /// Turns given so far, and slices (iterations) that gave them.
    public private(set) var turnsGiven: UInt64 = 0
    public private(set) var slices: UInt64 = 0

    private var waiting = RingBuffer<Element>(capacity: 64, overflow: .grow)
    private let turn: (Element) -> Void
    private var runner: DeferOnce!

    /// `label` names the slices in slow-iteration reports (IterationProfile).
    public init(loop: EventLoop, perTurn: Int, label: String, turn: @escaping (Element) -> Void) {
        precondition(perTurn > 0, "TurnQueue.perTurn must be positive")
        self.perTurn = perTurn
        self.turn = turn
        runner = DeferOnce(loop: loop, label: label) { [weak self] in self?.giveTurns() }
    }

    /// Objects waiting for their turn.
    public var count: Int { waiting.count }

    /// Queues `element` for a turn on a later iteration.
    public func append(_ element: Element) {
        waiting.append(element)
        runner.schedule()
    }

    private func giveTurns() {
        // Only those that waited when the slice began: one queued again by
        // its own turn waits for the next slice.
        let n = min(perTurn, waiting.count)
        for _ in 0..<n {
            guard let e = waiting.popFirst() else { break }
            turnsGiven &+= 1
            turn(e)
        }
        slices &+= 1
        if !waiting.isEmpty { runner.schedule() }
    }
}
