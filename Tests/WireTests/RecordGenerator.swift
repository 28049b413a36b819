// Seeded random values for every record type, for property tests.
@testable import Wire

struct RecordGenerator {
    var rng: SeededRandom

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    /// Values spread over every varint length (1...10 bytes).
    mutating func u64() -> UInt64 {
        let bits = int(0...64)
        if bits == 0 { return 0 }
        if bits == 64 { return UInt64.random(in: 0...UInt64.max, using: &rng) }
        return UInt64.random(in: 0...(UInt64(1) << UInt64(bits)) - 1, using: &rng)
    }

    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: u64() >> UInt64(int(0...32))) }
    mutating func u8() -> UInt8 { UInt8.random(in: 0...255, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }

    /// ASCII, 2-, 3- and 4-byte UTF-8 scalars, and the empty string.
    mutating func string(max: Int = 24) -> String {
        let pool: [Unicode.Scalar] = ["a", "Z", "0", "/", ".", "-", " ", "é", "ß", "€", "中", "😀", "\u{0}"]
        var s = String.UnicodeScalarView()
        for _ in 0..<int(0...max) { s.append(pool[int(0...pool.count - 1)]) }
        return String(s)
    }

    mutating func strings(max: Int = 5) -> [String] { (0..<int(0...max)).map { _ in string() } }
    mutating func keyValues(max: Int = 4) -> [KeyValue] { (0..<int(0...max)).map { _ in KeyValue(string(), string()) } }

    mutating func item() -> BatchItem {
        switch int(0...2) {
        case 0:
            return .aggregate(Aggregate(windowStartMs: u64(), windowLengthMs: u32(), monitor: u32(), check: u32(),
                                        source: u32(), count: u64(), errors: u64(), sumUs: u64(), minUs: u64(),
                                        maxUs: u64(), p50Us: u64(), p95Us: u64(), p99Us: u64()))
        case 1:
            return .event(RawEvent(timestampUs: u64(), method: u32(), host: u32(), path: string(max: 60),
                                   status: u32(), durationUs: u64(), monitor: u32(), check: u32()))
        default:
            return .monitorResult(MonitorResult(
                monitorID: u64(), runID: u64(), timestampMs: u64(), step: u32(), status: MonitorStatus(rawValue: u8()),
                durationUs: u64(),
                phases: (0..<int(0...4)).map { _ in MonitorResult.Phase(name: u32(), durationUs: u64()) },
                message: string(max: 40), protocolStatus: u32(), bytes: u64()))
        }
    }

    /// A histogram of 1...40 values spread over microseconds to hours,
    /// some of them 0.
    mutating func sketch() -> LatencySketch {
        var h = LatencySketch()
        for _ in 0..<int(1...40) {
            h.record(int(0...5) == 0 ? 0 : UInt64(int(1...3_600_000_000)) >> UInt64(int(0...30)), times: UInt64(int(1...300)))
        }
        return h
    }

    /// An aggregate that carries its histogram (count = the histogram's).
    mutating func aggregateWithHistogram() -> BatchItem {
        let h = sketch()
        return .aggregate(Aggregate(windowStartMs: u64(), windowLengthMs: u32(), monitor: u32(), check: u32(), source: u32(),
                                    count: h.count, errors: u64(), sumUs: u64(), minUs: u64(), maxUs: u64(), p50Us: u64(),
                                    p95Us: u64(), p99Us: u64(), histogram: h))
    }

    /// A DataBatch mixing aggregates with and without histograms and other items.
    mutating func batchWithHistograms() -> Record {
        .dataBatch(DataBatch(sequence: u64(), items: (0..<int(1...12)).map { _ in bool() ? aggregateWithHistogram() : item() }))
    }

    mutating func record(_ type: RecordType) -> Record {
        switch type {
        case .ping: return .ping(Ping(u64()))
        case .pong: return .pong(Ping(u64()))
        case .error: return .error(ErrorRecord(code: ErrorCode(rawValue: u64()), message: string()))
        case .hello:
            return .hello(Hello(agentID: string(), name: string(), host: string(), version: string(), bootID: string(),
                                instance: u64(), capabilities: strings(), groups: strings()))
        case .welcome:
            return .welcome(Welcome(sessionID: u64(), collectorTimeMs: u64(), configVersion: u64(), scheduleVersion: u64(),
                                    patternsVersion: u64(), ackedSequence: u64(),
                                    limits: .init(maxRecordLength: u32(), maxBatchItems: u32(), maxStringID: u32(),
                                                  maxInFlightBatches: u32(), pingIntervalMs: u32(), idleTimeoutMs: u32(),
                                                  maxStringTableBytes: u32())))
        case .stringDef: return .stringDef(StringDef(id: UInt32(int(1...65535)), text: string()))
        case .stringClear: return .stringClear(StringClear())
        case .dataBatch: return .dataBatch(DataBatch(sequence: u64(), items: (0..<int(0...20)).map { _ in item() }))
        case .ack: return .ack(Ack(sequence: u64()))
        case .status:
            return .status(Status(timestampMs: u64(), state: AgentState(rawValue: u8()), messages: strings(),
                                  cpuPermille: u32(), rssBytes: u64(),
                                  counters: (0..<int(0...6)).map { _ in Counter(string(), u64()) }))
        case .interfaces:
            return .interfaces(Interfaces((0..<int(0...4)).map { _ in
                NetworkInterface(name: string(), flags: u32(), addresses: strings())
            }))
        case .effectiveConfig:
            return .effectiveConfig(EffectiveConfig((0..<int(0...6)).map { _ in
                ConfigEntry(key: string(), value: string(max: 40), origin: ConfigValueOrigin(rawValue: u64()), detail: string())
            }))
        case .scheduleRequest: return .scheduleRequest(ScheduleRequest(haveVersion: u64()))
        case .scheduleUnchanged: return .scheduleUnchanged(ScheduleUnchanged(version: u64()))
        case .schedule:
            let parts = UInt32(int(1...4))
            return .schedule(Schedule(version: u64(), monitors: (0..<int(0...5)).map { _ in
                MonitorSpec(id: u64(), name: string(), kind: string(), target: string(max: 60), intervalMs: u32(),
                            timeoutMs: u32(), params: keyValues(), lastRunMs: u64(), groups: strings(max: 3))
            }, part: UInt32(int(0...Int(parts) - 1)), parts: parts))
        case .patternsRequest: return .patternsRequest(PatternsRequest(haveVersion: u64()))
        case .patternsUnchanged: return .patternsUnchanged(PatternsUnchanged(version: u64()))
        case .patterns:
            return .patterns(Patterns(version: u64(), rules: (0..<int(0...5)).map { _ in
                PatternRule(method: string(max: 6), hostGlob: string(), pathGlob: string(), monitor: string(),
                            check: string(), exclude: bool())
            }))
        case .controlRequest:
            return .controlRequest(ControlRequest(requestID: u64(), kind: ControlKind(rawValue: u64()), values: keyValues()))
        case .controlResponse:
            return .controlResponse(ControlResponse(requestID: u64(), ok: bool(), errors: keyValues(), message: string()))
        }
    }
}
