// LedgerReader: parses an acknowledgement ledger (format in AckLedger.swift)
// back into ranges per agent, refusing anything that does not fit the
// format with the line number, so a verification never runs on a
// misread file.

/// One `ack` line: batches `from...to` of one agent, acknowledged by
/// collector number `collector`.
public struct AckedRange: Equatable, Sendable {
    public var from: UInt64
    public var to: UInt64
    public var records: UInt64
    public var collector: Int

    public init(from: UInt64, to: UInt64, records: UInt64, collector: Int) {
        self.from = from
        self.to = to
        self.records = records
        self.collector = collector
    }
}

/// A parsed ledger.
public struct LedgerContents: Equatable, Sendable {
    public var header: LedgerHeader
    /// Per agent id, its acknowledged ranges in file order.
    public var acks: [String: [AckedRange]]
    /// The run wrote its `end` line (it finished, nothing left buffered).
    public var complete: Bool

    public var batches: UInt64 { acks.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.to - $1.from + 1 } } }
    public var records: UInt64 { acks.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.records } } }
}

public struct LedgerFormatError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "ledger line \(line): \(reason)" }
}

public enum LedgerReader {
    public static func parse(_ text: String) throws(LedgerFormatError) -> LedgerContents {
        var header: LedgerHeader?
        var acks: [String: [AckedRange]] = [:]
        var complete = false
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty { continue }
            if number == 1 {
                guard line == AckLedger.magic else { throw LedgerFormatError(line: 1, reason: "not a vigil-load ledger (expected '\(AckLedger.magic)')") }
                continue
            }
            let fields = line.split(separator: " ")
            guard !complete else { throw LedgerFormatError(line: number, reason: "text after the 'end' line") }
            switch fields.first {
            case "run":
                guard header == nil else { throw LedgerFormatError(line: number, reason: "a second 'run' line (one run per ledger)") }
                header = try parseHeader(fields.dropFirst(), line: number)
            case "ack":
                guard let h = header else { throw LedgerFormatError(line: number, reason: "'ack' before the 'run' line") }
                guard fields.count == 6, let from = UInt64(fields[2]), let to = UInt64(fields[3]),
                      let records = UInt64(fields[4]), let collector = Int(fields[5]) else {
                    throw LedgerFormatError(line: number, reason: "expected 'ack AGENT FROM TO RECORDS COLLECTOR'")
                }
                guard from >= 1, from <= to else { throw LedgerFormatError(line: number, reason: "range \(from)-\(to) is empty or starts at 0") }
                guard collector >= 0, collector < max(1, h.collectors.count) else {
                    throw LedgerFormatError(line: number, reason: "collector index \(collector) outside the \(h.collectors.count) listed")
                }
                guard records == (to - from + 1) * UInt64(h.items) else {
                    throw LedgerFormatError(line: number, reason: "\(records) records for \(to - from + 1) batches of \(h.items)")
                }
                let agent = String(fields[1])
                if let last = acks[agent]?.last, from != last.to + 1 {
                    throw LedgerFormatError(line: number, reason: "agent \(agent): range \(from)-\(to) does not follow \(last.to) (acks are cumulative)")
                }
                acks[agent, default: []].append(AckedRange(from: from, to: to, records: records, collector: collector))
            case "end":
                complete = true
            default:
                throw LedgerFormatError(line: number, reason: "unknown line '\(line.prefix(40))'")
            }
        }
        guard let header else { throw LedgerFormatError(line: number, reason: "no 'run' line") }
        return LedgerContents(header: header, acks: acks, complete: complete)
    }

    private static func parseHeader(_ fields: ArraySlice<Substring>, line: Int) throws(LedgerFormatError) -> LedgerHeader {
        var values: [Substring: Substring] = [:]
        for f in fields {
            guard let eq = f.firstIndex(of: "=") else { throw LedgerFormatError(line: line, reason: "'\(f)' is not key=value") }
            values[f[..<eq]] = f[f.index(after: eq)...]
        }
        func need(_ key: Substring) throws(LedgerFormatError) -> Substring {
            guard let v = values[key] else { throw LedgerFormatError(line: line, reason: "run line lacks \(key)=") }
            return v
        }
        guard let instance = UInt64(try need("instance")), let base = Int64(try need("base_ms")),
              let items = Int(try need("items")), items > 0 else {
            throw LedgerFormatError(line: line, reason: "run line: instance, base_ms and items must be numbers (items > 0)")
        }
        let collectors = try need("collectors")
        return LedgerHeader(bootID: String(try need("boot")), instance: instance, baseMs: base, items: items,
                            prefix: String(try need("prefix")),
                            collectors: collectors.isEmpty ? [] : collectors.split(separator: ",").map(String.init))
    }
}
