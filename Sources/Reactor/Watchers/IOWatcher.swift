// IOWatcher: readiness of one file descriptor (ev_io).
//
// Stop the watcher before closing its descriptor, and re-arm with `set`
// when a descriptor is reused (ev.pod: "the special problem of disappearing
// file descriptors"). The callback gets the events that fired.
import CEv

public final class IOWatcher {
    public typealias Callback = (IOWatcher, IOEvents) -> Void

    public let loop: EventLoop
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_io>
    private var retention = Retention()
    /// This watcher's call site in slow-iteration reports (IterationProfile).
    public let site: Int32

    public init(loop: EventLoop, fd: Int32, events: IOEvents, label: String? = nil, file: StaticString = #fileID, line: UInt = #line,
                callback: @escaping Callback) {
        self.loop = loop
        self.callback = callback
        site = loop.profile.site("io", label: label, file: file, line: line)
        w = .allocate(capacity: 1)
        cev_io_init(w, { _, w, revents in
            let me = Unmanaged<IOWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let profile = me.loop.profile, site = me.site, t = profile.begin()
            me.callback(me, IOEvents(rawValue: revents & 0x03))
            profile.end(site, t)
        }, fd, events.rawValue)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_io_stop(loop.raw, w) }
        w.deallocate()
    }

    public var fd: Int32 { w.pointee.fd }
    public var events: IOEvents { IOEvents(rawValue: w.pointee.events & 0x03) }
    public var isActive: Bool { cev_is_active(w) != 0 }

    public func start() {
        guard !isActive else { return }
        ev_io_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_io_stop(loop.raw, w)
        retention.release(for: loop)
    }

    /// Changes the descriptor and events; restarts if it was active.
    public func set(fd: Int32, events: IOEvents) {
        let wasActive = isActive
        if wasActive { ev_io_stop(loop.raw, w) }
        cev_io_set(w, fd, events.rawValue)
        if wasActive { ev_io_start(loop.raw, w) }
    }

    /// Changes only the events of interest (e.g. add .write when a write
    /// queue fills, drop it when drained).
    public func set(events: IOEvents) {
        guard events != self.events else { return }
        set(fd: fd, events: events)
    }
}
