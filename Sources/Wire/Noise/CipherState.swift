// CipherState (Noise rev 34 §5.1): a key k and a 64-bit counter n.
//
// Nonce rules, exactly as the spec states them:
//   * n starts at 0 after InitializeKey and increments after each
//     successful EncryptWithAd/DecryptWithAd;
//   * n = 2^64-1 is reserved: an operation that would use it fails with
//     `nonceExhausted` (so at most 2^64-1 messages per direction);
//   * a failed decryption does not increment n.
// Rekey is not used by this protocol. Without a key, EncryptWithAd and
// DecryptWithAd return their input (only reachable before the first
// MixKey: with a PSK every `e` token calls MixKey, so no payload is ever
// sent without a key in either pattern).

/// One direction's cipher. A value type owned by one session; not shared
/// across threads.
public struct CipherState: Sendable {
    public static let tagLength = 16

    private var k: Key32?
    /// The next nonce to use.
    public private(set) var nonce: UInt64 = 0

    public init() {}

    public init(key: Key32) { k = key }

    public var hasKey: Bool { k != nil }

    public mutating func initializeKey(_ key: Key32?) {
        k = key
        nonce = 0
    }

    /// SetNonce (§5.1); tests use it to reach the reserved value.
    mutating func setNonce(_ n: UInt64) { nonce = n }

    /// Encrypts `plaintext` with associated data `ad` into `out`, which
    /// receives `plaintext.count + 16` bytes (or `plaintext.count` without
    /// a key) and may alias `plaintext`. Returns the bytes written.
    @inline(__always)
    public mutating func encrypt(ad: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
                                 into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        guard let key = k else {
            guard out.count >= plaintext.count else { throw .bufferTooSmall(needed: plaintext.count, available: out.count) }
            if plaintext.count > 0 && out.baseAddress! != UnsafeMutableRawPointer(mutating: plaintext.baseAddress!) {
                out.baseAddress!.copyMemory(from: plaintext.baseAddress!, byteCount: plaintext.count)
            }
            return plaintext.count
        }
        let needed = plaintext.count + CipherState.tagLength
        guard out.count >= needed else { throw .bufferTooSmall(needed: needed, available: out.count) }
        guard nonce != UInt64.max else { throw .nonceExhausted }
        Sodium.seal(key: key, nonce: nonce, ad: ad, plaintext: plaintext, out: out.baseAddress!)
        nonce += 1
        return needed
    }

    /// Verifies and decrypts `ciphertext` into `out` (`ciphertext.count -
    /// 16` bytes; may alias). Returns the plaintext length.
    @inline(__always)
    public mutating func decrypt(ad: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer,
                                 into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        guard let key = k else {
            guard out.count >= ciphertext.count else { throw .bufferTooSmall(needed: ciphertext.count, available: out.count) }
            if ciphertext.count > 0 && out.baseAddress! != UnsafeMutableRawPointer(mutating: ciphertext.baseAddress!) {
                out.baseAddress!.copyMemory(from: ciphertext.baseAddress!, byteCount: ciphertext.count)
            }
            return ciphertext.count
        }
        guard ciphertext.count >= CipherState.tagLength else { throw .decryptFailed }
        let plainLength = ciphertext.count - CipherState.tagLength
        guard out.count >= plainLength else { throw .bufferTooSmall(needed: plainLength, available: out.count) }
        guard nonce != UInt64.max else { throw .nonceExhausted }
        guard Sodium.open(key: key, nonce: nonce, ad: ad, ciphertext: ciphertext, out: out.baseAddress) else {
            throw .decryptFailed
        }
        nonce += 1
        return plainLength
    }

    /// Forgets the key (zeroing this copy).
    public mutating func wipe() {
        k?.wipe()
        k = nil
    }
}

extension CipherState {
    /// Array conveniences for tests and the example generator.
    public mutating func encrypt(ad: [UInt8] = [], _ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + CipherState.tagLength)
        var result: Result<Int, NoiseError> = .success(0)
        ad.withUnsafeBytes { a in
            plaintext.withUnsafeBytes { p in
                out.withUnsafeMutableBytes { o in
                    do throws(NoiseError) { result = .success(try encrypt(ad: a, plaintext: p, into: o)) }
                    catch { result = .failure(error) }
                }
            }
        }
        out.removeLast(out.count - (try result.get()))
        return out
    }

    public mutating func decrypt(ad: [UInt8] = [], _ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ciphertext.count)
        var result: Result<Int, NoiseError> = .success(0)
        ad.withUnsafeBytes { a in
            ciphertext.withUnsafeBytes { c in
                out.withUnsafeMutableBytes { o in
                    do throws(NoiseError) { result = .success(try decrypt(ad: a, ciphertext: c, into: o)) }
                    catch { result = .failure(error) }
                }
            }
        }
        out.removeLast(out.count - (try result.get()))
        return out
    }
}
