// SendQueues: the agent's two bounded priority queues.
//
// Queue 1 (aggregates, monitor results, status, control answers) is always
// drained before queue 2 (raw events). A full queue refuses the newest
// item and counts it under that queue: what is already queued is older and
// keeps its place. A producer that checks `hasRoom` before building an
// expensive item counts its refusal with `countRefused` — same counter.
//
// Thread: a value owned by the uplink on the loop thread.
import Reactor

/// Two FIFO rings with drop-newest overflow. A value type owned by the
/// uplink on the loop thread; memory is bounded by the two capacities.
public struct SendQueues<Item> {
    public private(set) var queue1: RingBuffer<Item>
    public private(set) var queue2: RingBuffer<Item>
    private var refused1: UInt64 = 0
    private var refused2: UInt64 = 0
    /// Drops counted by rings replaced in a resize.
    private var shrunk1: UInt64 = 0
    private var shrunk2: UInt64 = 0

    public init(queue1Size: Int, queue2Size: Int) {
        queue1 = RingBuffer(capacity: queue1Size, overflow: .dropNewest)
        queue2 = RingBuffer(capacity: queue2Size, overflow: .dropNewest)
    }

    /// Enqueues on queue 1 (`priority` true) or 2; false when it was full.
    @discardableResult
    public mutating func push(_ item: Item, priority: Bool) -> Bool {
        priority ? queue1.append(item) : queue2.append(item)
    }

    /// Whether a push on that queue would be accepted now.
    @inline(__always)
    public func hasRoom(priority: Bool) -> Bool {
        priority ? !queue1.isFull : !queue2.isFull
    }

    /// Counts an item refused before it was built (see `hasRoom`).
    public mutating func countRefused(priority: Bool) {
        if priority { refused1 &+= 1 } else { refused2 &+= 1 }
    }

    /// The next item to send: queue 1 first.
    public mutating func pop() -> Item? {
        queue1.popFirst() ?? queue2.popFirst()
    }

    /// The item `pop()` would return, without removing it.
    public var next: Item? { queue1.first ?? queue2.first }

    public var isEmpty: Bool { queue1.isEmpty && queue2.isEmpty }
    public var count: Int { queue1.count + queue2.count }
    public var dropped1: UInt64 { queue1.dropped &+ refused1 &+ shrunk1 }
    public var dropped2: UInt64 { queue2.dropped &+ refused2 &+ shrunk2 }

    /// New capacities (a configuration change). Queued items keep their
    /// order; if a queue shrinks below its contents, the newest beyond the
    /// new capacity are dropped and counted, as any overflow.
    public mutating func resize(queue1Size: Int, queue2Size: Int) {
        if queue1Size != queue1.capacityLimit { shrunk1 &+= SendQueues.move(&queue1, to: queue1Size) }
        if queue2Size != queue2.capacityLimit { shrunk2 &+= SendQueues.move(&queue2, to: queue2Size) }
    }

    /// Moves `ring`'s items into a ring of `capacity`. The new ring's own
    /// counter holds the items it refused; the old ring's count is returned
    /// so the caller keeps it.
    private static func move(_ ring: inout RingBuffer<Item>, to capacity: Int) -> UInt64 {
        var fresh = RingBuffer<Item>(capacity: capacity, overflow: .dropNewest)
        let earlier = ring.dropped
        while let item = ring.popFirst() { fresh.append(item) }
        ring = fresh
        return earlier
    }
}
