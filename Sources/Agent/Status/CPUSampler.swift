// CPUSampler: the agent's own CPU use between two Status records, for the
// CPU figure it reports (ProcessLimits.cpuSeconds over the
// monotonic clock).
//
// Thread: loop thread (the status timer's).
import Reactor

/// CPU usage of this process between two samples, as a percentage of one core.
public struct CPUSampler {
    private var lastCPU = ProcessLimits.cpuSeconds()
    private var lastWall = Clock.monotonic()
    public init() {}

    public mutating func sample() -> Double {
        let cpu = ProcessLimits.cpuSeconds(), wall = Clock.monotonic()
        defer { lastCPU = cpu; lastWall = wall }
        let dt = wall - lastWall
        return dt > 0 ? (cpu - lastCPU) / dt * 100 : 0
    }
}
