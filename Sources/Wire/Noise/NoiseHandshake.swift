// NoiseHandshake: Noise_XKpsk3_25519_ChaChaPoly_SHA256 (rev 34), both roles.
//
//   XKpsk3:
//     <- s                      the agent knows the collector's static key
//     ...
//     -> e, es                  message 1, initiator → responder
//     <- e, ee                  message 2, responder → initiator
//     -> s, se, psk             message 3, initiator → responder
//
// Written out for this one pattern instead of a generic token interpreter:
// the six steps below are the whole state machine, each a few lines that can
// be checked against §7.5 and §9 of the spec by eye. With a PSK, every `e`
// token also calls MixKey(e.public_key) (§9.2).
//
// Why this pattern (docs/PROTOCOL.md has the long form): `es` in message 1
// means only the holder of the collector's static secret can answer, so an
// agent talks to the real collector or to nobody; the agent's static key
// travels encrypted in message 3 (identity hiding against the network);
// the project's secret enters last (`psk3`), so the responder learns which
// project key, and which agent, only from a message that proves both — and
// a replayed message 1 yields a message 2 nobody can finish.
//
// Cost shape: the responder does one X25519 for message 1 (es), one key
// generation and one X25519 for message 2 (ee), and one X25519 for message
// 3 (se); a project key is then tried with HMACs and one AEAD open each.

/// One XKpsk3 handshake in one role. A value type owned by one session;
/// after an error it refuses further use (`wrongState`), as §5.3 requires a
/// failed handshake to be abandoned.
public struct NoiseHandshake {
    public enum Role: Sendable { case initiator, responder }

    /// The next message, whichever side writes it.
    enum Step { case message1, message2, message3, done, failed }

    public static let protocolName = "Noise_XKpsk3_25519_ChaChaPoly_SHA256"
    /// Bytes around the payload of messages 1 and 2 (an ephemeral key and a tag).
    public static let shortOverhead = Sodium.dhLength + CipherState.tagLength
    /// Bytes around the payload of message 3 (the encrypted static key, two tags).
    public static let message3Overhead = Sodium.dhLength + 2 * CipherState.tagLength
    /// The smallest handshake message of this pattern.
    public static let minMessageLength = shortOverhead
    /// Noise's message limit (§3), which the 2-byte framing also imposes.
    public static let maxMessageLength = 65535

    /// InitializeSymmetric(protocol_name) is the same for every handshake.
    private static let initialState = SymmetricState(protocolName: Array(protocolName.utf8))

    public let role: Role
    private var symmetric: SymmetricState
    private var step = Step.message1
    /// The initiator's PSK; the responder gets its candidates with message 3.
    private var psk: Key32
    /// The agent's key pair (initiator) or the collector's (responder).
    private let localStatic: StaticKeyPair
    /// The initiator's pinned collector key; the responder's agent key,
    /// known once message 3 is read.
    public private(set) var remoteStatic: Key32
    private var ephemeralSecret: Key32?
    private var ephemeralPublic = Key32()
    private var remoteEphemeral = Key32()

    /// The agent's side: `staticKey` is its own key pair, `collectorKey`
    /// the pinned collector public key, `psk` the project's secret.
    public init(initiatorPrologue prologue: UnsafeRawBufferPointer, psk: Key32, staticKey: StaticKeyPair, collectorKey: Key32) {
        self.init(role: .initiator, prologue: prologue, psk: psk, staticKey: staticKey, remoteStatic: collectorKey, ephemeralSecret: nil)
    }

    /// The collector's side: `staticKey` is the collector's key pair.
    public init(responderPrologue prologue: UnsafeRawBufferPointer, staticKey: StaticKeyPair) {
        self.init(role: .responder, prologue: prologue, psk: Key32(), staticKey: staticKey, remoteStatic: Key32(), ephemeralSecret: nil)
    }

    /// Test-only seam: a fixed ephemeral secret reproduces published test
    /// vectors. Never use a fixed ephemeral outside tests (it destroys
    /// forward secrecy and, reused, confidentiality).
    init(role: Role, prologue: UnsafeRawBufferPointer, psk: Key32, staticKey: StaticKeyPair, remoteStatic: Key32, ephemeralSecret: Key32?) {
        Sodium.ensureReady()
        self.role = role
        self.psk = psk
        self.localStatic = staticKey
        self.remoteStatic = remoteStatic
        self.ephemeralSecret = ephemeralSecret
        symmetric = NoiseHandshake.initialState
        symmetric.mixHash(prologue)
        // The pre-message `<- s`: both sides hash the responder's static key.
        symmetric.mixHash(role == .initiator ? remoteStatic : staticKey.publicKey)
    }

    public var isComplete: Bool { step == .done }

    /// The handshake hash h (§11.2), final once `isComplete`.
    public var handshakeHash: Key32 { symmetric.h }

    /// Overhead of the next message (to write or to read).
    public var nextOverhead: Int { step == .message3 ? NoiseHandshake.message3Overhead : NoiseHandshake.shortOverhead }

    /// Bytes the next `writeMessage` produces for a payload of `payloadLength`.
    public func messageLength(payloadLength: Int) -> Int { payloadLength + nextOverhead }

    private var writes: Bool {
        switch step {
        case .message1, .message3: return role == .initiator
        case .message2: return role == .responder
        case .done, .failed: return false
        }
    }

    /// Writes the next message (1 and 3 for the initiator, 2 for the
    /// responder) carrying `payload` into `out`; returns its length.
    public mutating func writeMessage(payload: UnsafeRawBufferPointer,
                                      into out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        let length = messageLength(payloadLength: payload.count)
        guard writes else { throw .wrongState }
        guard length <= NoiseHandshake.maxMessageLength else { throw .messageTooLarge(length) }
        guard out.count >= length else { throw .bufferTooSmall(needed: length, available: out.count) }
        let current = step
        step = .failed
        var offset = 0
        switch current {
        case .message1:
            writeEphemeral(into: out.baseAddress!)                                    // e
            offset = Sodium.dhLength
            try mixDH(ephemeralSecret!, remoteStatic)                                 // es
        case .message2:
            writeEphemeral(into: out.baseAddress!)                                    // e
            offset = Sodium.dhLength
            try mixDH(ephemeralSecret!, remoteEphemeral)                              // ee
        default:
            let sOut = UnsafeMutableRawBufferPointer(rebasing: out[0..<(Sodium.dhLength + CipherState.tagLength)])
            offset = try localStatic.publicKey.withUnsafeBytes { (p) throws(NoiseError) -> Int in // s
                try symmetric.encryptAndHash(p, into: sOut)
            }
            try mixDH(localStatic.secret, remoteEphemeral)                            // se
            symmetric.mixKeyAndHash(psk)                                              // psk
        }
        let body = UnsafeMutableRawBufferPointer(rebasing: out[offset..<length])
        _ = try symmetric.encryptAndHash(payload, into: body)
        step = current == .message1 ? .message2 : (current == .message2 ? .message3 : .done)
        return length
    }

    /// Reads message 1 (responder) or message 2 (initiator); writes its
    /// payload into `out` (which must not alias `message`) and returns the
    /// payload length. Message 3 is read with `readMessage3`.
    public mutating func readMessage(_ message: UnsafeRawBufferPointer,
                                     payloadInto out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        if step == .message3 && role == .responder {
            return try readMessage3(message, psks: [psk], payloadInto: out).length
        }
        guard (step == .message1 && role == .responder) || (step == .message2 && role == .initiator) else { throw .wrongState }
        try checkLength(message, out: out)
        let current = step
        step = .failed
        remoteEphemeral = Key32(copying: message.baseAddress!)                        // e
        guard remoteEphemeral != Key32() else { throw .invalidPublicKey }
        symmetric.mixHash(remoteEphemeral)
        symmetric.mixKey(remoteEphemeral)
        if current == .message1 {
            try mixDH(localStatic.secret, remoteEphemeral)                            // es
        } else {
            try mixDH(ephemeralSecret!, remoteEphemeral)                              // ee
        }
        let body = UnsafeRawBufferPointer(rebasing: message[Sodium.dhLength...])
        let n = try symmetric.decryptAndHash(body, into: out)
        step = current == .message1 ? .message2 : .message3
        return n
    }

    /// Reads message 3 (responder): the agent's static key (`remoteStatic`
    /// afterwards), then its payload under each of `psks` in turn until one
    /// opens it. Returns which key did and the payload length. Trying a key
    /// costs HMACs and one AEAD open; the X25519 work is done once.
    public mutating func readMessage3(_ message: UnsafeRawBufferPointer, psks: [Key32],
                                      payloadInto out: UnsafeMutableRawBufferPointer) throws(NoiseError) -> (keyIndex: Int, length: Int) {
        guard step == .message3 && role == .responder else { throw .wrongState }
        try checkLength(message, out: out)
        step = .failed
        let sLength = Sodium.dhLength + CipherState.tagLength
        var staticKey = Key32()
        let n = try staticKey.withUnsafeMutableBytes { (k) throws(NoiseError) -> Int in         // s
            try symmetric.decryptAndHash(UnsafeRawBufferPointer(rebasing: message[0..<sLength]), into: k)
        }
        guard n == Sodium.dhLength else { throw .decryptFailed }
        remoteStatic = staticKey
        try mixDH(ephemeralSecret!, remoteStatic)                                     // se
        let body = UnsafeRawBufferPointer(rebasing: message[sLength...])
        let afterSE = symmetric
        for i in psks.indices {
            var trial = afterSE
            trial.mixKeyAndHash(psks[i])                                              // psk
            do throws(NoiseError) {
                let length = try trial.decryptAndHash(body, into: out)
                symmetric = trial
                step = .done
                return (i, length)
            } catch {
                trial.wipe()
                continue
            }
        }
        throw .decryptFailed
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
        psk.wipe()
        return role == .initiator ? (c1, c2) : (c2, c1)
    }

    private func checkLength(_ message: UnsafeRawBufferPointer, out: UnsafeMutableRawBufferPointer) throws(NoiseError) {
        guard message.count >= nextOverhead else { throw .messageTooShort(message.count) }
        guard message.count <= NoiseHandshake.maxMessageLength else { throw .messageTooLarge(message.count) }
        let payloadLength = message.count - nextOverhead
        guard out.count >= payloadLength else { throw .bufferTooSmall(needed: payloadLength, available: out.count) }
    }

    /// MixKey(DH(secret, public)); an all-zero result (a low-order point)
    /// fails the handshake.
    private mutating func mixDH(_ secret: Key32, _ peer: Key32) throws(NoiseError) {
        guard var dh = Sodium.x25519(secret, peer) else { throw .invalidPublicKey }
        symmetric.mixKey(dh)
        dh.wipe()
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

extension NoiseHandshake {
    /// Array conveniences for tests and the example generator.
    init(role: Role, prologue: [UInt8], psk: Key32, staticKey: StaticKeyPair, remoteStatic: Key32, ephemeralSecret: Key32?) {
        self = prologue.withUnsafeBytes {
            NoiseHandshake(role: role, prologue: $0, psk: psk, staticKey: staticKey, remoteStatic: remoteStatic, ephemeralSecret: ephemeralSecret)
        }
    }

    public init(initiatorPrologue prologue: [UInt8], psk: Key32, staticKey: StaticKeyPair, collectorKey: Key32) {
        self = prologue.withUnsafeBytes { NoiseHandshake(initiatorPrologue: $0, psk: psk, staticKey: staticKey, collectorKey: collectorKey) }
    }

    public init(responderPrologue prologue: [UInt8], staticKey: StaticKeyPair) {
        self = prologue.withUnsafeBytes { NoiseHandshake(responderPrologue: $0, staticKey: staticKey) }
    }

    public mutating func writeMessage(payload: [UInt8]) throws(NoiseError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: messageLength(payloadLength: payload.count))
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
        try readMessage3(message, psks: nil).payload
    }

    /// Reads any message; for the responder's message 3, `psks` (or the
    /// PSK given at init when nil) are tried.
    public mutating func readMessage3(_ message: [UInt8], psks: [Key32]?) throws(NoiseError) -> (keyIndex: Int, payload: [UInt8]) {
        var out = [UInt8](repeating: 0, count: Swift.max(0, message.count - nextOverhead))
        var result: Result<(Int, Int), NoiseError> = .success((0, 0))
        let third = step == .message3 && role == .responder
        message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in
                do throws(NoiseError) {
                    if third {
                        result = .success(try readMessage3(m, psks: psks ?? [psk], payloadInto: o))
                    } else {
                        result = .success((0, try readMessage(m, payloadInto: o)))
                    }
                } catch { result = .failure(error) }
            }
        }
        let (index, n) = try result.get()
        out.removeLast(out.count - n)
        return (index, out)
    }
}
