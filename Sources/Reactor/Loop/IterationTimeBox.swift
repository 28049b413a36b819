// IterationTimeBox: how long one loop iteration may spend on work that can
// wait for the next one.
//
// The Reactor's budgets count units (slices, handshakes, bytes, store
// completions), and each is set so that it alone stays well under a
// millisecond. But several run in the same iteration — a handshake turn,
// a burst of reads, a store commit's completions, the flushes they queue —
// and their sum is what the loop's lag measures: at 20,000 sessions, one
// iteration in twenty took 1–2 ms of CPU that way, each budget within its
// own bound. The time box is the one bound they share: intake that can
// wait (handshake turns and finishes, session reads, store completions)
// asks `hasTime` before each unit after its first, and stops once the
// iteration has run for `budgetNanos` since poll returned. The deferred
// queue is not boxed: it drains what that intake produced (flushes,
// closes), and starving it kept closed connections' slots taken. Every source
// still makes progress — its first unit of an iteration runs regardless —
// so none is starved by the ones that run before it.
//
// The clock is the monotonic clock (a vDSO read, ~25 ns); tests inject
// their own, so what they assert is counts, never wall time.
//
// Thread: the loop's thread, like the loop.
public final class IterationTimeBox {
    /// Nanoseconds of an iteration that deferrable work may use; 0 (the
    /// default) turns the box off: `hasTime` is always true.
    public var budgetNanos: UInt64 = 0
    /// The clock `hasTime` reads (monotonic nanoseconds).
    public var clock: () -> UInt64 = Clock.monotonicNanos
    /// Times work stopped because the iteration's time was spent.
    public private(set) var cutShort: UInt64 = 0
    private var startedAt: UInt64 = 0

    init() {}

    /// Poll returned: the iteration's time starts (the loop's lag check).
    @inline(__always)
    func iterationStarted() {
        if budgetNanos != 0 { startedAt = clock() }
    }

    /// Whether the iteration has time left for another unit of work that
    /// could wait; a false answer is counted (the caller stops).
    public var hasTime: Bool {
        if budgetNanos == 0 { return true }
        if clock() &- startedAt < budgetNanos { return true }
        cutShort &+= 1
        return false
    }

    /// `hasTime` for a source that has already run `done` units in this
    /// iteration: the first unit always runs.
    @inline(__always)
    public func mayRun(after done: Int) -> Bool {
        done == 0 || hasTime
    }
}
