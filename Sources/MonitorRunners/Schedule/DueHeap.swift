// DueHeap: a binary min-heap of (due time, monitor) with lazy deletion.
//
// Rescheduling or removing a monitor does not search the heap: the monitor's
// generation is bumped and the stale entry is dropped when it surfaces. Ties
// break on the monitor id, so the order of runs due together is
// deterministic.

struct DueHeap {
    struct Entry {
        var dueMs: Int64
        var monitorID: UInt64
        var generation: UInt64

        @inline(__always)
        static func earlier(_ a: Entry, _ b: Entry) -> Bool {
            a.dueMs != b.dueMs ? a.dueMs < b.dueMs : a.monitorID < b.monitorID
        }
    }

    private(set) var items: [Entry] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var top: Entry? { items.first }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Entry.earlier(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Entry.earlier(items[l], items[m]) { m = l }
                if r < items.count && Entry.earlier(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }

    /// Drops every entry (used when stale entries outnumber live ones).
    mutating func rebuild(_ live: [Entry]) {
        items = []
        items.reserveCapacity(live.count)
        for e in live { push(e) }
    }
}
