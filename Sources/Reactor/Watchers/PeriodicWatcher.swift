// PeriodicWatcher: wall-clock aligned events (ev_periodic), e.g. "every 10 s
// on the 10-second boundary". Follows clock jumps, unlike TimerWatcher.
import CEv

public final class PeriodicWatcher {
    public typealias Callback = (PeriodicWatcher) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_periodic>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("periodic", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_periodic_init(w, { _, w, _ in
            let me = Unmanaged<PeriodicWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
            if cev_is_active(me.w) == 0 { me.retention.release(for: me.loop) }
        }, 0, 0)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_periodic_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    /// The wall-clock time (seconds since the epoch) of the next event.
    public var nextAt: Double { cev_periodic_at(w) }

    /// Fires at every `offset + k * interval` wall-clock seconds; with
    /// `interval` 0, once at absolute time `offset`.
    public func start(offset: Double, interval: Double) {
        if isActive { ev_periodic_stop(loop.raw, w) }
        cev_periodic_set(w, offset, interval)
        ev_periodic_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_periodic_stop(loop.raw, w)
        retention.release(for: loop)
    }
}
