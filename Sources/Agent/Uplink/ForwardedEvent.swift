// ForwardedEvent: a matched IPA record sent on raw (`forward_raw_events`),
// already redacted, waiting in queue 2 with its names as text.
//
// Thread: a value; built and read on the loop thread.
import IPAPipeline

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
    /// The HTTP status the record carried; 0 when none, or no response.
    public var status: UInt32
    /// Why no response came (status 0 of an IPA version 2 record; the
    /// emitter's class, else `transport_error`); empty otherwise.
    public var errorClass: String

    public init(timestampUs: UInt64, method: String, host: String, path: String, durationUs: UInt64,
                monitor: String, check: String, status: UInt32 = 0, errorClass: String = "") {
        self.timestampUs = timestampUs
        self.method = method
        self.host = host
        self.path = path
        self.status = status
        self.errorClass = errorClass
        self.durationUs = durationUs
        self.monitor = monitor
        self.check = check
    }

    /// The error class an event of `record` carries (see `errorClass`).
    public static func errorClass(of record: IPARecord) -> String {
        guard record.status == 0 else { return "" }
        return record.errorClass.isEmpty ? "transport_error" : record.errorClassString
    }

    /// Microseconds from an IPA record's milliseconds, rounded.
    @inline(__always)
    public static func microseconds(_ ms: Double) -> UInt64 {
        ms <= 0 ? 0 : UInt64((ms * 1000).rounded())
    }
}
