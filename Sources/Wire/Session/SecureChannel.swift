// SecureChannel: the transport phase both session roles share — sealing
// queued records into framed transport messages, and opening received
// frames into records — plus the handshake-message framing helpers.
//
// Outbound path: `send` encodes a record into `pending` (plaintext, at most
// one transport message); `flush` seals `pending` straight into `outbound`
// (2-byte length, ciphertext, tag): one encode, one encrypt, no copy.
// Inbound path: the FrameDecoder reassembles a frame, which is decrypted in
// place and parsed record by record.
import Reactor

final class SecureChannel {
    let limits: SessionLimits
    /// Sealed bytes for the socket. The owner writes from `readable` and
    /// calls `consume`.
    let outbound: ByteBuffer
    let frames: FrameDecoder
    var pending: WireWriter
    var sendCipher = CipherState()
    var receiveCipher = CipherState()
    var counters = SessionCounters()
    /// Texts the peer defined (StringDef) for records it sends.
    var received: StringTable
    /// Texts this side defined for records it sends.
    var interner: StringInterner
    /// Which record placements this side may receive in transport messages.
    let acceptsFromPeer: RecordType.Placement
    /// Records the owner may send (the other placement).
    let sendsAs: RecordType.Placement
    var probe = false
    var state: SessionState
    /// The peer's Error record, if it sent one.
    var peerError: ErrorRecord?
    /// Bounds for records this side sends: its own limits, narrowed by what
    /// the collector announced in Welcome (so the peer never refuses them).
    var sendMaxRecordLength: Int
    var sendMaxBatchItems: Int

    init(limits: SessionLimits, isServer: Bool, state: SessionState) {
        self.limits = limits
        self.state = state
        outbound = ByteBuffer(capacity: 512, limit: limits.maxOutboundBytes)
        frames = FrameDecoder(minLength: NoiseHandshake.minMessageLength, maxLength: limits.maxHandshakeLength)
        pending = WireWriter(capacity: 256, limit: limits.maxMessagePlaintext)
        received = StringTable(maxID: limits.wire.maxStringID, maxBytes: limits.wire.maxStringTableBytes)
        interner = StringInterner(maxID: limits.wire.maxStringID, maxBytes: limits.wire.maxStringTableBytes)
        sendMaxRecordLength = limits.wire.maxRecordLength
        sendMaxBatchItems = limits.wire.maxBatchItems
        acceptsFromPeer = isServer ? .fromAgent : .fromCollector
        sendsAs = isServer ? .fromCollector : .fromAgent
    }

    deinit {
        sendCipher.wipe()
        receiveCipher.wipe()
    }

    var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }

    // MARK: - Handshake framing

    /// Frames a handshake message for `payload` into `outbound`.
    func writeHandshake<H: HandshakeMessages>(_ hs: inout H, payload: [UInt8]) throws(SessionError) {
        let length = payload.count + hs.nextOverhead
        guard length <= FrameDecoder.maxFrameLength else { throw .recordTooLarge(payload.count) }
        guard outbound.reserve(FrameDecoder.headerLength + length) else { throw .outboundFull }
        FrameDecoder.writeHeader(length, to: outbound.writable.baseAddress!)
        let body = UnsafeMutableRawBufferPointer(rebasing: outbound.writable[FrameDecoder.headerLength..<FrameDecoder.headerLength + length])
        var result: Result<Int, NoiseError> = .success(0)
        payload.withUnsafeBytes { p in
            do throws(NoiseError) { result = .success(try hs.writeMessage(payload: p, into: body)) }
            catch { result = .failure(error) }
        }
        switch result {
        case .failure(let e): throw .noise(e)
        case .success: break
        }
        outbound.didWrite(FrameDecoder.headerLength + length)
        counters.messagesOut += 1
        counters.bytesOut += UInt64(FrameDecoder.headerLength + length)
    }

    /// Reads a handshake frame; returns its payload, or nil on failure.
    /// Leaves `frame` as it was. The caller counts the message.
    func readHandshake<H: HandshakeMessages>(_ hs: inout H, frame: UnsafeMutableRawBufferPointer) -> [UInt8]? {
        guard frame.count >= hs.nextOverhead else { return nil }
        var payload = [UInt8](repeating: 0, count: frame.count - hs.nextOverhead)
        let ok: Bool = payload.withUnsafeMutableBytes { out in
            do throws(NoiseError) {
                _ = try hs.readMessage(UnsafeRawBufferPointer(frame), payloadInto: out)
                return true
            } catch { return false }
        }
        return ok ? payload : nil
    }

    /// Installs the transport ciphers and transport frame limits; the
    /// state is the caller's (a client waits for the Welcome).
    func installTransport<H: HandshakeMessages>(_ hs: inout H) {
        // split() cannot fail here: callers only call this once complete.
        guard let (send, receive) = try? hs.split() else { return }
        sendCipher = send
        receiveCipher = receive
        frames.minLength = CipherState.tagLength
        frames.maxLength = FrameDecoder.maxFrameLength
    }

    /// Installs the transport ciphers; the session is established.
    func establish<H: HandshakeMessages>(_ hs: inout H) {
        installTransport(&hs)
        state = .established
    }

    /// Seals one handshake-placed record (the Welcome, or the Error that
    /// refuses an agent) as a transport message of its own: XKpsk3 leaves
    /// the collector's answer to the first transport message.
    func sealAnswer(_ record: Record) throws(SessionError) {
        pending.clear()
        _ = record.encode(into: &pending)
        guard !pending.overflowed else {
            pending.clear()
            throw .recordTooLarge(0)
        }
        try seal()
        counters.recordsOut += 1
    }

    /// Decrypts one transport frame in place; the plaintext length, or nil.
    func openTransport(_ frame: UnsafeMutableRawBufferPointer) -> Int? {
        do throws(NoiseError) {
            return try receiveCipher.decrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0),
                                             ciphertext: UnsafeRawBufferPointer(frame), into: frame)
        } catch {
            return nil
        }
    }

    // MARK: - Sending

    /// Queues `record` for the next transport message, sealing the current
    /// one first if the record does not fit in it.
    func send(_ record: Record) throws(SessionError) {
        switch state {
        case .established: break
        case .closed: throw .closed
        default: throw .notEstablished
        }
        if let type = record.type, type.placement != .either, type.placement != sendsAs {
            throw .wrongDirection
        }
        if probe {
            switch record {
            case .ping, .pong, .error: break
            default: throw .probeSession
            }
        }
        if case .dataBatch(let b) = record, b.items.count > sendMaxBatchItems {
            throw .batchTooLarge(b.items.count)
        }
        let mark = pending.count
        var bodyLength = record.encode(into: &pending)
        if pending.overflowed && mark > 0 {
            pending.truncate(to: mark)
            try flush()
            bodyLength = record.encode(into: &pending)
        }
        if pending.overflowed || bodyLength > sendMaxRecordLength {
            pending.truncate(to: mark)
            throw .recordTooLarge(bodyLength)
        }
        counters.recordsOut += 1
    }

    /// Seals everything queued into one transport message in `outbound`.
    func flush() throws(SessionError) {
        guard pending.count > 0 else { return }
        guard case .established = state else { throw .notEstablished }
        try seal()
    }

    private func seal() throws(SessionError) {
        let length = pending.count + CipherState.tagLength
        guard outbound.reserve(FrameDecoder.headerLength + length) else { throw .outboundFull }
        let out = outbound.writable
        FrameDecoder.writeHeader(length, to: out.baseAddress!)
        let body = UnsafeMutableRawBufferPointer(rebasing: out[FrameDecoder.headerLength..<FrameDecoder.headerLength + length])
        var failure: NoiseError?
        pending.bytes.withUnsafeBytes { p in
            do throws(NoiseError) { _ = try sendCipher.encrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: p, into: body) }
            catch { failure = error }
        }
        if let failure {
            // The reserved nonce is reached: this direction can never send
            // again, so the session is over (Noise rev 34 §5.1).
            if failure == .nonceExhausted { state = .closed(.nonceExhausted) }
            throw .noise(failure)
        }
        outbound.didWrite(FrameDecoder.headerLength + length)
        pending.clear()
        counters.messagesOut += 1
        counters.bytesOut += UInt64(FrameDecoder.headerLength + length)
    }

    /// The id for `text`, sending its StringDef first when new.
    func stringRef(_ text: String) throws(SessionError) -> StringRef {
        switch interner.intern(text) {
        case .known(let id): return id
        case .full: throw .stringTableFull
        case .new(let id):
            do throws(SessionError) {
                try send(.stringDef(StringDef(id: id, text: text)))
            } catch {
                interner.forget(text)
                throw error
            }
            return id
        }
    }

    func clearStrings() throws(SessionError) {
        try send(.stringClear(StringClear()))
        interner.clear()
    }

    /// Gives back memory a past message left behind: the frame buffer
    /// (between frames), `outbound` (once written out) and the plaintext
    /// buffer (when empty), each that holds more than `threshold` bytes, go
    /// back to `min(threshold, 512)` (at least 16). A collector holding 10^5
    /// mostly idle sessions passes a small threshold, so an idle session
    /// keeps almost no buffer memory; the next message grows them again.
    func compact(threshold: Int) {
        let idle = max(16, min(threshold, 512))
        if frames.capacity > threshold { frames.shrink(to: idle) }
        if outbound.capacity > threshold { outbound.shrink(to: idle) }
        if pending.count == 0 && pending.bytes.capacity > threshold {
            pending = WireWriter(capacity: idle, limit: limits.maxMessagePlaintext)
        }
    }

    // MARK: - Receiving

    /// Closes with `reason`; after establishment, tells the peer why with a
    /// final Error record (best effort: skipped if outbound is full).
    func fail(_ reason: CloseReason, _ handler: (SessionEvent) -> Void) {
        guard isOpen else { return }
        if case .established = state, reason != .peerError {
            let error = ErrorRecord(code: reason == .outboundOverflow ? .limitExceeded : .protocolViolation,
                                    message: reason.description)
            if (try? send(.error(error))) != nil { try? flush() }
        }
        state = .closed(reason)
        handler(.closed(reason))
    }

    /// Decrypts one transport frame in place and dispatches its records.
    func receiveTransport(_ frame: UnsafeMutableRawBufferPointer, _ handler: (SessionEvent) -> Void) {
        counters.messagesIn += 1
        let n: Int
        do throws(NoiseError) {
            n = try receiveCipher.decrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0),
                                          ciphertext: UnsafeRawBufferPointer(frame), into: frame)
        } catch {
            fail(error == .nonceExhausted ? .nonceExhausted : .decryptFailed, handler)
            return
        }
        var reader = WireReader(UnsafeRawBufferPointer(rebasing: frame[0..<n]))
        while let typeByte = reader.peek(), isOpen {
            // Placement is checked before the body is decoded: a record that
            // may not appear here is refused whatever its body holds.
            if let type = RecordType(rawValue: typeByte), !mayReceive(type) {
                fail(.unexpectedRecord, handler)
                return
            }
            let record: Record
            do throws(WireError) {
                record = try Record.decode(from: &reader, limits: limits.wire)
            } catch {
                fail(CloseReason(error), handler)
                return
            }
            counters.recordsIn += 1
            dispatch(record, handler)
        }
    }

    /// Transport records this side accepts: either-way records, the peer's
    /// own types, and in a probe session only Ping, Pong and Error.
    private func mayReceive(_ type: RecordType) -> Bool {
        if probe { return type == .ping || type == .pong || type == .error }
        return type.placement == .either || type.placement == acceptsFromPeer
    }

    private func dispatch(_ record: Record, _ handler: (SessionEvent) -> Void) {
        switch record {
        case .unknown:
            counters.unknownRecords += 1
        case .ping(let p):
            counters.pingsAnswered += 1
            do throws(SessionError) { try send(.pong(p)) } catch { sendFailed(handler) }
        case .stringDef(let def):
            do throws(WireError) {
                try received.define(def.id, def.text)
                counters.stringDefs += 1
            } catch {
                fail(.stringTableOverflow, handler)
            }
        case .stringClear:
            received.clear()
        case .error(let e):
            peerError = e
            handler(.record(record))
            if isOpen {
                state = .closed(.peerError)
                handler(.closed(.peerError))
            }
        default:
            handler(.record(record))
        }
    }

    /// Runs `input` through the frame decoder, calling `onFrame` for each
    /// complete frame while the session stays open and `onFrame` returns
    /// true (false: the phase changed, the caller re-dispatches the rest).
    /// Returns bytes used.
    @discardableResult
    func drain(_ input: UnsafeRawBufferPointer, _ handler: (SessionEvent) -> Void,
               onFrame: (UnsafeMutableRawBufferPointer) -> Bool) -> Int {
        var offset = 0
        while offset < input.count && isOpen {
            let (used, step) = frames.consume(UnsafeRawBufferPointer(rebasing: input[offset...]))
            offset += used
            switch step {
            case .needMore:
                return offset
            case .invalid:
                fail(.badFrameLength, handler)
                return offset
            case .frame:
                if !onFrame(frames.frame) { return offset }
            }
        }
        return offset
    }

    /// Seals records queued during `feed` (Pongs, owner replies). An
    /// outbound overflow here closes the session: the peer is not reading.
    func flushAfterFeed(_ handler: (SessionEvent) -> Void) {
        guard case .established = state, pending.count > 0 else { return }
        do throws(SessionError) { try flush() } catch { sendFailed(handler) }
    }

    /// A reply the session owes could not be queued or sealed: either the
    /// send nonce ran out (already closed by `flush`) or the peer is not
    /// reading and `outbound` is full.
    private func sendFailed(_ handler: (SessionEvent) -> Void) {
        if case .closed(let reason) = state {
            handler(.closed(reason))
        } else {
            fail(.outboundOverflow, handler)
        }
    }
}
