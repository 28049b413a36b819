// HandshakeMessages: what SecureChannel's framing helpers need of a
// handshake — the current pattern (XKpsk3) and, on the collector, version
// 1's NNpsk0, kept only to refuse old agents in words they can read.

protocol HandshakeMessages {
    /// Bytes around the payload of the next message (written or read).
    var nextOverhead: Int { get }
    mutating func writeMessage(payload: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int
    mutating func readMessage(_ message: UnsafeRawBufferPointer, payloadInto out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int
    mutating func split() throws(NoiseError) -> (send: CipherState, receive: CipherState)
}

extension NoiseHandshake: HandshakeMessages {}

extension NNpsk0Handshake: HandshakeMessages {
    var nextOverhead: Int { NNpsk0Handshake.overhead }
}
