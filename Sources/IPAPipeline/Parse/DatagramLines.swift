// DatagramLines: the lines of one datagram, as both line protocols the
// agent reads (IPA records, StatsD metrics) frame them — split on LF, a
// trailing CR dropped, empty lines skipped, a line longer than the
// protocol's limit reported as oversize instead of parsed.
//
// Thread: any; a pure function over the bytes given. Inlinable: it runs
// once per record on the agent's hottest path.

public enum DatagramLines {
    /// Calls `line` with each non-empty line of `datagram` (a view into
    /// it, CR/LF removed) and `oversize` for each longer than `maxLineBytes`.
    @inlinable @inline(__always)
    public static func forEach(in datagram: UnsafeRawBufferPointer, maxLineBytes: Int,
                               oversize: () -> Void, _ line: (UnsafeRawBufferPointer) -> Void) {
        guard let base = datagram.baseAddress, datagram.count > 0 else { return }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let n = datagram.count
        var start = 0
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd > start {
                if lineEnd - start > maxLineBytes {
                    oversize()
                } else {
                    line(UnsafeRawBufferPointer(start: base + start, count: lineEnd - start))
                }
            }
            start = end + 1
        }
    }
}
