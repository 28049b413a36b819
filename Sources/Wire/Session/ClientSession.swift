// ClientSession: the agent's (or load generator's) side of one connection,
// without I/O.
//
//   start() ─▶ preamble + message 1 (Hello, or empty for a probe) in `outbound`
//   feed(bytes) ─▶ message 2 ─▶ .welcome(Welcome) ─▶ established
//                            or ─▶ Error payload ─▶ .closed(.rejected)
//   established: send/flush ─▶ `outbound`; feed(bytes) ─▶ .record(...)

import Reactor

/// One agent-side session. Owned by one connection on one thread.
public final class ClientSession {
    let channel: SecureChannel
    private var handshake: NoiseHandshake
    public let preamble: Preamble
    /// Sent in message 1; nil opens a probe session (Ping only).
    public let hello: Hello?
    public private(set) var welcome: Welcome?
    /// The collector's Error record (rejection or closing notice).
    public var peerError: ErrorRecord? { channel.peerError }
    public private(set) var handshakeHash: Key32?

    public convenience init(accessKey: AccessKey, hello: Hello?, limits: SessionLimits = SessionLimits()) {
        self.init(preamble: Preamble(projectID: accessKey.projectID)!, psk: accessKey.secret, hello: hello, limits: limits)
    }

    public convenience init(preamble: Preamble, psk: Key32, hello: Hello?, limits: SessionLimits = SessionLimits()) {
        self.init(preamble: preamble, psk: psk, hello: hello, limits: limits, ephemeralSecret: nil)
    }

    /// Test-only seam: a fixed ephemeral key makes the session's bytes
    /// reproducible (docs/PROTOCOL.md's example). Never use outside tests.
    init(preamble: Preamble, psk: Key32, hello: Hello?, limits: SessionLimits, ephemeralSecret: Key32?) {
        self.preamble = preamble
        self.hello = hello
        channel = SecureChannel(limits: limits, isServer: false, state: .idle)
        channel.probe = hello == nil
        handshake = NoiseHandshake(role: .initiator, prologue: preamble.bytes, psk: psk, ephemeralSecret: ephemeralSecret)
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

    /// Writes the preamble and message 1 into `outbound`.
    public func start() throws(SessionError) {
        guard case .idle = channel.state else { throw channel.isOpen ? .notEstablished : .closed }
        let payload = hello.map { Record.hello($0).encoded } ?? []
        let p = preamble.bytes
        guard channel.outbound.write(p) else { throw .outboundFull }
        channel.counters.bytesOut += UInt64(p.count)
        try channel.writeHandshake(&handshake, payload: payload)
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
                let used = channel.drain(rest, handler) { frame in readMessage2(frame, handler); return false }
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

    private func readMessage2(_ frame: UnsafeMutableRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        channel.counters.messagesIn += 1
        guard let payload = channel.readHandshake(&handshake, frame: frame) else {
            channel.state = .closed(.handshakeFailed)
            handler(.closed(.handshakeFailed))
            return
        }
        var answer: Record?
        do throws(WireError) {
            for record in try Record.decodeAll(payload, limits: channel.limits.wire) {
                switch record {
                case .welcome, .error:
                    guard answer == nil else { throw .malformed(field: "message2.payload") }
                    answer = record
                case .unknown: channel.counters.unknownRecords += 1
                default: throw .malformed(field: "message2.payload")
                }
            }
        } catch {
            channel.state = .closed(.badHandshakePayload)
            handler(.closed(.badHandshakePayload))
            return
        }
        switch answer {
        case .welcome(let w):
            welcome = w
            handshakeHash = handshake.handshakeHash
            channel.establish(&handshake)
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
