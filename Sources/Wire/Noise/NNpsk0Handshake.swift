// NNpsk0Handshake: Noise_NNpsk0_25519_ChaChaPoly_SHA256 (rev 34), both roles —
// protocol version 1's handshake. A collector keeps the responder side for
// one purpose: to tell an agent that still speaks version 1, in a message 2
// the agent can read, that it must be upgraded (docs/PROTOCOL.md). Nothing
// else is ever accepted over it.
//
//   NNpsk0:
//     -> psk, e        message 1, initiator → responder
//     <- e, ee         message 2, responder → initiator
//
// Written out for this one pattern instead of a generic token interpreter:
// the four steps below are the whole state machine, and each is a few
// lines that can be checked against §5.3 of the spec by eye. With a PSK,
// the `e` token also calls MixKey(e.public_key) (§9.2), so message 1's
// payload is already encrypted under a key derived from the PSK.
//
// Cost shape (why a responder is cheap to attack only with the PSK): the
// responder authenticates message 1 with HMACs and one ChaCha20-Poly1305
// open before it does any X25519 work; only then does it generate its
// ephemeral key and compute DH(e, re) while writing message 2.

/// One handshake in one role. A value type owned by one session; after an
/// error it refuses further use (`wrongState`), as §5.3 requires a failed
/// handshake to be abandoned.
public struct NNpsk0Handshake {
    public enum Role: Sendable { case initiator, responder }

    enum Step { case writeMessage1, readMessage1, writeMessage2, readMessage2, done, failed }

    public static let protocolName = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
    /// Public key and tag bytes around the payload in each handshake message.
    public static let overhead = Sodium.dhLength + CipherState.tagLength
    /// Noise's message limit (§3), which the 2-byte framing also imposes.
    public static let maxMessageLength = 65535

    /// InitializeSymmetric(protocol_name) is the same for every handshake.
    private static let initialState = SymmetricState(protocolName: Array(protocolName.utf8))

    public let role: Role
    private var symmetric: SymmetricState
    private var step: Step
    private let psk: Key32
    private var ephemeralSecret: Key32?
    private var ephemeralPublic = Key32()
    private var remoteEphemeral = Key32()

    /// `prologue` is mixed into the transcript (the session preamble);
    /// `psk` is the project's 32-byte secret.
    public init(role: Role, prologue: UnsafeRawBufferPointer, psk: Key32) {
        self.init(role: role, prologue: prologue, psk: psk, ephemeralSecret: nil)
    }

    /// Test-only seam: a fixed ephemeral secret reproduces published test
    /// vectors. Never use a fixed ephemeral outside tests (it destroys
    /// forward secrecy and, reused, confidentiality).
    init(role: Role, prologue: UnsafeRawBufferPointer, psk: Key32, ephemeralSecret: Key32?) {
        Sodium.ensureReady()
        self.role = role
        self.psk = psk
        self.ephemeralSecret = ephemeralSecret
        symmetric = NNpsk0Handshake.initialState
        symmetric.mixHash(prologue)
        step = role == .initiator ? .writeMessage1 : .readMessage1
    }

    public var isComplete: Bool { step == .done }

    /// The handshake hash h (§11.2), final once `isComplete`. Both sides
    /// hold the same value; it can bind higher-level data to this session.
    public var handshakeHash: Key32 { symmetric.h }

    /// Bytes `writeMessage` produces for a payload of `payloadLength`.
    public static func messageLength(payloadLength: Int) -> Int { payloadLength + overhead }

    /// Writes the next handshake message (1 for the initiator, 2 for the
    /// responder) carrying `payload` into `out`; returns its length.
    public mutating func writeMessage(payload: UnsafeRawBufferPointer,
                                      into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        let length = NNpsk0Handshake.messageLength(payloadLength: payload.count)
        guard step == .writeMessage1 || step == .writeMessage2 else { throw .wrongState }
        guard length <= NNpsk0Handshake.maxMessageLength else { throw .messageTooLarge(length) }
        guard out.count >= length else { throw .bufferTooSmall(needed: length, available: out.count) }
        let first = step == .writeMessage1
        step = .failed
        if first { symmetric.mixKeyAndHash(psk) }                 // psk
        writeEphemeral(into: out.baseAddress!)                       // e
        if !first {                                                  // ee
            guard let dh = Sodium.x25519(ephemeralSecret!, remoteEphemeral) else { throw .invalidPublicKey }
            symmetric.mixKey(dh)
        }
        let body = UnsafeMutableRawBufferPointer(rebasing: out[Sodium.dhLength..<length])
        _ = try symmetric.encryptAndHash(payload, into: body)
        step = first ? .readMessage2 : .done
        return length
    }

    /// Reads the peer's handshake message; writes its payload into `out`
    /// (which must not alias `message`) and returns the payload length.
    public mutating func readMessage(_ message: UnsafeRawBufferPointer,
                                     payloadInto out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        guard step == .readMessage1 || step == .readMessage2 else { throw .wrongState }
        guard message.count >= NNpsk0Handshake.overhead else { throw .messageTooShort(message.count) }
        guard message.count <= NNpsk0Handshake.maxMessageLength else { throw .messageTooLarge(message.count) }
        let payloadLength = message.count - NNpsk0Handshake.overhead
        guard out.count >= payloadLength else { throw .bufferTooSmall(needed: payloadLength, available: out.count) }
        let first = step == .readMessage1
        step = .failed
        if first { symmetric.mixKeyAndHash(psk) }                 // psk
        remoteEphemeral = Key32(copying: message.baseAddress!)       // e
        symmetric.mixHash(remoteEphemeral)
        symmetric.mixKey(remoteEphemeral)
        if !first {                                                  // ee
            guard let dh = Sodium.x25519(ephemeralSecret!, remoteEphemeral) else { throw .invalidPublicKey }
            symmetric.mixKey(dh)
        }
        let body = UnsafeRawBufferPointer(rebasing: message[Sodium.dhLength...])
        let n = try symmetric.decryptAndHash(body, into: out)
        step = first ? .writeMessage2 : .done
        return n
    }

    /// Split (§5.2): this side's sending and receiving ciphers. The
    /// initiator sends with the first key, the responder with the second.
    /// Wipes the handshake's own secrets.
    public mutating func split() throws(NoiseError) -> (send: CipherState, receive: CipherState) {
        guard step == .done else { throw .wrongState }
        let (c1, c2) = symmetric.split()
        symmetric.cipher.wipe()
        symmetric.ck.wipe()
        ephemeralSecret?.wipe()
        return role == .initiator ? (c1, c2) : (c2, c1)
    }

    /// The `e` token on the writing side: generate (unless injected), send
    /// the public key, MixHash it, and MixKey it (PSK handshakes, §9.2).
    private mutating func writeEphemeral(into out: UnsafeMutableRawPointer) {
        if ephemeralSecret == nil { ephemeralSecret = Key32.random() }
        ephemeralPublic = Sodium.x25519Public(ephemeralSecret!)
        ephemeralPublic.withUnsafeBytes { out.copyMemory(from: $0.baseAddress!, byteCount: Sodium.dhLength) }
        symmetric.mixHash(ephemeralPublic)
        symmetric.mixKey(ephemeralPublic)
    }
}

extension NNpsk0Handshake {
    /// Array conveniences for tests and the example generator.
    public init(role: Role, prologue: [UInt8], psk: Key32) {
        self = prologue.withUnsafeBytes { NNpsk0Handshake(role: role, prologue: $0, psk: psk) }
    }

    init(role: Role, prologue: [UInt8], psk: Key32, ephemeralSecret: Key32?) {
        self = prologue.withUnsafeBytes { NNpsk0Handshake(role: role, prologue: $0, psk: psk, ephemeralSecret: ephemeralSecret) }
    }

    public mutating func writeMessage(payload: [UInt8]) throws(NoiseError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: NNpsk0Handshake.messageLength(payloadLength: payload.count))
        var result: Result<Int, NoiseError> = .success(0)
        payload.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { o in
                do throws(NoiseError) { result = .success(try writeMessage(payload: p, into: o)) }
                catch { result = .failure(error) }
            }
        }
        _ = try result.get()
        return out
    }

    public mutating func readMessage(_ message: [UInt8]) throws(NoiseError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Swift.max(0, message.count - NNpsk0Handshake.overhead))
        var result: Result<Int, NoiseError> = .success(0)
        message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in
                do throws(NoiseError) { result = .success(try readMessage(m, payloadInto: o)) }
                catch { result = .failure(error) }
            }
        }
        let n = try result.get()
        out.removeLast(out.count - n)
        return out
    }
}
