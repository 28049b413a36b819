import XCTest
import Reactor
import Wire
@testable import LoadGen

/// Simulated agents against an in-process Wire server (TestCollector):
/// the real protocol over loopback, short intervals, a few agents.
final class LoadRunnerTests: XCTestCase {
    override func setUp() {
        super.setUp()
        Log.level = .warn
    }

    func options(_ mode: LoadMode, _ server: TestCollector, agents: Int) -> LoadOptions {
        var o = LoadOptions(mode: mode, accessKey: server.key)
        o.collectors = [server.address]
        o.agents = agents
        o.rate = 1000
        o.statusInterval = 0.1
        o.batchInterval = 0.1
        o.items = 3
        o.duration = 0.8
        o.drain = 3
        o.reportInterval = 0
        o.reconnectMin = 0.05
        o.reconnectMax = 0.1
        o.seed = 1
        return o
    }

    func testDensitySessionsSendStatusAndBatchesAndEveryAckIsInTheLedger() throws {
        let loop = EventLoop()
        let server = try TestCollector(loop: loop)
        defer { server.stop() }
        let out = MemoryLedger()
        let runner = LoadRunner(options: options(.density, server, agents: 5), loop: loop, sources: [], ledgerOutput: out)
        let s = runner.run(handleSignals: false)
        try runner.ledger.finish()

        XCTAssertEqual(s["sessions"], "5")
        XCTAssertEqual(s["ramp_complete"], "1")
        XCTAssertEqual(s["handshakes"], "5")
        XCTAssertEqual(s["sessions_lost"], "0")
        XCTAssertEqual(s["bogus_acks"], "0")
        XCTAssertEqual(s["inflight_at_end"], "0", "the drain waited for every ack")
        XCTAssertEqual(server.interfaces, 5, "session setup: Interfaces, Status, PatternsRequest")
        XCTAssertEqual(server.patternsRequests, 5)
        XCTAssertGreaterThanOrEqual(server.statuses, 5 * 5, "a status every 0.1 s over 0.8 s")
        // Every agent numbered its batches 1, 2, 3… and each was acknowledged once.
        XCTAssertEqual(server.batches.count, 5)
        for (agent, seqs) in server.batches {
            XCTAssertEqual(seqs, Array(1...UInt64(seqs.count)), "\(agent)")
            XCTAssertGreaterThanOrEqual(seqs.count, 4, "\(agent): a batch every 0.1 s")
        }
        let ledger = try LedgerReader.parse(out.lines.joined(separator: "\n"))
        XCTAssertTrue(ledger.complete)
        XCTAssertEqual(ledger.header.items, 3)
        for (agent, seqs) in server.batches {
            XCTAssertEqual(ledger.acks[agent]?.last?.to, UInt64(seqs.count), "\(agent): every batch acknowledged is in the ledger")
        }
        XCTAssertEqual(ledger.records, UInt64(server.batches.values.reduce(0) { $0 + $1.count } * 3))
        XCTAssertEqual(s["acked_records"], "\(ledger.records)")
        XCTAssertTrue(s["closes"]!.hasPrefix("local:5"), s["closes"]!)
    }

    func testALostSessionReconnectsAndResendsItsUnacknowledgedBatchFirst() throws {
        let loop = EventLoop()
        let server = try TestCollector(loop: loop, policy: .resetFirstSessionAt(2))
        defer { server.stop() }
        let out = MemoryLedger()
        var o = options(.density, server, agents: 3)
        o.duration = 1.2
        let runner = LoadRunner(options: o, loop: loop, sources: [], ledgerOutput: out)
        let s = runner.run(handleSignals: false)
        try runner.ledger.finish()

        XCTAssertEqual(server.resetAgents.count, 3)
        XCTAssertEqual(s["sessions_lost"], "3")
        XCTAssertEqual(s["batches_resent"], "3", "batch 2 of each agent, once")
        XCTAssertEqual(s["handshakes"], "6")
        XCTAssertEqual(s["sessions"], "3")
        XCTAssertNotEqual(s["reconnect_gap_max_ms"], "0")
        for (agent, seqs) in server.batches {
            XCTAssertEqual(Array(seqs.prefix(3)), [1, 2, 2], "\(agent): batch 2 again, first, on the new session")
            XCTAssertEqual(Array(Set(seqs)).sorted(), Array(1...seqs.max()!), "\(agent): no sequence skipped")
        }
        let ledger = try LedgerReader.parse(out.lines.joined(separator: "\n"))
        for (agent, ranges) in ledger.acks {
            XCTAssertEqual(ranges.first?.from, 1, agent)
            XCTAssertEqual(ranges.last?.to, server.acked[agent], "\(agent): the ledger ends where the collector's acks do")
        }
    }

    func testIngestKeepsTheAnnouncedWindowFullAndNeverExceedsIt() throws {
        let loop = EventLoop()
        let server = try TestCollector(loop: loop, policy: .every(0.05), window: 3)
        defer { server.stop() }
        var o = options(.ingest, server, agents: 2)
        o.inflight = 8   // the Welcome's 3 wins
        o.duration = 0.6
        let runner = LoadRunner(options: o, loop: loop, sources: [], ledgerOutput: nil)
        let s = runner.run(handleSignals: false)

        XCTAssertEqual(server.maxUnacked, 3, "exactly the announced window in flight")
        XCTAssertGreaterThan(runner.ledger.batches, 2 * 3 * 5, "refilled on each ack over 0.6 s")
        XCTAssertEqual(s["acked_records"], "\(runner.ledger.batches * 3)")
        XCTAssertNotEqual(s["acked_records_per_s"], "0")
        XCTAssertEqual(s["inflight_at_end"], "0")
    }

    func testAnAckForABatchNeverSentIsCountedAndSettlesNothing() throws {
        let loop = EventLoop()
        let server = try TestCollector(loop: loop, policy: .bogus)
        defer { server.stop() }
        var o = options(.density, server, agents: 1)
        o.duration = 0.3
        o.drain = 0.2
        let runner = LoadRunner(options: o, loop: loop, sources: [], ledgerOutput: nil)
        let s = runner.run(handleSignals: false)
        XCTAssertGreaterThan(runner.ledger.beyondSent, 0)
        XCTAssertEqual(runner.ledger.batches, 0)
        XCTAssertEqual(s["bogus_acks"], "\(runner.ledger.beyondSent)")
    }

    func testConnectsFromSeveralLoopbackSourcesAndCountsRefusals() throws {
        let loop = EventLoop()
        let server = try TestCollector(loop: loop)
        defer { server.stop() }
        var o = options(.density, server, agents: 4)
        o.duration = 0.2
        let sources = try LoadArguments.sourceList("127.0.0.2-127.0.0.3")
        let runner = LoadRunner(options: o, loop: loop, sources: sources, ledgerOutput: nil)
        let s = runner.run(handleSignals: false)
        XCTAssertEqual(s["sessions"], "4")
        XCTAssertEqual(s["sources"], "2")
        XCTAssertEqual(server.peers.sorted(), ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"], "agent i binds source i mod 2")

        // Nothing listening: every attempt is refused, counted, retried.
        let port = server.address.port
        server.stop()
        var r = options(.density, server, agents: 2)
        r.collectors = [try SocketAddress(ip: "127.0.0.1", port: port)]
        r.rampTimeout = 0.5
        r.duration = 0.1
        r.drain = 0
        let refused = LoadRunner(options: r, loop: loop, sources: [], ledgerOutput: nil).run(handleSignals: false)
        XCTAssertEqual(refused["sessions"], "0")
        XCTAssertEqual(refused["ramp_complete"], "0")
        XCTAssertGreaterThanOrEqual(Int(refused["refused"]!)!, 2)
    }
}
