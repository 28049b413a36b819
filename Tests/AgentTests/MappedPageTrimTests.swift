// MappedPageTrim: which mappings it picks from smaps text (whole, or read
// from a file in pieces), and a pass over this test process (which must
// keep running the code it dropped).
@testable import IPAPipeline
import Foundation
import XCTest
import Reactor
@testable import Agent

final class MappedPageTrimTests: XCTestCase {
    // Shaped like /proc/self/smaps on Linux 6.x (fields cut down).
    static let smaps = """
        55a56a880000-55a56aeb2000 r-xp 00000000 fe:00 123 /usr/bin/vigil-agent
        Size:               6344 kB
        Rss:                4800 kB
        Pss:                4800 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me
        55a56aeb3000-55a56aecf000 r--p 00632000 fe:00 123 /usr/bin/vigil-agent
        Size:                112 kB
        Rss:                 112 kB
        Anonymous:           112 kB
        VmFlags: rd mr mw me ac
        55a56aecf000-55a56afe5000 rw-p 0064e000 fe:00 123 /usr/bin/vigil-agent
        Size:               1112 kB
        Rss:                1044 kB
        Anonymous:            80 kB
        55a593419000-55a59349b000 rw-p 00000000 00:00 0                          [heap]
        Rss:                 340 kB
        Anonymous:           340 kB
        7fbd5ec44000-7fbd5ed9a000 r-xp 00026000 fe:00 77 /usr/lib/x86_64-linux-gnu/libc.so.6
        Rss:                1072 kB
        Anonymous:             0 kB
        7fbd5eded000-7fbd5edf1000 r--p 001d4000 fe:00 77 /usr/lib/x86_64-linux-gnu/libc.so.6
        Rss:                  16 kB
        Anonymous:            16 kB
        7fbd5f0fc000-7fbd5f0fd000 r--p 00000000 fe:00 78 /usr/lib/x86_64-linux-gnu/libm.so.6
        Rss:                   0 kB
        Anonymous:             0 kB
        7fbd5f1ef000-7fbd5f1f1000 r-xp 00000000 00:00 0                          [vdso]
        Rss:                   4 kB
        Anonymous:             0 kB
        7fbd5f200000-7fbd5f210000 r--p 00000000 fe:00 79 /opt/old agent.bin (deleted)
        Rss:                  64 kB
        Anonymous:             0 kB
        7fbd5f210000-7fbd5f220000 r--p 00000000 fe:00 80 /usr/lib/truncated.so
        Rss:                  64 kB
        """

    func testPicksResidentReadOnlyFileMappingsWithoutAnonymousPages() {
        let c = MappedPageTrim.candidates(smaps: Self.smaps)
        XCTAssertEqual(c, [
            .init(start: 0x55a5_6a88_0000, end: 0x55a5_6aeb_2000, residentKiB: 4800),  // the agent's text
            .init(start: 0x7fbd_5ec4_4000, end: 0x7fbd_5ed9_a000, residentKiB: 1072),  // libc's text
            .init(start: 0x7fbd_5f20_0000, end: 0x7fbd_5f21_0000, residentKiB: 64),    // a path with a space
        ], "not: relocated RELRO (anonymous pages), writable, heap, vdso, nothing resident, a record cut short")
    }

    func testReadingTheFileInPiecesFindsTheSameMappings() throws {
        let path = NSTemporaryDirectory() + "smaps-\(UInt32.random(in: 0...UInt32.max))"
        // Long enough that lines fall across every chunk boundary.
        let text = String(repeating: Self.smaps + "\n", count: 40)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { unlink(path) }
        let whole = MappedPageTrim.candidates(smaps: text)
        XCTAssertEqual(whole.count, 3 * 40)
        for chunk in [97, 128, 1000, MappedPageTrim.readChunk] {
            XCTAssertEqual(MappedPageTrim.candidates(path: path, chunk: chunk), whole, "chunk \(chunk)")
        }
        // The limit stops the read: only what it covers is scanned.
        let limited = try XCTUnwrap(MappedPageTrim.candidates(path: path, limit: Self.smaps.utf8.count + 1))
        XCTAssertEqual(limited, Array(whole.prefix(3)))
        XCTAssertNil(MappedPageTrim.candidates(path: path + ".missing"))
        // A line longer than a chunk is skipped whole, not spliced from its
        // two ends (which here would make a valid header of a candidate).
        let long = "7fbd00000000-7fbd00010000 r-xp 00000000 fe:00 81 /usr/lib/" + String(repeating: "q", count: 300)
            + "/z.so\nRss: 64 kB\nAnonymous: 0 kB\n"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(long.utf8)))
        XCTAssertEqual(MappedPageTrim.candidates(path: path, chunk: 1024)?.count, 1)
        XCTAssertEqual(MappedPageTrim.candidates(path: path, chunk: 128), [], "the long header is skipped, so its fields are no one's")
    }

    func testGarbageYieldsNothing() {
        XCTAssertEqual(MappedPageTrim.candidates(smaps: ""), [])
        XCTAssertEqual(MappedPageTrim.candidates(smaps: "Rss: 4 kB\nAnonymous: 0 kB\nzz-yy r-xp 0 0 0 /x\nAnonymous: 0 kB\n"), [])
    }

    func testAPassOverThisProcessDropsPagesAndTheCodeStillRuns() throws {
        let t = MappedPageTrim.run()
        XCTAssertGreaterThan(t.mappings, 0)
        XCTAssertEqual(t.failures, 0)
        XCTAssertGreaterThan(t.residentBytes, 0)
        XCTAssertLessThan(t.rssAfter, t.rssBefore, "\(t)")
        // The dropped pages fault back in: the parser and a second pass run.
        let duration = Array("12.5".utf8).withUnsafeBytes { IPAParser.parseDuration($0) }
        XCTAssertEqual(duration, 12.5)
        XCTAssertEqual(MappedPageTrim.run().failures, 0)
        // Advising the same ranges again (after the log line) fails nowhere,
        // and the code still runs.
        XCTAssertEqual(t.advised.count, t.mappings)
        XCTAssertEqual(MappedPageTrim.repeatAdvice(t), 0)
        XCTAssertEqual(Array("7.25".utf8).withUnsafeBytes { IPAParser.parseDuration($0) }, 7.25)
    }
}
