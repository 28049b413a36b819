// SegmentFormat: the layout of one spool segment file and the reader that
// walks it — the one parser of bytes the agent reads back from disk, so it
// is fuzzed (fuzz-spool) and never trusts a length or a checksum.
//
//   header (16 bytes): "VSPL" | u8 version (1) | 3 bytes zero | u64 LE instance
//   records, back to back:
//     u32 LE body length | u32 LE CRC32C of the body | body (SpoolBatch)
//
// A record whose checksum or body does not verify is skipped and counted
// (its length is still trusted to find the next one when it lies inside
// the file); a length beyond the file's end or above `maxRecordBytes` is
// a torn tail or garbage: the rest of the segment is skipped, counted once.
// A file with a bad header is skipped as a whole.
//
// Thread: loop thread (or a fuzzer's); reads through a `SegmentSource`.
import Wire

/// Where a segment's bytes come from: a file (pread) or memory (tests, fuzzing).
public protocol SegmentSource {
    var size: Int { get }
    /// Copies `count` bytes at `offset` into `buffer` (resized to fit);
    /// false when they cannot be read.
    func read(at offset: Int, count: Int, into buffer: inout [UInt8]) -> Bool
}

/// Bytes in memory as a segment.
public struct MemorySegment: SegmentSource {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var size: Int { bytes.count }
    public func read(at offset: Int, count: Int, into buffer: inout [UInt8]) -> Bool {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return false }
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: bytes[offset..<(offset + count)])
        return true
    }
}

public enum SegmentFormat {
    public static let magic: [UInt8] = Array("VSPL".utf8)
    public static let version: UInt8 = 1
    public static let headerBytes = 16
    public static let recordHeaderBytes = 8
    /// Largest body accepted (a DataBatch is at most ~64 KiB; room to spare).
    public static let maxRecordBytes = 1 << 20

    public static func header(instance: UInt64) -> [UInt8] {
        var h = magic + [version, 0, 0, 0]
        for i in 0..<8 { h.append(UInt8(truncatingIfNeeded: instance >> (8 * UInt64(i)))) }
        return h
    }

    /// The instance in a valid header, or nil.
    public static func instance(ofHeader h: [UInt8]) -> UInt64? {
        guard h.count >= headerBytes, Array(h[0..<4]) == magic, h[4] == version else { return nil }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(h[8 + i]) << (8 * UInt64(i)) }
        return v
    }

    /// A record: length, checksum, body.
    public static func record(_ batch: SpoolBatch) -> [UInt8] {
        var w = WireWriter(capacity: 256)
        for _ in 0..<recordHeaderBytes { w.u8(0) }
        batch.encode(into: &w)
        var bytes = w.bytes
        let body = bytes.count - recordHeaderBytes
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[recordHeaderBytes...])) }
        for i in 0..<4 {
            bytes[i] = UInt8(truncatingIfNeeded: UInt32(body) >> (8 * UInt32(i)))
            bytes[4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i)))
        }
        return bytes
    }

    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}

/// Walks a segment's records in order with one reusable buffer (memory is
/// bounded by `maxRecordBytes` whatever the file's size).
public struct SegmentReader<Source: SegmentSource> {
    public enum Step {
        /// A verified record: its batch, where it starts, and where the next begins.
        case batch(SpoolBatch, offset: Int, next: Int)
        /// A record that failed its checksum or decoding; skipped.
        case corrupt(offset: Int, next: Int)
        /// Unreadable from here on (torn tail, impossible length, read error).
        case tornTail(offset: Int)
        case end
    }

    public let source: Source
    /// The header's instance; nil when the header is not a spool header.
    public let instance: UInt64?
    public private(set) var offset: Int
    private var buffer: [UInt8] = []

    public init(_ source: Source, from offset: Int = SegmentFormat.headerBytes) {
        self.source = source
        var h: [UInt8] = []
        instance = source.read(at: 0, count: SegmentFormat.headerBytes, into: &h) ? SegmentFormat.instance(ofHeader: h) : nil
        self.offset = max(offset, SegmentFormat.headerBytes)
    }

    /// The next step; after `.tornTail` or `.end` it keeps answering `.end`.
    public mutating func next() -> Step {
        guard instance != nil, offset < source.size else { return .end }
        let at = offset
        guard source.size - at >= SegmentFormat.recordHeaderBytes,
              source.read(at: at, count: SegmentFormat.recordHeaderBytes, into: &buffer) else {
            offset = source.size
            return .tornTail(offset: at)
        }
        let length = Int(SegmentFormat.u32(buffer, 0)), crc = SegmentFormat.u32(buffer, 4)
        let bodyAt = at + SegmentFormat.recordHeaderBytes
        guard length <= SegmentFormat.maxRecordBytes, length <= source.size - bodyAt,
              source.read(at: bodyAt, count: length, into: &buffer) else {
            offset = source.size
            return .tornTail(offset: at)
        }
        offset = bodyAt + length
        let ok = buffer.withUnsafeBytes { b -> SpoolBatch? in
            guard CRC32C.checksum(b) == crc else { return nil }
            return try? SpoolBatch.decode(b)
        }
        guard let batch = ok else { return .corrupt(offset: at, next: offset) }
        return .batch(batch, offset: at, next: offset)
    }
}
