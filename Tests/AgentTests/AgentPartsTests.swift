// Unit tests for the agent's smaller parts: queue resizing, the in-flight
// window's re-send cursor, batch encoding across a full string table, size
// bounds, rule mapping, settings cross-checks, and the UDP receiver's
// all-or-nothing rebinding.
import IPAPipeline
import XCTest
import ConfigFile
import Reactor
import Wire
@testable import Agent

final class QueueAndWindowTests: XCTestCase {
    func testResizeKeepsOrderAndCountsWhatNoLongerFits() {
        var q = SendQueues<Int>(queue1Size: 4, queue2Size: 4)
        for i in 0..<6 { q.push(i, priority: true) }        // 2 refused
        q.countRefused(priority: false)                      // refused before it was built
        XCTAssertEqual(q.dropped1, 2)
        XCTAssertEqual(q.dropped2, 1)
        q.resize(queue1Size: 2, queue2Size: 8)
        XCTAssertEqual(q.dropped1, 4, "two more did not fit the smaller queue")
        XCTAssertEqual(q.dropped2, 1)
        XCTAssertEqual(q.pop(), 0)
        XCTAssertEqual(q.pop(), 1)
        XCTAssertNil(q.pop())
        XCTAssertTrue(q.hasRoom(priority: true))
    }

    func testFirstPendingAfterASequence() {
        var w = InFlightWindow<Int>(maxBatches: 10, maxBytes: 1000)
        for i in 1...5 { _ = w.add(i, bytes: 1) }
        XCTAssertEqual(w.firstPending(after: 0)?.sequence, 1)
        XCTAssertEqual(w.firstPending(after: 3)?.sequence, 4)
        XCTAssertNil(w.firstPending(after: 5))
        w.acknowledge(upTo: 2)
        XCTAssertEqual(w.firstPending(after: 0)?.sequence, 3, "acknowledged batches are never re-sent")
        XCTAssertEqual(w.acknowledgedItems, 2)
    }
}

final class BatchEncoderTests: XCTestCase {
    func aggregate(_ m: String, _ c: String) -> OutboundItem {
        .aggregate(LatencyAggregate(windowStartMs: 1000, windowMs: 10, monitor: m, check: c, source: "ipa", count: 2,
                                    sumUs: 3000, minUs: 1000, maxUs: 2000, p50Us: 1000, p95Us: 2000, p99Us: 2000))
    }

    func testAFullStringTableIsClearedBetweenBatchesAndNamesStayRight() throws {
        let key = TestCollector.makeKey()
        let client = ClientSession(accessKey: key, identity: StaticKeyPair.generate(), hello: Hello(agentID: "a"))
        let server = ServerSession(staticKey: TestCollector.staticKey) { _ in key.secret }
        /// Batches received, names resolved as they arrive (the table changes).
        func pump() -> [(UInt64, [String])] {
            var records: [(UInt64, [String])] = []
            for _ in 0..<4 {
                let up = client.outbound.readableArray; client.outbound.consume(up.count)
                up.withUnsafeBytes { bytes in
                    _ = server.feed(bytes) { e in
                        if case .hello = e { try? server.accept(Welcome(sessionID: 1, collectorTimeMs: 0, limits: .init(maxStringID: 4))) }
                        if case .record(.dataBatch(let b)) = e {
                            records.append((b.sequence, b.items.compactMap {
                                if case .aggregate(let a) = $0 { return server.strings[a.monitor]! + "/" + server.strings[a.check]! }
                                return nil
                            }))
                        }
                    }
                }
                let down = server.outbound.readableArray; server.outbound.consume(down.count)
                _ = client.feed(down)
            }
            return records
        }
        try client.start()
        _ = pump()
        XCTAssertEqual(client.state, .established)
        XCTAssertEqual(client.stringTableLimits.maxID, 4)
        // Batches take at most half the table's ids (2 names): one item each.
        var queues = SendQueues<OutboundItem>(queue1Size: 8, queue2Size: 8)
        queues.push(aggregate("m1", "c1"), priority: true)
        queues.push(aggregate("m1", "c1"), priority: true)
        queues.push(aggregate("m2", "c2"), priority: true)
        let limits = BatchEncoder.Limits(maxItems: 100, maxBytes: 60_000, maxNames: 2, maxNameBytes: 100)
        let (first, _) = BatchEncoder.takeBatch(from: &queues, limits: limits)
        XCTAssertEqual(first.count, 2, "the same names again cost nothing")
        let (second, _) = BatchEncoder.takeBatch(from: &queues, limits: limits)
        XCTAssertEqual(second.count, 1)
        XCTAssertTrue(try BatchEncoder.send(sequence: 1, items: first, on: client))
        XCTAssertTrue(try BatchEncoder.send(sequence: 2, items: second, on: client), "fits after a StringClear")
        try client.flush()
        var got = pump()
        // Names that cannot fit an empty table: an empty batch keeps the sequence.
        XCTAssertFalse(try BatchEncoder.send(sequence: 3, items: [aggregate("m3", "c3"), aggregate("m4", "c4")], on: client))
        try client.flush()
        got += pump()
        let batches = got
        XCTAssertEqual(batches.map(\.0), [1, 2, 3])
        XCTAssertEqual(batches.map(\.1), [["m1/c1", "m1/c1"], ["m2/c2"], []])
    }

    func testSizeBoundHoldsForTheWidestIds() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let e = ForwardedEvent(timestampUs: .max, method: "GET", host: "h", path: String(repeating: "p", count: Int.random(in: 0...9000, using: &rng)),
                                   durationUs: .max, monitor: "m", check: "c")
            var w = WireWriter()
            BatchItem.event(RawEvent(timestampUs: .max, method: .max, host: .max, path: e.path, status: 0, durationUs: .max,
                                     monitor: .max, check: .max)).encode(into: &w)
            XCTAssertLessThanOrEqual(w.count, OutboundItem.event(e).encodedSizeBound)
        }
        var w = WireWriter()
        BatchItem.aggregate(Wire.Aggregate(windowStartMs: .max, windowLengthMs: .max, monitor: .max, check: .max, source: .max,
                                           count: .max, errors: .max, sumUs: .max, minUs: .max, maxUs: .max,
                                           p50Us: .max, p95Us: .max, p99Us: .max)).encode(into: &w)
        XCTAssertLessThanOrEqual(w.count, aggregate("m", "c").encodedSizeBound)
    }
}

final class RuleAndSettingsTests: XCTestCase {
    func testWireRulesMapEmptyGlobsToAnyAndExcludeDrops() {
        let set = PatternSet(rules: [
            FilterRule(wire: Wire.PatternRule(method: "", hostGlob: "", pathGlob: "/health", exclude: true)),
            FilterRule(wire: Wire.PatternRule(method: "GET", hostGlob: "", pathGlob: "", monitor: "m", check: "c")),
            FilterRule(wire: Wire.PatternRule(method: "", hostGlob: "*", pathGlob: "*", monitor: "", check: "x")),
        ], version: 1)
        XCTAssertEqual(set.unusable, [2], "a counting rule needs a monitor")
        XCTAssertEqual(set.match(method: "GET", host: "h", path: "/health"), 0)
        XCTAssertTrue(set.isExclude(0))
        XCTAssertEqual(set.match(method: "GET", host: "h", path: "/x"), 1)
        XCTAssertNil(set.match(method: "POST", host: "h", path: "/x"), "the unusable rule matches nothing")
    }

    func testCrossKeyErrorsNameTheirLine() throws {
        let text = "access_key = acme.tooshort\nreconnect_interval_min = 20s\nreconnect_interval_max = 10s\n"
        let config = try AgentSchema.schema.load(text: text, path: "a.conf")
        XCTAssertThrowsError(try AgentSettings(config)) { e in
            let lines = (e as! ConfigErrors).errors.map(\.description)
            XCTAssertEqual(lines.count, 2)
            XCTAssertTrue(lines[0].hasPrefix("a.conf:1: key 'access_key': expected an access key"), lines[0])
            XCTAssertTrue(lines[0].hasSuffix("got <redacted>"), lines[0])
            XCTAssertEqual(lines[1], "a.conf:2: key 'reconnect_interval_min': expected at most reconnect_interval_max (10000 ms), got \"20000\"")
        }
    }

    func testSettingsFromDefaults() throws {
        let key = TestCollector.makeKey()
        let config = try AgentSchema.schema.load(text: "access_key = \(key.text)\nipa_bind = 127.0.0.1, ::1\n", path: "a.conf")
        let s = try AgentSettings(config)
        XCTAssertEqual(s.uplink.hosts, ["127.0.0.1"])
        XCTAssertEqual(s.uplink.port, 6600)
        XCTAssertEqual(s.uplink.connectTimeout, 5)
        XCTAssertEqual(s.uplink.silenceTimeout, 60)
        XCTAssertEqual(s.uplink.pingGrace, 30)
        XCTAssertEqual(s.uplink.sendMaxBytes, 5_242_880)
        XCTAssertEqual(s.uplink.queue1Size, 512)
        XCTAssertEqual(s.uplink.queue2Size, 1024)
        XCTAssertEqual(s.ingest.addresses.map(\.description), ["127.0.0.1:51712", "[::1]:51712"])
        XCTAssertTrue(s.capture)
        XCTAssertFalse(s.forwardRawEvents)
        XCTAssertEqual(s.aggregationIntervalMs, 10_000)
        XCTAssertEqual(s.agentName, HostInfo.hostname())
    }
}

final class IPAReceiverTests: XCTestCase {
    func testRebindIsAllOrNothingAndKeepsUnchangedSockets() throws {
        let loop = EventLoop()
        let pipeline = IngestPipeline(aggregationIntervalMs: 1000)
        let r = IPAReceiver(loop: loop, pipeline: pipeline)
        let p1 = freeUDPPort()
        let v4 = try SocketAddress(ip: "127.0.0.1", port: p1), v6 = try SocketAddress(ip: "::1", port: p1)
        try r.open(.init(addresses: [v4, v6], receiveBuffer: 0))
        XCTAssertEqual(r.localAddresses.count, 2)
        UDPClient(port: p1).send("x")
        UDPClient(port: p1, ipv6: true).send("y")
        XCTAssertTrue(loop.run(until: { pipeline.counters.datagrams == 2 }, timeout: 2))

        // One address taken: nothing changes.
        let busy = try UDPSocket.loopback(port: 0)
        defer { busy.close() }
        XCTAssertThrowsError(try r.open(.init(addresses: [v4, try SocketAddress(ip: "127.0.0.1", port: busy.localAddress.port)], receiveBuffer: 0))) {
            XCTAssertTrue("\($0)".contains("EADDRINUSE"), "\($0)")
        }
        XCTAssertEqual(r.localAddresses.map(\.description), [v4.description, v6.description])

        // Dropping ::1 keeps the IPv4 socket as it was.
        try r.open(.init(addresses: [v4], receiveBuffer: 0))
        XCTAssertEqual(r.localAddresses.map(\.description), [v4.description])
        UDPClient(port: p1).send("z")
        XCTAssertTrue(loop.run(until: { pipeline.counters.datagrams == 3 }, timeout: 2))
        XCTAssertEqual(r.datagrams, 3, "totals include closed sockets")
        r.close()
        XCTAssertFalse(r.isOpen)
    }

    func testOversizeDatagramsAreCounted() throws {
        let loop = EventLoop()
        let pipeline = IngestPipeline(aggregationIntervalMs: 1000)
        let r = IPAReceiver(loop: loop, pipeline: pipeline)
        let p = freeUDPPort()
        try r.open(.init(addresses: [try SocketAddress(ip: "127.0.0.1", port: p)], receiveBuffer: 1 << 20))
        // A full 65,507-byte UDP payload fits; nothing is truncated at 64 KiB.
        UDPClient(port: p).send(String(repeating: "a", count: 65_507))
        XCTAssertTrue(loop.run(until: { pipeline.counters.datagrams == 1 }, timeout: 2))
        XCTAssertEqual(r.truncated, 0)
        XCTAssertEqual(pipeline.counters.parseDrops[.oversize], 1, "one 64 KiB line: too long")
    }
}
