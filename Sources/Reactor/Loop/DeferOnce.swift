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
    /// IterationProfile's call site, interned once.
    private let site: Int32
    /// Queued and not yet run.
    public private(set) var isScheduled = false

    /// `label` names the work in slow-iteration reports (IterationProfile);
    /// without one it is named by where the DeferOnce was made.
    public init(loop: EventLoop, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                _ work: @escaping () -> Void) {
        self.loop = loop
        self.work = work
        site = loop.profile.site("deferred", label: label, file: file, line: line)
    }

    public func schedule() {
        guard !isScheduled else { return }
        isScheduled = true
        loop.deferred.enqueue({ [self] in
            isScheduled = false
            work()
        }, site: site)
    }
}
