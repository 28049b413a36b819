// The fuzzers' seed corpora (Tests/WireTests/Fixtures/fuzz-seeds/TARGET/)
// are real encodings from this codebase. Set WIRE_WRITE_FUZZ_SEEDS=1 to
// regenerate them after a format change; otherwise this checks they still
// decode, so seeds never silently drift into garbage.
import Foundation
import XCTest
@testable import Wire

final class FuzzSeedTests: XCTestCase {
    let dir = Fixtures.directory.appendingPathComponent("fuzz-seeds")

    func seeds() -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        var gen = RecordGenerator(seed: 0xF022)
        for type in RecordType.allCases {
            var w = WireWriter()
            for _ in 0..<3 { gen.record(type).encode(into: &w) }
            out["records/\(type)"] = [0x00] + w.bytes
        }
        // Aggregates with their histograms (item kind 4), from a generator
        // of their own so the other seeds stay as they were.
        var histograms = RecordGenerator(seed: 0x4157)
        var hw = WireWriter()
        for _ in 0..<3 { histograms.batchWithHistograms().encode(into: &hw) }
        out["records/dataBatch-histograms"] = [0x00] + hw.bytes
        let agentTypes: [RecordType] = [.ping, .stringDef, .stringClear, .dataBatch, .status, .interfaces,
                                        .scheduleRequest, .patternsRequest, .controlResponse, .error, .effectiveConfig]
        for type in agentTypes {
            var w = WireWriter()
            for _ in 0..<3 { gen.record(type).encode(into: &w) }
            out["handshake/transport-\(type)"] = [0x03, 0x7F, UInt8(w.count >> 8), UInt8(w.count & 0xFF)] + w.bytes
        }
        // Byte 0: mode (low three bits) and how fuzz-handshake answers
        // `.needKeys` (high five); byte 1: read size - 1, top bit "keys early".
        out["handshake/hello"] = [0x02, 0x7F] + gen.record(.hello).encoded
        out["handshake/probe"] = [0x02, 0x7F]
        out["handshake/preamble"] = [0x00, 0x07] + Preamble(projectID: "fuzz")!.bytes + [0x00, 0x30]
        let hello = Record.hello(Hello(agentID: "fuzz")).encoded
        out["handshake/keys-third-of-three"] = [0x02 | 0b00100 << 3, 0x7F] + hello
        out["handshake/keys-before-message1"] = [0x02, 0x80 | 0x07] + hello
        out["handshake/keys-none-fits"] = [0x02 | 0b01010 << 3, 0x7F] + hello
        out["handshake/keys-unknown-project"] = [0x02 | 0b10000 << 3, 0x7F] + hello
        out["handshake/keys-lookup"] = [0x02 | 0b00001 << 3, 0x7F] + hello
        // Found by fuzz-handshake: a bad frame length right after the
        // preamble closed the session while it still said it waited for keys.
        out["handshake/keys-bad-frame"] = [0x01 | 0b11110 << 3, 0xFF, 0xFF, 0xFF]
        out["handshake/message3-raw"] = [0x04, 0x7F, 0x00, 0x50] + [UInt8](repeating: 0xA5, count: 80)
        out["handshake/version1-upgrade"] = [0x05, 0x7F] + hello
        out["handshake/initiator-raw"] = [0x06, 0x7F, 0x00, 0x30] + [UInt8](repeating: 0x09, count: 48)
        let welcome = Record.welcome(Welcome(sessionID: 1, collectorTimeMs: 2)).encoded
        out["handshake/initiator-welcome"] = [0x07, 0x7F, UInt8(welcome.count >> 8), UInt8(welcome.count & 0xFF)] + welcome
        let refusal = Record.error(ErrorRecord(code: .rejected, message: "agent key differs")).encoded
        out["handshake/initiator-error"] = [0x07, 0x7F, UInt8(refusal.count >> 8), UInt8(refusal.count & 0xFF)] + refusal
        out["framing/two-frames"] = [0x80, 0x03, 0x00, 0x02, 0xAA, 0xBB, 0x00, 0x00]
        return out
    }

    func testSeedsAreCurrent() throws {
        let expected = seeds()
        if ProcessInfo.processInfo.environment["WIRE_WRITE_FUZZ_SEEDS"] == "1" {
            for (name, bytes) in expected {
                let url = dir.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(bytes).write(to: url)
            }
        }
        for (name, _) in expected where name.hasPrefix("records/") {
            let stored = [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
            XCTAssertNoThrow(try Record.decodeAll(Array(stored.dropFirst())), name)
        }
        for (name, _) in expected where name.hasPrefix("handshake/transport-") {
            let stored = [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
            XCTAssertNoThrow(try Record.decodeAll(Array(stored.dropFirst(4))), name)
        }
    }
}
