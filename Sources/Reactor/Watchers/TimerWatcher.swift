// TimerWatcher: relative timeouts on the monotonic clock (ev_timer).
//
// A one-shot timer that fires is stopped by libev itself; the trampoline then
// gives the loop's retain back (unless the callback restarted it). For
// activity timeouts use `again()` — one timer re-armed on activity, not a
// new timer per event (ev.pod: "be smart about timeouts").
import CEv

public final class TimerWatcher {
    public typealias Callback = (TimerWatcher) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_timer>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("timer", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_timer_init(w, { _, w, _ in
            let me = Unmanaged<TimerWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
            if cev_is_active(me.w) == 0 { me.retention.release(for: me.loop) }
        }, 0, 0)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_timer_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    /// The repeat interval in seconds (0: one-shot). Takes effect at the
    /// next expiry or `again()`.
    public var repeatInterval: Double {
        get { w.pointee.repeat }
        set { w.pointee.repeat = newValue }
    }

    /// Starts (or restarts) the timer to fire after `after` seconds, then
    /// every `repeat` seconds if non-zero.
    public func start(after: Double, repeat: Double = 0) {
        if isActive { ev_timer_stop(loop.raw, w) }
        cev_timer_set(w, max(after, 0), max(`repeat`, 0))
        ev_timer_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    /// ev_timer_again: restarts the repeat period from now; stops the timer
    /// when the repeat interval is 0.
    public func again() {
        ev_timer_again(loop.raw, w)
        if isActive { retention.hold(self, for: loop) } else { retention.release(for: loop) }
    }

    /// Seconds until the timer fires (ev_timer_remaining).
    public var remaining: Double { ev_timer_remaining(loop.raw, w) }

    public func stop() {
        ev_timer_stop(loop.raw, w)
        retention.release(for: loop)
    }
}
