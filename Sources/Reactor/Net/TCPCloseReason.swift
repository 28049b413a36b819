// TCPCloseReason: why a TCP connection ended, delivered once per connection.
#if canImport(Glibc)
import Glibc
#endif

/// The event that ended a `TCPConnection`. Every connection reports exactly
/// one, through `TCPConnectionHandler.connectionDidClose(_:reason:)`.
public enum TCPCloseReason: Equatable, CustomStringConvertible {
    /// The peer's FIN (read returned 0) ended it: the peer closed, or it
    /// finished a half-close we had started.
    case peerClosed
    /// connect(2) found nothing listening (ECONNREFUSED).
    case refused
    /// The connect did not complete within `Options.connectTimeout` (or the
    /// kernel gave up, ETIMEDOUT).
    case connectTimeout
    /// No byte was read or written for `Options.idleTimeout` seconds.
    case idleTimeout
    /// The peer reset the connection (ECONNRESET, or EPIPE on write).
    case reset
    /// `close()` (after flushing), or `shutdownOutput()` completing a
    /// half-close the peer had started.
    case localClose
    /// `abort()`: queued bytes discarded, RST sent.
    case localAbort
    /// The consumer left more than `Options.maxReadBuffer` bytes unconsumed
    /// (a frame larger than the connection allows).
    case readBufferLimit
    /// Any other failure, naming the call and errno.
    case error(SyscallError)

    public var description: String {
        switch self {
        case .peerClosed: return "peer closed"
        case .refused: return "connection refused"
        case .connectTimeout: return "connect timeout"
        case .idleTimeout: return "idle timeout"
        case .reset: return "connection reset by peer"
        case .localClose: return "closed locally"
        case .localAbort: return "aborted locally"
        case .readBufferLimit: return "read buffer limit exceeded"
        case .error(let e): return e.description
        }
    }

    /// Maps a socket error to a reason; `connecting` says whether the
    /// connection had not been established yet.
    static func from(_ error: Error, connecting: Bool) -> TCPCloseReason {
        guard let e = error as? SyscallError else { return .error(SyscallError(call: "\(error)", errno: EIO)) }
        switch e.errno {
        case ECONNREFUSED: return .refused
        case ECONNRESET, EPIPE: return .reset
        case ETIMEDOUT where connecting: return .connectTimeout
        default: return .error(e)
        }
    }
}
