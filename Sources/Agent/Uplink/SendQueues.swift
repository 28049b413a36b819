import Reactor
// SendQueues: the agent's two bounded priority queues.
//
// Queue 1 (aggregates, status, control answers) is always drained before
// queue 2 (raw events, monitor details). A full queue refuses the newest
// item and counts it under that queue: what is already queued is older and
// keeps its place.

public struct SendQueues<Item> {
    public private(set) var queue1: RingBuffer<Item>
    public private(set) var queue2: RingBuffer<Item>

    public init(queue1Size: Int, queue2Size: Int) {
        queue1 = RingBuffer(capacity: queue1Size, overflow: .dropNewest)
        queue2 = RingBuffer(capacity: queue2Size, overflow: .dropNewest)
    }

    /// Enqueues on queue 1 (`priority` true) or 2; false when it was full.
    @discardableResult
    public mutating func push(_ item: Item, priority: Bool) -> Bool {
        priority ? queue1.append(item) : queue2.append(item)
    }

    /// The next item to send: queue 1 first.
    public mutating func pop() -> Item? {
        queue1.popFirst() ?? queue2.popFirst()
    }

    public var isEmpty: Bool { queue1.isEmpty && queue2.isEmpty }
    public var count: Int { queue1.count + queue2.count }
    public var dropped1: UInt64 { queue1.dropped }
    public var dropped2: UInt64 { queue2.dropped }
}


