// WireError: why bytes inside a Noise payload could not be decoded or a
// record could not be encoded. Each case maps to one close reason.

/// A record-level decoding or encoding failure. Decoders throw these and
/// never trap, whatever the input.
public enum WireError: Error, Equatable, Sendable {
    /// A record or field runs past the end of its enclosing bytes.
    case truncated
    /// A varint longer than 10 bytes, above 2^64-1, not minimally encoded,
    /// or above the range of its field.
    case badVarint
    /// A record body above the configured maximum (or 65515, the most a
    /// transport message can carry).
    case recordTooLarge(Int)
    /// A batch with more items than the configured maximum.
    case batchTooLarge(Int)
    /// A list, string or table above its configured bound.
    case limitExceeded(field: String, value: Int)
    /// A field with an impossible value (bad bool, invalid UTF-8, wrong
    /// fixed length, string id 0 defined, ...). `field` names it.
    case malformed(field: String)
}
