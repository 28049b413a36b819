// Client and server sessions driven against each other through their
// outbound buffers (no sockets), delivered whole or in small pieces; then
// every way a peer can misbehave, each closing with its counted reason.
import Reactor
import XCTest
@testable import Wire

/// Moves bytes between a client and a server session, `chunk` bytes at a
/// time, collecting events; accepts every Hello with `welcome`.
final class SessionPair {
    let psk = Key32(bytes: [UInt8](repeating: 0x42, count: 32))!
    let client: ClientSession
    let server: ServerSession
    var clientEvents: [SessionEvent] = []
    var serverEvents: [SessionEvent] = []
    var chunk: Int
    var welcome = Welcome(sessionID: 7, collectorTimeMs: 1_700_000_000_000, configVersion: 3, scheduleVersion: 4,
                          patternsVersion: 5, ackedSequence: 0, limits: .init(maxStringID: 1000, maxStringTableBytes: 4096))
    var autoAccept = true

    init(hello: Hello? = Hello(agentID: "agent-1", name: "edge", host: "h1", version: "1.0", bootID: "b",
                                instance: 9, capabilities: ["aggregates"], groups: ["g"]),
         chunk: Int = Int.max, clientLimits: SessionLimits = SessionLimits(), serverLimits: SessionLimits = SessionLimits(),
         project: String = "acme") {
        self.chunk = chunk
        let psk = self.psk
        client = ClientSession(preamble: Preamble(projectID: project)!, psk: psk, collectorKey: TestKeys.collector.publicKey,
                               identity: TestKeys.agent, hello: hello, limits: clientLimits)
        server = ServerSession(staticKey: TestKeys.collector, limits: serverLimits) { $0 == "acme" ? psk : nil }
    }

    static func take(_ buffer: ByteBuffer) -> [UInt8] {
        let bytes = buffer.readableArray
        buffer.consume(bytes.count)
        return bytes
    }

    func deliver(_ bytes: [UInt8], to feed: ([UInt8]) -> [SessionEvent]) -> [SessionEvent] {
        var events: [SessionEvent] = []
        var i = 0
        while i < bytes.count {
            let n = min(chunk, bytes.count - i)
            events += feed(Array(bytes[i..<i + n]))
            i += n
        }
        return events
    }

    /// Runs until neither side has bytes to deliver.
    func pump() {
        while true {
            let toServer = SessionPair.take(client.outbound)
            let toClient = SessionPair.take(server.outbound)
            if toServer.isEmpty && toClient.isEmpty { return }
            let se = deliver(toServer, to: server.feed)
            serverEvents += se
            for event in se {
                if case .hello = event, autoAccept { XCTAssertNoThrow(try server.accept(welcome)) }
            }
            clientEvents += deliver(toClient, to: client.feed)
        }
    }

    func establish() throws {
        try client.start()
        pump()
        XCTAssertEqual(client.state, .established)
        XCTAssertEqual(server.state, .established)
    }

    var serverRecords: [Record] { serverEvents.compactMap { if case .record(let r) = $0 { return r } else { return nil } } }
    var clientRecords: [Record] { clientEvents.compactMap { if case .record(let r) = $0 { return r } else { return nil } } }
}

final class SessionTests: XCTestCase {
    func testHandshakeAndTrafficUnderAnyChunking() throws {
        for chunk in [1, 3, 17, 1000, Int.max] {
            let pair = SessionPair(chunk: chunk)
            try pair.establish()
            XCTAssertEqual(pair.serverEvents.first, .hello(pair.client.hello))
            XCTAssertEqual(pair.clientEvents.first, .welcome(pair.welcome))
            XCTAssertEqual(pair.server.hello, pair.client.hello)
            XCTAssertEqual(pair.client.handshakeHash, pair.server.handshakeHash)
            XCTAssertEqual(pair.server.preamble?.projectID, "acme")
            XCTAssertFalse(pair.server.isProbe)

            var gen = RecordGenerator(seed: UInt64(chunk & 0xFFFF))
            var sent: [Record] = []
            for _ in 0..<30 {
                for type in [RecordType.dataBatch, .status, .interfaces, .scheduleRequest, .patternsRequest, .controlResponse] {
                    let r = gen.record(type)
                    try pair.client.send(r)
                    sent.append(r)
                }
            }
            try pair.client.flush()
            var replies: [Record] = []
            for type in [RecordType.ack, .schedule, .scheduleUnchanged, .patterns, .patternsUnchanged, .controlRequest] {
                let r = gen.record(type)
                try pair.server.send(r)
                replies.append(r)
            }
            try pair.server.flush()
            pair.pump()
            XCTAssertEqual(pair.serverRecords, sent, "chunk \(chunk)")
            XCTAssertEqual(pair.clientRecords, replies, "chunk \(chunk)")
            XCTAssertEqual(pair.server.counters.recordsIn, UInt64(sent.count))
            XCTAssertNil(pair.server.closeReason)
        }
    }

    func testPingIsAnsweredInsideTheSession() throws {
        let pair = SessionPair(chunk: 5)
        try pair.establish()
        try pair.client.send(.ping(Ping(0xDEAD_BEEF_0000_0001)))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.clientRecords, [.pong(Ping(0xDEAD_BEEF_0000_0001))])
        XCTAssertEqual(pair.serverRecords, [], "Ping is not reported to the owner")
        XCTAssertEqual(pair.server.counters.pingsAnswered, 1)
    }

    func testProbeSessionMayOnlyPing() throws {
        let pair = SessionPair(hello: nil)
        try pair.establish()
        XCTAssertEqual(pair.serverEvents.first, .hello(nil))
        XCTAssertTrue(pair.server.isProbe)
        XCTAssertTrue(pair.client.isProbe)
        try pair.client.send(.ping(Ping(1)))
        XCTAssertThrowsError(try pair.client.send(.status(Status(timestampMs: 0, state: .stopped)))) {
            XCTAssertEqual($0 as? SessionError, .probeSession)
        }
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.clientRecords, [.pong(Ping(1))])
        XCTAssertThrowsError(try pair.server.send(.ack(Ack(sequence: 1)))) { XCTAssertEqual($0 as? SessionError, .probeSession) }

        // A probe that sends anything but Ping/Pong is closed.
        pair.client.channel.probe = false
        try pair.client.send(.status(Status(timestampMs: 0, state: .stopped)))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.server.closeReason, .unexpectedRecord)
        XCTAssertEqual(pair.client.closeReason, .peerError)
        XCTAssertEqual(pair.clientRecords.last, .error(ErrorRecord(code: .protocolViolation, message: "unexpected_record")))
    }

    func testRejectCarriesErrorToClient() throws {
        let pair = SessionPair()
        pair.autoAccept = false
        try pair.client.start()
        pair.pump()
        XCTAssertEqual(pair.server.state, .awaitingAccept)
        pair.server.reject(ErrorRecord(code: .duplicateAgent, message: "agent-1 already connected"))
        XCTAssertEqual(pair.server.closeReason, .rejected)
        pair.pump()
        XCTAssertEqual(pair.client.closeReason, .rejected)
        XCTAssertEqual(pair.client.peerError, ErrorRecord(code: .duplicateAgent, message: "agent-1 already connected"))
    }

    func testAcceptLaterAfterFeedReturned() throws {
        let pair = SessionPair()
        pair.autoAccept = false
        try pair.client.start()
        pair.pump()
        XCTAssertEqual(pair.client.state, .handshake)
        try pair.server.accept(pair.welcome)
        XCTAssertThrowsError(try pair.server.accept(pair.welcome))
        pair.pump()
        XCTAssertEqual(pair.client.state, .established)
    }

    func testAcceptInsideTheHelloHandler() throws {
        let pair = SessionPair()
        try pair.client.start()
        XCTAssertEqual(pair.server.feed(SessionPair.take(pair.client.outbound)), [])
        XCTAssertEqual(pair.client.feed(SessionPair.take(pair.server.outbound)), [])
        let bytes = SessionPair.take(pair.client.outbound)
        var events: [SessionEvent] = []
        bytes.withUnsafeBytes { raw in
            _ = pair.server.feed(raw) { event in
                events.append(event)
                if case .hello = event { _ = try? pair.server.accept(pair.welcome) }
            }
        }
        XCTAssertEqual(events, [.hello(pair.client.hello)])
        XCTAssertEqual(pair.server.state, .established)
        XCTAssertEqual(pair.client.feed(SessionPair.take(pair.server.outbound)), [.welcome(pair.welcome)])
    }

    func testStringTable() throws {
        let pair = SessionPair()
        try pair.establish()
        let get = try pair.client.stringRef("GET")
        XCTAssertEqual(try pair.client.stringRef("GET"), get)
        XCTAssertEqual(try pair.client.stringRef(""), 0)
        let host = try pair.client.stringRef("example.com")
        try pair.client.send(.dataBatch(DataBatch(sequence: 1, items: [
            .event(RawEvent(timestampUs: 1, method: get, host: host, path: "/a", status: 200, durationUs: 5))])))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.server.strings[get], "GET")
        XCTAssertEqual(pair.server.strings[host], "example.com")
        XCTAssertEqual(pair.server.strings[0], "")
        XCTAssertEqual(pair.server.counters.stringDefs, 2)
        XCTAssertEqual(pair.serverRecords.count, 1, "StringDefs are absorbed by the session")

        try pair.client.clearStrings()
        try pair.client.flush()
        pair.pump()
        XCTAssertNil(pair.server.strings[get])
        XCTAssertEqual(try pair.client.stringRef("POST"), 1, "ids restart after a clear")
    }

    func testStringTableBoundsOnBothSides() throws {
        // The Welcome announced 4096 bytes: the client's interner respects it.
        let pair = SessionPair()
        try pair.establish()
        let big = String(repeating: "x", count: 3000)
        _ = try pair.client.stringRef(big)
        XCTAssertThrowsError(try pair.client.stringRef(big + "y")) { XCTAssertEqual($0 as? SessionError, .stringTableFull) }
        // A client ignoring the bound is closed by the server.
        pair.client.channel.interner.restrict(maxID: 0, maxBytes: 0)
        let forced = StringDef(id: 2, text: big)
        try pair.client.send(.stringDef(forced))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.server.closeReason, .stringTableOverflow)
    }

    func testMessagesSplitAtTheLimit() throws {
        let limits = SessionLimits(maxMessagePlaintext: 200)
        let pair = SessionPair(clientLimits: limits)
        try pair.establish()
        let before = pair.client.counters.messagesOut
        for i in 0..<100 { try pair.client.send(.status(Status(timestampMs: UInt64(i), state: .capturing, messages: ["m\(i)"]))) }
        try pair.client.flush()
        // ~16 bytes per record, at most 200 per message: at least 7 messages.
        XCTAssertGreaterThanOrEqual(pair.client.counters.messagesOut - before, 7)
        pair.pump()
        XCTAssertEqual(pair.serverRecords.count, 100)
        XCTAssertThrowsError(try pair.client.send(.status(Status(timestampMs: 0, state: .stopped,
                                                                  messages: [String(repeating: "z", count: 300)])))) {
            guard case .recordTooLarge = $0 as? SessionError else { return XCTFail("\($0)") }
        }
    }

    func testSenderChecks() throws {
        let pair = SessionPair(clientLimits: SessionLimits(wire: WireLimits(maxBatchItems: 1)))
        XCTAssertThrowsError(try pair.client.send(.ping(Ping(1)))) { XCTAssertEqual($0 as? SessionError, .notEstablished) }
        try pair.establish()
        XCTAssertThrowsError(try pair.client.send(.ack(Ack(sequence: 1)))) { XCTAssertEqual($0 as? SessionError, .wrongDirection) }
        XCTAssertThrowsError(try pair.client.send(.hello(Hello(agentID: "x")))) { XCTAssertEqual($0 as? SessionError, .wrongDirection) }
        XCTAssertThrowsError(try pair.server.send(.status(Status(timestampMs: 0, state: .stopped)))) {
            XCTAssertEqual($0 as? SessionError, .wrongDirection)
        }
        let item = BatchItem.event(RawEvent(timestampUs: 0, method: 0, host: 0, path: "", durationUs: 0))
        XCTAssertThrowsError(try pair.client.send(.dataBatch(DataBatch(sequence: 1, items: [item, item])))) {
            XCTAssertEqual($0 as? SessionError, .batchTooLarge(2))
        }
        pair.client.close(.local)
        XCTAssertThrowsError(try pair.client.send(.ping(Ping(1)))) { XCTAssertEqual($0 as? SessionError, .closed) }
    }

    func testOutboundFullIsBackpressure() throws {
        let pair = SessionPair(clientLimits: SessionLimits(maxOutboundBytes: 100_000))
        try pair.establish()
        let status = Record.status(Status(timestampMs: 0, state: .capturing, messages: [String(repeating: "q", count: 4000)]))
        var refused: SessionError?
        for _ in 0..<100 {
            do { try pair.client.send(status) } catch { refused = error; break }
        }
        XCTAssertEqual(refused, .outboundFull)
        XCTAssertLessThanOrEqual(pair.client.outbound.readableBytes, 100_000)
        XCTAssertNil(pair.client.closeReason, "backpressure is not a failure")
        pair.pump()
        XCTAssertNoThrow(try pair.client.send(status))
    }

    func testOwnerCloseSendsErrorWhenAsked() throws {
        let pair = SessionPair()
        try pair.establish()
        pair.server.close(.idleTimeout, error: ErrorRecord(code: .idleTimeout, message: "idle 60s"))
        XCTAssertEqual(pair.server.closeReason, .idleTimeout)
        pair.pump()
        XCTAssertEqual(pair.client.peerError, ErrorRecord(code: .idleTimeout, message: "idle 60s"))
        XCTAssertEqual(pair.clientRecords, [.error(ErrorRecord(code: .idleTimeout, message: "idle 60s"))])
        XCTAssertEqual(pair.client.closeReason, .peerError)
        XCTAssertEqual(pair.server.feed([1, 2, 3]), [], "a closed session ignores input")
    }

    func testClientObeysAnnouncedLimits() throws {
        let serverLimits = SessionLimits(wire: WireLimits(maxRecordLength: 300, maxBatchItems: 3))
        let pair = SessionPair(serverLimits: serverLimits)
        pair.welcome = Welcome(sessionID: 1, collectorTimeMs: 0,
                               limits: serverLimits.announced(maxInFlightBatches: 4, pingIntervalMs: 1000, idleTimeoutMs: 5000))
        try pair.establish()
        let item = BatchItem.event(RawEvent(timestampUs: 0, method: 0, host: 0, path: "", durationUs: 0))
        XCTAssertThrowsError(try pair.client.send(.dataBatch(DataBatch(sequence: 1, items: [item, item, item, item])))) {
            XCTAssertEqual($0 as? SessionError, .batchTooLarge(4))
        }
        XCTAssertThrowsError(try pair.client.send(.status(Status(timestampMs: 0, state: .stopped,
                                                                  messages: [String(repeating: "m", count: 400)]))))
        try pair.client.send(.dataBatch(DataBatch(sequence: 1, items: [item, item, item])))
        try pair.client.flush()
        pair.pump()
        XCTAssertNil(pair.server.closeReason)
        XCTAssertEqual(pair.serverRecords.count, 1)
        pair.client.releaseMemory()
        pair.server.releaseMemory()
        try pair.client.send(.ping(Ping(3)))
        try pair.client.flush()
        pair.pump()
        XCTAssertEqual(pair.clientRecords, [.pong(Ping(3))])
    }

    func testCloseReasonCounts() {
        var counts = CloseReasonCounts()
        counts.add(.decryptFailed)
        counts.add(.decryptFailed)
        counts.add(.peerClosed)
        XCTAssertEqual(counts[.decryptFailed], 2)
        XCTAssertEqual(counts.total, 3)
        XCTAssertEqual(counts.nonZero.map { $0.0 }, [.decryptFailed, .peerClosed])
        XCTAssertEqual(Set(CloseReason.allCases.map(\.description)).count, CloseReason.allCases.count)
    }
}
