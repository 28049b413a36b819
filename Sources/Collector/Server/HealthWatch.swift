// HealthWatch: what /healthz says besides "the loop answered" — whether the
// store is committing and whether the loop was stalled recently.
//
// One repeating timer on the loop (every `step`) does both:
// - Loop: the timer measures its own lateness. A tick later than
//   `loopStall` (health_loop_stall_ms) means no loop iteration ran for that
//   long; /healthz reports `loop_stalled` for `loopMemory` seconds after it
//   (while the loop is stalled nothing answers at all — a probe's timeout
//   is the answer then).
// - Store: `store_unavailable` while the store cannot serve at all (its
//   `unavailableReason`: a PostgreSQL server that cannot be reached), listed
//   first; `store_failing` once a transaction failed and none has committed
//   since; `store_stalled` when writes have been waiting and no transaction
//   committed for `storeStall` (health_store_stall_ms) — a disk that hangs,
//   another process holding the database's write lock. Both end with the
//   next commit.
//
// Thread: the loop thread.
import CollectorStore
import JSON
import Reactor

final class HealthWatch {
    static let step = 0.25
    /// How long a stall of the loop is reported after it ended.
    static let loopMemory = 10.0

    private let loop: EventLoop
    private let store: any OperatedStore
    var loopStall: Double
    var storeStall: Double
    private var timer: TimerWatcher?
    private var lastTick = 0.0
    /// When the loop last stalled and for how long (s).
    private var stalledAt: Double?
    private var stalledFor = 0.0
    private var transactions: UInt64 = 0
    private var transactionsFailed: UInt64 = 0
    /// Since when writes have been waiting without a commit (nil: none waiting, or progress).
    private var waitingSince: Double?
    private var failing = false

    init(loop: EventLoop, store: any OperatedStore, loopStall: Double, storeStall: Double) {
        self.loop = loop
        self.store = store
        self.loopStall = loopStall
        self.storeStall = storeStall
    }

    func start() {
        let st = store.stats
        transactions = st.transactions
        transactionsFailed = st.transactionsFailed
        lastTick = Clock.monotonic()
        let t = TimerWatcher(loop: loop) { [unowned self] _ in self.tick() }
        t.start(after: HealthWatch.step, repeat: HealthWatch.step)
        timer = t
    }

    func stop() {
        timer?.stop()
        timer = nil
    }

    private func tick() {
        let now = Clock.monotonic()
        let late = now - lastTick - HealthWatch.step
        lastTick = now
        if late > loopStall {
            if let at = stalledAt, now - at < 1 { stalledFor = max(stalledFor, late) } else { stalledFor = late }
            stalledAt = now
        }
        let st = store.stats
        if st.transactions != transactions {
            transactions = st.transactions
            failing = false
            waitingSince = st.pendingWrites > 0 ? now : nil
        } else if st.pendingWrites == 0 {
            waitingSince = nil
        } else if waitingSince == nil {
            waitingSince = now
        }
        if st.transactionsFailed != transactionsFailed {
            transactionsFailed = st.transactionsFailed
            failing = true
        }
    }

    /// The reasons /healthz answers 503; empty when healthy.
    func problems() -> [JSON] {
        let now = Clock.monotonic()
        // The tick may be due in this very iteration, after this request
        // (a stopped process resumes with both ready): its lateness counts now.
        let late = now - lastTick - HealthWatch.step
        if late > loopStall {
            stalledAt = now
            stalledFor = max(stalledFor, late)
        }
        var out: [JSON] = []
        if let why = store.unavailableReason {
            out.append(.object([("cause", .string("store_unavailable")), ("detail", .string(why))]))
        }
        if failing {
            out.append(.object([("cause", .string("store_failing")),
                                ("detail", .string("a database transaction failed and none has committed since"))]))
        }
        if let since = waitingSince, now - since >= storeStall {
            out.append(.object([("cause", .string("store_stalled")),
                                ("detail", .string("writes waiting and no transaction committed")),
                                ("for_ms", .int(Int64((now - since) * 1000))),
                                ("pending_writes", .int(Int64(store.stats.pendingWrites)))]))
        }
        if let at = stalledAt, now - at < HealthWatch.loopMemory {
            out.append(.object([("cause", .string("loop_stalled")),
                                ("detail", .string("no loop iteration ran for longer than health_loop_stall_ms")),
                                ("stalled_ms", .int(Int64(stalledFor * 1000))),
                                ("ago_ms", .int(Int64((now - at) * 1000)))]))
        }
        return out
    }
}
