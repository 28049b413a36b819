// StaticKeyPair: a Curve25519 key pair that names one party of the
// handshake for longer than one session — the collector installation's key
// (pinned by every agent through its access key) or one agent's key (its
// identity in the registry). `StaticKeyFile` keeps one on disk.

/// An X25519 secret and its public key. Immutable value; the secret is
/// never printed (`description` shows only the public key).
public struct StaticKeyPair: Equatable, Sendable, CustomStringConvertible {
    public let secret: Key32
    public let publicKey: Key32

    public init(secret: Key32) {
        Sodium.ensureReady()
        self.secret = secret
        publicKey = Sodium.x25519Public(secret)
    }

    /// A new pair from libsodium's CSPRNG.
    public static func generate() -> StaticKeyPair { StaticKeyPair(secret: Key32.random()) }

    /// A pair derived as HMAC-SHA-256(seed, label): for load generators,
    /// whose thousands of simulated agents each need a key that is the same
    /// on every run (an enrolled id keeps its key) without a file each.
    /// Anyone with `seed` has every derived secret: never for real agents.
    public static func derived(seed: Key32, label: String) -> StaticKeyPair {
        Sodium.ensureReady()
        var secret = Array(label.utf8).withUnsafeBytes { Sodium.hmacSHA256(key: seed, $0) }
        defer { secret.wipe() }
        return StaticKeyPair(secret: secret)
    }

    /// The public key as 43 characters of base64url, as access keys and
    /// the registry carry it.
    public var publicText: String { Base64URL.encode(publicKey.bytes) }

    public var description: String { "StaticKeyPair(public: \(publicText))" }
}
