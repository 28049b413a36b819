// RingBuffer: a FIFO over power-of-two storage with an explicit overflow
// policy and a counter for what that policy dropped.
//
// `.dropNewest` refuses the incoming element when full (a queue whose
// contents must keep their order and age, e.g. the agent's send queues);
// `.dropOldest` evicts the head to make room (freshest data wins);
// `.grow` doubles the storage (internal queues whose producers are bounded
// by construction).

public enum OverflowPolicy: Sendable {
    case dropNewest
    case dropOldest
    case grow
}

public struct RingBuffer<Element> {
    public let capacityLimit: Int
    public let overflow: OverflowPolicy
    /// Elements refused (`.dropNewest`) or evicted (`.dropOldest`).
    public private(set) var dropped: UInt64 = 0

    private var storage: [Element?]
    private var head = 0
    public private(set) var count = 0

    /// `capacity` is rounded up to a power of two for storage; with a drop
    /// policy the ring holds at most `capacity` elements, exactly.
    public init(capacity: Int, overflow: OverflowPolicy) {
        precondition(capacity > 0, "RingBuffer capacity must be positive")
        self.capacityLimit = capacity
        self.overflow = overflow
        var size = 1
        while size < capacity { size <<= 1 }
        storage = [Element?](repeating: nil, count: size)
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { overflow != .grow && count >= capacityLimit }
    private var mask: Int { storage.count - 1 }

    /// Appends `element`. Returns false when the policy refused it
    /// (`.dropNewest` on a full ring). With `.dropOldest` the evicted head is
    /// counted in `dropped` and the append succeeds.
    @discardableResult
    public mutating func append(_ element: Element) -> Bool {
        if count >= capacityLimit || count == storage.count {
            switch overflow {
            case .dropNewest:
                dropped &+= 1
                return false
            case .dropOldest:
                _ = popFirst()
                dropped &+= 1
            case .grow:
                if count == storage.count { grow() }
            }
        }
        storage[(head + count) & mask] = element
        count += 1
        return true
    }

    public mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let e = storage[head]
        storage[head] = nil
        head = (head + 1) & mask
        count -= 1
        return e
    }

    public var first: Element? { count > 0 ? storage[head] : nil }

    /// The element at `offset` from the head (0 is the oldest).
    public subscript(offset: Int) -> Element {
        precondition(offset >= 0 && offset < count, "RingBuffer index out of range")
        return storage[(head + offset) & mask]!
    }

    public mutating func removeAll() {
        while popFirst() != nil {}
    }

    private mutating func grow() {
        var bigger = [Element?](repeating: nil, count: storage.count * 2)
        for i in 0..<count { bigger[i] = storage[(head + i) & mask] }
        storage = bigger
        head = 0
    }
}
