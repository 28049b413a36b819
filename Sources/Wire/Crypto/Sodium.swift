// Sodium: the libsodium primitives the Noise handshake needs, wrapped once.
//
// Noise_XKpsk3_25519_ChaChaPoly_SHA256 (and version 1's NNpsk0) use exactly: X25519
// (crypto_scalarmult_curve25519), ChaCha20-Poly1305 IETF with a 96-bit
// nonce, SHA-256 and HMAC-SHA-256 (for HKDF). Every function takes raw
// pointers so the hot paths (seal/open of transport messages) never
// allocate. All functions are thread-safe once `ensureReady()` has run.
// X25519 stays libsodium's: OpenSSL's (through EVP), nettle's and
// libgcrypt's were timed against it and none is clearly faster per
// handshake (docs/PERFORMANCE.md, "Which X25519").
import CSodium

enum Sodium {
    /// sodium_init() picks the CPU-specific implementations (AVX2 ChaCha20,
    /// etc.) and is idempotent; it fails only without an entropy source.
    /// Swift runs this initialiser exactly once (swift_once).
    private static let initResult: Int32 = sodium_init()

    @inline(__always)
    static func ensureReady() {
        precondition(initResult >= 0, "sodium_init failed: no entropy source")
    }

    static let tagLength = 16
    static let dhLength = 32

    /// The 96-bit IETF nonce Noise builds from its 64-bit counter: four
    /// zero bytes, then the counter little-endian (spec §12.3).
    @inline(__always)
    static func withNonce<R>(_ n: UInt64, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        var nonce: (UInt32, UInt32, UInt32) = (0, UInt32(truncatingIfNeeded: n).littleEndian,
                                               UInt32(truncatingIfNeeded: n >> 32).littleEndian)
        return Swift.withUnsafeBytes(of: &nonce) { body($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
    }

    /// ChaCha20-Poly1305 IETF: writes `plaintext.count + 16` bytes to `out`.
    /// `out` may equal the plaintext's address (libsodium encrypts in place).
    @inline(__always)
    static func seal(key: Key32, nonce: UInt64, ad: UnsafeRawBufferPointer,
                     plaintext: UnsafeRawBufferPointer, out: UnsafeMutableRawPointer) {
        var clen: UInt64 = 0
        key.withUnsafeBytes { k in
            withNonce(nonce) { npub in
                _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                    out.assumingMemoryBound(to: UInt8.self), &clen,
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                    ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
                    nil, npub, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// Verifies and decrypts `ciphertext` (≥ 16 bytes) into `out`
    /// (`ciphertext.count - 16` bytes; may equal the ciphertext's address,
    /// and may be nil for an empty plaintext: libsodium then only verifies).
    /// Returns false on an authentication failure, writing nothing useful.
    @inline(__always)
    static func open(key: Key32, nonce: UInt64, ad: UnsafeRawBufferPointer,
                     ciphertext: UnsafeRawBufferPointer, out: UnsafeMutableRawPointer?) -> Bool {
        guard ciphertext.count >= tagLength else { return false }
        var mlen: UInt64 = 0
        return key.withUnsafeBytes { k in
            withNonce(nonce) { npub in
                crypto_aead_chacha20poly1305_ietf_decrypt(
                    out?.assumingMemoryBound(to: UInt8.self), &mlen, nil,
                    ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                    ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
                    npub, k.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
        }
    }

    /// SHA-256 over the concatenation of `a` and `b` (MixHash: h = HASH(h || data)).
    static func sha256(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Key32 {
        var state = crypto_hash_sha256_state()
        var out = Key32()
        crypto_hash_sha256_init(&state)
        if a.count > 0 { crypto_hash_sha256_update(&state, a.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(a.count)) }
        if b.count > 0 { crypto_hash_sha256_update(&state, b.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(b.count)) }
        out.withUnsafeMutableBytes { _ = crypto_hash_sha256_final(&state, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        sodium_memzero(&state, MemoryLayout<crypto_hash_sha256_state>.size)
        return out
    }

    /// HMAC-SHA-256(key, a || b || c). libsodium's _init accepts a key of
    /// any length (RFC 2104 hashes keys longer than the block size), which
    /// Noise's HKDF needs; here the key is always 32 bytes (HASHLEN).
    static func hmacSHA256(key: Key32, _ a: UnsafeRawBufferPointer,
                           _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                           _ c: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Key32 {
        var state = crypto_auth_hmacsha256_state()
        var out = Key32()
        key.withUnsafeBytes { k in
            _ = crypto_auth_hmacsha256_init(&state, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count)
        }
        if a.count > 0 { crypto_auth_hmacsha256_update(&state, a.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(a.count)) }
        if b.count > 0 { crypto_auth_hmacsha256_update(&state, b.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(b.count)) }
        if c.count > 0 { crypto_auth_hmacsha256_update(&state, c.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(c.count)) }
        out.withUnsafeMutableBytes { _ = crypto_auth_hmacsha256_final(&state, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        return out
    }

    /// X25519 public key for `secret` (crypto_scalarmult_curve25519_base
    /// clamps the scalar itself).
    static func x25519Public(_ secret: Key32) -> Key32 {
        var pub = Key32()
        secret.withUnsafeBytes { s in
            pub.withUnsafeMutableBytes { p in
                _ = crypto_scalarmult_curve25519_base(p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                      s.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return pub
    }

    /// X25519(secret, peer). Nil when libsodium rejects the result as the
    /// all-zero point (peer sent a low-order key) — Noise §9.1 lets a
    /// responder abort there, and we do.
    static func x25519(_ secret: Key32, _ peer: Key32) -> Key32? {
        var shared = Key32()
        let rc = secret.withUnsafeBytes { s in
            peer.withUnsafeBytes { p in
                shared.withUnsafeMutableBytes { o in
                    crypto_scalarmult_curve25519(o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                 s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                 p.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return rc == 0 ? shared : nil
    }

    /// Fills `buffer` from the CSPRNG.
    static func randomBytes(_ buffer: UnsafeMutableRawBufferPointer) {
        ensureReady()
        if let base = buffer.baseAddress, buffer.count > 0 { randombytes_buf(base, buffer.count) }
    }
}
