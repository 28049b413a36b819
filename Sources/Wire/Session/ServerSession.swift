// ServerSession: the collector's side of one connection, without I/O.
//
//   feed(bytes) ─▶ preamble ─▶ .needKeys(project) ─▶ message 1 (kept)
//   owner, later: provideKeys([k…]) ─▶ message 1 read (es) ─▶ message 2
//                 (e, ee) in `outbound`       (or .closed: handshakeFailed)
//              or unknownProject() ─▶ .closed(.unknownProject)
//   feed(bytes) ─▶ message 3 (s, se, psk) tried under each key
//                 ─▶ .hello(Hello?)  (`peerStaticKey`, `keyIndex` set)
//   owner: accept(Welcome) ─▶ Welcome sealed as the first transport
//          message in `outbound` ─▶ established
//          or reject(ErrorRecord) ─▶ the Error sealed instead ─▶ closed
//   established: feed(bytes) ─▶ .record(...); send/flush ─▶ `outbound`
//
// Noise_XKpsk3 (see NoiseHandshake): the agent pins this side's static
// key, and proves its own static key and the project secret only in
// message 3. Nothing here reports an agent before message 3 is decrypted:
// a replayed message 1 earns a message 2 that only the original sender
// could answer, and is never seen by the owner beyond `.needKeys`.
//
// The keys are asked for with the preamble and must have arrived before
// message 1 is read, so an unknown project costs no X25519 work; message
// 1 waits in the frame decoder meanwhile, and `feed` takes no byte past it.
// They are kept until message 3, where each is tried with HMACs and one
// AEAD open (the X25519 work for message 3 is done once).
//
// An agent that still speaks protocol version 1 (NNpsk0) is answered in
// version 1: its message 1 is opened under the project's keys and message
// 2 carries an Error record telling it to upgrade; the session then closes
// with `.outdatedProtocol`. Nothing else is accepted over version 1.
//
// The owner reads from its socket into `feed`, writes `outbound.readable`
// to the socket and `consume`s what was written. Nothing here blocks,
// allocates per byte, or calls back after the call that caused the event
// returns.

import Reactor

/// One collector-side session. Owned by one connection on one thread.
public final class ServerSession {
    /// Returns the project's 32-byte secret, or nil for an unknown project:
    /// for owners that hold their keys at hand (tests, benchmarks). Called
    /// once per connection, inside `feed`, in place of `.needKeys`.
    public typealias KeyLookup = (_ projectID: String) -> Key32?

    /// What the Error record to a version-1 agent says.
    public static let upgradeMessage = "agent must be upgraded: this collector speaks protocol version 2 (XKpsk3) only"

    /// What only the handshake needs; dropped when it ends, so an
    /// established session keeps none of it.
    private final class Responder {
        let keyLookup: KeyLookup?
        let ephemeralSecret: Key32?
        /// The preamble: the Noise prologue.
        var prologue: [UInt8] = []
        /// `.needKeys` was reported and not answered yet.
        var waitingForKeys = false
        /// The owner's candidates, kept until message 3.
        var keys: [Key32]?
        /// `keys` came from `keyLookup` and are this session's own copy to
        /// wipe; an owner's list is the owner's to wipe.
        var keysAreOwn = false
        /// Message 1 is complete in the frame decoder and waits for keys.
        var message1 = false
        /// After message 1 was read and message 2 written: the handshake
        /// that reads message 3; then, until accept/reject, the one that
        /// splits into the transport ciphers.
        var handshake: NoiseHandshake?

        init(keyLookup: KeyLookup?, ephemeralSecret: Key32?) {
            self.keyLookup = keyLookup
            self.ephemeralSecret = ephemeralSecret
            prologue.reserveCapacity(Preamble.maxLength)
        }

        func wipeKeys() {
            guard var k = keys else { return }
            keys = nil
            if keysAreOwn { for i in k.indices { k[i].wipe() } }
        }
    }

    let channel: SecureChannel
    private var responder: Responder?
    private let staticKey: StaticKeyPair

    public private(set) var preamble: Preamble?
    /// The agent's Hello; nil before message 3 and for probes.
    public private(set) var hello: Hello?
    /// Which of the keys given to `provideKeys` message 3 was written with
    /// (0 with a `KeyLookup`); nil until message 3 authenticated.
    public private(set) var keyIndex: Int?
    /// The agent's static public key, proven by message 3; nil before.
    public private(set) var peerStaticKey: Key32?
    /// The agent's Error record, if it sent one before closing.
    public var peerError: ErrorRecord? { channel.peerError }
    /// The handshake hash, once established (binds data to this session).
    public private(set) var handshakeHash: Key32?

    /// A session that asks its owner for keys (`.needKeys`). `staticKey`
    /// is the collector installation's key pair.
    public init(staticKey: StaticKeyPair, limits: SessionLimits = SessionLimits()) {
        self.staticKey = staticKey
        channel = SecureChannel(limits: limits, isServer: true, state: .preamble)
        responder = Responder(keyLookup: nil, ephemeralSecret: nil)
    }

    /// A session that takes its one key from `keyLookup` when the preamble
    /// is read, and reports no `.needKeys`.
    public convenience init(staticKey: StaticKeyPair, limits: SessionLimits = SessionLimits(), keyLookup: @escaping KeyLookup) {
        self.init(staticKey: staticKey, limits: limits, keyLookup: keyLookup, ephemeralSecret: nil)
    }

    /// Test-only seam: a fixed ephemeral key makes the session's bytes
    /// reproducible (docs/PROTOCOL.md's example). Never use outside tests.
    init(staticKey: StaticKeyPair, limits: SessionLimits, keyLookup: KeyLookup?, ephemeralSecret: Key32?) {
        self.staticKey = staticKey
        channel = SecureChannel(limits: limits, isServer: true, state: .preamble)
        responder = Responder(keyLookup: keyLookup, ephemeralSecret: ephemeralSecret)
    }

    public var state: SessionState { channel.state }
    public var isProbe: Bool { channel.probe }
    public var closeReason: CloseReason? {
        if case .closed(let r) = channel.state { return r }
        return nil
    }
    public var counters: SessionCounters { channel.counters }
    public var limits: SessionLimits { channel.limits }
    /// Sealed bytes to write to the socket.
    public var outbound: ByteBuffer { channel.outbound }
    /// Strings the agent defined; resolves StringRefs in its records.
    public var strings: StringTable { channel.received }
    /// `.needKeys` was reported and neither `provideKeys` nor
    /// `unknownProject` has answered it yet.
    /// False once the session closed.
    public var isWaitingForKeys: Bool { responder?.waitingForKeys ?? false }
    /// Message 1 has arrived whole and waits for the keys: trying them
    /// (`provideKeys`) happens in that call, not in a later `feed`.
    public var hasMessage1: Bool { responder?.message1 ?? false }

    /// Processes bytes read from the connection, reporting events to
    /// `handler` in order; returns how many bytes it took. That is all of
    /// them, except while message 1 waits for keys: the rest is the
    /// owner's to keep and offer again once the Hello is answered. Records
    /// queued by the handler (and Pongs) are sealed into `outbound` before
    /// this returns.
    @discardableResult
    public func feed(_ input: UnsafeRawBufferPointer, _ handler: (SessionEvent) -> Void) -> Int {
        guard channel.isOpen else { return input.count }
        var used = 0
        if case .preamble = channel.state {
            used = takePreamble(input, handler)
        }
        feeding: while used < input.count && channel.isOpen {
            let rest = UnsafeRawBufferPointer(rebasing: input[used...])
            switch channel.state {
            case .handshake:
                if responder?.message1 == true { break feeding }
                used += channel.drain(rest, handler) { frame in
                    if responder?.handshake != nil { message3Arrived(frame, handler) } else { message1Arrived(handler) }
                    return false
                }
            case .established:
                channel.drain(rest, handler) { frame in channel.receiveTransport(frame, handler); return true }
                used = input.count
            case .awaitingAccept:
                // The agent sends nothing before the collector's answer.
                channel.fail(.unexpectedRecord, handler)
            default:
                used = input.count
            }
        }
        if !channel.isOpen {
            used = input.count
            // Closed during the handshake (a bad frame length): nothing of
            // it is needed any more, keys least of all.
            responder?.wipeKeys()
            responder = nil
        }
        channel.counters.bytesIn += UInt64(used)
        channel.flushAfterFeed(handler)
        return used
    }

    /// Array convenience: returns the events instead of calling back. Bytes
    /// the session does not take (message 1 waiting for keys) are dropped.
    public func feed(_ input: [UInt8]) -> [SessionEvent] {
        var events: [SessionEvent] = []
        input.withUnsafeBytes { _ = feed($0) { events.append($0) } }
        return events
    }

    /// The answer to `.needKeys`: the project's keys, in the order to try
    /// them. When message 1 is complete it is read now and message 2
    /// written into `outbound` (or `.closed(.handshakeFailed)` reported);
    /// otherwise when it completes, in `feed`. The keys are tried on
    /// message 3; an empty list fails the handshake there like a wrong key.
    /// The session keeps no key past message 3 (wiping the caller's key
    /// material is the caller's business).
    public func provideKeys(_ keys: [Key32], _ handler: (SessionEvent) -> Void) {
        guard let r = responder, r.waitingForKeys, channel.isOpen else { return }
        r.waitingForKeys = false
        r.keys = keys
        if r.message1 { answerMessage1(handler) }
    }

    /// The answer to `.needKeys` when the project does not exist: closes
    /// with `.unknownProject` (nothing is sent).
    public func unknownProject(_ handler: (SessionEvent) -> Void) {
        guard let r = responder, r.waitingForKeys, channel.isOpen else { return }
        r.waitingForKeys = false
        end(.unknownProject, handler)
    }

    private func takePreamble(_ input: UnsafeRawBufferPointer, _ handler: (SessionEvent) -> Void) -> Int {
        guard let r = responder else { return input.count }
        let room = Preamble.maxLength - r.prologue.count
        let take = min(room, input.count)
        r.prologue.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
        switch Preamble.parse(r.prologue) {
        case .needMore:
            return take
        case .invalid:
            end(.badPreamble, handler)
            return take
        case .complete(let p, let length):
            // Bytes past the preamble belong to message 1: give them back.
            let extra = r.prologue.count - length
            r.prologue.removeLast(extra)
            preamble = p
            channel.state = .handshake
            if let lookup = r.keyLookup {
                guard let psk = lookup(p.projectID) else {
                    end(.unknownProject, handler)
                    return take - extra
                }
                r.keys = [psk]
                r.keysAreOwn = true
            } else {
                r.waitingForKeys = true
                handler(.needKeys(project: p.projectID))
            }
            return take - extra
        }
    }

    /// Message 1 is complete in the frame decoder (where it stays until the
    /// next `consume`, which only comes after it was read).
    private func message1Arrived(_ handler: (SessionEvent) -> Void) {
        guard let r = responder else { return }
        r.message1 = true
        channel.counters.messagesIn += 1
        if r.keys != nil { answerMessage1(handler) }
    }

    /// Reads message 1 (es) and writes message 2 (e, ee). Message 1's
    /// payload holds nothing this version reads (unknown records only).
    private func answerMessage1(_ handler: (SessionEvent) -> Void) {
        guard let r = responder, r.keys != nil else { return }
        r.message1 = false
        if preamble?.isLegacy == true { return refuseLegacy(handler) }
        let frame = channel.frames.frame
        var hs = NoiseHandshake(role: .responder, prologue: r.prologue, psk: Key32(), staticKey: staticKey,
                                remoteStatic: Key32(), ephemeralSecret: r.ephemeralSecret)
        guard let payload = channel.readHandshake(&hs, frame: frame) else { return end(.handshakeFailed, handler) }
        do throws(WireError) {
            for record in try Record.decodeAll(payload, limits: channel.limits.wire) {
                guard case .unknown = record else { throw .malformed(field: "message1.payload") }
                channel.counters.unknownRecords += 1
            }
        } catch {
            return end(.badHandshakePayload, handler)
        }
        do throws(SessionError) {
            try channel.writeHandshake(&hs, payload: [])
        } catch {
            return end(.handshakeFailed, handler)
        }
        // The prologue is absorbed into the handshake hash: a session that
        // lives for days need not keep its copy.
        r.prologue = []
        r.handshake = hs
    }

    /// Message 3: the agent's static key, then the project keys in turn.
    private func message3Arrived(_ frame: UnsafeMutableRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        guard let r = responder, var hs = r.handshake, let keys = r.keys else { return }
        channel.counters.messagesIn += 1
        r.handshake = nil
        defer { r.wipeKeys() }
        guard frame.count >= hs.nextOverhead else { return end(.handshakeFailed, handler) }
        var payload = [UInt8](repeating: 0, count: frame.count - hs.nextOverhead)
        let found: (keyIndex: Int, length: Int)? = payload.withUnsafeMutableBytes { out in
            do throws(NoiseError) {
                return try hs.readMessage3(UnsafeRawBufferPointer(frame), psks: keys, payloadInto: out)
            } catch { return nil }
        }
        guard let found else { return end(.handshakeFailed, handler) }
        keyIndex = found.keyIndex
        peerStaticKey = hs.remoteStatic
        readHello(payload, hs, handler)
    }

    /// A version-1 agent: open its NNpsk0 message 1 under the project's
    /// keys and answer, in a message 2 it can read, that it must upgrade.
    /// Without a fitting key it learns nothing (as before).
    private func refuseLegacy(_ handler: (SessionEvent) -> Void) {
        guard let r = responder, let keys = r.keys else { return }
        let frame = channel.frames.frame
        for key in keys {
            var hs = r.prologue.withUnsafeBytes {
                NNpsk0Handshake(role: .responder, prologue: $0, psk: key, ephemeralSecret: r.ephemeralSecret)
            }
            guard channel.readHandshake(&hs, frame: frame) != nil else { continue }
            let error = ErrorRecord(code: .protocolViolation, message: ServerSession.upgradeMessage)
            try? channel.writeHandshake(&hs, payload: Record.error(error).encoded)
            return end(.outdatedProtocol, handler)
        }
        end(.handshakeFailed, handler)
    }

    /// Message 3 authenticated: its payload is empty (a probe) or exactly
    /// one Hello, then only record types this version does not know.
    private func readHello(_ payload: [UInt8], _ hs: NoiseHandshake, _ handler: (SessionEvent) -> Void) {
        var found: Hello?
        do throws(WireError) {
            for record in try Record.decodeAll(payload, limits: channel.limits.wire) {
                switch record {
                case .hello(let h) where found == nil: found = h
                case .unknown: channel.counters.unknownRecords += 1
                default: throw .malformed(field: "message3.payload")
                }
            }
        } catch {
            end(.badHandshakePayload, handler)
            return
        }
        if !payload.isEmpty && found == nil {
            end(.badHandshakePayload, handler)
            return
        }
        responder?.handshake = hs
        hello = found
        channel.probe = found == nil
        channel.state = .awaitingAccept
        handler(.hello(found))
    }

    /// Closes during the handshake for a reason of the session's own.
    private func end(_ reason: CloseReason, _ handler: (SessionEvent) -> Void) {
        responder?.wipeKeys()
        responder = nil
        channel.state = .closed(reason)
        handler(.closed(reason))
    }

    /// Completes the handshake: seals `welcome` as the first transport
    /// message into `outbound`. For a probe, `welcome` may carry zeros.
    public func accept(_ welcome: Welcome) throws(SessionError) {
        guard case .awaitingAccept = channel.state, var hs = responder?.handshake else {
            throw channel.isOpen ? .notEstablished : .closed
        }
        handshakeHash = hs.handshakeHash
        channel.installTransport(&hs)
        responder = nil
        try channel.sealAnswer(.welcome(welcome))
        channel.state = .established
        if !channel.probe {
            var max = channel.limits.wire.maxStringTableBytes
            if welcome.limits.maxStringTableBytes > 0 { max = Swift.min(max, Int(welcome.limits.maxStringTableBytes)) }
            channel.received = StringTable(maxID: channel.limits.wire.maxStringID, maxBytes: max)
        }
    }

    /// Refuses the agent: the first transport message carries `error`, and
    /// the session closes with `.rejected`. Write `outbound`, then close
    /// the connection.
    public func reject(_ error: ErrorRecord) {
        guard case .awaitingAccept = channel.state, var hs = responder?.handshake else { return }
        channel.installTransport(&hs)
        try? channel.sealAnswer(.error(error))
        responder = nil
        channel.state = .closed(.rejected)
    }

    /// Shrinks buffers grown by a burst; call on idle sessions.
    public func releaseMemory() { compactBuffers(threshold: 512) }
    /// Frees buffer memory above `threshold` bytes that no message is using
    /// (see `SecureChannel.compact`); call between reads, after writing
    /// `outbound` out. Cheap when there is nothing to free. A message 1
    /// waiting for keys is kept.
    public func compactBuffers(threshold: Int = 4096) {
        guard responder?.message1 != true else { return }
        channel.compact(threshold: threshold)
    }

    /// Queues a record for the next transport message.
    public func send(_ record: Record) throws(SessionError) { try channel.send(record) }

    /// Seals queued records into `outbound`.
    public func flush() throws(SessionError) { try channel.flush() }

    /// Closes the session for a reason decided by the owner (timeout, EOF,
    /// shutdown). With `error`, a final Error record is sealed into
    /// `outbound` first (established sessions only).
    public func close(_ reason: CloseReason, error: ErrorRecord? = nil) {
        guard channel.isOpen else { return }
        if let error, case .established = channel.state {
            if (try? channel.send(.error(error))) != nil { try? channel.flush() }
        }
        responder?.wipeKeys()
        responder = nil
        channel.state = .closed(reason)
    }
}
