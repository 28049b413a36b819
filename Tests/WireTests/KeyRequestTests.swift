// The responder asks for its keys: `.needKeys` when the preamble is read, the
// answer on a later call, message 1 kept meanwhile and tried under each
// candidate key by the session itself; bytes past message 1 left with the
// owner while the keys are outstanding.
import Reactor
import XCTest
@testable import Wire

final class KeyRequestTests: XCTestCase {
    let psk = Key32(bytes: [UInt8](repeating: 0x42, count: 32))!
    let other = Key32(bytes: [UInt8](repeating: 0x17, count: 32))!
    let welcome = Welcome(sessionID: 3, collectorTimeMs: 4)

    /// Preamble + message 1 of a real client, and the client to finish with.
    func opening(hello: Hello? = Hello(agentID: "agent-1"), psk: Key32? = nil) throws -> (ClientSession, [UInt8]) {
        let client = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk ?? self.psk, hello: hello)
        try client.start()
        return (client, SessionPair.take(client.outbound))
    }

    func feed(_ s: ServerSession, _ bytes: [UInt8], events: inout [SessionEvent]) -> Int {
        bytes.withUnsafeBytes { raw in s.feed(raw) { events.append($0) } }
    }

    func testAsksOnceThenTriesEachKeyAndNamesTheOneThatFits() throws {
        let (client, bytes) = try opening()
        let s = ServerSession()
        var events: [SessionEvent] = []
        XCTAssertEqual(feed(s, bytes, events: &events), bytes.count)
        XCTAssertEqual(events, [.needKeys(project: "acme")])
        XCTAssertTrue(s.isWaitingForKeys)
        XCTAssertTrue(s.hasMessage1, "message 1 came with the preamble and waits")
        XCTAssertEqual(s.state, .handshake)
        XCTAssertEqual(s.outbound.readableBytes, 0)

        events = []
        s.provideKeys([Key32.random(), other, psk]) { events.append($0) }
        XCTAssertEqual(events, [.hello(Hello(agentID: "agent-1"))])
        XCTAssertEqual(s.keyIndex, 2)
        XCTAssertFalse(s.isWaitingForKeys)
        XCTAssertFalse(s.hasMessage1)
        XCTAssertEqual(s.counters.messagesIn, 1, "one message, however many keys were tried")
        try s.accept(welcome)
        XCTAssertEqual(s.state, .established)
        XCTAssertEqual(client.feed(SessionPair.take(s.outbound)), [.welcome(welcome)])
        XCTAssertEqual(client.handshakeHash, s.handshakeHash)

        // A second answer is ignored.
        s.provideKeys([psk]) { events.append($0) }
        s.unknownProject { events.append($0) }
        XCTAssertEqual(s.state, .established)
    }

    func testKeysGivenBeforeMessage1AreTriedWhenItCompletes() throws {
        let (_, bytes) = try opening()
        let s = ServerSession()
        var events: [SessionEvent] = []
        let preambleLength = Preamble(projectID: "acme")!.bytes.count
        XCTAssertEqual(feed(s, Array(bytes[..<(preambleLength + 5)]), events: &events), preambleLength + 5)
        XCTAssertEqual(events, [.needKeys(project: "acme")])
        XCTAssertFalse(s.hasMessage1)
        s.provideKeys([other, psk]) { events.append($0) }
        XCTAssertEqual(events.count, 1, "nothing to try yet")
        XCTAssertEqual(feed(s, Array(bytes[(preambleLength + 5)...]), events: &events), bytes.count - preambleLength - 5)
        XCTAssertEqual(events.last, .hello(Hello(agentID: "agent-1")))
        XCTAssertEqual(s.keyIndex, 1)
    }

    func testNoKeyFitsFailsTheHandshakeSilently() throws {
        let (_, bytes) = try opening(psk: Key32.random())
        let s = ServerSession()
        var events: [SessionEvent] = []
        _ = feed(s, bytes, events: &events)
        s.provideKeys([psk, other]) { events.append($0) }
        XCTAssertEqual(events, [.needKeys(project: "acme"), .closed(.handshakeFailed)])
        XCTAssertNil(s.keyIndex)
        XCTAssertEqual(s.outbound.readableBytes, 0)

        let empty = ServerSession()
        events = []
        _ = feed(empty, bytes, events: &events)
        empty.provideKeys([]) { events.append($0) }
        XCTAssertEqual(events.last, .closed(.handshakeFailed))
    }

    func testUnknownProjectAnswer() throws {
        let (_, bytes) = try opening()
        let s = ServerSession()
        var events: [SessionEvent] = []
        _ = feed(s, Array(bytes.prefix(9)), events: &events)
        XCTAssertEqual(events, [.needKeys(project: "acme")])
        s.unknownProject { events.append($0) }
        XCTAssertEqual(events.last, .closed(.unknownProject))
        XCTAssertEqual(s.closeReason, .unknownProject)
        XCTAssertFalse(s.isWaitingForKeys)
        XCTAssertEqual(feed(s, Array(bytes.dropFirst(9)), events: &events), bytes.count - 9, "a closed session drops input")
        XCTAssertEqual(events.count, 2)
    }

    func testClosingWhileKeysAreAskedForEndsTheRequest() throws {
        // Found by fuzz-handshake: the preamble, then a frame length above
        // the handshake bound, in one read.
        let s = ServerSession()
        var events: [SessionEvent] = []
        _ = feed(s, Preamble(projectID: "acme")!.bytes + [0xFF, 0xFF], events: &events)
        XCTAssertEqual(events, [.needKeys(project: "acme"), .closed(.badFrameLength)])
        XCTAssertFalse(s.isWaitingForKeys, "a closed session waits for nothing")
        XCTAssertFalse(s.hasMessage1)
        s.provideKeys([psk]) { events.append($0) }
        s.unknownProject { events.append($0) }
        XCTAssertEqual(events.count, 2)
        XCTAssertEqual(s.closeReason, .badFrameLength)
    }

    func testBytesAfterMessage1StayWithTheOwnerUntilTheHello() throws {
        let (_, bytes) = try opening()
        let s = ServerSession()
        var events: [SessionEvent] = []
        let early: [UInt8] = [0x00, 0x20, 0xAA]
        XCTAssertEqual(feed(s, bytes + early, events: &events), bytes.count, "message 1 waits: the rest is not taken")
        XCTAssertEqual(feed(s, early, events: &events), 0)
        XCTAssertNil(s.closeReason)
        s.compactBuffers(threshold: 16)
        XCTAssertTrue(s.hasMessage1, "compaction keeps a waiting message 1")
        s.provideKeys([psk]) { event in
            events.append(event)
            if case .hello = event { _ = try? s.accept(self.welcome) }
        }
        XCTAssertEqual(s.state, .established)
        XCTAssertEqual(s.counters.bytesIn, UInt64(bytes.count))
    }

    func testProbeAndBadPayloadAfterTheKeys() throws {
        let (_, probe) = try opening(hello: nil)
        let s = ServerSession()
        var events: [SessionEvent] = []
        _ = feed(s, probe, events: &events)
        s.provideKeys([psk]) { events.append($0) }
        XCTAssertEqual(events.last, .hello(nil))
        XCTAssertTrue(s.isProbe)

        let pre = Preamble(projectID: "acme")!.bytes
        var hs = NoiseHandshake(role: .initiator, prologue: pre, psk: psk)
        let m1 = try hs.writeMessage(payload: Record.ping(Ping(1)).encoded)
        let bad = ServerSession()
        events = []
        _ = feed(bad, pre + [UInt8(m1.count >> 8), UInt8(m1.count & 0xFF)] + m1, events: &events)
        bad.provideKeys([other, psk]) { events.append($0) }
        XCTAssertEqual(events.last, .closed(.badHandshakePayload), "the right key, a payload that breaks the rules")
    }

    func testALookupSessionNeverAsks() throws {
        let (_, bytes) = try opening()
        let psk = self.psk
        let s = ServerSession { $0 == "acme" ? psk : nil }
        XCTAssertEqual(s.feed(bytes), [.hello(Hello(agentID: "agent-1"))])
        XCTAssertEqual(s.keyIndex, 0)
    }
}
