// LoadStats: what a run counts, and the one summary line (and JSON) it
// prints. Every session that did not last is counted by why.
import Reactor
import Wire

/// Counters and histograms of one run. Loop thread only.
public struct LoadStats {
    public var attempts: UInt64 = 0
    public var handshakes: UInt64 = 0
    /// Attempts that ended before a Welcome, by cause.
    public var connectRefused: UInt64 = 0
    public var connectTimeouts: UInt64 = 0
    public var handshakeTimeouts: UInt64 = 0
    /// The collector answered message 1 with an Error record (capacity,
    /// revoked key, shutting down, …).
    public var rejected: UInt64 = 0
    public var otherAttemptFailures: UInt64 = 0
    /// Established sessions that ended while the run wanted them.
    public var sessionsLost: UInt64 = 0
    /// Why sessions (established or not) closed, Wire's reasons.
    public var closeReasons = CloseReasonCounts()
    /// Error codes the collector sent (rejections and closing notices).
    public var peerErrors: [String: UInt64] = [:]
    public var statuses: UInt64 = 0
    public var batchesSent: UInt64 = 0
    public var batchesResent: UInt64 = 0
    public var itemsSent: UInt64 = 0
    /// density: batch slots passed while offline or with the window full.
    public var batchesSkipped: UInt64 = 0
    public var pingsSent: UInt64 = 0
    public var pongs: UInt64 = 0
    public var controlRequests: UInt64 = 0
    /// Sessions given up: no answer to a Ping, or a write queue full.
    public var livenessFailures: UInt64 = 0
    public var writeRefused: UInt64 = 0
    public var sendErrors: UInt64 = 0
    /// Connect start to Welcome, µs.
    public var handshakeMicros = LogHistogram()
    /// Ping to Pong, µs (collector loop + both kernels + this loop).
    public var pingMicros = LogHistogram()
    /// Session lost to the next session established, ms (failover time).
    public var reconnectGapMillis = LogHistogram()

    public init() {}

    public var attemptFailures: UInt64 {
        connectRefused + connectTimeouts + handshakeTimeouts + rejected + otherAttemptFailures
    }
}

/// An ordered list of summary fields, rendered as `key=value` or JSON.
public struct SummaryFields: Sendable {
    public private(set) var fields: [(String, String, Bool)] = []   // key, value, quoted in JSON
    public init() {}

    public mutating func add(_ key: String, _ value: Int) { fields.append((key, String(value), false)) }
    public mutating func add(_ key: String, _ value: UInt64) { fields.append((key, String(value), false)) }
    public mutating func add(_ key: String, _ value: Double, decimals: Int = 1) {
        fields.append((key, SummaryFields.fixed(value, decimals), false))
    }
    public mutating func add(_ key: String, text: String) { fields.append((key, text, true)) }

    public func line(prefix: String) -> String {
        prefix + fields.map { " \($0.0)=\($0.2 && ($0.1.isEmpty || $0.1.contains(" ")) ? Log.jsonString($0.1) : $0.1)" }.joined()
    }

    public var json: String {
        "{" + fields.map { "\(Log.jsonString($0.0)):\($0.2 ? Log.jsonString($0.1) : $0.1)" }.joined(separator: ",") + "}"
    }

    public subscript(key: String) -> String? { fields.first { $0.0 == key }?.1 }

    /// `v` with `decimals` digits after the point, no exponent.
    public static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let r = (abs(v) * scale).rounded()
        let whole = UInt64(r / scale)
        var text = (v < 0 && r > 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let frac = UInt64(r) - whole * UInt64(scale)
            let digits = String(frac)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return text
    }
}
