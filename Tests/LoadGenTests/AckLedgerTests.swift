import XCTest
@testable import LoadGen

final class AckLedgerTests: XCTestCase {
    func testTrackerNumbersAndSettlesCumulatively() {
        var t = AckTracker()
        XCTAssertNil(t.unacknowledged)
        XCTAssertEqual(t.acknowledge(upTo: 1), .beyondSent(1), "nothing sent yet")
        XCTAssertEqual((0..<5).map { _ in t.newBatch() }, [1, 2, 3, 4, 5])
        XCTAssertEqual(t.inFlight, 5)
        XCTAssertEqual(t.unacknowledged, 1...5)
        XCTAssertEqual(t.acknowledge(upTo: 3), .settled(1...3))
        XCTAssertEqual(t.inFlight, 2)
        XCTAssertEqual(t.unacknowledged, 4...5, "re-sent first after a reconnect")
        XCTAssertEqual(t.acknowledge(upTo: 3), .stale, "a repeated ack settles nothing")
        XCTAssertEqual(t.acknowledge(upTo: 2), .stale, "acks never move back")
        XCTAssertEqual(t.acknowledge(upTo: 6), .beyondSent(6))
        XCTAssertEqual(t.acknowledged, 3, "a bogus ack settles nothing")
        XCTAssertEqual(t.acknowledge(upTo: 5), .settled(4...5))
        XCTAssertEqual(t.inFlight, 0)
        XCTAssertEqual(t.newBatch(), 6)
    }

    func header(items: Int = 10) -> LedgerHeader {
        LedgerHeader(bootID: "b00t", instance: 7, baseMs: 1_000_000, items: items, prefix: "load",
                     collectors: ["127.0.0.1:6600", "127.0.0.1:6601"])
    }

    func testLedgerCountsAndWritesExactlyWhatWasSettled() throws {
        let out = MemoryLedger()
        let ledger = AckLedger(header: header(), output: out)
        ledger.record(.settled(1...3), agentID: "load-1", collector: 0)
        ledger.record(.stale, agentID: "load-1", collector: 0)
        ledger.record(.beyondSent(99), agentID: "load-1", collector: 0)
        ledger.record(.settled(4...4), agentID: "load-1", collector: 1)
        ledger.record(.settled(1...2), agentID: "load-2", collector: 1)
        try ledger.finish()
        XCTAssertEqual(ledger.batches, 6)
        XCTAssertEqual(ledger.records, 60)
        XCTAssertEqual(ledger.stale, 1)
        XCTAssertEqual(ledger.beyondSent, 1)
        XCTAssertEqual(out.lines, [
            AckLedger.magic,
            "run boot=b00t instance=7 base_ms=1000000 items=10 prefix=load collectors=127.0.0.1:6600,127.0.0.1:6601",
            "ack load-1 1 3 30 0",
            "ack load-1 4 4 10 1",
            "ack load-2 1 2 20 1",
            "end batches=6 records=60 stale=1 beyond_sent=1",
        ])
        let parsed = try LedgerReader.parse(out.lines.joined(separator: "\n") + "\n")
        XCTAssertEqual(parsed.header, header())
        XCTAssertTrue(parsed.complete)
        XCTAssertEqual(parsed.batches, 6)
        XCTAssertEqual(parsed.records, 60)
        XCTAssertEqual(parsed.acks["load-1"], [AckedRange(from: 1, to: 3, records: 30, collector: 0),
                                               AckedRange(from: 4, to: 4, records: 10, collector: 1)])
    }

    func testLedgerFileRoundTrip() throws {
        let path = "/tmp/vigil-load-ledger-\(getpid()).txt"
        defer { unlink(path) }
        let file = try LedgerFile(path: path)
        let ledger = AckLedger(header: header(items: 2), output: file)
        for i in 1...5000 { ledger.record(.settled(UInt64(i)...UInt64(i)), agentID: "load-0", collector: 0) }
        try ledger.finish()
        try file.close()
        let parsed = try LedgerReader.parse(try Verifier.readWholeFile(path))
        XCTAssertEqual(parsed.batches, 5000, "lines beyond one 64 KiB buffer are all there")
        XCTAssertEqual(parsed.records, 10_000)
        XCTAssertTrue(parsed.complete)
        XCTAssertThrowsError(try LedgerFile(path: "/nonexistent-dir/ledger")) {
            XCTAssertTrue("\($0)".contains("open(/nonexistent-dir/ledger) failed: ENOENT") || "\($0)".contains("open(/nonexistent-dir/ledger)"))
        }
    }

    func testReaderRefusesWhatIsNotALedger() {
        let run = header().line
        func reason(_ text: String) -> String {
            do { _ = try LedgerReader.parse(text); return "accepted" } catch { return error.description }
        }
        XCTAssertTrue(reason("hello\n").hasPrefix("ledger line 1: not a vigil-load ledger"))
        XCTAssertEqual(reason(AckLedger.magic + "\nack load-1 1 1 10 0\n"), "ledger line 2: 'ack' before the 'run' line")
        XCTAssertEqual(reason(AckLedger.magic + "\n\(run)\nack load-1 1 2 10 0\n"), "ledger line 3: 10 records for 2 batches of 10")
        XCTAssertEqual(reason(AckLedger.magic + "\n\(run)\nack load-1 1 1 10 0\nack load-1 3 3 10 0\n"),
                       "ledger line 4: agent load-1: range 3-3 does not follow 1 (acks are cumulative)")
        XCTAssertEqual(reason(AckLedger.magic + "\n\(run)\nack load-1 1 1 10 2\n"), "ledger line 3: collector index 2 outside the 2 listed")
        XCTAssertEqual(reason(AckLedger.magic + "\n\(run)\nack load-1 0 1 20 0\n"), "ledger line 3: range 0-1 is empty or starts at 0")
        XCTAssertEqual(reason(AckLedger.magic + "\n\(run)\n\(run)\n"), "ledger line 3: a second 'run' line (one run per ledger)")
        XCTAssertEqual(reason(AckLedger.magic + "\n"), "ledger line 2: no 'run' line")
        XCTAssertEqual(reason(AckLedger.magic + "\n\(run)\nend\nack load-1 1 1 10 0\n"), "ledger line 4: text after the 'end' line")
        // Killed before `end`: still a valid, incomplete ledger.
        let cut = try? LedgerReader.parse(AckLedger.magic + "\n\(run)\nack load-1 1 1 10 0\n")
        XCTAssertEqual(cut?.complete, false)
        XCTAssertEqual(cut?.records, 10)
    }
}
