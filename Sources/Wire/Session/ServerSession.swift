// ServerSession: the collector's side of one connection, without I/O.
//
//   feed(bytes) ─▶ preamble ─▶ key lookup ─▶ message 1 ─▶ .hello(Hello?)
//   owner: accept(Welcome) ─▶ message 2 in `outbound` ─▶ established
//          or reject(ErrorRecord) ─▶ message 2 carrying the Error ─▶ closed
//   established: feed(bytes) ─▶ .record(...); send/flush ─▶ `outbound`
//
// The owner reads from its socket into `feed`, writes `outbound.readable`
// to the socket and `consume`s what was written. Nothing here blocks,
// allocates per byte, or calls back after `feed` returns.

import Reactor

/// One collector-side session. Owned by one connection on one thread.
public final class ServerSession {
    /// Returns the project's 32-byte secret, or nil for an unknown project.
    /// Called once per connection, inside `feed`.
    public typealias KeyLookup = (_ projectID: String) -> Key32?

    let channel: SecureChannel
    private let keyLookup: KeyLookup
    private var preambleBytes: [UInt8] = []
    private var handshake: NoiseHandshake?

    public private(set) var preamble: Preamble?
    /// The agent's Hello; nil before message 1 and for probes.
    public private(set) var hello: Hello?
    /// The agent's Error record, if it sent one before closing.
    public var peerError: ErrorRecord? { channel.peerError }
    /// The handshake hash, once established (binds data to this session).
    public private(set) var handshakeHash: Key32?

    public convenience init(limits: SessionLimits = SessionLimits(), keyLookup: @escaping KeyLookup) {
        self.init(limits: limits, keyLookup: keyLookup, ephemeralSecret: nil)
    }

    /// Test-only seam: a fixed ephemeral key makes the session's bytes
    /// reproducible (docs/PROTOCOL.md's example). Never use outside tests.
    init(limits: SessionLimits, keyLookup: @escaping KeyLookup, ephemeralSecret: Key32?) {
        channel = SecureChannel(limits: limits, isServer: true, state: .preamble)
        self.keyLookup = keyLookup
        self.ephemeralSecret = ephemeralSecret
        preambleBytes.reserveCapacity(Preamble.maxLength)
    }

    private let ephemeralSecret: Key32?

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

    /// Processes bytes read from the connection, reporting events to
    /// `handler` in order. Records queued by the handler (and Pongs) are
    /// sealed into `outbound` before this returns.
    public func feed(_ input: UnsafeRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        guard channel.isOpen else { return }
        channel.counters.bytesIn += UInt64(input.count)
        var rest = input
        if case .preamble = channel.state {
            let used = takePreamble(rest, handler)
            rest = UnsafeRawBufferPointer(rebasing: rest[used...])
        }
        while !rest.isEmpty && channel.isOpen {
            switch channel.state {
            case .handshake:
                let used = channel.drain(rest, handler) { frame in readMessage1(frame, handler); return false }
                rest = UnsafeRawBufferPointer(rebasing: rest[used...])
            case .established:
                channel.drain(rest, handler) { frame in channel.receiveTransport(frame, handler); return true }
                rest = UnsafeRawBufferPointer(start: nil, count: 0)
            case .awaitingAccept:
                // The agent cannot have transport keys before message 2.
                channel.fail(.unexpectedRecord, handler)
            default:
                rest = UnsafeRawBufferPointer(start: nil, count: 0)
            }
        }
        channel.flushAfterFeed(handler)
    }

    /// Array convenience: returns the events instead of calling back.
    public func feed(_ input: [UInt8]) -> [SessionEvent] {
        var events: [SessionEvent] = []
        input.withUnsafeBytes { feed($0) { events.append($0) } }
        return events
    }

    private func takePreamble(_ input: UnsafeRawBufferPointer, _ handler: (SessionEvent) -> Void) -> Int {
        let room = Preamble.maxLength - preambleBytes.count
        let take = min(room, input.count)
        preambleBytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
        switch Preamble.parse(preambleBytes) {
        case .needMore:
            return take
        case .invalid:
            channel.state = .closed(.badPreamble)
            handler(.closed(.badPreamble))
            return take
        case .complete(let p, let length):
            // Bytes past the preamble belong to message 1: give them back.
            let extra = preambleBytes.count - length
            preambleBytes.removeLast(extra)
            preamble = p
            guard var psk = keyLookup(p.projectID) else {
                channel.state = .closed(.unknownProject)
                handler(.closed(.unknownProject))
                return take - extra
            }
            handshake = preambleBytes.withUnsafeBytes {
                NoiseHandshake(role: .responder, prologue: $0, psk: psk, ephemeralSecret: ephemeralSecret)
            }
            psk.wipe()
            // The prologue is absorbed into the handshake hash: a session
            // that lives for days need not keep its copy.
            preambleBytes = []
            channel.state = .handshake
            return take - extra
        }
    }

    private func readMessage1(_ frame: UnsafeMutableRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        guard var hs = handshake else { return }
        guard let payload = channel.readHandshake(&hs, frame: frame) else {
            handshake = nil
            channel.state = .closed(.handshakeFailed)
            handler(.closed(.handshakeFailed))
            return
        }
        handshake = hs
        // Empty payload: probe. Otherwise exactly one Hello, then only
        // record types this version does not know.
        var found: Hello?
        do throws(WireError) {
            for record in try Record.decodeAll(payload, limits: channel.limits.wire) {
                switch record {
                case .hello(let h) where found == nil: found = h
                case .unknown: channel.counters.unknownRecords += 1
                default: throw .malformed(field: "message1.payload")
                }
            }
        } catch {
            handshake = nil
            channel.state = .closed(.badHandshakePayload)
            handler(.closed(.badHandshakePayload))
            return
        }
        if !payload.isEmpty && found == nil {
            handshake = nil
            channel.state = .closed(.badHandshakePayload)
            handler(.closed(.badHandshakePayload))
            return
        }
        hello = found
        channel.probe = found == nil
        channel.state = .awaitingAccept
        handler(.hello(found))
    }

    /// Completes the handshake: writes message 2 carrying `welcome` into
    /// `outbound`. For a probe, `welcome` may carry zeros.
    public func accept(_ welcome: Welcome) throws(SessionError) {
        guard case .awaitingAccept = channel.state, var hs = handshake else {
            throw channel.isOpen ? .notEstablished : .closed
        }
        try channel.writeHandshake(&hs, payload: Record.welcome(welcome).encoded)
        handshakeHash = hs.handshakeHash
        channel.establish(&hs)
        handshake = nil
        if !channel.probe {
            var max = channel.limits.wire.maxStringTableBytes
            if welcome.limits.maxStringTableBytes > 0 { max = Swift.min(max, Int(welcome.limits.maxStringTableBytes)) }
            channel.received = StringTable(maxID: channel.limits.wire.maxStringID, maxBytes: max)
        }
    }

    /// Refuses the agent: message 2 carries `error`, and the session closes
    /// with `.rejected`. Write `outbound`, then close the connection.
    public func reject(_ error: ErrorRecord) {
        guard case .awaitingAccept = channel.state, var hs = handshake else { return }
        try? channel.writeHandshake(&hs, payload: Record.error(error).encoded)
        handshake = nil
        channel.state = .closed(.rejected)
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

    /// Closes the session for a reason decided by the owner (timeout, EOF,
    /// shutdown). With `error`, a final Error record is sealed into
    /// `outbound` first (established sessions only).
    public func close(_ reason: CloseReason, error: ErrorRecord? = nil) {
        guard channel.isOpen else { return }
        if let error, case .established = channel.state {
            if (try? channel.send(.error(error))) != nil { try? channel.flush() }
        }
        handshake = nil
        channel.state = .closed(reason)
    }
}
