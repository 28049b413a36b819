// The responder asks for its keys: `.needKeys` when the preamble is read,
// the answer on a later call, message 1 kept meanwhile and read (message 2
// written) only once the keys are there; message 3 tried under each
// candidate key by the session itself; bytes past message 1 left with the
// owner while the keys are outstanding. A version-1 agent is told to
// upgrade.
import Reactor
import XCTest
@testable import Wire

final class KeyRequestTests: XCTestCase {
    let psk = Key32(bytes: [UInt8](repeating: 0x42, count: 32))!
    let other = Key32(bytes: [UInt8](repeating: 0x17, count: 32))!
    let welcome = Welcome(sessionID: 3, collectorTimeMs: 4)

    /// Preamble + message 1 of a real client, and the client to finish with.
    func opening(hello: Hello? = Hello(agentID: "agent-1"), psk: Key32? = nil) throws -> (ClientSession, [UInt8]) {
        let client = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk ?? self.psk, collectorKey: TestKeys.collector.publicKey,
                                   identity: TestKeys.agent, hello: hello)
        try client.start()
        return (client, SessionPair.take(client.outbound))
    }

    func server() -> ServerSession { ServerSession(staticKey: TestKeys.collector) }

    func feed(_ s: ServerSession, _ bytes: [UInt8], events: inout [SessionEvent]) -> Int {
        bytes.withUnsafeBytes { raw in s.feed(raw) { events.append($0) } }
    }

    /// Message 2 to the client, message 3 back to the server.
    func message3(_ client: ClientSession, _ s: ServerSession, events: inout [SessionEvent]) {
        let m2 = SessionPair.take(s.outbound)
        XCTAssertFalse(m2.isEmpty, "message 2 written")
        XCTAssertEqual(client.feed(m2), [])
        let m3 = SessionPair.take(client.outbound)
        XCTAssertEqual(feed(s, m3, events: &events), m3.count)
    }

    func testAsksOnceThenTriesEachKeyAndNamesTheOneThatFits() throws {
        let (client, bytes) = try opening()
        let s = server()
        var events: [SessionEvent] = []
        XCTAssertEqual(feed(s, bytes, events: &events), bytes.count)
        XCTAssertEqual(events, [.needKeys(project: "acme")])
        XCTAssertTrue(s.isWaitingForKeys)
        XCTAssertTrue(s.hasMessage1, "message 1 came with the preamble and waits")
        XCTAssertEqual(s.state, .handshake)
        XCTAssertEqual(s.outbound.readableBytes, 0, "no message 2 before the keys")

        events = []
        s.provideKeys([Key32.random(), other, psk]) { events.append($0) }
        XCTAssertEqual(events, [], "nothing is reported before message 3")
        XCTAssertFalse(s.isWaitingForKeys)
        XCTAssertFalse(s.hasMessage1)
        message3(client, s, events: &events)
        XCTAssertEqual(events, [.hello(Hello(agentID: "agent-1"))])
        XCTAssertEqual(s.keyIndex, 2)
        XCTAssertEqual(s.peerStaticKey, TestKeys.agent.publicKey)
        XCTAssertEqual(s.counters.messagesIn, 2, "messages 1 and 3, however many keys were tried")
        try s.accept(welcome)
        XCTAssertEqual(s.state, .established)
        XCTAssertEqual(client.feed(SessionPair.take(s.outbound)), [.welcome(welcome)])
        XCTAssertEqual(client.handshakeHash, s.handshakeHash)

        // A second answer is ignored.
        s.provideKeys([psk]) { events.append($0) }
        s.unknownProject { events.append($0) }
        XCTAssertEqual(s.state, .established)
    }

    func testKeysGivenBeforeMessage1AreUsedWhenItCompletes() throws {
        let (client, bytes) = try opening()
        let s = server()
        var events: [SessionEvent] = []
        let preambleLength = Preamble(projectID: "acme")!.bytes.count
        XCTAssertEqual(feed(s, Array(bytes[..<(preambleLength + 5)]), events: &events), preambleLength + 5)
        XCTAssertEqual(events, [.needKeys(project: "acme")])
        XCTAssertFalse(s.hasMessage1)
        s.provideKeys([other, psk]) { events.append($0) }
        XCTAssertEqual(events.count, 1, "nothing to read yet")
        XCTAssertEqual(s.outbound.readableBytes, 0)
        XCTAssertEqual(feed(s, Array(bytes[(preambleLength + 5)...]), events: &events), bytes.count - preambleLength - 5)
        message3(client, s, events: &events)
        XCTAssertEqual(events.last, .hello(Hello(agentID: "agent-1")))
        XCTAssertEqual(s.keyIndex, 1)
    }

    func testNoKeyFitsFailsTheHandshakeSilently() throws {
        let (client, bytes) = try opening(psk: Key32.random())
        let s = server()
        var events: [SessionEvent] = []
        _ = feed(s, bytes, events: &events)
        s.provideKeys([psk, other]) { events.append($0) }
        message3(client, s, events: &events)
        XCTAssertEqual(events, [.needKeys(project: "acme"), .closed(.handshakeFailed)])
        XCTAssertNil(s.keyIndex)
        XCTAssertNil(s.peerStaticKey, "an agent key is not reported without the project key")
        XCTAssertEqual(s.outbound.readableBytes, 0)

        let (client2, bytes2) = try opening()
        let empty = server()
        events = []
        _ = feed(empty, bytes2, events: &events)
        empty.provideKeys([]) { events.append($0) }
        message3(client2, empty, events: &events)
        XCTAssertEqual(events.last, .closed(.handshakeFailed))
    }

    func testAnotherCollectorKeyFailsAtMessage1() throws {
        let (_, bytes) = try opening()
        let impostor = ServerSession(staticKey: StaticKeyPair.generate())
        var events: [SessionEvent] = []
        _ = feed(impostor, bytes, events: &events)
        impostor.provideKeys([psk]) { events.append($0) }
        XCTAssertEqual(events.last, .closed(.handshakeFailed))
        XCTAssertEqual(impostor.outbound.readableBytes, 0, "no message 2 from a collector that cannot read message 1")
    }

    func testUnknownProjectAnswer() throws {
        let (_, bytes) = try opening()
        let s = server()
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
        let s = server()
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

    func testBytesAfterMessage1StayWithTheOwnerUntilTheKeys() throws {
        let (_, bytes) = try opening()
        let s = server()
        var events: [SessionEvent] = []
        let early: [UInt8] = [0x00, 0x20, 0xAA]
        XCTAssertEqual(feed(s, bytes + early, events: &events), bytes.count, "message 1 waits: the rest is not taken")
        XCTAssertEqual(feed(s, early, events: &events), 0)
        XCTAssertNil(s.closeReason)
        s.compactBuffers(threshold: 16)
        XCTAssertTrue(s.hasMessage1, "compaction keeps a waiting message 1")
        s.provideKeys([psk]) { events.append($0) }
        XCTAssertGreaterThan(s.outbound.readableBytes, 0, "message 2 written")
        XCTAssertEqual(s.counters.bytesIn, UInt64(bytes.count))
    }

    func testProbeAndBadPayloadAfterTheKeys() throws {
        let (probeClient, probe) = try opening(hello: nil)
        let s = server()
        var events: [SessionEvent] = []
        _ = feed(s, probe, events: &events)
        s.provideKeys([psk]) { events.append($0) }
        message3(probeClient, s, events: &events)
        XCTAssertEqual(events.last, .hello(nil))
        XCTAssertTrue(s.isProbe)

        // Message 3 under the right key whose payload breaks the rules.
        let pre = Preamble(projectID: "acme")!.bytes
        var hs = NoiseHandshake(initiatorPrologue: pre, psk: psk, staticKey: TestKeys.agent, collectorKey: TestKeys.collector.publicKey)
        let m1 = try hs.writeMessage(payload: [])
        let bad = server()
        events = []
        _ = feed(bad, pre + [UInt8(m1.count >> 8), UInt8(m1.count & 0xFF)] + m1, events: &events)
        bad.provideKeys([other, psk]) { events.append($0) }
        let m2 = SessionPair.take(bad.outbound)
        _ = try hs.readMessage(Array(m2.dropFirst(2)))
        let m3 = try hs.writeMessage(payload: Record.ping(Ping(1)).encoded)
        _ = feed(bad, [UInt8(m3.count >> 8), UInt8(m3.count & 0xFF)] + m3, events: &events)
        XCTAssertEqual(events.last, .closed(.badHandshakePayload), "the right key, a payload that breaks the rules")
    }

    func testALookupSessionNeverAsks() throws {
        let (client, bytes) = try opening()
        let psk = self.psk
        let s = ServerSession(staticKey: TestKeys.collector) { $0 == "acme" ? psk : nil }
        XCTAssertEqual(s.feed(bytes), [])
        var events: [SessionEvent] = []
        message3(client, s, events: &events)
        XCTAssertEqual(events, [.hello(Hello(agentID: "agent-1"))])
        XCTAssertEqual(s.keyIndex, 0)
    }

    func testAVersion1AgentIsToldToUpgrade() throws {
        // A raw version-1 preamble and an NNpsk0 message 1, as an old agent
        // sends them: message 2 is an NNpsk0 answer it can read, carrying
        // an Error record that says it must be upgraded.
        let old = Preamble(projectID: "acme", version: Preamble.legacyVersion)!
        XCTAssertEqual(old.bytes, [0x56, 0x47, 0x4C, 0x01, 0x04] + Array("acme".utf8))
        var initiator = NNpsk0Handshake(role: .initiator, prologue: old.bytes, psk: psk)
        let m1 = try initiator.writeMessage(payload: Record.hello(Hello(agentID: "old")).encoded)
        let s = server()
        var events: [SessionEvent] = []
        _ = feed(s, old.bytes + [UInt8(m1.count >> 8), UInt8(m1.count & 0xFF)] + m1, events: &events)
        s.provideKeys([other, psk]) { events.append($0) }
        XCTAssertEqual(events, [.needKeys(project: "acme"), .closed(.outdatedProtocol)])
        let m2 = SessionPair.take(s.outbound)
        let payload = try initiator.readMessage(Array(m2.dropFirst(2)))
        guard case .error(let e) = try Record.decodeAll(payload).first else { return XCTFail("no Error record") }
        XCTAssertTrue(e.message.contains("agent must be upgraded"), e.message)

        // Under no key it learns nothing.
        let s2 = server()
        events = []
        _ = feed(s2, old.bytes + [UInt8(m1.count >> 8), UInt8(m1.count & 0xFF)] + m1, events: &events)
        s2.provideKeys([other]) { events.append($0) }
        XCTAssertEqual(events.last, .closed(.handshakeFailed))
        XCTAssertEqual(s2.outbound.readableBytes, 0)
    }
}
