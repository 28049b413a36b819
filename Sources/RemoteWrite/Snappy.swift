// Snappy: block compression (not the framed stream format) of a request
// body, as remote write 1.0 requires, through Debian's libsnappy.
//
// Thread: any (no shared state).
import CSnappy

public enum Snappy {
    /// `input` compressed as one snappy block.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var length = snappy_max_compressed_length(input.count)
        var out = [UInt8](repeating: 0, count: length)
        let status = input.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in
                snappy_compress(i.baseAddress?.assumingMemoryBound(to: CChar.self), input.count,
                                o.baseAddress!.assumingMemoryBound(to: CChar.self), &length)
            }
        }
        // SNAPPY_BUFFER_TOO_SMALL cannot happen with the maximum length.
        precondition(status == SNAPPY_OK, "snappy_compress: status \(status)")
        out.removeSubrange(length...)
        return out
    }

    /// A snappy block decompressed, or nil if it is not one (for tests
    /// and the benchmark's round trip).
    public static func uncompress(_ input: [UInt8]) -> [UInt8]? {
        var length = 0
        let ok = input.withUnsafeBytes { i in
            snappy_uncompressed_length(i.baseAddress?.assumingMemoryBound(to: CChar.self), input.count, &length) == SNAPPY_OK
        }
        guard ok, length <= 1 << 30 else { return nil }
        var out = [UInt8](repeating: 0, count: length)
        let status = input.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in
                snappy_uncompress(i.baseAddress?.assumingMemoryBound(to: CChar.self), input.count,
                                  o.baseAddress?.assumingMemoryBound(to: CChar.self), &length)
            }
        }
        return status == SNAPPY_OK ? out : nil
    }
}
