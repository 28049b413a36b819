// NoiseError: why a handshake or cipher operation refused to proceed.

/// A failed Noise operation. Every case is a value the caller counts;
/// none of them is a programmer error except `wrongState`/`bufferTooSmall`.
public enum NoiseError: Error, Equatable, Sendable {
    /// Authentication of a ciphertext failed (wrong key, tampering, replay).
    case decryptFailed
    /// The 64-bit nonce reached 2^64-1, which Noise reserves (§5.1).
    case nonceExhausted
    /// The peer's ephemeral key produced the all-zero DH output.
    case invalidPublicKey
    /// A handshake message is shorter than its fixed part (key + tag).
    case messageTooShort(Int)
    /// A message or payload would exceed the 65535-byte Noise limit.
    case messageTooLarge(Int)
    /// writeMessage/readMessage called out of turn.
    case wrongState
    /// The caller's output buffer cannot hold the result.
    case bufferTooSmall(needed: Int, available: Int)
}
