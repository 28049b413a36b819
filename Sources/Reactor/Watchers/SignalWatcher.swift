// SignalWatcher: a Unix signal delivered as a loop event (ev_signal), so the
// handler runs as an ordinary callback, not in signal context. A signal can be
// watched by one loop at a time.
import CEv

public final class SignalWatcher {
    public typealias Callback = (SignalWatcher) -> Void

    public let loop: EventLoop
    public let signal: Int32
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_signal>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, signal: Int32, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.signal = signal
        self.callback = callback
        site = loop.profile.site("signal", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_signal_init(w, { _, w, _ in
            let me = Unmanaged<SignalWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
        }, signal)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_signal_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    /// Starts watching. A signal watcher alone does not keep `run()` alive
    /// when `keepsLoopAlive` is false (ev_unref), the usual choice for
    /// SIGTERM/SIGHUP handlers.
    public func start(keepsLoopAlive: Bool = false) {
        guard !isActive else { return }
        ev_signal_start(loop.raw, w)
        if !keepsLoopAlive { ev_unref(loop.raw); unreferenced = true }
        retention.hold(self, for: loop)
    }

    private var unreferenced = false

    public func stop() {
        guard isActive else { return }
        if unreferenced { ev_ref(loop.raw); unreferenced = false }
        ev_signal_stop(loop.raw, w)
        retention.release(for: loop)
    }
}
