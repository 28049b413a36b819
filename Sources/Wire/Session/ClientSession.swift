// ClientSession: the agent's (or load generator's) side of one connection,
// without I/O.
//
//   start() ─▶ preamble + message 1 (e, es) in `outbound`
//   feed(bytes) ─▶ message 2 ─▶ message 3 (s, se, psk; the Hello, or empty
//                  for a probe) in `outbound`
//   feed(bytes) ─▶ first transport message ─▶ .welcome(Welcome) ─▶ established
//                                           or Error ─▶ .closed(.rejected)
//   established: send/flush ─▶ `outbound`; feed(bytes) ─▶ .record(...)
//
// Message 2 can only be written by the holder of the collector's static
// secret key (`collectorKey`, pinned from the access key): an impostor's
// message 2 fails to decrypt and the session closes with
// `.handshakeFailed` before the agent has said who it is.

import Reactor

/// One agent-side session. Owned by one connection on one thread.
public final class ClientSession {
    let channel: SecureChannel
    private var handshake: NoiseHandshake
    public let preamble: Preamble
    /// Sent in message 3; nil opens a probe session (Ping only).
    public let hello: Hello?
    /// Message 3 is written: the next frame is the collector's answer.
    private var awaitingAnswer = false
    public private(set) var welcome: Welcome?
    /// The collector's Error record (rejection or closing notice).
    public var peerError: ErrorRecord? { channel.peerError }
    public private(set) var handshakeHash: Key32?
    /// This side's static public key (the agent's identity).
    public let identityKey: Key32

    /// `identity` is the agent's own static key pair (`StaticKeyFile`);
    /// load generators and tests pass a fresh one per simulated agent.
    public convenience init(accessKey: AccessKey, identity: StaticKeyPair, hello: Hello?, limits: SessionLimits = SessionLimits()) {
        self.init(preamble: Preamble(projectID: accessKey.projectID)!, psk: accessKey.secret, collectorKey: accessKey.collectorKey,
                  identity: identity, hello: hello, limits: limits)
    }

    public convenience init(preamble: Preamble, psk: Key32, collectorKey: Key32, identity: StaticKeyPair, hello: Hello?,
                            limits: SessionLimits = SessionLimits()) {
        self.init(preamble: preamble, psk: psk, collectorKey: collectorKey, identity: identity, hello: hello, limits: limits, ephemeralSecret: nil)
    }

    /// Test-only seam: a fixed ephemeral key makes the session's bytes
    /// reproducible (docs/PROTOCOL.md's example). Never use outside tests.
    init(preamble: Preamble, psk: Key32, collectorKey: Key32, identity: StaticKeyPair, hello: Hello?, limits: SessionLimits,
         ephemeralSecret: Key32?) {
        self.preamble = preamble
        self.hello = hello
        identityKey = identity.publicKey
        channel = SecureChannel(limits: limits, isServer: false, state: .idle)
        channel.probe = hello == nil
        handshake = NoiseHandshake(role: .initiator, prologue: preamble.bytes, psk: psk, staticKey: identity,
                                   remoteStatic: collectorKey, ephemeralSecret: ephemeralSecret)
    }

    public var state: SessionState { channel.state }
    public var isProbe: Bool { channel.probe }
    public var closeReason: CloseReason? {
        if case .closed(let r) = channel.state { return r }
        return nil
    }
    public var counters: SessionCounters { channel.counters }
    public var limits: SessionLimits { channel.limits }
    public var outbound: ByteBuffer { channel.outbound }
    /// Strings the collector defined (unused by current record types).
    public var strings: StringTable { channel.received }
    /// Strings this side has defined so far.
    public var internedStrings: Int { channel.interner.count }
    /// The bounds of this side's string table (narrowed by the Welcome): a
    /// batch must not need more distinct names than these.
    public var stringTableLimits: (maxID: UInt32, maxBytes: Int) { (channel.interner.maxID, channel.interner.maxBytes) }

    /// Writes the preamble and message 1 (empty payload) into `outbound`.
    public func start() throws(SessionError) {
        guard case .idle = channel.state else { throw channel.isOpen ? .notEstablished : .closed }
        let p = preamble.bytes
        guard channel.outbound.write(p) else { throw .outboundFull }
        channel.counters.bytesOut += UInt64(p.count)
        try channel.writeHandshake(&handshake, payload: [])
        channel.state = .handshake
    }

    /// Processes bytes read from the connection (see ServerSession.feed).
    public func feed(_ input: UnsafeRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        guard channel.isOpen else { return }
        channel.counters.bytesIn += UInt64(input.count)
        var rest = input
        while !rest.isEmpty && channel.isOpen {
            switch channel.state {
            case .handshake:
                let used = channel.drain(rest, handler) { frame in
                    if awaitingAnswer { readAnswer(frame, handler); return false }
                    readMessage2(frame, handler)
                    return true
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[used...])
            case .established:
                channel.drain(rest, handler) { frame in channel.receiveTransport(frame, handler); return true }
                rest = UnsafeRawBufferPointer(start: nil, count: 0)
            default:
                // Bytes before start(): the collector speaks first only after message 1.
                channel.fail(.unexpectedRecord, handler)
            }
        }
        channel.flushAfterFeed(handler)
    }

    public func feed(_ input: [UInt8]) -> [SessionEvent] {
        var events: [SessionEvent] = []
        input.withUnsafeBytes { feed($0) { events.append($0) } }
        return events
    }

    /// Message 2 (e, ee): proves the collector holds its static key.
    /// Answered at once with message 3, which carries the Hello.
    private func readMessage2(_ frame: UnsafeMutableRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        channel.counters.messagesIn += 1
        guard let payload = channel.readHandshake(&handshake, frame: frame) else {
            channel.state = .closed(.handshakeFailed)
            handler(.closed(.handshakeFailed))
            return
        }
        // Message 2 carries nothing this version reads; a later one may add
        // records, which are skipped like unknown records anywhere.
        do throws(WireError) {
            for record in try Record.decodeAll(payload, limits: channel.limits.wire) {
                guard case .unknown = record else { throw .malformed(field: "message2.payload") }
                channel.counters.unknownRecords += 1
            }
        } catch {
            channel.state = .closed(.badHandshakePayload)
            handler(.closed(.badHandshakePayload))
            return
        }
        do throws(SessionError) {
            try channel.writeHandshake(&handshake, payload: hello.map { Record.hello($0).encoded } ?? [])
        } catch {
            channel.state = .closed(.outboundOverflow)
            handler(.closed(.outboundOverflow))
            return
        }
        handshakeHash = handshake.handshakeHash
        channel.installTransport(&handshake)
        awaitingAnswer = true
    }

    /// The first transport message: the Welcome, or the Error that refuses
    /// this agent (then the session is closed).
    private func readAnswer(_ frame: UnsafeMutableRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        channel.counters.messagesIn += 1
        guard let n = channel.openTransport(frame) else {
            channel.state = .closed(.decryptFailed)
            handler(.closed(.decryptFailed))
            return
        }
        var answer: Record?
        do throws(WireError) {
            for record in try Record.decodeAll(Array(UnsafeRawBufferPointer(rebasing: frame[0..<n])), limits: channel.limits.wire) {
                switch record {
                case .welcome, .error:
                    guard answer == nil else { throw .malformed(field: "answer.payload") }
                    answer = record
                case .unknown: channel.counters.unknownRecords += 1
                default: throw .malformed(field: "answer.payload")
                }
            }
        } catch {
            channel.state = .closed(.badHandshakePayload)
            handler(.closed(.badHandshakePayload))
            return
        }
        awaitingAnswer = false
        switch answer {
        case .welcome(let w):
            welcome = w
            channel.state = .established
            channel.interner.restrict(maxID: w.limits.maxStringID, maxBytes: Int(w.limits.maxStringTableBytes))
            if w.limits.maxRecordLength > 0 {
                channel.sendMaxRecordLength = min(channel.sendMaxRecordLength, Int(w.limits.maxRecordLength))
            }
            if w.limits.maxBatchItems > 0 {
                channel.sendMaxBatchItems = min(channel.sendMaxBatchItems, Int(w.limits.maxBatchItems))
            }
            handler(.welcome(w))
        case .error(let e):
            channel.peerError = e
            channel.state = .closed(.rejected)
            handler(.closed(.rejected))
        default:
            channel.state = .closed(.badHandshakePayload)
            handler(.closed(.badHandshakePayload))
        }
    }

    /// Shrinks buffers grown by a burst; call on idle sessions.
    public func releaseMemory() { compactBuffers(threshold: 512) }
    /// Frees buffer memory above `threshold` bytes that no message is using
    /// (see `SecureChannel.compact`); call between reads, after writing
    /// `outbound` out. Cheap when there is nothing to free.
    public func compactBuffers(threshold: Int = 4096) { channel.compact(threshold: threshold) }

    /// Queues a record for the next transport message.
    public func send(_ record: Record) throws(SessionError) { try channel.send(record) }

    /// Seals queued records into `outbound`.
    public func flush() throws(SessionError) { try channel.flush() }

    /// The StringRef for `text` ("" is 0), queueing its StringDef first if
    /// this is its first use in the session. Throws `.stringTableFull`
    /// when the table's bounds are reached: call `clearStrings()` between
    /// batches (never while building one: earlier ids would be redefined).
    public func stringRef(_ text: String) throws(SessionError) -> StringRef { try channel.stringRef(text) }

    /// Queues StringClear and forgets every id this side defined.
    public func clearStrings() throws(SessionError) { try channel.clearStrings() }

    /// Closes for a reason decided by the owner (see ServerSession.close).
    public func close(_ reason: CloseReason, error: ErrorRecord? = nil) {
        guard channel.isOpen else { return }
        if let error, case .established = channel.state {
            if (try? channel.send(.error(error))) != nil { try? channel.flush() }
        }
        channel.state = .closed(reason)
    }
}
