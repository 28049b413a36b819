// Retention: the ownership rule shared by every watcher.
//
// libev keeps a raw pointer to an active watcher, so an active watcher must
// stay alive even when its owner lets go: `start()` takes one retain on
// behalf of the loop, and `stop()` — or libev stopping a one-shot watcher by
// itself — gives exactly that one back. `passRetained` is balanced by exactly
// one `release`.
struct Retention {
    private var token: Unmanaged<AnyObject>?

    var isHeld: Bool { token != nil }

    mutating func hold(_ object: AnyObject, for loop: EventLoop) {
        guard token == nil else { return }
        token = Unmanaged.passRetained(object)
        loop.activeWatchers += 1
    }

    /// Gives the loop's retain back. The object may be freed after this
    /// returns if nobody else holds it, so call it last.
    mutating func release(for loop: EventLoop) {
        guard let t = token else { return }
        token = nil
        loop.activeWatchers -= 1
        t.release()
    }
}

/// Readiness events of an I/O watcher (EV_READ, EV_WRITE).
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = IOEvents(rawValue: 0x01)   // EV_READ
    public static let write = IOEvents(rawValue: 0x02)  // EV_WRITE
}
