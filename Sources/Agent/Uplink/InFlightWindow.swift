// InFlightWindow: batches sent but not yet acknowledged, oldest first.
//
// The collector acknowledges a sequence number only once that batch is
// durable, and acknowledgements are cumulative: ack(n) settles every batch
// up to n. With a disk spool the spool numbers the batches (its numbering
// outlives the process) and a batch it could not keep may leave a gap:
// sequences only increase. After a reconnect everything still here is re-sent first, in
// order (the collector de-duplicates by agent, boot and sequence). Nothing
// acknowledged is ever re-sent. The window is bounded in batches and bytes;
// when a new batch would exceed a bound the oldest unacknowledged batch is
// evicted and counted — the only way data leaves without an ack.
//
// Thread: a value owned by the uplink on the loop thread.

public struct InFlightWindow<Batch> {
    public struct Entry {
        public let sequence: UInt64
        public let bytes: Int
        public let items: Int
        public let batch: Batch
    }

    public let maxBatches: Int
    public let maxBytes: Int
    public private(set) var entries: [Entry] = []
    private var head = 0
    public private(set) var bytes = 0
    public private(set) var nextSequence: UInt64 = 1
    public private(set) var acknowledged: UInt64 = 0
    /// Items of the batches settled by acknowledgements so far.
    public private(set) var acknowledgedItems: UInt64 = 0
    /// Batches pushed out by the bounds before they were acknowledged.
    public private(set) var evicted: UInt64 = 0
    public private(set) var evictedItems: UInt64 = 0

    /// `after`: the highest sequence already settled (a spool's marker).
    public init(maxBatches: Int, maxBytes: Int, after settled: UInt64 = 0) {
        precondition(maxBatches > 0 && maxBytes > 0)
        self.maxBatches = maxBatches
        self.maxBytes = maxBytes
        acknowledged = settled
        nextSequence = settled + 1
    }

    /// Highest sequence added (or skipped past) so far.
    public var lastSequence: UInt64 { nextSequence - 1 }

    public var count: Int { entries.count - head }
    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count >= maxBatches || bytes >= maxBytes }

    /// Assigns the next sequence number to `batch` and keeps it until
    /// acknowledged. `items` is what the batch carries, for eviction counts.
    public mutating func add(_ batch: Batch, bytes n: Int, items: Int = 1) -> UInt64 {
        add(batch, bytes: n, items: items, sequence: nextSequence)
    }

    /// Keeps `batch` under a sequence given by the caller (the spool's),
    /// which must be above every sequence added before.
    @discardableResult
    public mutating func add(_ batch: Batch, bytes n: Int, items: Int, sequence seq: UInt64) -> UInt64 {
        precondition(seq >= nextSequence, "sequences must increase")
        while count > 0 && (count >= maxBatches || bytes + n > maxBytes) {
            let e = entries[head]
            head += 1
            bytes -= e.bytes
            evicted &+= 1
            evictedItems &+= UInt64(e.items)
        }
        nextSequence = seq + 1
        entries.append(Entry(sequence: seq, bytes: n, items: items, batch: batch))
        bytes += n
        compactIfNeeded()
        return seq
    }

    /// Settles every batch up to `sequence`. Returns how many were settled;
    /// an ack below the previous one (a stale or replayed ack) settles none.
    @discardableResult
    public mutating func acknowledge(upTo sequence: UInt64) -> Int {
        guard sequence > acknowledged else { return 0 }
        acknowledged = sequence
        var settled = 0
        while head < entries.count && entries[head].sequence <= sequence {
            bytes -= entries[head].bytes
            acknowledgedItems &+= UInt64(entries[head].items)
            head += 1
            settled += 1
        }
        compactIfNeeded()
        return settled
    }

    /// The unacknowledged batches, oldest first (to re-send after reconnect).
    public var pending: ArraySlice<Entry> { entries[head...] }

    /// The oldest unacknowledged batch with a sequence above `sequence`,
    /// or nil (a binary search: sequences increase, gaps allowed).
    public func firstPending(after sequence: UInt64) -> Entry? {
        var lo = head, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].sequence <= sequence { lo = mid + 1 } else { hi = mid }
        }
        return lo < entries.count ? entries[lo] : nil
    }

    /// The collector holds everything up to `sequence`, beyond what this
    /// window ever added (a restarted agent whose marker lagged): settle
    /// all and continue numbering above it.
    public mutating func advance(past sequence: UInt64) {
        acknowledge(upTo: sequence)
        if sequence >= nextSequence { nextSequence = sequence + 1 }
    }

    mutating func compactIfNeeded() {
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}
