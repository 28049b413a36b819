// The BatchEncoder's monitor-run items: what a MonitorRunResult becomes on
// the wire (aggregates and MonitorResults, names in the string table), and
// that an overtime skip is a MonitorResult only.
import IPAPipeline
import XCTest
import MonitorModel
import MonitorRunners
import Wire
@testable import Agent

final class MonitorRunEncodingTests: XCTestCase {
    func testResultsBecomeBatchItemsThatDecode() throws {
        var table: [String: StringRef] = [:]
        func ref(_ s: String) -> StringRef {
            if let r = table[s] { return r }
            table[s] = StringRef(table.count + 1)
            return table[s]!
        }
        let http = MonitorRunResult(monitorID: 9, monitorKey: "api", name: "API", kind: .http, runID: 77,
                                    startedMs: 1_700_000_000_000, intervalMs: 10_000, status: .error, durationUs: 1234,
                                    phases: [PhaseTiming("dns", 10), PhaseTiming("connect", 20)],
                                    message: "unexpected HTTP status 500 (expected 2xx)", protocolStatus: 500, bytes: 42)
        let exec = MonitorRunResult(monitorID: 10, monitorKey: "host", name: "Host", kind: .exec, runID: 78,
                                    startedMs: 1_700_000_000_500, intervalMs: 60_000, status: .error, durationUs: 5000,
                                    message: "step b: boom",
                                    steps: [StepResult(name: "a", status: .ok, durationUs: 100, phases: [PhaseTiming("command", 90)]),
                                            StepResult(name: "b", status: .error, durationUs: 200, message: "boom"),
                                            StepResult(name: "c", status: .blocked, message: "blocked: step b error")])
        let items = try BatchEncoder.wireItems([.monitorRun(http), .monitorRun(exec)]) { ref($0) }
        let batch = DataBatch(sequence: 1, items: items)
        guard case .dataBatch(let back)? = try Record.decodeAll(Record.dataBatch(batch).encoded).first else { return XCTFail() }
        XCTAssertEqual(back, batch)

        XCTAssertEqual(items.count, 2 + 2 + 1 + 3, "http: aggregate + result; exec: 2 aggregates (not blocked) + run + 3 steps")
        guard case .aggregate(let a) = items[0], case .monitorResult(let m) = items[1] else { return XCTFail() }
        XCTAssertEqual(a.monitor, table["api"])
        XCTAssertEqual(a.check, table["request"])
        XCTAssertEqual(a.source, table["synthetic"])
        XCTAssertEqual([a.count, a.errors, a.sumUs, a.minUs, a.maxUs, a.p99Us], [1, 1, 1234, 1234, 1234, 1234])
        XCTAssertEqual(a.windowStartMs, 1_700_000_000_000)
        XCTAssertEqual(a.windowLengthMs, 10_000)
        XCTAssertEqual(m.step, 0)
        XCTAssertEqual(m.protocolStatus, 500)
        XCTAssertEqual(m.bytes, 42)
        XCTAssertEqual(m.phases, [MonitorResult.Phase(name: table["dns"]!, durationUs: 10),
                                  MonitorResult.Phase(name: table["connect"]!, durationUs: 20)])
        guard case .aggregate(let sa) = items[2], case .aggregate(let sb) = items[3] else { return XCTFail() }
        XCTAssertEqual([sa.check, sb.check], [table["a"], table["b"]])
        XCTAssertEqual([sa.errors, sb.errors], [0, 1])
        guard case .monitorResult(let blocked) = items[7] else { return XCTFail() }
        XCTAssertEqual(blocked.step, table["c"])
        XCTAssertEqual(blocked.status, .blocked)
        XCTAssertEqual(blocked.message, "blocked: step b error")
    }

    func testAnOvertimeSkipIsAMonitorResultOnly() throws {
        let skip = MonitorRunResult(monitorID: 3, monitorKey: "slow", name: "Slow", kind: .exec, runID: 5,
                                    startedMs: 1_700_000_001_000, intervalMs: 1000, status: .overtime,
                                    message: "skipped: run 4 still in progress")
        let items = try BatchEncoder.wireItems([.monitorRun(skip)]) { _ in 1 }
        XCTAssertEqual(items.count, 1, "an overtime skip is a MonitorResult only")
        guard case .monitorResult(let m) = items[0] else { return XCTFail() }
        XCTAssertEqual(m.status, .overtime)
        XCTAssertEqual(m.message, "skipped: run 4 still in progress")
    }

    func testARefusedRunIsAMonitorResultOnly() throws {
        let refused = MonitorRunResult(monitorID: 3, monitorKey: "sh", name: "Shell", kind: .http, runID: 6,
                                       startedMs: 1_700_000_001_000, intervalMs: 1000, status: .refused,
                                       message: "exec monitors are disabled on this agent (exec_monitors)")
        let items = try BatchEncoder.wireItems([.monitorRun(refused)]) { _ in 1 }
        XCTAssertEqual(items.count, 1, "nothing was measured: no aggregate")
        guard case .monitorResult(let m) = items[0] else { return XCTFail() }
        XCTAssertEqual(m.status, .refused)
        XCTAssertEqual(m.status.description, "refused")
    }

    func testAggregatesKeepTheirMicroseconds() throws {
        let a = LatencyAggregate(windowStartMs: 1000, windowMs: 10, monitor: "m", check: "c", source: "ipa", count: 3,
                                 sumUs: 123_456_789, minUs: 1, maxUs: 99_999_999, p50Us: 12_345, p95Us: 67_891, p99Us: 99_999_998)
        let items = try BatchEncoder.wireItems([.aggregate(a)]) { _ in 1 }
        guard case .aggregate(let w)? = items.first else { return XCTFail() }
        XCTAssertEqual([w.count, w.sumUs, w.minUs, w.maxUs, w.p50Us, w.p95Us, w.p99Us],
                       [3, 123_456_789, 1, 99_999_999, 12_345, 67_891, 99_999_998])
    }

    func testOutcomesReachTheWire() throws {
        var o = OutcomeCounts()
        o.count(.s2xx, times: 5); o.count(.s4xx); o.count(.s5xx, times: 2); o.count(.error, times: 3)
        let a = LatencyAggregate(windowStartMs: 1000, windowMs: 10, monitor: "m", check: "c", source: "ipa", count: 12,
                                 sumUs: 12, minUs: 1, maxUs: 1, p50Us: 1, p95Us: 1, p99Us: 1, outcomes: o)
        let e = ForwardedEvent(timestampUs: 1, method: "GET", host: "h", path: "/", durationUs: 1, monitor: "m", check: "c",
                               status: 0, errorClass: "timeout")
        let items = try BatchEncoder.wireItems([.aggregate(a), .event(e)]) { _ in 1 }
        guard case .aggregate(let w)? = items.first, case .event(let we) = items[1] else { return XCTFail() }
        XCTAssertEqual([w.outcome2xx, w.outcome3xx, w.outcome4xx, w.outcome5xx, w.outcomeError], [5, 0, 1, 2, 3])
        XCTAssertEqual(w.errors, 5, "errors: server errors and transport failures")
        XCTAssertEqual(we.errorClass, "timeout")
        XCTAssertLessThanOrEqual(Record.dataBatch(DataBatch(sequence: 1, items: [items[0]])).encoded.count - 4,
                                 OutboundItem.aggregate(a).encodedSizeBound + 16)
    }

    func testHTTPRunsCountAnOutcomeOthersNone() throws {
        func run(_ kind: MonitorKind, _ status: MonitorStatus, _ http: UInt32) -> MonitorRunResult {
            MonitorRunResult(monitorID: 1, monitorKey: "k", name: "K", kind: kind, runID: 1, startedMs: 1000, intervalMs: 1000,
                             status: status, durationUs: 5, protocolStatus: http)
        }
        let items = try BatchEncoder.wireItems([.monitorRun(run(.http, .ok, 204)), .monitorRun(run(.http, .error, 503)),
                                                .monitorRun(run(.http, .timeout, 0)), .monitorRun(run(.tcp, .ok, 0))]) { _ in 1 }
        let aggregates: [Aggregate] = items.compactMap { if case .aggregate(let a) = $0 { return a } else { return nil } }
        XCTAssertEqual(aggregates.map { [$0.outcome2xx, $0.outcome3xx, $0.outcome4xx, $0.outcome5xx, $0.outcomeError] },
                       [[1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    }
}
