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
// The work per callback is bounded too. Twenty thousand sessions connected
// within one second fall due in the same slot or two; their expiry calls
// (an idle check, a Ping sealed and written, a close) would run in one tick,
// ~5 ms of CPU in one iteration. So a tick only moves what is due onto a
// FIFO due list (a few pointer writes per entry, no call), and at most
// `perSlice` expiries run per loop iteration: the first from the tick
// itself, the rest from a deferred slice on each following iteration
// (DeferOnce) until the list is empty. Nothing is skipped or reordered.
//
// Expiry may be up to one granularity late, plus one iteration for every
// `perSlice` entries due before it; never early. Thread: loop thread.
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
    /// Most expiry callbacks per loop iteration.
    let perSlice: Int
    /// Expiry callbacks run, the slices (iterations) that ran them, and the
    /// most one slice ran.
    private(set) var expired: UInt64 = 0
    private(set) var slices: UInt64 = 0
    private(set) var largestSlice = 0
    /// The ring's slots, then the due list at index `dueSlot`.
    private var heads: [Entry?]
    private let dueSlot: Int
    /// The due list's last entry (appended to; its predecessor holds it).
    private unowned(unsafe) var dueTail: Entry?
    private var dueRunner: DeferOnce?
    /// The expiries left in the current iteration (the tick and the
    /// deferred slice of one iteration share them).
    private var budget: IterationBudget
    private var cursor = 0
    /// Start time of the slot under the cursor (monotonic seconds).
    private var base = 0.0
    private(set) var count = 0
    private var timer: TimerWatcher?
    private let loop: EventLoop
    private let onExpire: (Entry) -> Void

    /// `onExpire` runs for each entry whose deadline passed; the entry is
    /// already unlinked, and the callback may schedule it (or others) again.
    init(loop: EventLoop, slots: Int = 4096, granularity: Double = 0.25, perSlice: Int = 64,
         onExpire: @escaping (Entry) -> Void) {
        precondition(slots >= 2 && granularity > 0 && perSlice > 0)
        self.loop = loop
        self.granularity = granularity
        self.perSlice = perSlice
        budget = IterationBudget(limit: perSlice)
        self.onExpire = onExpire
        heads = [Entry?](repeating: nil, count: slots + 1)
        dueSlot = slots
    }

    /// Entries due and waiting for their expiry call.
    private(set) var dueCount = 0

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
        let ticks = min(dueSlot - 1, max(1, Int(((deadline - base) / granularity).rounded(.up))))
        let slot = (cursor + ticks) % dueSlot
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
        if slot == dueSlot {
            dueCount -= 1
            if dueTail === entry { dueTail = prev }
        }
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
        while base + granularity <= now && passed < dueSlot && count > dueCount {
            base += granularity
            cursor = (cursor + 1) % dueSlot
            passed += 1
            collect(slot: cursor)
        }
        if base + granularity <= now { base = now }
        runDue()
    }

    /// Moves the entries of a slot the cursor reached onto the due list;
    /// no callback runs here.
    private func collect(slot: Int) {
        while let e = heads[slot] {
            let next = e.deadlineLink.next
            heads[slot] = next
            next?.deadlineLink.prev = nil
            e.deadlineLink.slot = dueSlot
            e.deadlineLink.next = nil
            e.deadlineLink.prev = dueTail
            if let tail = dueTail { tail.deadlineLink.next = e } else { heads[dueSlot] = e }
            dueTail = e
            dueCount += 1
        }
    }

    /// Runs expiries from the head of the due list, at most `perSlice` in
    /// this loop iteration; the rest wait for a later iteration's slice.
    private func runDue() {
        guard heads[dueSlot] != nil else { return }
        let now = Clock.monotonic()
        let iteration = loop.iteration
        var ran = 0
        // One at a time from the head: a callback may unlink any entry,
        // including the next one on the list.
        while budget.hasRoom(in: iteration), let e = heads[dueSlot] {
            let deadline = e.deadlineLink.deadline
            remove(e)
            if deadline <= now + 1e-3 {
                ran += 1
                budget.spend(1, in: iteration)
                onExpire(e)
            } else {
                schedule(e, at: deadline)  // beyond the ring's span: re-file
            }
        }
        if ran > 0 {
            expired &+= UInt64(ran)
            slices &+= 1
            largestSlice = max(largestSlice, ran)
        }
        if heads[dueSlot] != nil {
            if dueRunner == nil {
                dueRunner = DeferOnce(loop: loop, label: "deadline wheel") { [weak self] in self?.runDue() }
            }
            dueRunner!.schedule()
        }
    }
}
