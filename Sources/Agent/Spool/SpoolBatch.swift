// SpoolBatch: one numbered DataBatch as the spool keeps it — its sequence
// (the identity the collector de-duplicates by, with the agent id and the
// spool's instance), when it was written, and its items with their names
// as text (string ids belong to one session; a spooled batch is sent on a
// later one, perhaps by a later process).
//
// Body layout (inside a checksummed segment record, see SegmentFormat):
//   varint sequence | varint written_ms | varint count | count × item
//   item: u8 kind | varint length | body   (unknown kinds are skipped)
//   kind 1 aggregate, 2 raw event, 3 monitor run — fields in `encode`.
//   Fields added later are appended to an item's body and read only when
//   present (an aggregate's outcome counts, then its histogram as varint
//   length + LatencySketch's encoding; an event's status and error class),
//   so segments written before them still read.
//
// Thread: a value; encoded and decoded on the loop thread (or a fuzzer's).
import IPAPipeline
import MonitorModel
import MonitorRunners
import Wire

/// A DataBatch kept on disk: sequence, write time and data items.
public struct SpoolBatch: Sendable {
    public var sequence: UInt64
    public var writtenMs: Int64
    public var items: [OutboundItem]

    public init(sequence: UInt64, writtenMs: Int64, items: [OutboundItem]) {
        self.sequence = sequence
        self.writtenMs = writtenMs
        self.items = items
    }

    /// Longest string accepted in a spooled item (paths, messages).
    static let maxString = 65_536
    /// Most items, phases or steps read from one list.
    static let maxList = 65_536

    // MARK: encoding

    public func encode(into w: inout WireWriter) {
        w.varint(sequence)
        w.varint(UInt64(max(0, writtenMs)))
        let data = items.filter(\.isData)
        w.varint(data.count)
        for item in data {
            switch item {
            case .aggregate(let a):
                w.u8(1)
                let start = w.beginLengthPrefixed()
                w.varint(UInt64(bitPattern: a.windowStartMs))
                w.varint(UInt64(bitPattern: a.windowMs))
                w.string(a.monitor); w.string(a.check); w.string(a.source)
                for v in [a.count, a.sumUs, a.minUs, a.maxUs, a.p50Us, a.p95Us, a.p99Us] { w.varint(v) }
                let o = a.outcomes
                for v in [o.s2xx, o.s3xx, o.s4xx, o.s5xx, o.error] { w.varint(v) }
                if let h = a.histogram {
                    w.varint(h.count)
                    w.raw(h)
                }
                _ = w.endLengthPrefixed(start)
            case .event(let e):
                w.u8(2)
                let start = w.beginLengthPrefixed()
                w.varint(e.timestampUs)
                w.string(e.method); w.string(e.host); w.string(e.path)
                w.varint(e.durationUs)
                w.string(e.monitor); w.string(e.check)
                w.varint(UInt64(e.status)); w.string(e.errorClass)
                _ = w.endLengthPrefixed(start)
            case .monitorRun(let r):
                w.u8(3)
                let start = w.beginLengthPrefixed()
                w.varint(r.monitorID); w.string(r.monitorKey); w.string(r.name); w.string(r.kind.rawValue)
                w.varint(r.runID); w.varint(r.startedMs); w.varint(r.intervalMs); w.varint(r.status.rawValue)
                w.varint(r.durationUs)
                SpoolBatch.encode(r.phases, &w)
                w.string(r.message); w.varint(r.protocolStatus); w.varint(r.bytes)
                w.varint(r.steps.count)
                for s in r.steps {
                    w.string(s.name); w.varint(s.status.rawValue); w.varint(s.durationUs)
                    SpoolBatch.encode(s.phases, &w)
                    w.string(s.message)
                }
                _ = w.endLengthPrefixed(start)
            case .record:
                continue
            }
        }
    }

    static func encode(_ phases: [PhaseTiming], _ w: inout WireWriter) {
        w.varint(phases.count)
        for p in phases { w.string(p.name); w.varint(p.durationUs) }
    }

    // MARK: decoding

    /// Decodes a record body; throws on anything malformed (the caller
    /// counts the record as corrupt). Items of unknown kinds are skipped.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> SpoolBatch {
        var r = WireReader(bytes)
        let sequence = try r.varint()
        let writtenMs = Int64(clamping: try r.varint())
        let count = try r.count("items", max: maxList)
        var items: [OutboundItem] = []
        items.reserveCapacity(count)
        for _ in 0..<count {
            let kind = try r.u8()
            var b = try r.lengthPrefixed()
            switch kind {
            case 1: items.append(.aggregate(try aggregate(&b)))
            case 2: items.append(.event(try event(&b)))
            case 3: items.append(.monitorRun(try monitorRun(&b)))
            default: continue
            }
        }
        return SpoolBatch(sequence: sequence, writtenMs: writtenMs, items: items)
    }

    static func string(_ r: inout WireReader, _ field: String) throws(WireError) -> String {
        try r.string(field, maxLength: maxString)
    }

    static func aggregate(_ r: inout WireReader) throws(WireError) -> LatencyAggregate {
        let start = Int64(bitPattern: try r.varint()), length = Int64(bitPattern: try r.varint())
        let monitor = try string(&r, "monitor"), check = try string(&r, "check"), source = try string(&r, "source")
        var v = [UInt64](repeating: 0, count: 7)
        for i in 0..<7 { v[i] = try r.varint() }
        var outcomes = OutcomeCounts()
        if !r.isAtEnd {
            outcomes = OutcomeCounts(s2xx: try r.varint(), s3xx: try r.varint(), s4xx: try r.varint(),
                                     s5xx: try r.varint(), error: try r.varint())
        }
        var histogram: [UInt8]?
        if !r.isAtEnd {
            var h = try r.lengthPrefixed()
            histogram = Array(try h.bytes(h.remaining))
        }
        return LatencyAggregate(windowStartMs: start, windowMs: length, monitor: monitor, check: check, source: source,
                                count: v[0], sumUs: v[1], minUs: v[2], maxUs: v[3], p50Us: v[4], p95Us: v[5], p99Us: v[6],
                                outcomes: outcomes, histogram: histogram)
    }

    static func event(_ r: inout WireReader) throws(WireError) -> ForwardedEvent {
        let ts = try r.varint()
        let method = try string(&r, "method"), host = try string(&r, "host"), path = try string(&r, "path")
        let duration = try r.varint()
        let monitor = try string(&r, "monitor"), check = try string(&r, "check")
        var status: UInt32 = 0, errorClass = ""
        if !r.isAtEnd {
            status = UInt32(clamping: try r.varint())
            errorClass = try string(&r, "error_class")
        }
        return ForwardedEvent(timestampUs: ts, method: method, host: host, path: path, durationUs: duration,
                              monitor: monitor, check: check, status: status, errorClass: errorClass)
    }

    static func phases(_ r: inout WireReader) throws(WireError) -> [PhaseTiming] {
        let n = try r.count("phases", max: maxList)
        var out: [PhaseTiming] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(PhaseTiming(try string(&r, "phase"), try r.varint())) }
        return out
    }

    static func status(_ r: inout WireReader) throws(WireError) -> MonitorStatus {
        let v = try r.varint()
        guard v <= UInt64(UInt8.max) else { throw .malformed(field: "status") }
        return MonitorStatus(rawValue: UInt8(v))
    }

    static func monitorRun(_ r: inout WireReader) throws(WireError) -> MonitorRunResult {
        let id = try r.varint()
        let key = try string(&r, "monitor_key"), name = try string(&r, "name")
        guard let kind = MonitorKind(rawValue: try string(&r, "kind")) else { throw .malformed(field: "kind") }
        let runID = try r.varint(), started = try r.varint()
        let interval = try r.varint()
        guard interval <= UInt64(UInt32.max) else { throw .malformed(field: "interval") }
        let st = try status(&r)
        let duration = try r.varint()
        let ph = try phases(&r)
        let message = try string(&r, "message")
        let proto = try r.varint()
        guard proto <= UInt64(UInt32.max) else { throw .malformed(field: "protocol_status") }
        let bytes = try r.varint()
        let n = try r.count("steps", max: maxList)
        var steps: [StepResult] = []
        for _ in 0..<n {
            let sn = try string(&r, "step"), ss = try status(&r), sd = try r.varint()
            let sp = try phases(&r)
            steps.append(StepResult(name: sn, status: ss, durationUs: sd, phases: sp, message: try string(&r, "message")))
        }
        return MonitorRunResult(monitorID: id, monitorKey: key, name: name, kind: kind, runID: runID, startedMs: started,
                                intervalMs: UInt32(interval), status: st, durationUs: duration, phases: ph,
                                message: message, protocolStatus: UInt32(proto), bytes: bytes, steps: steps)
    }
}
