// IPARecord: one parsed IPA line (docs/AGENT.md, "Ingest"), as a view
// whose fields point into the datagram it came from
// and die with it — the parser allocates nothing per record.
//
// Thread: loop thread (the ingest path); never stored.

/// One parsed record, pointing into the datagram it came from.
public struct IPARecord {
    public var method: UnsafeRawBufferPointer
    /// Host name without scheme or port, as sent (match case-insensitively).
    public var host: UnsafeRawBufferPointer
    /// The port given in the host or URL, 0 when none.
    public var port: UInt16
    /// The path without its query string or fragment; "/" when empty.
    public var path: UnsafeRawBufferPointer
    public var durationMs: Double
    /// When the call started, the emitter's clock, ms since the epoch;
    /// 0 when the line carries none (versions 0 and 1).
    public var timestampMs: Int64
    /// The HTTP status: 0 for a transport error, -1 when the line carries
    /// none (versions 0 and 1).
    public var status: Int32
    /// The error class a version 2 line may end with; empty when none.
    public var errorClass: UnsafeRawBufferPointer

    public init(method: UnsafeRawBufferPointer, host: UnsafeRawBufferPointer, port: UInt16, path: UnsafeRawBufferPointer,
                durationMs: Double, timestampMs: Int64 = 0, status: Int32 = -1,
                errorClass: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        self.method = method
        self.host = host
        self.port = port
        self.path = path
        self.durationMs = durationMs
        self.timestampMs = timestampMs
        self.status = status
        self.errorClass = errorClass
    }

    /// The outcome class of the record's status; nil when it has none.
    public var outcome: Outcome? { status < 0 ? nil : Outcome(status: status) }

    public var methodString: String { String(decoding: method, as: UTF8.self) }
    public var hostString: String { String(decoding: host, as: UTF8.self) }
    public var pathString: String { String(decoding: path, as: UTF8.self) }
    public var errorClassString: String { String(decoding: errorClass, as: UTF8.self) }
}
