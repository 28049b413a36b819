// WireLimits: the bounds a decoder enforces, so memory per record is bounded
// by configuration and not by what a peer claims.

/// Decoding bounds. Immutable value; both ends may configure it, and the
/// collector announces its own in `Welcome.Limits`.
public struct WireLimits: Equatable, Sendable {
    /// Largest record body a transport message can carry: 65535 (frame)
    /// − 16 (tag) − 1 (type) − 3 (varint length).
    public static let absoluteMaxRecordLength = 65515

    /// Largest accepted record body (bytes).
    public var maxRecordLength: Int
    /// Most items in one DataBatch.
    public var maxBatchItems: Int
    /// Longest string field (bytes of UTF-8).
    public var maxStringLength: Int
    /// Most elements in any other list (capabilities, monitors, rules, ...).
    public var maxListCount: Int
    /// String table ids run 1...maxStringID.
    public var maxStringID: UInt32
    /// Total bytes of text the string table may hold.
    public var maxStringTableBytes: Int

    public init(maxRecordLength: Int = WireLimits.absoluteMaxRecordLength,
                maxBatchItems: Int = 4096,
                maxStringLength: Int = 4096,
                maxListCount: Int = 4096,
                maxStringID: UInt32 = 65535,
                maxStringTableBytes: Int = 1 << 20) {
        self.maxRecordLength = min(max(0, maxRecordLength), WireLimits.absoluteMaxRecordLength)
        self.maxBatchItems = max(0, maxBatchItems)
        self.maxStringLength = max(0, maxStringLength)
        self.maxListCount = max(0, maxListCount)
        self.maxStringID = maxStringID
        self.maxStringTableBytes = max(0, maxStringTableBytes)
    }

    public static let `default` = WireLimits()
}
