// PhaseWheel: periodic work for 10^5 agents without a timer each. Every
// agent sits in one slot of a wheel that turns once per period; one loop
// timer advances the wheel, and each slot's agents are due when its time
// passes. Agents are spread over the slots by a random phase, so a
// period's Status records (or batches, or liveness checks) go out evenly
// instead of together. Cost per tick: the agents of the slots passed.

/// Ids bucketed by phase within `period`. A value type; the loop thread
/// owns it.
public struct PhaseWheel: Sendable {
    public let period: Double
    public let tick: Double
    public var slotCount: Int { buckets.count }
    private var buckets: [[Int32]]
    private var nextSlot = 0
    /// Time of slot 0 of the current turn.
    private var origin: Double
    /// Slots skipped because the wheel fell more than a turn behind.
    public private(set) var skippedSlots: UInt64 = 0

    /// A wheel whose first turn starts at `origin` (seconds, any clock).
    public init(period: Double, tick: Double, origin: Double) {
        precondition(period > 0 && tick > 0)
        let n = max(1, Int((period / tick).rounded()))
        self.period = period
        self.tick = period / Double(n)
        buckets = Array(repeating: [], count: n)
        self.origin = origin
    }

    /// Places `id` at `phase` (0 ≤ phase < 1) of the period.
    public mutating func insert(_ id: Int32, phase: Double) {
        let slot = min(buckets.count - 1, max(0, Int(phase * Double(buckets.count))))
        buckets[slot].append(id)
    }

    /// The slot a phase falls in (tests).
    public func slot(forPhase phase: Double) -> Int { min(buckets.count - 1, max(0, Int(phase * Double(buckets.count)))) }

    /// Calls `body` for the ids of every slot whose time is ≤ `now`, in
    /// slot order. A wheel more than one turn behind does one turn (every
    /// id once) and skips the rest, counting it, so a stalled loop never
    /// fires an agent twice in one call.
    public mutating func advance(to now: Double, _ body: (Int32) -> Void) {
        var done = 0
        while origin + Double(nextSlot) * tick <= now {
            if done == buckets.count {
                // A whole turn behind: skip to just after the slot `now`
                // falls in.
                let k = Int(((now - origin) / tick).rounded(.down))
                skippedSlots &+= UInt64(k - nextSlot + 1)
                let next = k + 1
                origin += Double(next / buckets.count) * period
                nextSlot = next % buckets.count
                return
            }
            for id in buckets[nextSlot] { body(id) }
            done += 1
            nextSlot += 1
            if nextSlot == buckets.count {
                nextSlot = 0
                origin += period
            }
        }
    }
}

/// Ids due at a time, earliest first (a binary min-heap): reconnect
/// backoffs without a timer per agent.
public struct DueQueue: Sendable {
    private var heap: [(at: Double, id: Int32)] = []
    public init() {}
    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }
    public var nextDue: Double? { heap.first?.at }

    public mutating func push(_ id: Int32, at: Double) {
        heap.append((at, id))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].at < heap[p].at else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    /// Removes and returns the earliest id due at or before `now`.
    public mutating func popDue(_ now: Double) -> Int32? {
        guard let first = heap.first, first.at <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l].at < heap[m].at { m = l }
                if r < heap.count && heap[r].at < heap[m].at { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return first.id
    }
}
