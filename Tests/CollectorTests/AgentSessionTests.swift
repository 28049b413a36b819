// AgentSession against a scripted AgentSessionContext, over a socketpair and
// a loop driven one iteration at a time: the keys answered on a later
// iteration, a handshake turn refused and given later, messages 2 and 3,
// bytes an agent sent before message 2, and each way a handshake ends. The context is the whole
// seam: nothing here needs a SessionManager, a store or a wheel.
import Glibc
import XCTest
import Reactor
import Wire
@testable import Collector

private final class ScriptedContext: AgentSessionContext {
    let loop: EventLoop
    let sessionLimits = SessionLimits()
    let collectorKey = StaticKeyPair(secret: Key32(bytes: [UInt8](repeating: 0x11, count: 32))!)
    var settings = SessionSettings(maxClients: 10, handshakeTimeout: 30, idleTimeout: 60)
    var answer = Admission.welcome(Welcome(sessionID: 9, collectorTimeMs: 1))

    var deadlines = 0
    var lookups: [String] = []
    var turnsAllowed = true
    var turnsRefused = 0
    var admitted: [(Hello?, Bool)] = []
    /// The registry's answer, given at once; the keys it was asked about.
    var identity = IdentityAnswer.accepted
    var verified: [(String, Key32)] = []
    var failures: [HandshakeFailure] = []
    var established = 0
    var bytesIn = 0
    var records: [Record] = []
    var ended: [CloseReason] = []
    var finished = 0

    init(loop: EventLoop) { self.loop = loop }

    func setDeadline(_ s: AgentSession, at time: Double) { deadlines += 1 }
    func clearDeadline(_ s: AgentSession) {}
    func lookupKeys(for s: AgentSession, project: String) { lookups.append(project) }
    func mayHandshake(_ s: AgentSession) -> Bool {
        if !turnsAllowed { turnsRefused += 1 }
        return turnsAllowed
    }
    func admit(_ s: AgentSession, hello: Hello?, revokedKey: Bool) -> Admission {
        admitted.append((hello, revokedKey))
        return revokedKey ? .refuse(ErrorRecord(code: .rejected, message: "access key revoked"), .revokedKey) : answer
    }
    func verifyIdentity(_ s: AgentSession, agentID: String, key: Key32) {
        verified.append((agentID, key))
        s.identityAnswered(identity)
    }
    func handshakeFailed(_ s: AgentSession, _ failure: HandshakeFailure) { failures.append(failure) }
    func sessionEstablished(_ s: AgentSession, hello: Hello?) { established += 1 }
    func mayRead(_ s: AgentSession) -> Bool { true }
    var finishesAllowed = true
    var finishesRefused = 0
    func mayFinishHandshake(_ s: AgentSession) -> Bool {
        if !finishesAllowed { finishesRefused += 1 }
        return finishesAllowed
    }
    func didRead(_ s: AgentSession, bytes: Int) { bytesIn += bytes }
    func received(_ record: Record, from s: AgentSession) { records.append(record) }
    func didWrite(_ s: AgentSession, bytes: Int) {}
    func didSend(_ s: AgentSession) {}
    func writeRefused(_ s: AgentSession) {}
    func pinged(_ s: AgentSession) {}
    func sessionEnded(_ s: AgentSession, reason: CloseReason) { ended.append(reason) }
    func sessionFinished(_ s: AgentSession) { finished += 1 }
}

final class AgentSessionTests: XCTestCase {
    let psk = Key32(bytes: [UInt8](repeating: 0x42, count: 32))!
    let revoked = Key32(bytes: [UInt8](repeating: 0x24, count: 32))!

    /// A session on one end of a socketpair; the test is the agent on the other.
    private func start() throws -> (EventLoop, ScriptedContext, AgentSession, Int32) {
        let loop = EventLoop()
        let context = ScriptedContext(loop: loop)
        let (mine, theirs) = try Syscalls.socketpair()
        let s = AgentSession(context: context, peer: try SocketAddress(parsing: "127.0.0.1:1"), sessionID: 1, overCapacity: false)
        var options = TCPConnection.Options()
        options.noDelay = false   // a Unix socket has no Nagle to turn off
        s.attach(fd: theirs, options: options)
        return (loop, context, s, mine)
    }

    private func take(_ buffer: ByteBuffer) -> [UInt8] {
        let bytes = buffer.readableArray
        buffer.consume(bytes.count)
        return bytes
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) {
        XCTAssertEqual(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }

    private func receive(_ fd: Int32) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? Array(buf[..<n]) : []
    }

    private func iterations(_ loop: EventLoop, _ n: Int = 5) {
        for _ in 0..<n { _ = loop.runOnce(wait: false) }
    }

    private func client(_ project: String = "acme", key: Key32? = nil, hello: Hello? = Hello(agentID: "a1")) -> ClientSession {
        ClientSession(preamble: Preamble(projectID: project)!, psk: key ?? psk,
                      collectorKey: StaticKeyPair(secret: Key32(bytes: [UInt8](repeating: 0x11, count: 32))!).publicKey,
                      identity: StaticKeyPair.generate(), hello: hello)
    }

    /// The agent's side of messages 2 and 3: reads message 2 from the
    /// socket, sends message 3, and lets the session read it.
    private func message3(_ loop: EventLoop, _ fd: Int32, _ client: ClientSession) {
        iterations(loop)
        XCTAssertEqual(client.feed(receive(fd)), [])
        send(fd, take(client.outbound))
        iterations(loop)
    }

    func testKeysLaterATurnLaterThenWelcome() throws {
        let (loop, context, s, fd) = try start()
        defer { close(fd) }
        let client = client()
        try client.start()
        send(fd, take(client.outbound))
        iterations(loop)
        XCTAssertEqual(context.lookups, ["acme"], "asked as soon as the preamble was read")
        XCTAssertEqual(s.projectName, "acme")
        XCTAssertEqual(s.phase, .handshake)

        // The answer comes on a later iteration; the budget is spent.
        context.turnsAllowed = false
        s.keysArrived(.keys(HandshakeKeys(projectId: 7, active: [Key32.random(), psk], revoked: [])))
        XCTAssertEqual(context.turnsRefused, 1)
        XCTAssertEqual(s.phase, .handshake, "waits for its turn")
        XCTAssertTrue(s.handshakeTurn(), "the turn comes")
        XCTAssertFalse(s.handshakeTurn(), "once")
        XCTAssertEqual(s.phase, .handshake, "message 2 written; nothing admitted before message 3")
        XCTAssertTrue(context.admitted.isEmpty)
        message3(loop, fd, client)
        XCTAssertEqual(s.phase, .established)
        XCTAssertEqual(s.projectId, 7)
        XCTAssertEqual(s.agentID, "a1")
        XCTAssertEqual(context.admitted.map(\.1), [false])
        XCTAssertEqual(context.established, 1)
        iterations(loop)
        XCTAssertEqual(client.feed(receive(fd)), [.welcome(Welcome(sessionID: 9, collectorTimeMs: 1))])

        try client.send(.status(Status(timestampMs: 5, state: .capturing)))
        try client.flush()
        send(fd, take(client.outbound))
        iterations(loop)
        XCTAssertEqual(context.records, [.status(Status(timestampMs: 5, state: .capturing))])
        XCTAssertTrue(context.failures.isEmpty)
    }

    /// Message 3 is read only when the context allows a handshake to finish
    /// in this iteration; refused, it waits in the kernel for an input turn.
    func testMessage3WaitsForATurnWhenTheFinishBudgetIsSpent() throws {
        let (loop, context, s, fd) = try start()
        defer { close(fd) }
        let client = client()
        try client.start()
        send(fd, take(client.outbound))
        iterations(loop)
        s.keysArrived(.keys(HandshakeKeys(projectId: 7, active: [psk], revoked: [])))
        XCTAssertEqual(context.finishesRefused, 0, "message 1 is not bounded by it")
        context.finishesAllowed = false
        message3(loop, fd, client)
        XCTAssertEqual(s.phase, .handshake, "message 3 not read")
        XCTAssertEqual(context.finishesRefused, 1, "asked once, then paused")
        XCTAssertTrue(context.admitted.isEmpty)

        context.finishesAllowed = true
        s.resumeInput()
        iterations(loop)
        XCTAssertEqual(s.phase, .established)
        XCTAssertEqual(context.established, 1)
        XCTAssertTrue(context.failures.isEmpty)
    }

    func testBytesBeforeMessage2WaitInTheConnectionUntilTheKeysAreThere() throws {
        let (loop, context, s, fd) = try start()
        defer { close(fd) }
        let client = client()
        try client.start()
        // A frame too short for message 3, sent with message 1.
        send(fd, take(client.outbound) + [0x00, 0x01, 0xEE])
        iterations(loop)
        XCTAssertEqual(s.phase, .handshake)
        XCTAssertTrue(s.connection?.isReadingPaused ?? false, "the early bytes wait, reading paused")
        s.keysArrived(.keys(HandshakeKeys(projectId: 1, active: [psk], revoked: [])))
        iterations(loop)
        XCTAssertEqual(s.phase, .closed)
        XCTAssertEqual(context.failures, [.badFrame], "read after message 2, as message 3's frame")
        XCTAssertTrue(context.admitted.isEmpty)
    }

    func testEachWayAHandshakeEnds() throws {
        func run(key: Key32, project: String = "acme", _ answer: (AgentSession) -> Void) throws -> (ScriptedContext, [UInt8]) {
            let (loop, context, s, fd) = try start()
            defer { close(fd) }
            let client = client(project, key: key)
            try client.start()
            send(fd, take(client.outbound))
            iterations(loop)
            answer(s)
            if s.phase == .handshake { message3(loop, fd, client) }
            iterations(loop)
            XCTAssertEqual(s.phase, .closed)
            XCTAssertEqual(context.finished, 1)
            return (context, receive(fd))
        }
        var (c, out) = try run(key: psk) { $0.keysArrived(.unknownProject) }
        XCTAssertEqual(c.failures, [.unknownProject])
        XCTAssertEqual(out, [], "closed without an answer")

        (c, out) = try run(key: Key32.random()) { $0.keysArrived(.keys(HandshakeKeys(projectId: 1, active: [self.psk], revoked: []))) }
        XCTAssertEqual(c.failures, [.wrongKey])
        XCTAssertEqual(out, [])

        (c, out) = try run(key: psk) { $0.keysArrived(.failed(.closed)) }
        XCTAssertEqual(c.failures, [.storeError])

        (c, out) = try run(key: revoked) {
            $0.keysArrived(.keys(HandshakeKeys(projectId: 1, active: [self.psk], revoked: [self.revoked])))
        }
        XCTAssertEqual(c.failures, [.revokedKey])
        XCTAssertEqual(c.admitted.map(\.1), [true])
        XCTAssertGreaterThan(out.count, 2, "the first transport message carries the refusal")
        XCTAssertTrue(c.verified.isEmpty, "a revoked key enrolls nothing")
    }

    func testTheRegistryDecidesBeforeTheWelcome() throws {
        // Accepted: the agent's static key from message 3 is what the
        // registry was asked about, and only then is the session established.
        var (loop, context, s, fd) = try start()
        var identity = StaticKeyPair.generate()
        var c = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk, collectorKey: context.collectorKey.publicKey,
                              identity: identity, hello: Hello(agentID: "a1"))
        try c.start()
        send(fd, take(c.outbound))
        iterations(loop)
        s.keysArrived(.keys(HandshakeKeys(projectId: 1, active: [psk], revoked: [])))
        message3(loop, fd, c)
        XCTAssertEqual(context.verified.map(\.0), ["a1"])
        XCTAssertEqual(context.verified.first?.1, identity.publicKey)
        XCTAssertEqual(s.phase, .established)
        close(fd)

        // Refused: the agent gets the Error as the collector's answer, and
        // nothing is established.
        (loop, context, s, fd) = try start()
        defer { close(fd) }
        context.identity = .refused(ErrorRecord(code: .identityMismatch, message: "enrolled with another static key"), .agentKeyMismatch)
        identity = StaticKeyPair.generate()
        c = ClientSession(preamble: Preamble(projectID: "acme")!, psk: psk, collectorKey: context.collectorKey.publicKey,
                          identity: identity, hello: Hello(agentID: "a1"))
        try c.start()
        send(fd, take(c.outbound))
        iterations(loop)
        s.keysArrived(.keys(HandshakeKeys(projectId: 1, active: [psk], revoked: [])))
        message3(loop, fd, c)
        XCTAssertEqual(context.failures, [.agentKeyMismatch])
        XCTAssertEqual(context.established, 0)
        XCTAssertEqual(c.feed(receive(fd)), [.closed(.rejected)])
        XCTAssertEqual(c.peerError?.code, .identityMismatch)
    }
}
