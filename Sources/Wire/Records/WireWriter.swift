// WireWriter: appends record encodings to a byte array, with a limit.
//
// Writing never fails midway: bytes past `limit` are still appended and
// `overflowed` is set, so an encoder stays simple and the caller checks
// once, then rolls back with `truncate(to:)`.

/// A growable output buffer for records. A value type used on one thread.
public struct WireWriter {
    public private(set) var bytes: [UInt8]
    public let limit: Int
    private var regionTooLong = false
    /// True once the bytes exceed `limit` (or a length-prefixed region
    /// exceeded 2^21-1 bytes); the content is then unusable.
    public var overflowed: Bool { regionTooLong || bytes.count > limit }

    public init(capacity: Int = 256, limit: Int = Int.max) {
        bytes = []
        bytes.reserveCapacity(capacity)
        self.limit = limit
    }

    public var count: Int { bytes.count }

    /// Rolls back to an earlier `count` (and clears the overflow state).
    public mutating func truncate(to count: Int) {
        if count < bytes.count { bytes.removeSubrange(count...) }
        regionTooLong = false
    }

    /// Empties the buffer, keeping its capacity.
    public mutating func clear() {
        bytes.removeAll(keepingCapacity: true)
        regionTooLong = false
    }

    @inline(__always)
    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    @inline(__always)
    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inline(__always)
    public mutating func varint<I: BinaryInteger>(_ value: I) { varint(UInt64(value)) }

    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    public mutating func fixed64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// Number of bytes the unsigned LEB128 form of `v` takes.
    public static func varintLength(_ v: UInt64) -> Int {
        var n = 1
        var v = v >> 7
        while v != 0 { n += 1; v >>= 7 }
        return n
    }

    /// Starts a length-prefixed region (record body or batch item): three
    /// placeholder bytes, enough for any body up to 2^21-1 bytes.
    public mutating func beginLengthPrefixed() -> Int {
        bytes.append(0); bytes.append(0); bytes.append(0)
        return bytes.count
    }

    /// Ends the region opened at `start`: writes the minimal varint length
    /// and slides the body left over unused placeholder bytes. Returns the
    /// body length.
    @discardableResult
    public mutating func endLengthPrefixed(_ start: Int) -> Int {
        let length = bytes.count - start
        guard length < 1 << 21 else { regionTooLong = true; return length }
        let n = WireWriter.varintLength(UInt64(length))
        let at = start - 3
        if n < 3 {
            bytes.withUnsafeMutableBytes { p in
                let base = p.baseAddress!
                (base + at + n).copyMemory(from: base + start, byteCount: length)
            }
            bytes.removeLast(3 - n)
        }
        var v = length
        for i in 0..<n {
            bytes[at + i] = UInt8(v & 0x7F) | (i < n - 1 ? 0x80 : 0)
            v >>= 7
        }
        return length
    }
}
