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

    public var methodString: String { String(decoding: method, as: UTF8.self) }
    public var hostString: String { String(decoding: host, as: UTF8.self) }
    public var pathString: String { String(decoding: path, as: UTF8.self) }
}
