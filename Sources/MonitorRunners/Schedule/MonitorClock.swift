// MonitorClock: the two clocks the monitors engine reads, injectable so the
// scheduler can be tested in virtual time.
import Reactor

/// Monotonic time for cadences and deadlines; wall time for last-run
/// arithmetic and result timestamps. Loop thread only.
public protocol MonitorClock: AnyObject {
    /// Monotonic milliseconds (CLOCK_MONOTONIC); never jumps.
    var monotonicMs: Int64 { get }
    /// Unix epoch milliseconds (CLOCK_REALTIME).
    var wallMs: Int64 { get }
}

/// The process clocks.
public final class SystemMonitorClock: MonitorClock {
    public init() {}
    public var monotonicMs: Int64 { Int64(Clock.monotonicNanos() / 1_000_000) }
    public var wallMs: Int64 { Clock.wallMillis() }
}

/// A clock that moves only when told to; both readings advance together.
public final class ManualMonitorClock: MonitorClock {
    public var monotonicMs: Int64
    public var wallMs: Int64

    public init(monotonicMs: Int64 = 1_000_000, wallMs: Int64 = 1_700_000_000_000) {
        self.monotonicMs = monotonicMs
        self.wallMs = wallMs
    }

    public func advance(ms: Int64) {
        monotonicMs += ms
        wallMs += ms
    }
}
