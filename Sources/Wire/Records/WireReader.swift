// WireReader: a bounds-checked cursor over bytes that came off the wire.
//
// Every accessor checks the remaining length first and throws instead of
// reading past the end; list counts are checked against the bytes left
// before anything is allocated, so a forged count of 2^60 costs nothing.

/// A read cursor over borrowed bytes. Valid only while those bytes are; a
/// value type used on one thread.
public struct WireReader {
    private let base: UnsafeRawPointer?
    public private(set) var offset: Int
    public let end: Int

    public init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes.baseAddress
        offset = 0
        end = bytes.count
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset >= end }

    @inline(__always)
    public mutating func u8() throws(WireError) -> UInt8 {
        guard offset < end else { throw .truncated }
        let b = base!.load(fromByteOffset: offset, as: UInt8.self)
        offset += 1
        return b
    }

    /// The next byte without consuming it; nil at the end.
    public func peek() -> UInt8? {
        offset < end ? base!.load(fromByteOffset: offset, as: UInt8.self) : nil
    }

    /// Unsigned LEB128, at most 10 bytes, minimal, ≤ 2^64-1.
    @inline(__always)
    public mutating func varint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            guard offset < end else { throw .truncated }
            let b = base!.load(fromByteOffset: offset, as: UInt8.self)
            offset += 1
            count += 1
            if count == 10 && b > 1 { throw .badVarint }      // bits beyond 64
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                if b == 0 && count > 1 { throw .badVarint }   // non-minimal (trailing zero group)
                return result
            }
            if count == 10 { throw .badVarint }
            shift += 7
        }
    }

    /// A varint that must fit `UInt32`.
    public mutating func varint32() throws(WireError) -> UInt32 {
        let v = try varint()
        guard v <= UInt64(UInt32.max) else { throw .badVarint }
        return UInt32(v)
    }

    public mutating func bool(_ field: String) throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw .malformed(field: field)
        }
    }

    /// 8 bytes, big-endian.
    public mutating func fixed64() throws(WireError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated }
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(base!.load(fromByteOffset: offset + i, as: UInt8.self)) }
        offset += 8
        return v
    }

    /// The next `count` bytes, borrowed.
    public mutating func bytes(_ count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0 && count <= remaining else { throw .truncated }
        let out = UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: count)
        offset += count
        return out
    }

    /// Varint byte length, then that many bytes of valid UTF-8.
    public mutating func string(_ field: String, maxLength: Int) throws(WireError) -> String {
        let length = try varint()
        guard length <= UInt64(remaining) else { throw .truncated }
        guard length <= UInt64(maxLength) else { throw .limitExceeded(field: field, value: Int(length)) }
        let raw = try bytes(Int(length))
        if raw.isEmpty { return "" }
        guard let s = String(validating: raw, as: UTF8.self) else { throw .malformed(field: field) }
        return s
    }

    /// A list count: at most `max`, and at most one element per remaining
    /// byte (every element takes at least one), checked before allocation.
    public mutating func count(_ field: String, max: Int) throws(WireError) -> Int {
        let n = try varint()
        guard n <= UInt64(remaining) else { throw .truncated }
        guard n <= UInt64(max) else { throw .limitExceeded(field: field, value: Int(n)) }
        return Int(n)
    }

    /// A varint length, then a sub-reader over that many bytes; this reader
    /// moves past them. Used for record bodies and batch items.
    public mutating func lengthPrefixed() throws(WireError) -> WireReader {
        let length = try varint()
        guard length <= UInt64(remaining) else { throw .truncated }
        let sub = try bytes(Int(length))
        return WireReader(sub)
    }
}
