import Foundation
import XCTest
import MonitorRunners
import Reactor
import Wire
@testable import Agent
import IPAPipeline
#if canImport(Glibc)
import Glibc
#endif

/// A fresh private directory per test, removed afterwards.
func spoolTestDirectory(_ name: String = #function) -> String {
    var template = Array("/tmp/vigil-spool-XXXXXX".utf8CString)
    let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    return dir
}

func removeTree(_ path: String) {
    for n in (try? SpoolFiles.list(path)) ?? [] { unlink(path + "/" + n) }
    rmdir(path)
}

func aggregateItem(_ n: Int) -> OutboundItem {
    .aggregate(LatencyAggregate(windowStartMs: 1_700_000_000_000 + Int64(n), windowMs: 10_000, monitor: "api", check: "get \(n)",
                                source: "ipa", count: UInt64(n + 1), sumUs: 1000, minUs: 10, maxUs: 900,
                                p50Us: 100, p95Us: 800, p99Us: 890,
                                outcomes: OutcomeCounts(s2xx: UInt64(n), s3xx: 1, s4xx: 2, s5xx: 3, error: 4)))
}

final class SpoolTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = spoolTestDirectory() + "/spool" }
    override func tearDown() {
        removeTree(dir)
        rmdir(String(dir.dropLast(6)))
    }

    func testCRC32CKnownValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283, "the standard check value")
    }

    func testBatchesRoundTripAcrossReopenWithTheirIdentity() throws {
        let event = OutboundItem.event(ForwardedEvent(timestampUs: 42, method: "GET", host: "h", path: "/a/:id",
                                                      durationUs: 7, monitor: "m", check: "c",
                                                      status: 0, errorClass: "timeout"))
        let run = OutboundItem.monitorRun(MonitorRunResult(
            monitorID: 9, monitorKey: "k", name: "n", kind: .exec, runID: 3, startedMs: 5, intervalMs: 60_000,
            status: .error, durationUs: 11, phases: [PhaseTiming("connect", 4)], message: "boom", protocolStatus: 0,
            bytes: 0, steps: [StepResult(name: "s1", status: .timeout, durationUs: 2, phases: [PhaseTiming("p", 1)], message: "x")]))
        let s = try Spool.open(SpoolSettings(directory: dir))
        let instance = s.instance
        XCTAssertEqual(s.append([aggregateItem(1), event], nowMs: 1000).sequence, 1)
        XCTAssertEqual(s.append([run], nowMs: 2000).sequence, 2)
        s.close()

        let again = try Spool.open(SpoolSettings(directory: dir))
        XCTAssertEqual(again.instance, instance, "the instance outlives the process")
        XCTAssertEqual(again.nextSequence, 3, "numbering continues")
        XCTAssertEqual(again.depth, 2)
        XCTAssertEqual(again.oldestMs, 1000)
        let b1 = try XCTUnwrap(again.batch(after: 0))
        XCTAssertEqual(b1.sequence, 1)
        guard case .aggregate(let a) = b1.items[0], case .event(let e) = b1.items[1] else { return XCTFail("kinds") }
        guard case .aggregate(let a0) = aggregateItem(1), case .event(let e0) = event else { return }
        XCTAssertEqual(a, a0)
        XCTAssertEqual(e, e0)
        let b2 = try XCTUnwrap(again.batch(after: 1))
        guard case .monitorRun(let r) = b2.items[0], case .monitorRun(let r0) = run else { return XCTFail("kind") }
        XCTAssertEqual(r, r0)
        XCTAssertNil(again.batch(after: 2))
        XCTAssertEqual(again.counters.corrupt, 0)
    }

    func testAcknowledgedBatchesLeaveAndTheMarkerSurvives() throws {
        let s = try Spool.open(SpoolSettings(directory: dir, maxBytes: 256 << 10))
        for i in 0..<2000 { s.append([aggregateItem(i)], nowMs: Int64(i)) }
        let segments = s.segments.count
        XCTAssertGreaterThan(segments, 2)
        s.acknowledge(upTo: 1500)
        XCTAssertLessThan(s.segments.count, segments, "wholly acknowledged segments are removed")
        XCTAssertEqual(s.batch(after: 0)?.sequence, 1501, "replay starts above the marker")
        s.tick()
        let again = try Spool.open(SpoolSettings(directory: dir, maxBytes: 256 << 10))
        XCTAssertEqual(again.acknowledged, 1500)
        XCTAssertEqual(again.batch(after: 0)?.sequence, 1501)
        XCTAssertEqual(again.nextSequence, 2001)
        var n = 0, last: UInt64 = 1500
        while let b = again.batch(after: last) { n += 1; last = b.sequence }
        XCTAssertEqual(n, 500, "every unacknowledged batch, once, in order")
    }

    func testCorruptRecordIsSkippedAndCounted() throws {
        let s = try Spool.open(SpoolSettings(directory: dir))
        for i in 0..<3 { s.append([aggregateItem(i)], nowMs: 0) }
        s.close()
        let path = s.segments[0].path
        // Flip a byte inside the second record's body.
        let recordBytes = SegmentFormat.record(SpoolBatch(sequence: 1, writtenMs: 0, items: [aggregateItem(0)])).count
        let fd = open(path, O_RDWR)
        var b: UInt8 = 0
        let at = off_t(SegmentFormat.headerBytes + recordBytes + 12)
        pread(fd, &b, 1, at)
        b ^= 0xFF
        pwrite(fd, &b, 1, at)
        close(fd)
        let again = try Spool.open(SpoolSettings(directory: dir))
        XCTAssertEqual(again.counters.corrupt, 1)
        XCTAssertEqual(again.batch(after: 0)?.sequence, 1)
        XCTAssertEqual(again.batch(after: 1)?.sequence, 3, "the corrupt record is skipped, the next one read")
        XCTAssertEqual(again.counters.corrupt, 1, "counted once, at open")
    }

    func testTornTailIsCutOffAndAppendsContinue() throws {
        let s = try Spool.open(SpoolSettings(directory: dir))
        for i in 0..<3 { s.append([aggregateItem(i)], nowMs: 0) }
        s.close()
        let path = s.segments[0].path
        let size = SpoolFiles.size(path)!
        truncate(path, off_t(size - 5))
        let again = try Spool.open(SpoolSettings(directory: dir))
        XCTAssertEqual(again.counters.corrupt, 1)
        XCTAssertEqual(again.depth, 2)
        XCTAssertEqual(again.nextSequence, 3, "the torn batch's number is used again: it was never complete")
        again.append([aggregateItem(9)], nowMs: 0)
        var seqs: [UInt64] = [], last: UInt64 = 0
        while let b = again.batch(after: last) { seqs.append(b.sequence); last = b.sequence }
        XCTAssertEqual(seqs, [1, 2, 3])
    }

    func testBadHeaderSegmentIsSkippedNotFatal() throws {
        let fd = open(dir, O_RDONLY)  // the directory does not exist yet
        XCTAssertEqual(fd, -1)
        let s = try Spool.open(SpoolSettings(directory: dir))
        s.append([aggregateItem(0)], nowMs: 0)
        s.close()
        let junk = dir + "/seg-00000000000000ff.vsp"
        let j = open(junk, O_WRONLY | O_CREAT, 0o600)
        write(j, "garbage, not a segment", 22)
        close(j)
        let again = try Spool.open(SpoolSettings(directory: dir))
        XCTAssertEqual(again.counters.corrupt, 1)
        XCTAssertEqual(again.depth, 1)
        XCTAssertNil(SpoolFiles.size(junk), "removed")
    }

    func testSpoolMaxBytesDropsTheOldestSegmentCounted() throws {
        let s = try Spool.open(SpoolSettings(directory: dir, maxBytes: SpoolSettings.minMaxBytes))
        for i in 0..<5000 { s.append([aggregateItem(i)], nowMs: Int64(i)) }
        XCTAssertLessThanOrEqual(s.bytes, SpoolSettings.minMaxBytes)
        XCTAssertGreaterThan(s.counters.droppedFull, 0)
        XCTAssertEqual(UInt64(s.depth) + s.counters.droppedFull, 5000, "every batch either kept or counted")
        let first = try XCTUnwrap(s.batch(after: 0))
        XCTAssertGreaterThan(first.sequence, 1, "the oldest went")
    }

    func testUnwritableDirectoryIsAClearError() {
        let file = String(dir.dropLast(6)) + "/plain-file"
        let fd = open(file, O_WRONLY | O_CREAT, 0o600)
        close(fd)
        defer { unlink(file) }
        XCTAssertThrowsError(try Spool.open(SpoolSettings(directory: file + "/spool"))) { e in
            let text = "\(e)"
            XCTAssertTrue(text.hasPrefix("spool_dir \(file)/spool: cannot create"), text)
        }
    }

    func testRelativeSpoolDirIsUnderStateDir() {
        XCTAssertEqual(SpoolSettings.resolve(spoolDir: "spool", stateDir: "./state"), "./state/spool")
        XCTAssertEqual(SpoolSettings.resolve(spoolDir: "/var/spool/vigil", stateDir: "./state"), "/var/spool/vigil")
    }
}

final class InFlightWindowGapTests: XCTestCase {
    func testGivenSequencesMayHaveGaps() {
        var w = InFlightWindow<String>(maxBatches: 10, maxBytes: 1000, after: 4)
        XCTAssertEqual(w.nextSequence, 5)
        w.add("a", bytes: 1, items: 1, sequence: 5)
        w.add("b", bytes: 1, items: 1, sequence: 7)
        w.add("c", bytes: 1, items: 1, sequence: 8)
        XCTAssertEqual(w.firstPending(after: 4)?.batch, "a")
        XCTAssertEqual(w.firstPending(after: 5)?.batch, "b")
        XCTAssertEqual(w.firstPending(after: 6)?.batch, "b")
        XCTAssertNil(w.firstPending(after: 8))
        XCTAssertEqual(w.acknowledge(upTo: 7), 2)
        w.advance(past: 20)
        XCTAssertTrue(w.isEmpty)
        XCTAssertEqual(w.nextSequence, 21)
    }
}

final class SpoolFaultTests: XCTestCase {
    func testWriteFailureLaterDegradesToMemoryOnlyLoggedAndCounted() throws {
        let root = spoolTestDirectory()
        let dir = root + "/spool"
        defer { removeTree(dir); rmdir(root) }
        let s = try Spool.open(SpoolSettings(directory: dir, maxBytes: SpoolSettings.minMaxBytes))
        s.append([aggregateItem(0)], nowMs: 0)
        // The directory disappears under the agent: the next segment cannot be created.
        removeTree(dir)
        var sequences: [UInt64] = []
        for i in 0..<1000 { sequences.append(s.append([aggregateItem(i)], nowMs: 0).sequence) }
        XCTAssertNotNil(s.degraded)
        XCTAssertEqual(s.counters.writeFailures, 1, "one failure, then memory only")
        XCTAssertGreaterThan(s.counters.unwritten, 0)
        XCTAssertEqual(sequences, Array(2...1001), "numbering goes on: the batches still travel from memory")
    }

    func testSavedRulesRoundTripAndDamageIsRefused() {
        let p = Patterns(version: 7, rules: [PatternRule(method: "GET", hostGlob: "*.example.com", pathGlob: "/v1/*",
                                                         monitor: "api", check: "v1", exclude: false)])
        let bytes = RuleFile.encode(p)
        guard case .success(let back) = RuleFile.decode(bytes) else { return XCTFail("round trip") }
        XCTAssertEqual(back.version, 7)
        XCTAssertEqual(back.rules, p.rules)
        var damaged = bytes
        damaged[damaged.count - 2] ^= 0x40
        guard case .failure(let e) = RuleFile.decode(damaged) else { return XCTFail("damage not seen") }
        XCTAssertEqual(e.description, "checksum mismatch")
        let root = spoolTestDirectory()
        defer { unlink(root + "/rules"); rmdir(root) }
        XCTAssertNil(RuleFile.load(from: root + "/rules"), "no file: no rules")
        XCTAssertTrue(RuleFile.save(p, to: root + "/rules"))
        XCTAssertEqual(RuleFile.load(from: root + "/rules")?.rules, p.rules)
    }

    /// The fuzz seeds are what their names say (so the fuzzer starts from
    /// real segments, not from bytes every check refuses).
    func testFuzzSeedsReadAsIntended() throws {
        let seeds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/Tools/Fuzz/FuzzSpool/seeds")
        func steps(_ name: String) throws -> [String] {
            var bytes = Array(try Data(contentsOf: seeds.appendingPathComponent(name)))
            let flag = bytes.removeFirst()
            if flag & 1 != 0 { bytes = SegmentFormat.header(instance: 1) + bytes }
            var r = SegmentReader(MemorySegment(bytes))
            var out: [String] = []
            while true {
                switch r.next() {
                case .batch(let b, _, _): out.append("\(b.sequence):\(b.items.count)")
                case .corrupt: out.append("corrupt")
                case .tornTail: out.append("torn")
                case .end: return out
                }
            }
        }
        XCTAssertEqual(try steps("segment"), ["1:2", "2:1", "3:1"], "the unknown item kind is skipped")
        XCTAssertEqual(try steps("records"), ["10:2", "11:1"])
        XCTAssertEqual(try steps("corrupt-and-torn"), ["corrupt", "6:1", "torn"])
        var rules = Array(try Data(contentsOf: seeds.appendingPathComponent("rules")))
        rules.removeFirst()
        guard case .success(let p) = RuleFile.decode(rules) else { return XCTFail("rules seed") }
        XCTAssertEqual(p.rules.count, 2)
    }
}
