// FrameDecoder: reassembles 2-byte big-endian length-prefixed frames from
// reads of any size.
//
//   [length: u16 big-endian][length bytes]
//
// The header is checked as soon as its two bytes arrive, before any body
// byte is buffered, so an oversized length costs nothing. The body is
// copied into one buffer that never exceeds `maxLength`, giving the caller
// a mutable region to decrypt in place. Memory per connection is therefore
// bounded by the largest frame the limits allow (65535 bytes).
import Reactor

/// Why a frame length was refused.
public enum FrameError: Error, Equatable, Sendable {
    case tooLong(Int)
    case tooShort(Int)
}

/// Incremental frame reassembly for one connection. Owned by one session;
/// not thread-safe.
public final class FrameDecoder {
    public static let headerLength = 2
    public static let maxFrameLength = 65535

    /// Outcome of one `consume` call.
    public enum Step: Equatable {
        /// Input exhausted without completing a frame.
        case needMore
        /// `frame` holds a complete frame body until the next `consume`.
        case frame
        /// The header announced an unacceptable length; the stream is dead.
        case invalid(FrameError)
    }

    /// Acceptable body lengths; changed by the session between handshake
    /// and transport phases.
    public var minLength: Int
    public var maxLength: Int

    private var header: UInt16 = 0
    private var headerHave = 0
    private var bodyLength = -1          // -1 until the header is complete
    private var delivered = false
    private let body: ByteBuffer

    public init(minLength: Int = 0, maxLength: Int = FrameDecoder.maxFrameLength, initialCapacity: Int = 512) {
        precondition(minLength >= 0 && minLength <= maxLength && maxLength <= FrameDecoder.maxFrameLength)
        self.minLength = minLength
        self.maxLength = maxLength
        body = ByteBuffer(capacity: max(1, min(initialCapacity, maxLength)), limit: FrameDecoder.maxFrameLength)
    }

    /// Bytes held for a frame that is not complete yet (0 while a complete
    /// frame is being handed out).
    public var bufferedBytes: Int { delivered ? 0 : headerHave + (bodyLength >= 0 ? body.readableBytes : 0) }

    /// Current allocation (for memory accounting).
    public var capacity: Int { body.capacity }

    /// The last complete frame's body, valid after `.frame` until the next
    /// `consume`. The caller may overwrite it (in-place decryption).
    public var frame: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: body.storage + body.readerIndex, count: body.readableBytes)
    }

    /// Takes bytes from the front of `input` until one frame is complete or
    /// the input runs out. Returns how many bytes it took and what happened.
    public func consume(_ input: UnsafeRawBufferPointer) -> (consumed: Int, step: Step) {
        if delivered { reset() }
        var used = 0
        while bodyLength < 0 {
            guard used < input.count else { return (used, .needMore) }
            header = header << 8 | UInt16(input[used])
            used += 1
            headerHave += 1
            if headerHave == FrameDecoder.headerLength {
                let length = Int(header)
                if length > maxLength { return (used, .invalid(.tooLong(length))) }
                if length < minLength { return (used, .invalid(.tooShort(length))) }
                bodyLength = length
                body.clear()
                _ = body.reserve(length)
            }
        }
        let want = bodyLength - body.readableBytes
        let take = min(want, input.count - used)
        if take > 0 {
            _ = body.write(UnsafeRawBufferPointer(rebasing: input[used..<used + take]))
            used += take
        }
        if body.readableBytes == bodyLength {
            delivered = true
            return (used, .frame)
        }
        return (used, .needMore)
    }

    /// Drops any partial frame.
    public func reset() {
        header = 0
        headerHave = 0
        bodyLength = -1
        delivered = false
        body.clear()
    }

    /// Gives back a large body buffer between frames (idle sessions).
    public func shrink(to capacity: Int) {
        if delivered { reset() }
        if bodyLength < 0 { body.shrink(to: capacity) }
    }

    /// Writes the 2-byte big-endian header for a body of `length` bytes.
    @inline(__always)
    public static func writeHeader(_ length: Int, to out: UnsafeMutableRawPointer) {
        precondition(length >= 0 && length <= maxFrameLength)
        out.storeBytes(of: UInt8(length >> 8), as: UInt8.self)
        (out + 1).storeBytes(of: UInt8(length & 0xFF), as: UInt8.self)
    }
}
