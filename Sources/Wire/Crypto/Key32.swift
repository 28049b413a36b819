// Key32: 32 secret bytes held inline (no heap allocation), for chaining
// keys, cipher keys, hashes, DH keys and the project's pre-shared key.
//
// Equality is constant-time (sodium_memcmp) because keys are compared
// against attacker-influenced values. `description` never prints the bytes,
// so a key that reaches a log line stays secret. Copies of a value type
// cannot all be wiped; owners that hold long-lived keys call `wipe()`.
import CSodium

/// 32 bytes of key material. A value type with no thread affinity.
public struct Key32: Equatable, Sendable, CustomStringConvertible {
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    public static let byteCount = 32

    /// All zero bytes.
    public init() {}

    /// Exactly 32 bytes, or nil.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == Key32.byteCount else { return nil }
        withUnsafeMutableBytes { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
    }

    /// Copies 32 bytes from `pointer`.
    public init(copying pointer: UnsafeRawPointer) {
        withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: pointer, byteCount: Key32.byteCount) }
    }

    /// Fresh random bytes from libsodium's CSPRNG (getrandom(2)).
    public static func random() -> Key32 {
        Sodium.ensureReady()
        var k = Key32()
        k.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, Key32.byteCount) }
        return k
    }

    @inline(__always)
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeBytes(of: self) { (p) throws(E) -> R in try body(p) }
    }

    @inline(__always)
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeMutableBytes(of: &self) { (p) throws(E) -> R in try body(p) }
    }

    /// The bytes as an array (tests, text encodings).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (a: Key32, b: Key32) -> Bool {
        a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, Key32.byteCount) == 0 }
        }
    }

    /// Overwrites the bytes with zeros in a way the compiler cannot elide.
    public mutating func wipe() {
        withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, Key32.byteCount) }
    }

    public var description: String { "Key32(redacted)" }
}
