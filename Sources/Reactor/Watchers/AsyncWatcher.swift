// AsyncWatcher: the one thread-safe entry into a loop (ev_async). Any thread
// may call `send()`; the callback runs later on the loop thread. Several sends
// before the loop wakes are coalesced into one callback.
import CEv

public final class AsyncWatcher: @unchecked Sendable {
    public typealias Callback = (AsyncWatcher) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_async>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("async", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_async_init(w, { _, w, _ in
            let me = Unmanaged<AsyncWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
        })
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_async_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    public func start() {
        guard !isActive else { return }
        ev_async_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_async_stop(loop.raw, w)
        retention.release(for: loop)
    }

    /// Wakes the loop; safe from any thread (ev_async_send).
    public func send() { ev_async_send(loop.raw, w) }
}
