// UplinkState: where the uplink is — stopped, connecting to a host,
// established with one, or waiting out a backoff — for status and logs.
//
// Thread: a value; read on the loop thread.
import Reactor

public enum UplinkState: Equatable, Sendable, CustomStringConvertible {
    case stopped
    /// Resolving, connecting or in the handshake with `host`.
    case connecting(host: String)
    case established(host: String)
    /// A whole round failed; the next attempt is at `untilMs` (wall clock).
    case waiting(untilMs: Int64)

    public var name: String {
        switch self {
        case .stopped: return "stopped"
        case .connecting: return "connecting"
        case .established: return "established"
        case .waiting: return "waiting"
        }
    }

    public var description: String {
        switch self {
        case .stopped: return "stopped"
        case .connecting(let h): return "connecting to \(h)"
        case .established(let h): return "established with \(h)"
        case .waiting(let t): return "waiting until \(Log.timestamp(millis: t))"
        }
    }
}
