// Every malformed-input path of the session layer: each closes the session
// with its own counted reason (or skips and counts), none traps.
import Reactor
import XCTest
@testable import Wire

final class MalformedSessionTests: XCTestCase {
    let psk = Key32(bytes: [UInt8](repeating: 0x42, count: 32))!

    func server(_ limits: SessionLimits = SessionLimits()) -> ServerSession {
        let psk = self.psk
        return ServerSession(staticKey: TestKeys.collector, limits: limits) { $0 == "acme" ? psk : nil }
    }

    func frame(_ body: [UInt8]) -> [UInt8] { [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body }

    /// Preamble + message 1 built by hand (empty payload), and the
    /// initiator to continue with.
    func message1(psk: Key32? = nil, payload: [UInt8] = []) throws -> (NoiseHandshake, [UInt8]) {
        let pre = Preamble(projectID: "acme")!.bytes
        var hs = NoiseHandshake(initiatorPrologue: pre, psk: psk ?? self.psk, staticKey: TestKeys.agent,
                                collectorKey: TestKeys.collector.publicKey)
        let m1 = try hs.writeMessage(payload: payload)
        return (hs, pre + frame(m1))
    }

    /// Drives `s` through messages 1 to 3 by hand, message 3 carrying
    /// `payload` (and `extra` bytes after it); the server's events.
    func handshake(_ s: ServerSession, payload: [UInt8], psk: Key32? = nil, extra: [UInt8] = []) throws -> [SessionEvent] {
        var (hs, first) = try message1(psk: psk)
        var events = s.feed(first)
        let m2 = SessionPair.take(s.outbound)
        guard m2.count > 2 else { return events }
        _ = try hs.readMessage(Array(m2.dropFirst(2)))
        events += s.feed(frame(try hs.writeMessage(payload: payload)) + extra)
        return events
    }

    /// Seals raw plaintext bytes as one transport message from the client.
    func sealRaw(_ client: ClientSession, _ plaintext: [UInt8]) throws {
        client.channel.pending.raw(plaintext)
        try client.channel.flush()
    }

    func established(serverLimits: SessionLimits = SessionLimits()) throws -> SessionPair {
        let pair = SessionPair(serverLimits: serverLimits)
        try pair.establish()
        return pair
    }

    // MARK: before and during the handshake

    func testBadPreambleClosesAtFirstWrongByte() {
        let s = server()
        XCTAssertEqual(s.feed(Array("GE".utf8)), [.closed(.badPreamble)])
        let s2 = server()
        XCTAssertEqual(s2.feed([0x56, 0x47]), [])
        XCTAssertEqual(s2.feed([0x4C, 0x09]), [.closed(.badPreamble)], "wrong version")
        XCTAssertEqual(server().feed([0x56, 0x47, 0x4C, 0x01, 0x00]), [.closed(.badPreamble)], "zero length")
        XCTAssertEqual(server().feed([0x56, 0x47, 0x4C, 0x01, 0x02, 0x61, 0x00]), [.closed(.badPreamble)], "bad id byte")
    }

    func testUnknownProject() {
        XCTAssertEqual(server().feed(Preamble(projectID: "nobody")!.bytes), [.closed(.unknownProject)])
    }

    func testWrongKeyFailsTheHandshake() throws {
        let s = server()
        XCTAssertEqual(try handshake(s, payload: [], psk: Key32.random()), [.closed(.handshakeFailed)])
        XCTAssertEqual(s.outbound.readableBytes, 0, "nothing is sent after a message 3 under no key")
        XCTAssertNil(s.peerStaticKey)
    }

    func testMessage1PayloadHoldsOnlyUnknownRecords() throws {
        let s = server()
        XCTAssertEqual(s.feed(try message1(payload: Record.hello(Hello(agentID: "a")).encoded).1), [.closed(.badHandshakePayload)],
                       "the Hello belongs in message 3, where the agent is authenticated")
        let s2 = server()
        XCTAssertEqual(s2.feed(try message1(payload: [0x7E, 0x00]).1), [])
        XCTAssertEqual(s2.counters.unknownRecords, 1)
    }

    func testHandshakeFrameLengthBounds() {
        let pre = Preamble(projectID: "acme")!.bytes
        XCTAssertEqual(server().feed(pre + [0xFF, 0xFF]), [.closed(.badFrameLength)], "above maxHandshakeLength")
        XCTAssertEqual(server().feed(pre + [0x00, 0x2F]), [.closed(.badFrameLength)], "below key + tag")
        XCTAssertEqual(server().feed(pre + [0x00, 0x00]), [.closed(.badFrameLength)])
    }

    func testMessage3PayloadRules() throws {
        let hello = Record.hello(Hello(agentID: "a")).encoded
        XCTAssertEqual(try handshake(server(), payload: Record.ping(Ping(1)).encoded), [.closed(.badHandshakePayload)])
        XCTAssertEqual(try handshake(server(), payload: hello + hello), [.closed(.badHandshakePayload)])
        XCTAssertEqual(try handshake(server(), payload: [0x10, 0x80, 0x00]), [.closed(.badHandshakePayload)], "bad varint")
        XCTAssertEqual(try handshake(server(), payload: [0x10, 0x05, 0x01]), [.closed(.badHandshakePayload)], "truncated")
        XCTAssertEqual(try handshake(server(), payload: [0x7E, 0x00]), [.closed(.badHandshakePayload)], "no Hello")
        let s = server()
        XCTAssertEqual(try handshake(s, payload: hello + [0x7E, 0x01, 0x00]), [.hello(Hello(agentID: "a"))])
        XCTAssertEqual(s.counters.unknownRecords, 1, "unknown records after Hello are skipped and counted")
    }

    func testBytesBeforeAcceptAreAViolation() throws {
        let s = server()
        XCTAssertEqual(try handshake(s, payload: [], extra: [0x00]), [.hello(nil), .closed(.unexpectedRecord)])
    }

    func testClientRefusesBadMessage2AndBadAnswers() throws {
        // A responder that answers message 2 with a payload, or the first
        // transport message with something other than one Welcome/Error.
        func run(message2: [UInt8] = [], collector: StaticKeyPair = TestKeys.collector, mutate: (inout [UInt8]) -> Void = { _ in },
                 answer: [UInt8]) throws -> [SessionEvent] {
            let client = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk, collectorKey: TestKeys.collector.publicKey,
                                       identity: TestKeys.agent, hello: nil)
            try client.start()
            let out = SessionPair.take(client.outbound)
            let pre = Preamble(projectID: "acme")!.bytes
            var responder = NoiseHandshake(responderPrologue: pre, staticKey: collector)
            guard (try? responder.readMessage(Array(out[(pre.count + 2)...]))) != nil else { return [.closed(.handshakeFailed)] }
            var m2 = try responder.writeMessage(payload: message2)
            mutate(&m2)
            var events = client.feed(frame(m2))
            guard client.closeReason == nil else { return events }
            let m3 = SessionPair.take(client.outbound)
            _ = try responder.readMessage3(Array(m3.dropFirst(2)), psks: [psk])
            var (send, _) = try responder.split()
            events += client.feed(frame(try send.encrypt(answer)))
            return events
        }
        let welcome = Record.welcome(Welcome(sessionID: 1, collectorTimeMs: 2)).encoded
        XCTAssertEqual(try run(answer: Record.ping(Ping(1)).encoded), [.closed(.badHandshakePayload)])
        XCTAssertEqual(try run(answer: []), [.closed(.badHandshakePayload)])
        XCTAssertEqual(try run(answer: welcome + welcome), [.closed(.badHandshakePayload)])
        XCTAssertEqual(try run(message2: Record.ping(Ping(1)).encoded, answer: welcome), [.closed(.badHandshakePayload)])
        XCTAssertEqual(try run(mutate: { $0[40] ^= 1 }, answer: welcome), [.closed(.handshakeFailed)])
        XCTAssertEqual(try run(answer: welcome), [.welcome(Welcome(sessionID: 1, collectorTimeMs: 2))])
        XCTAssertEqual(try run(message2: [0x7E, 0x00], answer: welcome), [.welcome(Welcome(sessionID: 1, collectorTimeMs: 2))],
                       "unknown records in message 2 are skipped")
        let error = Record.error(ErrorRecord(code: .rejected, message: "no")).encoded
        XCTAssertEqual(try run(answer: error), [.closed(.rejected)])
    }

    func testClientRefusesACollectorWithAnotherStaticKey() throws {
        // The impostor cannot read message 1; if it answers anyway (with its
        // own key in es), the agent cannot read message 2.
        let client = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk, collectorKey: TestKeys.collector.publicKey,
                                   identity: TestKeys.agent, hello: Hello(agentID: "a"))
        try client.start()
        _ = SessionPair.take(client.outbound)
        var impostor = NoiseHandshake(initiatorPrologue: [], psk: psk, staticKey: .generate(), collectorKey: StaticKeyPair.generate().publicKey)
        let fake = try impostor.writeMessage(payload: [])   // any 48 bytes shaped like message 2
        XCTAssertEqual(client.feed(frame(fake)), [.closed(.handshakeFailed)])
        XCTAssertEqual(client.outbound.readableBytes, 0, "the Hello never leaves")
    }

    func testClientRefusesBytesBeforeStart() {
        let client = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk, collectorKey: TestKeys.collector.publicKey,
                                   identity: TestKeys.agent, hello: nil)
        XCTAssertEqual(client.feed([0x00]), [.closed(.unexpectedRecord)])
    }

    // MARK: transport

    func testTamperedCiphertextFailsDecryption() throws {
        let pair = try established()
        try pair.client.send(.ping(Ping(1)))
        try pair.client.flush()
        var bytes = SessionPair.take(pair.client.outbound)
        bytes[5] ^= 0x01
        XCTAssertEqual(pair.server.feed(bytes), [.closed(.decryptFailed)])
        // The server tells the client why before closing.
        pair.pump()
        XCTAssertEqual(pair.client.peerError, ErrorRecord(code: .protocolViolation, message: "decrypt_failed"))
        XCTAssertEqual(pair.clientRecords.last, .error(ErrorRecord(code: .protocolViolation, message: "decrypt_failed")))
    }

    func testReplayedMessageFailsDecryption() throws {
        let pair = try established()
        try pair.client.send(.ping(Ping(1)))
        try pair.client.flush()
        let bytes = SessionPair.take(pair.client.outbound)
        XCTAssertEqual(pair.server.feed(bytes), [])
        XCTAssertEqual(pair.server.feed(bytes), [.closed(.decryptFailed)])
    }

    func testTransportFrameShorterThanTag() throws {
        let pair = try established()
        XCTAssertEqual(pair.server.feed([0x00, 0x0F] + [UInt8](repeating: 0, count: 15)), [.closed(.badFrameLength)])
    }

    func testRecordLevelFailuresCloseWithTheirReason() throws {
        let cases: [([UInt8], CloseReason)] = [
            ([0x30, 0x80, 0x00], .badVarint),                  // ScheduleRequest, non-minimal length
            ([0x30, 0x02, 0x80, 0x00], .badVarint),            // ... non-minimal field
            ([0x30, 0x01, 0xFF], .truncatedRecord),
            ([0x30, 0x05, 0x01], .truncatedRecord),
            ([0x30], .truncatedRecord),
            ([0x01, 0x02, 0x00, 0x00], .malformedRecord),
            ([0x12, 0x02, 0x00, 0x00], .malformedRecord),
            ([0x10, 0x00], .unexpectedRecord),                 // Hello outside the handshake
            ([0x21, 0x01, 0x01], .unexpectedRecord),           // Ack from the agent
        ]
        for (plaintext, reason) in cases {
            let pair = try established()
            try sealRaw(pair.client, plaintext)
            pair.pump()
            XCTAssertEqual(pair.server.closeReason, reason, "\(plaintext)")
            XCTAssertEqual(pair.serverEvents.last, .closed(reason))
        }
    }

    func testConfiguredLimitsCloseTheSession() throws {
        var pair = try established(serverLimits: SessionLimits(wire: WireLimits(maxRecordLength: 100)))
        try pair.client.send(.status(Status(timestampMs: 0, state: .stopped, messages: [String(repeating: "s", count: 200)])))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.server.closeReason, .recordTooLarge)

        pair = try established(serverLimits: SessionLimits(wire: WireLimits(maxBatchItems: 2)))
        let item = BatchItem.event(RawEvent(timestampUs: 0, method: 0, host: 0, path: "", durationUs: 0))
        try pair.client.send(.dataBatch(DataBatch(sequence: 1, items: [item, item, item])))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.server.closeReason, .batchTooLarge)
    }

    func testUnknownRecordTypeIsSkippedAndCounted() throws {
        let pair = try established()
        try sealRaw(pair.client, [0x7E, 0x02, 0xAA, 0xBB] + Record.status(Status(timestampMs: 1, state: .capturing)).encoded)
        try pair.client.send(.unknown(type: 0xF0, length: 0))
        try pair.client.flush()
        pair.pump()
        XCTAssertNil(pair.server.closeReason)
        XCTAssertEqual(pair.server.counters.unknownRecords, 2)
        XCTAssertEqual(pair.serverRecords, [.status(Status(timestampMs: 1, state: .capturing))])
    }

    func testEmptyTransportMessageIsHarmless() throws {
        let pair = try established()
        try sealRaw(pair.client, [])   // nothing pending: no message at all
        pair.client.channel.pending.raw([])
        // Seal an empty plaintext by hand: 16-byte tag only.
        var tag = [UInt8](repeating: 0, count: 16)
        _ = try tag.withUnsafeMutableBytes { (o) throws(NoiseError) -> Int in
            try pair.client.channel.sendCipher.encrypt(ad: UnsafeRawBufferPointer(start: nil, count: 0),
                                                       plaintext: UnsafeRawBufferPointer(start: nil, count: 0), into: o)
        }
        XCTAssertEqual(pair.server.feed(frame(tag)), [])
        XCTAssertNil(pair.server.closeReason)
    }

    // MARK: random input

    func testRandomBytesAtEveryStageNeverTrap() throws {
        var rng = SeededRandom(seed: 2024)
        let pre = Preamble(projectID: "acme")!.bytes
        let m1 = try message1().1
        var reasons = CloseReasonCounts()
        for i in 0..<3000 {
            let garbage = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let s = server()
            var input: [UInt8]
            switch i % 4 {
            case 0: input = garbage
            case 1: input = pre + garbage
            case 2: input = pre + [UInt8(garbage.count >> 8), UInt8(garbage.count & 0xFF)] + garbage
            default:
                // Flip one bit in a valid message 1.
                input = m1
                let bit = Int.random(in: 0..<(input.count * 8), using: &rng)
                input[bit / 8] ^= UInt8(1 << (bit % 8))
            }
            var events = s.feed(input)
            if case .hello? = events.last { try? s.accept(Welcome(sessionID: 1, collectorTimeMs: 1)); events += s.feed(garbage) }
            if let r = s.closeReason { reasons.add(r) }
        }
        XCTAssertGreaterThan(reasons.total, 2000)
        XCTAssertGreaterThan(reasons[.badPreamble], 0)
        XCTAssertGreaterThan(reasons[.handshakeFailed], 0)

        // Random frames into an established session.
        for _ in 0..<300 {
            let pair = try established()
            let garbage = (0..<Int.random(in: 16...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(pair.server.feed(frame(garbage)), [.closed(.decryptFailed)])
        }
    }
}

final class NonceExhaustionSessionTests: XCTestCase {
    func testReceiveNonceExhaustedCloses() throws {
        let pair = SessionPair()
        try pair.establish()
        pair.server.channel.receiveCipher.setNonce(UInt64.max)
        try pair.client.send(.ping(Ping(1)))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.server.closeReason, .nonceExhausted)
    }

    func testSendNonceExhaustedCloses() throws {
        let pair = SessionPair()
        try pair.establish()
        pair.client.channel.sendCipher.setNonce(UInt64.max)
        try pair.client.send(.ping(Ping(1)))
        XCTAssertThrowsError(try pair.client.flush()) { XCTAssertEqual($0 as? SessionError, .noise(.nonceExhausted)) }
        XCTAssertEqual(pair.client.closeReason, .nonceExhausted)

        // A Pong the server owes when its own nonce is spent: the session reports the close.
        let other = SessionPair()
        try other.establish()
        other.server.channel.sendCipher.setNonce(UInt64.max)
        try other.client.send(.ping(Ping(2)))
        try other.client.flush()
        other.pump()
        XCTAssertEqual(other.server.closeReason, .nonceExhausted)
        XCTAssertEqual(other.serverEvents.last, .closed(.nonceExhausted))
    }
}
