// DeadlineWheel: one timer for the deadlines of every session (handshake
// timeout, next idle check, end of a graceful close).
//
// A session has at most one deadline at a time, so the links live in the
// session itself (intrusive list): scheduling allocates nothing and costs a
// few pointer writes. Deadlines fall into slots of `granularity` seconds on
// a ring; one repeating ev_timer advances the ring and expires the slots it
// passes. Work per tick is proportional to the deadlines that are due, not
// to the number of sessions — the property a collector with 10^5 sessions
// needs (libev's ev.pod, "be smart about timeouts", taken one step further
// than a timer per connection). A deadline beyond the ring's span waits in
// the farthest slot and is re-filed when that slot comes round.
//
// Expiry may be up to one granularity late, never early. Thread: loop thread.
import Reactor

/// The links an entry carries. Owned by the wheel while `slot >= 0`.
struct DeadlineLink<Entry: AnyObject> {
    var next: Entry?
    unowned(unsafe) var prev: Entry?
    var slot = -1
    var deadline = 0.0
}

protocol DeadlineEntry: AnyObject {
    var deadlineLink: DeadlineLink<Self> { get set }
}

final class DeadlineWheel<Entry: DeadlineEntry> {
    let granularity: Double
    private var heads: [Entry?]
    private var cursor = 0
    /// Start time of the slot under the cursor (monotonic seconds).
    private var base = 0.0
    private(set) var count = 0
    private var timer: TimerWatcher?
    private let loop: EventLoop
    private let onExpire: (Entry) -> Void

    /// `onExpire` runs for each entry whose deadline passed; the entry is
    /// already unlinked, and the callback may schedule it (or others) again.
    init(loop: EventLoop, slots: Int = 4096, granularity: Double = 0.25, onExpire: @escaping (Entry) -> Void) {
        precondition(slots >= 2 && granularity > 0)
        self.loop = loop
        self.granularity = granularity
        self.onExpire = onExpire
        heads = [Entry?](repeating: nil, count: slots)
    }

    deinit {
        timer?.stop()
        removeAll()
    }

    /// Files `entry` to expire at `deadline` (monotonic seconds), moving it
    /// if it was filed already.
    func schedule(_ entry: Entry, at deadline: Double) {
        if entry.deadlineLink.slot >= 0 { remove(entry) }
        let now = Clock.monotonic()
        if count == 0 {
            // Idle wheel: restart the ring at the present.
            base = now
            cursor = 0
        }
        let ticks = min(heads.count - 1, max(1, Int(((deadline - base) / granularity).rounded(.up))))
        let slot = (cursor + ticks) % heads.count
        entry.deadlineLink.deadline = deadline
        entry.deadlineLink.slot = slot
        entry.deadlineLink.prev = nil
        entry.deadlineLink.next = heads[slot]
        heads[slot]?.deadlineLink.prev = entry
        heads[slot] = entry
        count += 1
        if timer == nil {
            timer = TimerWatcher(loop: loop, label: "deadline wheel") { [unowned self] _ in self.tick() }
        }
        if !timer!.isActive { timer!.start(after: granularity, repeat: granularity) }
    }

    /// Unlinks `entry` if it is filed.
    func remove(_ entry: Entry) {
        let slot = entry.deadlineLink.slot
        guard slot >= 0 else { return }
        let next = entry.deadlineLink.next
        let prev = entry.deadlineLink.prev
        if let prev { prev.deadlineLink.next = next } else { heads[slot] = next }
        next?.deadlineLink.prev = prev
        entry.deadlineLink = DeadlineLink()
        count -= 1
        if count == 0 { timer?.stop() }
    }

    func isScheduled(_ entry: Entry) -> Bool { entry.deadlineLink.slot >= 0 }

    func removeAll() {
        for i in heads.indices {
            while let e = heads[i] { remove(e) }
        }
    }

    private func tick() {
        let now = Clock.monotonic()
        var passed = 0
        // A stalled loop catches up at most one full turn; every slot is
        // then visited once and the base jumps to the present.
        while base + granularity <= now && passed < heads.count && count > 0 {
            base += granularity
            cursor = (cursor + 1) % heads.count
            passed += 1
            expire(slot: cursor, now: now)
        }
        if base + granularity <= now { base = now }
    }

    private func expire(slot: Int, now: Double) {
        // One at a time from the head: a callback may unlink any entry,
        // including the next one in this slot.
        while let e = heads[slot] {
            let deadline = e.deadlineLink.deadline
            remove(e)
            if deadline <= now + 1e-3 {
                onExpire(e)
            } else {
                schedule(e, at: deadline)  // beyond the ring's span: re-file
            }
        }
    }
}
