// The MeasurementStore contract, as one set of tests every backend runs
// unchanged (ConformanceBackends.all): ingest with de-duplication of
// re-sent batches, completions only after commit and in order, the registry
// (projects, keys, agents and their states, patterns, monitors, overrides,
// audit), queries with their limits and time ranges, errors, retention and
// closing. Everything goes through the protocol; nothing here knows SQL.
//
// Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class StoreConformanceTests: XCTestCase {
    // MARK: ingest and de-duplication

    func testResentBatchIsStoredOnce() throws {
        try forEachBackend { f in
            let b = f.batch(seq: 7, measurements: [measurement(1_000), measurement(2_000, check: "login")],
                            events: [RawEvent(ts: 1_500, monitor: "shop", check: "checkout", method: "GET", host: "h", path: "/p",
                                              durationUs: 3_000)])
            XCTAssertEqual(try f.submit(b), .stored(rows: 3))
            XCTAssertEqual(try f.submit(b), .duplicate)
            // Re-sent twice within one iteration (old and new session racing).
            var outcomes: [BatchOutcome] = []
            f.store.submitBatch(b) { outcomes.append(try! $0.get()) }
            f.store.submitBatch(b) { outcomes.append(try! $0.get()) }
            XCTAssertTrue(f.loop.run(until: { outcomes.count == 2 }, timeout: 10))
            XCTAssertEqual(outcomes, [.duplicate, .duplicate])
            XCTAssertEqual(try f.measurementTimes(), [2_000, 1_000])
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(), completion: $0) }.count, 1)

            // The same sequence from a new boot is a different batch.
            XCTAssertEqual(try f.submit(f.batch(boot: "boot-2", seq: 7, measurements: [measurement(3_000)])), .stored(rows: 1))
            // Outcomes are counted once, by the store.
            let s = f.store.stats
            XCTAssertEqual(s.batchesStored, 2)
            XCTAssertEqual(s.batchesDuplicate, 3)
            XCTAssertEqual(s.batchesFailed, 0)
            XCTAssertEqual(s.rowsStored, 4)
        }
    }

    func testHistogramsAreStoredAsSentAndRowsWithoutOneStayWithout() throws {
        try forEachBackend { f in
            var with = measurement(2_000)
            with.histogram = [3, 2, 0, 1, 0xDA, 0x02, 5] + [UInt8](repeating: 0xFF, count: 300) + [0x00]
            let without = measurement(1_000)
            let empty = { () -> MeasurementRow in var m = measurement(500); m.histogram = []; return m }()
            XCTAssertEqual(try f.submit(f.batch(seq: 1, measurements: [with, without, empty])), .stored(rows: 3))
            let rows = try f.wait { f.store.measurements(MeasurementQuery(), completion: $0) }
            XCTAssertEqual(rows.map(\.measurement.histogram), [with.histogram, nil, []])
            // Paging leaves them intact too.
            let page = try f.wait { f.store.measurements(MeasurementQuery(limit: 1, after: ListPosition(ts: rows[0].measurement.ts,
                                                                                                        id: rows[0].id)),
                                                         completion: $0) }
            XCTAssertEqual(page.map(\.measurement.histogram), [nil])
        }
    }

    func testOutOfOrderBatchesInAGapAreStored() throws {
        try forEachBackend { f in
            func submit(_ seq: Int64) throws -> BatchOutcome {
                try f.submit(f.batch(seq: seq, measurements: [measurement(seq)]))
            }
            XCTAssertEqual(try submit(5), .stored(rows: 1))
            XCTAssertEqual(try submit(3), .stored(rows: 1), "below the high-water mark but never stored")
            XCTAssertEqual(try submit(3), .duplicate)
            XCTAssertEqual(try submit(5), .duplicate)
            XCTAssertEqual(try submit(0), .stored(rows: 1))
            XCTAssertEqual(try submit(6), .stored(rows: 1))
            XCTAssertEqual(try submit(4), .stored(rows: 1))
            XCTAssertEqual(try submit(4), .duplicate)
            XCTAssertEqual(try f.measurementTimes(), [6, 5, 4, 3, 0])
        }
    }

    func testABatchOfEveryKindIsStoredAsSent() throws {
        try forEachBackend { f in
            // Odd microseconds survive: nothing goes through a float.
            let m = MeasurementRow(ts: 10_000, windowMs: 10_000, monitor: "shop", check: "cart", source: "ipa", count: 7, errors: 2,
                                   sumUs: 9_007_199_254_740_993, minUs: 1, maxUs: 999_999_999_999, p50Us: 12_345,
                                   p95Us: 67_891, p99Us: 123_457)
            let e = RawEvent(ts: 10_001, monitor: "shop", check: "cart", method: "POST", host: "api.example", path: "/cart/:id",
                             status: 503, durationUs: 1_234_567)
            let plain = RawEvent(ts: 10_002, monitor: "", check: "", method: "GET", host: "h", path: "/", durationUs: 1)
            let run = MonitorRun(ts: 10_003, monitor: "7", check: "", ok: true, durationUs: 4_321, detail: "{\"run_id\":1}")
            let st = StatusSnapshot(ts: 10_004, json: "{\"rss\":1}")
            XCTAssertEqual(try f.submit(f.batch(seq: 0, measurements: [m], events: [e, plain], statuses: [st], monitorRuns: [run])),
                           .stored(rows: 5))
            let ms = try f.wait { f.store.measurements(MeasurementQuery(), completion: $0) }
            XCTAssertEqual(ms, [MeasurementRecord(project: "demo", agent: "a1", measurement: m, id: ms.first?.id ?? 0)])
            let events = try f.wait { f.store.events(EventQuery(), completion: $0) }
            XCTAssertEqual(events.map(\.event), [plain, e])
            XCTAssertEqual(events.map(\.project), ["demo", "demo"])
            XCTAssertEqual(events.map(\.agent), ["a1", "a1"])
            let runs = try f.wait { f.store.monitorRuns(MonitorRunQuery(), completion: $0) }
            XCTAssertEqual(runs, [MonitorRunRecord(project: "demo", agent: "a1", run: run, id: runs.first?.id ?? 0)])
            let statuses = try f.wait { f.store.statusHistory(agent: "a1", since: nil, limit: 10, completion: $0) }
            XCTAssertEqual(statuses, [StatusRecord(ts: 10_004, json: "{\"rss\":1}", id: statuses.first?.id ?? 0)])
            let a1 = try f.wait { f.store.agent(id: "a1", completion: $0) }
            XCTAssertEqual(a1.status, "{\"rss\":1}")
            XCTAssertEqual(a1.statusTs, 10_004)
            XCTAssertEqual(a1.lastSeen, 5_000, "the batch's receive time")
        }
    }

    func testOutcomesAndErrorClassAreStoredAsSent() throws {
        try forEachBackend { f in
            let m = MeasurementRow(ts: 20_000, windowMs: 10_000, monitor: "shop", check: "cart", source: "ipa", count: 20, errors: 7,
                                   sumUs: 200, minUs: 1, maxUs: 30, p50Us: 10, p95Us: 20, p99Us: 30,
                                   outcomes: Outcomes(s2xx: 9, s3xx: 1, s4xx: 2, s5xx: 4, error: 3))
            let e = RawEvent(ts: 20_001, monitor: "shop", check: "cart", method: "GET", host: "h", path: "/", status: 0,
                             durationUs: 5, errorClass: "timeout")
            XCTAssertEqual(try f.submit(f.batch(seq: 0, measurements: [m], events: [e])), .stored(rows: 2))
            let ms = try f.wait { f.store.measurements(MeasurementQuery(), completion: $0) }
            XCTAssertEqual(ms.map(\.measurement), [m])
            let events = try f.wait { f.store.events(EventQuery(), completion: $0) }
            XCTAssertEqual(events.map(\.event), [e])
        }
    }

    func testCompletionRunsAfterCommit() throws {
        try forEachBackend { f in
            var seenElsewhere: [Int64]?
            var done = false
            f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(1), measurement(2)])) { result in
                XCTAssertEqual(try? result.get(), .stored(rows: 2))
                // Another connection sees only committed data: seeing the rows
                // here proves the commit came before this completion.
                seenElsewhere = try? f.withSecondStore { other, otherLoop in
                    try self.wait(otherLoop) { other.measurements(MeasurementQuery(), completion: $0) }.map(\.measurement.ts)
                }
                done = true
            }
            XCTAssertFalse(done, "no completion before the call returns")
            XCTAssertTrue(f.loop.run(until: { done }, timeout: 10))
            XCTAssertEqual(seenElsewhere, [2, 1])
        }
    }

    func testCompletionsRunInSubmissionOrder() throws {
        try forEachBackend { f in
            var order: [String] = []
            for seq in 0..<10 {
                f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(Int64(seq))])) { r in
                    XCTAssertEqual(try? r.get(), .stored(rows: 1))
                    order.append("batch \(seq)")
                }
                if seq == 4 {
                    f.store.appendAudit(AuditEntry(ts: 1, actor: "t", action: "a", target: "x", result: "ok")) { _ in
                        order.append("audit")
                    }
                    f.store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 3_000) { _ in order.append("state") }
                }
            }
            XCTAssertTrue(f.loop.run(until: { order.count == 12 }, timeout: 10))
            XCTAssertEqual(order, (0..<5).map { "batch \($0)" } + ["audit", "state"] + (5..<10).map { "batch \($0)" })
        }
    }

    func testReadSeesEarlierWriteOfTheSameIteration() throws {
        try forEachBackend { f in
            var stored = false
            f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(77)])) { _ in stored = true }
            let rows = try f.wait { f.store.measurements(MeasurementQuery(), completion: $0) }
            XCTAssertTrue(stored, "write completions run before later reads")
            XCTAssertEqual(rows.map(\.measurement.ts), [77])
        }
    }

    // MARK: errors and limits

    func testInvalidBatchIsRefusedAndCounted() throws {
        try forEachBackend { f in
            guard case .failure(.invalid) = try f.waitResult({ f.store.submitBatch(f.batch(seq: -1), completion: $0) }) else {
                return XCTFail("a negative sequence")
            }
            guard case .failure(.invalid) = try f.waitResult({ f.store.submitBatch(f.batch(agent: "", seq: 1), completion: $0) }) else {
                return XCTFail("no agent id")
            }
            XCTAssertEqual(f.store.stats.refusedInvalid, 2)
            XCTAssertEqual(f.store.stats.batchesFailed, 2, "a refused batch is a failed outcome, counted once")
            XCTAssertEqual(try f.measurementTimes(), [])
        }
    }

    func testOverloadIsRefusedAndCounted() throws {
        var limits = StoreLimits()
        limits.maxPendingRows = 100
        try forEachBackend(limits: limits) { f in
            XCTAssertEqual(f.store.limits.maxPendingRows, 100)
            var results: [Result<BatchOutcome, StoreError>] = []
            for seq in 0..<3 {
                let ms = (0..<50).map { measurement(Int64($0), check: "c\($0)") }
                f.store.submitBatch(f.batch(seq: Int64(seq), measurements: ms)) { results.append($0) }
            }
            XCTAssertTrue(f.loop.run(until: { results.count == 3 }, timeout: 10))
            XCTAssertEqual(results.filter { (try? $0.get()) == .stored(rows: 50) }.count, 2)
            XCTAssertTrue(results.contains(.failure(.overloaded(pendingRows: 100, limit: 100))))
            XCTAssertEqual(f.store.stats.refusedOverloaded, 1)
            XCTAssertEqual(f.store.stats.batchesFailed, 1)
            let huge = f.batch(seq: 9, measurements: (0..<101).map { measurement(Int64($0)) })
            guard case .failure(.invalid) = try f.waitResult({ f.store.submitBatch(huge, completion: $0) }) else {
                return XCTFail("a batch larger than the queue")
            }
            XCTAssertEqual(try f.measurementTimes().count, 100)
            // Refused, nothing stored (the third, past 100 queued rows): the
            // same batch goes in once there is room.
            let ms = (0..<50).map { measurement(Int64($0), check: "c\($0)") }
            XCTAssertEqual(try f.submit(f.batch(seq: 2, measurements: ms)), .stored(rows: 50))
        }
    }

    func testClosedStoreRefusesWork() throws {
        try forEachBackend { f in
            f.close()
            XCTAssertEqual(try f.waitResult { f.store.submitBatch(f.batch(seq: 1), completion: $0) }, .failure(.closed))
            let q = try f.waitResult { f.store.agents(project: nil, completion: $0) }
            XCTAssertEqual(q.map { $0.count }, Result<Int, StoreError>.failure(.closed))
            XCTAssertEqual(try f.waitResult { f.store.createKey(project: "p", secret: "s", at: 1, completion: $0) }.map(\.id),
                           .failure(.closed))
            XCTAssertEqual(f.store.stats.refusedClosed, 3)
            var again = false
            f.store.close { again = true }
            XCTAssertFalse(again, "close completes later, also when already closed")
            XCTAssertTrue(f.loop.run(until: { again }, timeout: 5))
        }
    }

    func testCloseFinishesQueuedWorkFirst() throws {
        try forEachBackend { f in
            var events: [String] = []
            for seq in 0..<5 {
                f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1_000 + Int64(seq))])) { r in
                    XCTAssertEqual(try? r.get(), .stored(rows: 1))
                    events.append("batch")
                }
            }
            f.store.agents(project: nil) { r in
                XCTAssertEqual((try? r.get())?.count, 1)
                events.append("read")
            }
            var closed = 0
            f.store.close { closed += 1; events.append("closed") }
            f.store.close { closed += 1 }
            XCTAssertTrue(f.loop.run(until: { closed == 2 }, timeout: 20))
            XCTAssertEqual(events, Array(repeating: "batch", count: 5) + ["read", "closed"],
                           "queued work completes before close does")
            try f.reopen()
            XCTAssertEqual(try f.measurementTimes(), [1_004, 1_003, 1_002, 1_001, 1_000])
        }
    }

    func testReopenKeepsDataAndDeduplication() throws {
        try forEachBackend { f in
            let b = f.batch(seq: 0, measurements: [measurement(10_000), measurement(20_000)],
                            statuses: [StatusSnapshot(ts: 20_000, json: "{\"rss\":1}")])
            XCTAssertEqual(try f.submit(b), .stored(rows: 3))
            try f.reopen()
            XCTAssertEqual(try f.measurementTimes(), [20_000, 10_000])
            XCTAssertEqual(try f.wait { f.store.agent(id: "a1", completion: $0) }.status, "{\"rss\":1}")
            XCTAssertEqual(try f.submit(b), .duplicate, "de-duplication survives a restart")
            XCTAssertEqual(try f.wait { f.store.activeKeys(project: "demo", completion: $0) }.keys.map(\.secret), ["secret-1"])
        }
    }

    // MARK: queries

    /// Two projects; agents a1, a2 in demo and b1 in other; monitors and
    /// sources mixed; timestamps 1000...
    private func populate(_ f: ConformanceFixture) throws -> Int64 {
        _ = try f.wait { f.store.createKey(project: "other", secret: "secret-2", at: 1_000, completion: $0) }
        let other = try f.wait { f.store.activeKeys(project: "other", completion: $0) }.projectId
        try f.connect(agent: "a2", boot: "x")
        try f.connect(agent: "b1", boot: "y", project: other)
        _ = try f.submit(f.batch(seq: 0, measurements: [
            measurement(1_000, monitor: "shop", check: "checkout"),
            measurement(2_000, monitor: "shop", check: "login"),
            measurement(3_000, monitor: "blog", check: "home", source: "synthetic"),
        ]))
        _ = try f.submit(f.batch(agent: "a2", boot: "x", seq: 0, measurements: [measurement(4_000, monitor: "shop", check: "checkout")]))
        _ = try f.submit(f.batch(agent: "b1", boot: "y", seq: 0, project: other,
                                 measurements: [measurement(5_000, monitor: "shop", check: "checkout")]))
        return other
    }

    func testMeasurementFiltersAndTimeRanges() throws {
        try forEachBackend { f in
            _ = try populate(f)
            func ts(_ q: MeasurementQuery) throws -> [Int64] { try f.measurementTimes(q) }
            XCTAssertEqual(try ts(MeasurementQuery()), [5_000, 4_000, 3_000, 2_000, 1_000], "newest first")
            XCTAssertEqual(try ts(MeasurementQuery(project: "demo")), [4_000, 3_000, 2_000, 1_000])
            XCTAssertEqual(try ts(MeasurementQuery(project: "other")), [5_000])
            XCTAssertEqual(try ts(MeasurementQuery(project: "nope")), [])
            XCTAssertEqual(try ts(MeasurementQuery(agent: "a1")), [3_000, 2_000, 1_000])
            XCTAssertEqual(try ts(MeasurementQuery(monitor: "shop")), [5_000, 4_000, 2_000, 1_000])
            XCTAssertEqual(try ts(MeasurementQuery(monitor: "shop", check: "checkout")), [5_000, 4_000, 1_000])
            XCTAssertEqual(try ts(MeasurementQuery(source: "synthetic")), [3_000])
            XCTAssertEqual(try ts(MeasurementQuery(since: 2_000)), [5_000, 4_000, 3_000, 2_000], "since is inclusive")
            XCTAssertEqual(try ts(MeasurementQuery(since: 5_001)), [])
            XCTAssertEqual(try ts(MeasurementQuery(project: "demo", agent: "a1", monitor: "shop", since: 1_500)), [2_000])
            XCTAssertEqual(try ts(MeasurementQuery(limit: 2)), [5_000, 4_000])
            XCTAssertEqual(try ts(MeasurementQuery(limit: 0)), [5_000], "limit is clamped to at least 1")
            XCTAssertEqual(try ts(MeasurementQuery(limit: -5)), [5_000])

            let r = try f.wait { f.store.measurements(MeasurementQuery(agent: "a2"), completion: $0) }
            XCTAssertEqual(r, [MeasurementRecord(project: "demo", agent: "a2", measurement: measurement(4_000), id: r.first?.id ?? 0)])
        }
    }

    func testEveryQueryIsClampedToMaxQueryRows() throws {
        var limits = StoreLimits()
        limits.maxQueryRows = 3
        try forEachBackend(limits: limits) { f in
            XCTAssertEqual(f.store.limits.maxQueryRows, 3)
            let ev = (0..<5).map { RawEvent(ts: Int64($0), monitor: "m", check: "c", method: "GET", host: "h", path: "/", durationUs: 1) }
            let runs = (0..<5).map { MonitorRun(ts: Int64($0), monitor: "m", check: "", ok: true, durationUs: 1) }
            let sts = (0..<5).map { StatusSnapshot(ts: Int64(10 + $0), json: "{}") }
            _ = try f.submit(f.batch(seq: 0, measurements: (0..<5).map { measurement(Int64($0)) }, events: ev, statuses: sts,
                                     monitorRuns: runs))
            for i in 0..<5 {
                _ = try f.wait { f.store.appendAudit(AuditEntry(ts: Int64(i), actor: "t", action: "a", target: "x", result: "ok"),
                                                     completion: $0) }
                _ = try f.wait { f.store.setAgentState(agent: "a1", state: i % 2 == 0 ? .capturing : .stopped, messages: [],
                                                       at: Int64(10_000 + i), completion: $0) }
            }
            XCTAssertEqual(try f.measurementTimes(MeasurementQuery(limit: 100)), [4, 3, 2])
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(limit: 100), completion: $0) }.map(\.event.ts), [4, 3, 2])
            XCTAssertEqual(try f.wait { f.store.monitorRuns(MonitorRunQuery(limit: 100), completion: $0) }.map(\.run.ts), [4, 3, 2])
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(limit: 100), completion: $0) }.map(\.entry.ts), [4, 3, 2])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: nil, limit: 100, completion: $0) }.map(\.ts),
                           [14, 13, 12])
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 100, completion: $0) }.map(\.ts),
                           [10_004, 10_003, 10_002])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: 13, limit: 100, completion: $0) }.map(\.ts), [14, 13])
        }
    }

    /// `until` bounds every time-ordered query from above, exclusively:
    /// since <= ts < until.
    func testEveryTimeQueryTakesUntil() throws {
        try forEachBackend { f in
            let ev = (0..<5).map { RawEvent(ts: Int64($0), monitor: "m", check: "c", method: "GET", host: "h", path: "/", durationUs: 1) }
            let runs = (0..<5).map { MonitorRun(ts: Int64($0), monitor: "m", check: "", ok: true, durationUs: 1) }
            let sts = (0..<5).map { StatusSnapshot(ts: Int64(10 + $0), json: "{}") }
            _ = try f.submit(f.batch(seq: 0, measurements: (0..<5).map { measurement(Int64($0)) }, events: ev, statuses: sts,
                                     monitorRuns: runs))
            for i in 0..<5 {
                _ = try f.wait { f.store.appendAudit(AuditEntry(ts: Int64(i), actor: "t", action: "a", target: "x", result: "ok"),
                                                     completion: $0) }
                _ = try f.wait { f.store.setAgentState(agent: "a1", state: i % 2 == 0 ? .capturing : .stopped, messages: [],
                                                       at: Int64(10_000 + i), completion: $0) }
            }
            XCTAssertEqual(try f.measurementTimes(MeasurementQuery(since: 1, until: 3)), [2, 1])
            XCTAssertEqual(try f.measurementTimes(MeasurementQuery(until: 2)), [1, 0])
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(since: 1, until: 3), completion: $0) }.map(\.event.ts), [2, 1])
            XCTAssertEqual(try f.wait { f.store.monitorRuns(MonitorRunQuery(since: 1, until: 3), completion: $0) }.map(\.run.ts), [2, 1])
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(since: 1, until: 3), completion: $0) }.map(\.entry.ts), [2, 1])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: 11, until: 13, limit: 100, completion: $0) }.map(\.ts),
                           [12, 11])
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: 10_000, until: 10_002, limit: 100, completion: $0) }.map(\.ts),
                           [10_001, 10_000])
        }
    }

    /// Cursor paging of newest-first lists: after a position, rows older in
    /// (ts, id) order — ties in time split by id, none repeated or skipped,
    /// also when rows arrive between pages.
    func testAuditAndEventsPageAfterAPosition() throws {
        try forEachBackend { f in
            for ts: Int64 in [10, 20, 20, 20, 30] {
                _ = try f.wait { f.store.appendAudit(AuditEntry(ts: ts, actor: "t", action: "a", target: "x", result: "ok"), completion: $0) }
            }
            var seen: [Int64] = [], after: ListPosition? = nil
            for _ in 0..<3 {
                let page = try f.wait { f.store.audit(AuditQuery(limit: 2, after: after), completion: $0) }
                if seen.isEmpty {   // a newer row arriving after the first page is not on the later ones
                    _ = try f.wait { f.store.appendAudit(AuditEntry(ts: 40, actor: "t", action: "a", target: "x", result: "ok"), completion: $0) }
                }
                seen += page.map(\.id)
                after = page.last.map { ListPosition(ts: $0.entry.ts, id: $0.id) }
            }
            let all = try f.wait { f.store.audit(AuditQuery(limit: 100), completion: $0) }
            XCTAssertEqual(seen, all.dropFirst().map(\.id), "every row once, newest first")
            XCTAssertEqual(all.map(\.entry.ts), [40, 30, 20, 20, 20, 10])
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(limit: 10, after: after), completion: $0) }.count, 0)

            let ev = { (ts: Int64) in RawEvent(ts: ts, monitor: "m", check: "c", method: "GET", host: "h", path: "/", status: 200, durationUs: 1) }
            _ = try f.submit(f.batch(seq: 0, events: [ev(5), ev(5), ev(6), ev(4)]))
            let events = try f.wait { f.store.events(EventQuery(), completion: $0) }
            XCTAssertEqual(events.map(\.event.ts), [6, 5, 5, 4])
            let second = ListPosition(ts: events[1].event.ts, id: events[1].id)
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(limit: 10, after: second), completion: $0) }.map(\.id),
                           events.dropFirst(2).map(\.id))
        }
    }

    func testMeasurementsAndMonitorRunsPageAfterAPosition() throws {
        try forEachBackend { f in
            _ = try f.submit(f.batch(seq: 0, measurements: [measurement(7, monitor: "a", check: "x"), measurement(7, monitor: "b", check: "x"),
                                                            measurement(8, monitor: "a", check: "x"), measurement(6, monitor: "c", check: "x")],
                                     monitorRuns: [MonitorRun(ts: 3, monitor: "m", check: "", ok: true, durationUs: 1),
                                                   MonitorRun(ts: 3, monitor: "m", check: "s", ok: true, durationUs: 1),
                                                   MonitorRun(ts: 2, monitor: "m", check: "", ok: true, durationUs: 1)]))
            let all = try f.wait { f.store.measurements(MeasurementQuery(), completion: $0) }
            XCTAssertEqual(all.map(\.measurement.ts), [8, 7, 7, 6])
            var seen: [Int64] = [], after: ListPosition? = nil
            repeat {
                let page = try f.wait { f.store.measurements(MeasurementQuery(limit: 1, after: after), completion: $0) }
                seen += page.map(\.id)
                after = page.last.map { ListPosition(ts: $0.measurement.ts, id: $0.id) }
            } while after != nil && seen.count < 10
            XCTAssertEqual(seen, all.map(\.id), "ties in time split by id, each row once")
            let runs = try f.wait { f.store.monitorRuns(MonitorRunQuery(), completion: $0) }
            XCTAssertEqual(runs.map(\.run.ts), [3, 3, 2])
            let first = ListPosition(ts: runs[0].run.ts, id: runs[0].id)
            XCTAssertEqual(try f.wait { f.store.monitorRuns(MonitorRunQuery(after: first), completion: $0) }.map(\.id),
                           runs.dropFirst().map(\.id))
        }
    }

    func testEventsAndMonitorRuns() throws {
        try forEachBackend { f in
            func ev(_ ts: Int64, _ check: String) -> RawEvent {
                RawEvent(ts: ts, monitor: "shop", check: check, method: "GET", host: "api.example", path: "/p/:id", status: 200,
                         durationUs: 2_500)
            }
            let b = f.batch(seq: 0, events: [ev(1, "a"), ev(3, "b"), ev(2, "a")], monitorRuns: [
                MonitorRun(ts: 9, monitor: "ping", check: "dns", ok: false, durationUs: 30_000, detail: "timeout"),
                MonitorRun(ts: 8, monitor: "ping", check: "dns", ok: true, durationUs: 3_000),
                MonitorRun(ts: 7, monitor: "web", check: "", ok: true, durationUs: 1_000),
            ])
            XCTAssertEqual(try f.submit(b), .stored(rows: 6))
            let all = try f.wait { f.store.events(EventQuery(), completion: $0) }
            XCTAssertEqual(all.map(\.event.ts), [3, 2, 1])
            XCTAssertEqual(all.first?.project, "demo")
            XCTAssertEqual(all.first?.agent, "a1")
            XCTAssertEqual(all.last?.event, ev(1, "a"))
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(check: "a"), completion: $0) }.map(\.event.ts), [2, 1])
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(project: "demo", agent: "a1", since: 2, limit: 1), completion: $0) }
                .map(\.event.ts), [3])
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(agent: "zz"), completion: $0) }, [])

            let runs = try f.wait { f.store.monitorRuns(MonitorRunQuery(project: "demo", monitor: "ping"), completion: $0) }
            XCTAssertEqual(runs.map(\.run.ok), [false, true])
            XCTAssertEqual(runs.first?.run.detail, "timeout")
            XCTAssertEqual(try f.wait { f.store.monitorRuns(MonitorRunQuery(since: 8), completion: $0) }.map(\.run.ts), [9, 8])
            XCTAssertEqual(try f.wait { f.store.lastMonitorRuns(project: "demo", agent: nil, completion: $0) }, ["ping": 9, "web": 7])
            XCTAssertEqual(try f.wait { f.store.lastMonitorRuns(project: "demo", agent: "a2", completion: $0) }, [:])
            XCTAssertEqual(try f.wait { f.store.lastMonitorRuns(project: "nope", agent: nil, completion: $0) }, [:])
        }
    }

    func testAudit() throws {
        try forEachBackend { f in
            for (i, action) in ["capture.stop", "config.update", "capture.start"].enumerated() {
                let id = try f.wait {
                    f.store.appendAudit(AuditEntry(ts: Int64(100 + i), actor: "api", action: action, target: i == 1 ? "a2" : "a1",
                                                   detail: "{}", result: i == 1 ? "rejected" : "ok"), completion: $0)
                }
                XCTAssertGreaterThan(id, 0)
            }
            let all = try f.wait { f.store.audit(AuditQuery(), completion: $0) }
            XCTAssertEqual(all.map(\.entry.action), ["capture.start", "config.update", "capture.stop"])
            XCTAssertEqual(all[1].entry.result, "rejected")
            XCTAssertEqual(all[1].entry.detail, "{}")
            XCTAssertEqual(Set(all.map(\.id)).count, 3)
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(target: "a1"), completion: $0) }.count, 2)
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(action: "config.update"), completion: $0) }.map(\.entry.target), ["a2"])
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(since: 101, limit: 1), completion: $0) }.map(\.entry.ts), [102])
        }
    }

    // MARK: agents

    func testAgentsStatusAndStateHistory() throws {
        try forEachBackend { f in
            _ = try populate(f)
            _ = try f.submit(f.batch(seq: 1, statuses: [StatusSnapshot(ts: 10_000, json: "{\"n\":1}"),
                                                        StatusSnapshot(ts: 20_000, json: "{\"n\":2}")]))
            // An older snapshot arriving late does not replace the latest.
            _ = try f.submit(f.batch(seq: 2, statuses: [StatusSnapshot(ts: 15_000, json: "{\"n\":3}")]))
            let history = try f.wait { f.store.statusHistory(agent: "a1", since: nil, limit: 10, completion: $0) }
            XCTAssertEqual(history.map(\.ts), [20_000, 15_000, 10_000])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: 12_000, limit: 1, completion: $0) }.map(\.json),
                           ["{\"n\":2}"])

            XCTAssertTrue(try f.wait { f.store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 30_000, completion: $0) })
            XCTAssertFalse(try f.wait { f.store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 31_000, completion: $0) },
                           "no change, no history row")
            XCTAssertTrue(try f.wait {
                f.store.setAgentState(agent: "a1", state: .wrongConfiguration, messages: ["key 'x': bad\nvalue", "second"], at: 32_000,
                                      completion: $0)
            })
            let states = try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 10, completion: $0) }
            XCTAssertEqual(states.map(\.state), [.wrongConfiguration, .capturing, .connecting])
            XCTAssertEqual(states.first?.messages, ["key 'x': bad value", "second"])
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: 31_000, limit: 10, completion: $0) }.map(\.ts), [32_000])
            // Cursor paging: after the newest row, the rest; after the last, none.
            let page1 = try f.wait { f.store.stateHistory(agent: "a1", since: nil, until: nil, limit: 1, after: nil, completion: $0) }
            let rest = try f.wait {
                f.store.stateHistory(agent: "a1", since: nil, until: nil, limit: 10, after: ListPosition(ts: page1[0].ts, id: page1[0].id),
                                     completion: $0)
            }
            XCTAssertEqual(page1 + rest, states)
            let newest = try f.wait { f.store.statusHistory(agent: "a1", since: nil, until: nil, limit: 1, after: nil, completion: $0) }
            XCTAssertEqual(try f.wait {
                f.store.statusHistory(agent: "a1", since: nil, until: nil, limit: 10, after: ListPosition(ts: newest[0].ts, id: newest[0].id),
                                      completion: $0)
            }.map(\.ts), [15_000, 10_000])
            guard case .failure(.notFound) = try f.waitResult({
                f.store.setAgentState(agent: "nope", state: .stopped, messages: [], at: 1, completion: $0)
            }) else { return XCTFail("unknown agent") }

            let a1 = try f.wait { f.store.agent(id: "a1", completion: $0) }
            XCTAssertEqual(a1.project, "demo")
            XCTAssertEqual(a1.projectId, f.projectId)
            XCTAssertEqual(a1.name, "a1-name")
            XCTAssertEqual(a1.hostname, "host-a1")
            XCTAssertEqual(a1.version, "1.0")
            XCTAssertEqual(a1.bootId, "boot-1")
            XCTAssertEqual(a1.state, .wrongConfiguration)
            XCTAssertEqual(a1.stateMessages, ["key 'x': bad value", "second"])
            XCTAssertEqual(a1.stateSince, 32_000)
            XCTAssertEqual(a1.status, "{\"n\":2}")
            XCTAssertEqual(a1.statusTs, 20_000)
            XCTAssertEqual(a1.firstSeen, 2_000)
            XCTAssertEqual(a1.lastSeen, 5_002, "the latest batch's receive time")
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, completion: $0) }.map(\.id), ["a1", "a2", "b1"])
            XCTAssertEqual(try f.wait { f.store.agents(project: "other", completion: $0) }.map(\.id), ["b1"])
            XCTAssertEqual(try f.wait { f.store.agents(project: "nope", completion: $0) }.map(\.id), [])
            // Cursor paging: id order, after the previous page's last id.
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, after: nil, limit: 2, completion: $0) }.map(\.id), ["a1", "a2"])
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, after: "a2", limit: 2, completion: $0) }.map(\.id), ["b1"])
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, after: "b1", limit: 2, completion: $0) }.map(\.id), [])
            XCTAssertEqual(try f.wait { f.store.agents(project: "demo", after: "a1", limit: 5, completion: $0) }.map(\.id), ["a2"])
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, after: "a10", limit: nil, completion: $0) }.map(\.id), ["a2", "b1"],
                           "a cursor need not be an existing id")
            let failedBefore = (f.store.stats.readsFailed, f.store.stats.writesFailed)
            guard case .failure(.notFound("agent 'zz'")) = try f.waitResult({ f.store.agent(id: "zz", completion: $0) }) else {
                return XCTFail("unknown agent")
            }
            guard case .failure(.notFound) = try f.waitResult({ f.store.patterns(project: "nope", completion: $0) }) else {
                return XCTFail("unknown project")
            }
            // "No such thing" is the store's answer, not its failure.
            XCTAssertEqual(f.store.stats.readsFailed, failedBefore.0, "a not-found read is not a failed read")
            XCTAssertEqual(f.store.stats.writesFailed, failedBefore.1)

            XCTAssertEqual(try f.wait { f.store.markAllAgentsNotVisible(at: 40_000, completion: $0) }, 3)
            XCTAssertEqual(try f.wait { f.store.markAllAgentsNotVisible(at: 41_000, completion: $0) }, 0)
            XCTAssertEqual(try f.wait { f.store.agent(id: "a1", completion: $0) }.state, .notVisible)
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: 40_000, limit: 10, completion: $0) }.map(\.state),
                           [.notVisible])

            // Reconnecting updates identity and goes back to connecting.
            try f.connect(agent: "a1", boot: "boot-2", at: 50_000)
            let again = try f.wait { f.store.agent(id: "a1", completion: $0) }
            XCTAssertEqual(again.bootId, "boot-2")
            XCTAssertEqual(again.state, .connecting)
            XCTAssertEqual(again.firstSeen, 2_000)
            XCTAssertEqual(again.lastSeen, 50_000)
        }
    }

    func testRecordAgentStatusStoresTheSnapshotAndTheStateInOneWrite() throws {
        try forEachBackend { f in
            XCTAssertTrue(try f.wait {
                f.store.recordAgentStatus(agent: "a1", state: .capturing, messages: [], snapshot: StatusSnapshot(ts: 7_000, json: "{\"a\":1}"),
                                          completion: $0)
            })
            XCTAssertFalse(try f.wait {
                f.store.recordAgentStatus(agent: "a1", state: .capturing, messages: [], snapshot: StatusSnapshot(ts: 8_000, json: "{\"a\":2}"),
                                          completion: $0)
            }, "same state: no change")
            // Late: kept in the history, not made the latest.
            XCTAssertTrue(try f.wait {
                f.store.recordAgentStatus(agent: "a1", state: .stopped, messages: ["by operator"],
                                          snapshot: StatusSnapshot(ts: 6_000, json: "{\"a\":0}"), completion: $0)
            })
            let a1 = try f.wait { f.store.agent(id: "a1", completion: $0) }
            XCTAssertEqual(a1.status, "{\"a\":2}")
            XCTAssertEqual(a1.statusTs, 8_000)
            XCTAssertEqual(a1.lastSeen, 8_000)
            XCTAssertEqual(a1.state, .stopped)
            XCTAssertEqual(a1.stateMessages, ["by operator"])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.map(\.ts),
                           [8_000, 7_000, 6_000])
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.map(\.state),
                           [.capturing, .stopped, .connecting], "newest first by time")
            guard case .failure(.notFound) = try f.waitResult({
                f.store.recordAgentStatus(agent: "nope", state: .stopped, messages: [], snapshot: StatusSnapshot(ts: 1, json: "{}"),
                                          completion: $0)
            }) else { return XCTFail("unknown agent") }
        }
    }

    /// Many agents' Statuses in one write end as the same Statuses written
    /// one by one would: the same answers, snapshots, states and histories;
    /// an unknown agent is skipped.
    func testRecordAgentStatusesEndAsOneByOneWould() throws {
        try forEachBackend { f in
            _ = try populate(f)
            let changed = try f.wait { f.store.recordAgentStatuses([
                AgentStatusWrite(agent: "a1", state: .capturing, messages: [], snapshot: StatusSnapshot(ts: 7_000, json: "{\"a\":1}")),
                AgentStatusWrite(agent: "nope", state: .stopped, messages: [], snapshot: StatusSnapshot(ts: 1, json: "{}")),
                AgentStatusWrite(agent: "b1", state: .stopped, messages: ["m1", "m 2"], snapshot: StatusSnapshot(ts: 7_500, json: "{\"b\":1}")),
                AgentStatusWrite(agent: "a1", state: .capturing, messages: [], snapshot: StatusSnapshot(ts: 8_000, json: "{\"a\":2}")),
                // Late: kept in the history, not made the latest.
                AgentStatusWrite(agent: "a1", state: .stopped, messages: ["by operator"], snapshot: StatusSnapshot(ts: 6_000, json: "{\"a\":0}")),
                AgentStatusWrite(agent: "a2", state: .connecting, messages: [], snapshot: StatusSnapshot(ts: 7_700, json: "{\"c\":1}")),
            ], completion: $0) }
            XCTAssertEqual(changed, [true, false, true, false, true, false])
            let a1 = try f.wait { f.store.agent(id: "a1", completion: $0) }
            XCTAssertEqual(a1.status, "{\"a\":2}")
            XCTAssertEqual(a1.statusTs, 8_000)
            XCTAssertEqual(a1.lastSeen, 8_000)
            XCTAssertEqual(a1.state, .stopped)
            XCTAssertEqual(a1.stateMessages, ["by operator"])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.map(\.ts),
                           [8_000, 7_000, 6_000])
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.map(\.state),
                           [.capturing, .stopped, .connecting], "newest first by time")
            let b1 = try f.wait { f.store.agent(id: "b1", completion: $0) }
            XCTAssertEqual(b1.status, "{\"b\":1}")
            XCTAssertEqual(b1.state, .stopped)
            XCTAssertEqual(b1.stateMessages, ["m1", "m 2"])
            let a2 = try f.wait { f.store.agent(id: "a2", completion: $0) }
            XCTAssertEqual(a2.status, "{\"c\":1}")
            XCTAssertEqual(a2.state, .connecting)
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a2", since: nil, limit: 10, completion: $0) }.count, 1,
                           "no change, no history row")
            XCTAssertEqual(try f.wait { f.store.recordAgentStatuses([], completion: $0) }, [])
        }
    }

    func testRecordSessionsEndedStoresEachLastStatusThenNotVisible() throws {
        try forEachBackend { f in
            _ = try populate(f)
            let ends = [
                AgentSessionEnd(agent: "a1", status: (.capturing, ["m"], StatusSnapshot(ts: 9_000, json: "{\"x\":1}")), at: 9_500),
                AgentSessionEnd(agent: "nope", at: 9_500),
                AgentSessionEnd(agent: "b1", at: 9_600),
            ]
            XCTAssertEqual(try f.wait { f.store.recordSessionsEnded(ends, completion: $0) }, 2, "an unknown agent is skipped")
            let a1 = try f.wait { f.store.agent(id: "a1", completion: $0) }
            XCTAssertEqual(a1.state, .notVisible)
            XCTAssertEqual(a1.stateMessages, [])
            XCTAssertEqual(a1.status, "{\"x\":1}")
            XCTAssertEqual(a1.statusTs, 9_000)
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 2, completion: $0) }.map(\.state),
                           [.notVisible, .capturing], "the last Status, then gone")
            XCTAssertEqual(try f.wait { f.store.agent(id: "b1", completion: $0) }.state, .notVisible)
            XCTAssertEqual(try f.wait { f.store.agent(id: "a2", completion: $0) }.state, .connecting, "not among the ends")
        }
    }

    func testForgetAgentKeepsWhatItMeasured() throws {
        try forEachBackend { f in
            _ = try populate(f)
            _ = try f.submit(f.batch(agent: "a2", boot: "x", seq: 1, statuses: [StatusSnapshot(ts: 10_000, json: "{}")]))
            _ = try f.wait { f.store.setConfigOverrides(project: "demo", agent: "a2", values: ["capture": "off"], at: 1, completion: $0) }
            _ = try f.wait { f.store.setConfigOverrides(project: "demo", agent: nil, values: ["capture": "on"], at: 1, completion: $0) }
            try f.wait { f.store.forgetAgent(id: "a2", completion: $0) }
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, completion: $0) }.map(\.id), ["a1", "b1"])
            guard case .failure(.notFound("agent 'a2'")) = try f.waitResult({ f.store.agent(id: "a2", completion: $0) }) else {
                return XCTFail("still known")
            }
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a2", since: nil, limit: 10, completion: $0) }.count, 0)
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a2", since: nil, limit: 10, completion: $0) }.count, 0)
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: "a2", completion: $0) }, [:])
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: nil, completion: $0) }, ["capture": "on"],
                           "the project's overrides stay")
            XCTAssertEqual(try f.measurementTimes(MeasurementQuery(agent: "a2")), [4_000], "what it measured stays")
            guard case .failure(.notFound("agent 'a2'")) = try f.waitResult({ f.store.forgetAgent(id: "a2", completion: $0) }) else {
                return XCTFail("forgetting twice")
            }
            // A batch it re-sends after coming back is still a duplicate.
            try f.connect(agent: "a2", boot: "x")
            XCTAssertEqual(try f.submit(f.batch(agent: "a2", boot: "x", seq: 0, measurements: [measurement(4_000)])), .duplicate)
        }
    }

    func testKeysRevokedSinceATime() throws {
        try forEachBackend { f in
            let k = try f.wait { f.store.createKey(project: "demo", secret: "s-2", at: 10, completion: $0) }
            XCTAssertEqual(try f.wait { f.store.keysRevoked(since: 0, completion: $0) }, [])
            _ = try f.wait { f.store.revokeKey(id: k.id, at: 100, completion: $0) }
            XCTAssertEqual(try f.wait { f.store.keysRevoked(since: 100, completion: $0) }.map(\.id), [k.id])
            XCTAssertEqual(try f.wait { f.store.keysRevoked(since: 101, completion: $0) }, [])
        }
    }

    func testAgentIdentityEnrollsOnceThenCompares() throws {
        try forEachBackend { f in
            let other = try f.wait { f.store.createKey(project: "other", secret: "s-o", at: 1, completion: $0) }
            let otherId = try f.wait { f.store.activeKeys(project: other.project, completion: $0) }.projectId
            func enroll(_ id: String, _ project: Int64, _ key: String) throws -> Enrollment {
                try f.wait { f.store.enrollAgent(id: id, projectId: project, publicKey: key, at: 5, completion: $0) }
            }
            guard case .failure(.notFound) = try f.waitResult({ f.store.agentIdentity(id: "x1", completion: $0) }) else {
                return XCTFail("an id never enrolled")
            }
            XCTAssertEqual(try enroll("x1", f.projectId, "key-A"), .enrolled)
            XCTAssertEqual(try enroll("x1", f.projectId, "key-A"), .known)
            XCTAssertEqual(try enroll("x1", f.projectId, "key-B"), .keyMismatch)
            XCTAssertEqual(try enroll("x1", otherId, "key-A"), .otherProject, "the project is part of the identity")
            XCTAssertEqual(try enroll("x1", otherId, "key-B"), .otherProject)
            XCTAssertEqual(try f.wait { f.store.agentIdentity(id: "x1", completion: $0) }, "key-A", "refusals change nothing")
            // Reset: the project stays, the key goes; the next key enrolls.
            try f.wait { f.store.resetAgentIdentity(id: "x1", completion: $0) }
            XCTAssertEqual(try f.wait { f.store.agentIdentity(id: "x1", completion: $0) }, nil)
            XCTAssertEqual(try enroll("x1", otherId, "key-B"), .otherProject, "a reset keeps the project")
            XCTAssertEqual(try enroll("x1", f.projectId, "key-B"), .enrolled)
            XCTAssertEqual(try enroll("x1", f.projectId, "key-A"), .keyMismatch)
            guard case .failure(.notFound) = try f.waitResult({ f.store.resetAgentIdentity(id: "nobody", completion: $0) }) else {
                return XCTFail("resetting an id never enrolled")
            }
            // Forgetting an agent forgets its identity.
            try f.connect(agent: "x1", boot: "b")
            try f.wait { f.store.forgetAgent(id: "x1", completion: $0) }
            XCTAssertEqual(try enroll("x1", otherId, "key-C"), .enrolled)
        }
    }

    func testAgentOfUnknownProjectIsRefused() throws {
        try forEachBackend { f in
            let r = try f.waitResult {
                f.store.agentConnected(AgentHello(id: "x", projectId: 999, name: "", hostname: "", version: "", bootId: "", at: 1),
                                       completion: $0)
            }
            XCTAssertEqual(r.map(\.id), .failure(.notFound("project 999")))
            let empty = try f.waitResult {
                f.store.agentConnected(AgentHello(id: "", projectId: f.projectId, name: "", hostname: "", version: "", bootId: "", at: 1),
                                       completion: $0)
            }
            guard case .failure(.invalid) = empty else { return XCTFail("an empty agent id") }
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, completion: $0) }.map(\.id), ["a1"])
        }
    }

    // MARK: projects, keys and configuration

    func testKeysCreateListRevoke() throws {
        try forEachBackend { f in
            let k2 = try f.wait { f.store.createKey(project: "demo", secret: "secret-2", at: 3_000, completion: $0) }
            XCTAssertEqual(k2.project, "demo")
            XCTAssertEqual(k2.created, 3_000)
            XCTAssertNil(k2.revoked)
            let listed = try f.wait { f.store.keys(project: "demo", completion: $0) }
            XCTAssertEqual(listed.count, 2)
            XCTAssertEqual(listed.last, k2)
            XCTAssertEqual(try f.wait { f.store.keys(project: "nope", completion: $0) }, [])
            XCTAssertEqual(try f.wait { f.store.keys(project: nil, completion: $0) }.count, 2)

            var active = try f.wait { f.store.activeKeys(project: "demo", completion: $0) }
            XCTAssertEqual(active.keys.map(\.secret), ["secret-1", "secret-2"])
            let revoked = try f.wait { f.store.revokeKey(id: k2.id, at: 4_000, completion: $0) }
            XCTAssertEqual(revoked.revoked, 4_000)
            XCTAssertEqual(try f.wait { f.store.revokeKey(id: k2.id, at: 5_000, completion: $0) }.revoked, 4_000,
                           "revoking twice keeps the first time")
            active = try f.wait { f.store.activeKeys(project: "demo", completion: $0) }
            XCTAssertEqual(active.keys.map(\.secret), ["secret-1"])
            XCTAssertEqual(active.projectId, f.projectId)
            XCTAssertFalse("\(active)".contains("secret-1"), "a logged ProjectKeys shows no secret")
            let handshake = try f.wait { f.store.handshakeKeys(project: "demo", completion: $0) }
            XCTAssertEqual(handshake.keys.map(\.secret), ["secret-1"])
            XCTAssertEqual(handshake.revoked.map(\.secret), ["secret-2"], "revoked keys are told apart, never accepted")
            XCTAssertEqual(handshake.revoked.map(\.id), [k2.id])

            guard case .failure(.notFound("key 999")) = try f.waitResult({ f.store.revokeKey(id: 999, at: 1, completion: $0) }) else {
                return XCTFail("unknown key")
            }
            guard case .failure(.notFound("project 'nope'")) = try f.waitResult({ f.store.activeKeys(project: "nope", completion: $0) }) else {
                return XCTFail("unknown project")
            }
            guard case .failure(.notFound) = try f.waitResult({ f.store.handshakeKeys(project: "nope", completion: $0) }) else {
                return XCTFail("unknown project")
            }
            guard case .failure(.invalid) = try f.waitResult({ f.store.createKey(project: "", secret: "s", at: 1, completion: $0) }) else {
                return XCTFail("an empty project name")
            }
            guard case .failure(.invalid) = try f.waitResult({ f.store.createKey(project: "p", secret: "", at: 1, completion: $0) }) else {
                return XCTFail("an empty secret")
            }
            _ = try f.wait { f.store.createKey(project: "alpha", secret: "secret-3", at: 6_000, completion: $0) }
            let projects = try f.wait { f.store.projects(completion: $0) }
            XCTAssertEqual(projects.map(\.name), ["alpha", "demo"], "by name")
            XCTAssertEqual(projects.map(\.created), [6_000, 1_000])
        }
    }

    func testKeyCreatedElsewhereIsSeenWithoutRestart() throws {
        try forEachBackend { f in
            // What `vigil-collector keys create` does while the collector
            // runs: its own loop and store on the same database.
            try f.withSecondStore { cli, cliLoop in
                _ = try self.wait(cliLoop) { cli.createKey(project: "demo", secret: "from-cli", at: 9_000, completion: $0) }
            }
            let active = try f.wait { f.store.activeKeys(project: "demo", completion: $0) }
            XCTAssertEqual(active.keys.map(\.secret), ["secret-1", "from-cli"])
        }
    }

    func testPatternsReplaceInOrderWithVersion() throws {
        try forEachBackend { f in
            XCTAssertEqual(try f.wait { f.store.patterns(project: "demo", completion: $0) }, PatternSet(version: 0, updated: 0, patterns: []))
            let rules = [FilterPattern(method: "GET", host: "api.example.com", path: "/cart/*", monitor: "shop", check: "cart"),
                         FilterPattern(method: "*", host: "*.example.com", path: "/**", monitor: "shop", check: "other"),
                         FilterPattern(method: "", host: "*", path: "/health", monitor: "", check: "", exclude: true)]
            let v1 = try f.wait { f.store.replacePatterns(project: "demo", patterns: rules, at: 10, completion: $0) }
            XCTAssertEqual(v1, PatternSet(version: 1, updated: 10, patterns: rules))
            let v2 = try f.wait { f.store.replacePatterns(project: "demo", patterns: [rules[1]], at: 20, completion: $0) }
            XCTAssertEqual(v2, PatternSet(version: 2, updated: 20, patterns: [rules[1]]))
            XCTAssertEqual(try f.wait { f.store.patterns(project: "demo", completion: $0) }, v2)
            let v3 = try f.wait { f.store.replacePatterns(project: "demo", patterns: [], at: 30, completion: $0) }
            XCTAssertEqual(v3, PatternSet(version: 3, updated: 30, patterns: []))
            guard case .failure(.notFound) = try f.waitResult({ f.store.replacePatterns(project: "nope", patterns: rules, at: 1, completion: $0) }) else {
                return XCTFail("unknown project")
            }
            guard case .failure(.notFound) = try f.waitResult({ f.store.patterns(project: "nope", completion: $0) }) else {
                return XCTFail("unknown project")
            }
        }
    }

    func testMonitorDefinitionsVersioned() throws {
        try forEachBackend { f in
            XCTAssertEqual(try f.wait { f.store.monitorDefinitions(project: "demo", completion: $0) },
                           MonitorDefinitions(version: 0, updated: 0, json: "[]"))
            _ = try f.wait { f.store.replaceMonitorDefinitions(project: "demo", json: "[1]", at: 5, completion: $0) }
            let d = try f.wait { f.store.replaceMonitorDefinitions(project: "demo", json: "[2]", at: 6, completion: $0) }
            XCTAssertEqual(d, MonitorDefinitions(version: 2, updated: 6, json: "[2]"))
            XCTAssertEqual(try f.wait { f.store.monitorDefinitions(project: "demo", completion: $0) }, d)
            guard case .failure(.notFound) = try f.waitResult({ f.store.monitorDefinitions(project: "nope", completion: $0) }) else {
                return XCTFail("unknown project")
            }
        }
    }

    func testConfigOverridesPerProjectAndAgent() throws {
        try forEachBackend { f in
            XCTAssertEqual(try f.wait {
                f.store.setConfigOverrides(project: "demo", agent: nil, values: ["capture": "off", "status_interval_ms": "5000"], at: 1,
                                           completion: $0)
            }, ["capture": "off", "status_interval_ms": "5000"])
            XCTAssertEqual(try f.wait {
                f.store.setConfigOverrides(project: "demo", agent: "a1", values: ["capture": "on"], at: 2, completion: $0)
            }, ["capture": "on"])
            XCTAssertEqual(try f.wait {
                f.store.setConfigOverrides(project: "demo", agent: nil, values: ["capture": nil, "log_level": "debug"], at: 3, completion: $0)
            }, ["status_interval_ms": "5000", "log_level": "debug"])
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: nil, completion: $0) },
                           ["status_interval_ms": "5000", "log_level": "debug"])
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: "a1", completion: $0) }, ["capture": "on"])
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: "a2", completion: $0) }, [:])
            guard case .failure(.notFound) = try f.waitResult({ f.store.configOverrides(project: "nope", agent: nil, completion: $0) }) else {
                return XCTFail("unknown project")
            }
        }
    }

    // MARK: retention

    func testRetentionRemovesWhatIsOlderThanTheCutoffOnly() throws {
        try forEachBackend { f in
            let old = (0..<95).map { measurement(Int64(1_000 + $0), check: "c\($0 % 7)") }
            let new = (0..<5).map { measurement(Int64(900_000 + $0)) }
            let events = [RawEvent(ts: 400_000, monitor: "m", check: "c", method: "GET", host: "h", path: "/", durationUs: 1),
                          RawEvent(ts: 600_000, monitor: "m", check: "c", method: "GET", host: "h", path: "/", durationUs: 1)]
            let runs = [MonitorRun(ts: 499_999, monitor: "m", check: "", ok: true, durationUs: 1),
                        MonitorRun(ts: 500_000, monitor: "m", check: "", ok: true, durationUs: 1)]
            _ = try f.submit(f.batch(seq: 0, measurements: old + new, events: events,
                                     statuses: [StatusSnapshot(ts: 100, json: "{}"), StatusSnapshot(ts: 700_000, json: "{}")],
                                     monitorRuns: runs))
            _ = try f.wait { f.store.appendAudit(AuditEntry(ts: 10, actor: "cli", action: "a", target: "t", result: "ok"), completion: $0) }
            _ = try f.wait { f.store.appendAudit(AuditEntry(ts: 950_000, actor: "cli", action: "a", target: "t", result: "ok"),
                                                 completion: $0) }
            _ = try f.wait { f.store.setAgentState(agent: "a1", state: .capturing, messages: [], at: 800_000, completion: $0) }

            let report = try f.wait { f.store.removeExpired(olderThan: 500_000, completion: $0) }
            XCTAssertEqual(report.cutoff, 500_000)
            XCTAssertEqual(report.deleted["measurements"], 95)
            XCTAssertEqual(report.deleted["events"], 1)
            XCTAssertEqual(report.deleted["monitor_runs"], 1, "the cutoff itself is kept")
            XCTAssertEqual(report.deleted["agent_status"], 1)
            XCTAssertEqual(report.deleted["audit"], 1)
            XCTAssertEqual(report.deleted["batch_sequences"], 1, "updated at 5000, before the cutoff")
            XCTAssertEqual(report.deleted["agent_states"], 1, "the 'connecting' change at 2000")
            XCTAssertEqual(report.deleted["series"], 7, "c0…c6 have no measurement left; shop/checkout keeps its 5")
            XCTAssertEqual(report.total, 108)
            XCTAssertGreaterThanOrEqual(report.chunks, 1)
            XCTAssertEqual(f.store.stats.retentionDeleted, UInt64(report.total))

            XCTAssertEqual(try f.measurementTimes(), (0..<5).map { Int64(900_004 - $0) })
            XCTAssertEqual(try f.wait { f.store.events(EventQuery(), completion: $0) }.map(\.event.ts), [600_000])
            XCTAssertEqual(try f.wait { f.store.monitorRuns(MonitorRunQuery(), completion: $0) }.map(\.run.ts), [500_000])
            XCTAssertEqual(try f.wait { f.store.statusHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.map(\.ts), [700_000])
            XCTAssertEqual(try f.wait { f.store.audit(AuditQuery(), completion: $0) }.map(\.entry.ts), [950_000])
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.map(\.ts), [800_000])
            // Configuration is not data: kept whatever its age.
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, completion: $0) }.map(\.id), ["a1"])
            XCTAssertEqual(try f.wait { f.store.activeKeys(project: "demo", completion: $0) }.keys.count, 1)
            let nothing = try f.wait { f.store.removeExpired(olderThan: 500_000, completion: $0) }
            XCTAssertEqual(nothing.total, 0, "a second pass finds nothing")
            // The boot's sequence row expired with it: that batch is new again.
            XCTAssertEqual(try f.submit(f.batch(seq: 0, measurements: [measurement(950_000)])), .stored(rows: 1))
        }
    }

    func testEmptySeriesGoAndComeBackWithTheirNextMeasurement() throws {
        try forEachBackend { f in
            _ = try f.submit(f.batch(seq: 0, measurements: [measurement(1_000, check: "ended"), measurement(900_000)]))
            let report = try f.wait { f.store.removeExpired(olderThan: 500_000, completion: $0) }
            XCTAssertEqual(report.deleted["series"], 1)
            XCTAssertEqual(report.deleted["measurements"], 1)
            // The same key measured again: a series again, and queryable.
            _ = try f.submit(f.batch(seq: 1, measurements: [measurement(950_000, check: "ended")]))
            let rows = try f.wait { f.store.measurements(MeasurementQuery(), completion: $0) }
            XCTAssertEqual(rows.map(\.measurement.check).sorted(), ["checkout", "ended"])
            XCTAssertNil(try f.wait { f.store.removeExpired(olderThan: 500_000, completion: $0) }.deleted["series"],
                         "the series measured again is kept")
            XCTAssertEqual(try f.measurementTimes().count, 2)
        }
    }

    func testAnAgentKeepsItsMode() throws {
        try forEachBackend { f in
            XCTAssertEqual(try f.wait { f.store.agent(id: "a1", completion: $0) }.mode, "agent", "the default")
            let hello = AgentHello(id: "upload-demo", projectId: f.projectId, name: "upload", hostname: "collector",
                                   version: "1", bootId: "u1", at: 3_000, mode: AgentRecord.uploadMode)
            XCTAssertEqual(try f.wait { f.store.agentConnected(hello, completion: $0) }.mode, "upload")
            let all = try f.wait { f.store.agents(project: "demo", completion: $0) }
            XCTAssertEqual(all.map(\.mode), ["agent", "upload"])
            try f.reopen()
            XCTAssertEqual(try f.wait { f.store.agent(id: "upload-demo", completion: $0) }.mode, "upload")
        }
    }

    // MARK: the collector's health history

    func testCollectorHistoryInBucketsAndItsRetention() throws {
        try forEachBackend(limits: { var l = StoreLimits(); l.maxQueryRows = 3; return l }()) { f in
            func sample(_ ts: Int64, established: Int64, handshakes: Int64, lagMax: Int64) -> CollectorSample {
                var s = CollectorSample(ts: ts, intervalMs: 10_000)
                s.sessionsEstablished = established; s.handshakes = handshakes; s.lagMaxUs = lagMax
                s.agentsCapturing = established; s.rowsStored = 100; s.dropped = 1; s.pendingRows = ts / 1_000
                return s
            }
            // Samples at 10, 20, …, 80 s.
            for i in Int64(1)...8 {
                try f.wait { f.store.appendCollectorSample(sample(i * 10_000, established: i, handshakes: i, lagMax: i * 100),
                                                           completion: $0) }
            }
            // Buckets of 30 s from 10 s: [10,40) [40,70) [70,100), until 80 s excluded.
            var q = CollectorHistoryQuery(since: 10_000, until: 80_000, stepMs: 30_000)
            let h = try f.wait { f.store.collectorHistory(q, completion: $0) }
            XCTAssertEqual(h.map(\.ts), [10_000, 40_000, 70_000])
            XCTAssertEqual(h.map(\.intervalMs), [30_000, 30_000, 10_000])
            XCTAssertEqual(h.map(\.sessionsEstablished), [2, 5, 7], "gauges: the mean")
            XCTAssertEqual(h.map(\.agentsCapturing), [2, 5, 7])
            XCTAssertEqual(h.map(\.handshakes), [6, 15, 7], "counts: the sum")
            XCTAssertEqual(h.map(\.rowsStored), [300, 300, 100])
            XCTAssertEqual(h.map(\.dropped), [3, 3, 1])
            XCTAssertEqual(h.map(\.lagMaxUs), [300, 600, 700], "latencies: the largest")
            XCTAssertEqual(h.map(\.pendingRows), [30, 60, 70])
            // One sample per bucket gives the samples back as stored.
            q = CollectorHistoryQuery(since: 20_000, until: 40_000, stepMs: 10_000)
            XCTAssertEqual(try f.wait { f.store.collectorHistory(q, completion: $0) },
                           [sample(20_000, established: 2, handshakes: 2, lagMax: 200),
                            sample(30_000, established: 3, handshakes: 3, lagMax: 300)])
            // Bounded by the store's maxQueryRows (3 here), oldest first.
            q = CollectorHistoryQuery(since: 0, until: 1_000_000, stepMs: 10_000, limit: 100)
            XCTAssertEqual(try f.wait { f.store.collectorHistory(q, completion: $0) }.map(\.ts), [10_000, 20_000, 30_000])
            // Empty buckets are left out; a range without samples is empty.
            q = CollectorHistoryQuery(since: 100_000, until: 200_000, stepMs: 10_000)
            XCTAssertEqual(try f.wait { f.store.collectorHistory(q, completion: $0) }, [])
            // A step of 0 or an empty range is refused.
            for bad in [CollectorHistoryQuery(since: 0, until: 10, stepMs: 0), CollectorHistoryQuery(since: 10, until: 10, stepMs: 1)] {
                guard case .failure(.invalid) = try f.waitResult({ f.store.collectorHistory(bad, completion: $0) }) else {
                    return XCTFail("\(bad) was not refused")
                }
            }
            // Retention: older than 45 s goes (10…40 s), the rest stays.
            XCTAssertEqual(try f.wait { f.store.removeExpiredCollectorSamples(olderThan: 45_000, completion: $0) }, 4)
            XCTAssertEqual(try f.wait { f.store.removeExpiredCollectorSamples(olderThan: 45_000, completion: $0) }, 0)
            q = CollectorHistoryQuery(since: 0, until: 1_000_000, stepMs: 1_000_000)
            let all = try f.wait { f.store.collectorHistory(q, completion: $0) }
            XCTAssertEqual(all.map(\.handshakes), [5 + 6 + 7 + 8])
            XCTAssertEqual(all.map(\.intervalMs), [40_000])
        }
    }

    func testStaleAgentsWithoutASessionAreForgotten() throws {
        try forEachBackend { f in
            // a1 (from the fixture) was seen at 2_000; a2 at 600_000; a3 at 3_000 but connected.
            try f.connect(agent: "a2", boot: "b", at: 600_000)
            try f.connect(agent: "a3", boot: "b", at: 3_000)
            for a in ["a1", "a2"] {
                _ = try f.wait { f.store.setAgentState(agent: a, state: .notVisible, messages: [], at: 2_500, completion: $0) }
            }
            _ = try f.wait { f.store.setConfigOverrides(project: "demo", agent: "a1", values: ["log_level": "debug"], at: 2_600,
                                                        completion: $0) }
            _ = try f.wait { f.store.setConfigOverrides(project: "demo", agent: nil, values: ["log_level": "warn"], at: 2_600,
                                                        completion: $0) }
            _ = try f.submit(f.batch(seq: 0, measurements: [measurement(2_000)]))

            let removed = try f.wait { f.store.removeStaleAgents(notSeenSince: 500_000, completion: $0) }
            XCTAssertEqual(removed, ["a1"], "a2 was seen since; a3 has a session")
            XCTAssertEqual(try f.wait { f.store.agents(project: nil, completion: $0) }.map(\.id).sorted(), ["a2", "a3"])
            if case .failure(.notFound) = try f.waitResult({ f.store.agent(id: "a1", completion: $0) }) {} else {
                XCTFail("a1 is still there")
            }
            XCTAssertEqual(try f.wait { f.store.stateHistory(agent: "a1", since: nil, limit: 10, completion: $0) }.count, 0)
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: "a1", completion: $0) }, [:])
            XCTAssertEqual(try f.wait { f.store.configOverrides(project: "demo", agent: nil, completion: $0) }, ["log_level": "warn"],
                           "the project's overrides stay")
            XCTAssertEqual(try f.measurementTimes(), [2_000], "its data stays until data retention removes it")
            XCTAssertEqual(try f.wait { f.store.removeStaleAgents(notSeenSince: 500_000, completion: $0) }, [])
            // The agent connects again: a new registration, nothing in the way.
            try f.connect(agent: "a1", boot: "boot-2", at: 700_000)
            XCTAssertEqual(try f.wait { f.store.agent(id: "a1", completion: $0) }.firstSeen, 700_000)
        }
    }
}
