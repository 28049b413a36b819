// ForwardedEvent: a matched IPA record sent on raw (`forward_raw_events`),
// already redacted, waiting in queue 2 with its names as text.
//
// Thread: a value; built and read on the loop thread.

/// A matched record forwarded raw (`forward_raw_events`), already redacted:
/// no query string, identifier-like path segments replaced by `:id`.
public struct ForwardedEvent: Equatable, Sendable {
    /// Collector time, microseconds since the epoch.
    public var timestampUs: UInt64
    public var method: String
    public var host: String
    public var path: String
    public var durationUs: UInt64
    public var monitor: String
    public var check: String

    public init(timestampUs: UInt64, method: String, host: String, path: String, durationUs: UInt64,
                monitor: String, check: String) {
        self.timestampUs = timestampUs
        self.method = method
        self.host = host
        self.path = path
        self.durationUs = durationUs
        self.monitor = monitor
        self.check = check
    }

    /// Microseconds from an IPA record's milliseconds, rounded.
    @inline(__always)
    public static func microseconds(_ ms: Double) -> UInt64 {
        ms <= 0 ? 0 : UInt64((ms * 1000).rounded())
    }
}
