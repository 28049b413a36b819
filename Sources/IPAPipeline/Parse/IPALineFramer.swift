// IPALineFramer: IPA lines out of a byte stream cut anywhere — a file
// uploaded to the collector arrives in pieces whose ends fall inside lines.
// Whole lines of a piece are handed on as one block, in place (no copy);
// a line cut by a piece's end is kept (at most `IPAParser.maxLineBytes` + 1
// bytes) and completed by the next piece. A line longer than the parser
// accepts is kept only up to one byte past the limit, so the parser still
// sees it as too long and counts it `.oversize`: memory stays bounded and
// every line is still counted once.
//
// Thread: any; a value owned by one reader.

public struct IPALineFramer {
    /// The start of a line cut by the previous piece's end.
    private var carry: [UInt8] = []
    private var truncated = false

    public init() {}

    /// Bytes held for a line not ended yet.
    public var pendingBytes: Int { carry.count }

    /// Reads a piece; `lines` gets blocks of whole lines (each ending in
    /// LF), to hand to IPAParser.parse or IngestPipeline.ingest.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ lines: (UnsafeRawBufferPointer) -> Void) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        guard let first = bytes.firstIndex(of: 0x0A) else { return keep(bytes) }
        var start = 0
        if !carry.isEmpty || truncated {
            keep(UnsafeRawBufferPointer(rebasing: bytes[0...first]))
            carry.withUnsafeBytes { lines($0) }
            carry.removeAll(keepingCapacity: true)
            truncated = false
            start = first + 1
        }
        let last = bytes.lastIndex(of: 0x0A)!
        if last >= start { lines(UnsafeRawBufferPointer(start: base + start, count: last + 1 - start)) }
        if last + 1 < bytes.count { keep(UnsafeRawBufferPointer(rebasing: bytes[(last + 1)...])) }
    }

    /// The stream ended: its last line, when it had no LF.
    public mutating func finish(_ lines: (UnsafeRawBufferPointer) -> Void) {
        guard !carry.isEmpty else { return }
        carry.append(0x0A)
        carry.withUnsafeBytes { lines($0) }
        carry.removeAll()
        truncated = false
    }

    /// Keeps the bytes of a line, up to one past the parser's limit (plus
    /// its LF when this piece ends it).
    private mutating func keep(_ bytes: UnsafeRawBufferPointer) {
        let room = IPAParser.maxLineBytes + 1 - carry.count
        let endsLine = bytes.last == 0x0A
        if bytes.count <= room || (endsLine && bytes.count - 1 <= room) {
            carry.append(contentsOf: bytes)
            return
        }
        if room > 0 { carry.append(contentsOf: bytes.prefix(room)) }
        truncated = true
        if endsLine { carry.append(0x0A) }
    }
}
