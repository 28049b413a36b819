// DeferOnce: "run this once, soon" for work that many events may ask for
// in one iteration — flush the acknowledgements, run libmicrohttpd, hand
// the store its jobs. However often `schedule()` is called before the work
// runs, it runs once, from the loop's deferred queue, on a later turn than
// the call (never before the scheduling call returns). A call made while
// the work runs queues it again.
//
// Thread: the loop's thread only. Ownership: a pending run holds the
// DeferOnce (not its owner); `work` should capture its owner weakly, so an
// owner that goes away while a run is pending is simply not called.
public final class DeferOnce {
    private unowned let loop: EventLoop
    private let work: () -> Void
    /// Queued and not yet run.
    public private(set) var isScheduled = false

    public init(loop: EventLoop, _ work: @escaping () -> Void) {
        self.loop = loop
        self.work = work
    }

    public func schedule() {
        guard !isScheduled else { return }
        isScheduled = true
        loop.defer { [self] in
            isScheduled = false
            work()
        }
    }
}
