// The idle/check/prepare trio (ev_idle, ev_check, ev_prepare): hooks into the
// phases of one loop iteration. prepare runs just before the loop blocks in
// poll, check just after poll returns, and an active idle watcher makes poll
// return at once (so deferred work keeps going without starving I/O).
import CEv

/// Runs when the loop has nothing else pending; while active, the loop does not block (ev_idle).
public final class IdleWatcher {
    public typealias Callback = (IdleWatcher) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_idle>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, priority: Int32 = 0, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("idle", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_idle_init(w, { _, w, _ in
            let me = Unmanaged<IdleWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
        })
        cev_set_priority(w, priority)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_idle_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    public func start() {
        guard !isActive else { return }
        ev_idle_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_idle_stop(loop.raw, w)
        retention.release(for: loop)
    }
}

/// Runs right after each poll, before other pending watchers of lower priority (ev_check).
public final class CheckWatcher {
    public typealias Callback = (CheckWatcher) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_check>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, priority: Int32 = 0, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("check", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_check_init(w, { _, w, _ in
            let me = Unmanaged<CheckWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
        })
        cev_set_priority(w, priority)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_check_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    public func start() {
        guard !isActive else { return }
        ev_check_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_check_stop(loop.raw, w)
        retention.release(for: loop)
    }
}

/// Runs right before the loop blocks in poll (ev_prepare).
public final class PrepareWatcher {
    public typealias Callback = (PrepareWatcher) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_prepare>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, priority: Int32 = 0, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("prepare", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_prepare_init(w, { _, w, _ in
            let me = Unmanaged<PrepareWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me)
            profile.end(site, t)
        })
        cev_set_priority(w, priority)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_prepare_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    public func start() {
        guard !isActive else { return }
        ev_prepare_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_prepare_stop(loop.raw, w)
        retention.release(for: loop)
    }
}
