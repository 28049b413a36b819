import XCTest
import Reactor
@testable import CollectorStore

final class StoreWritePathTests: XCTestCase {
    func testResentBatchIsStoredOnce() throws {
        let f = try StoreFixture(self)
        let b = f.batch(seq: 7, measurements: [measurement(1_000), measurement(2_000, check: "login")],
                        events: [RawEvent(ts: 1_500, monitor: "shop", check: "checkout", method: "GET", host: "h", path: "/p", durationMs: 3)])
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(b, completion: $0) }, .stored(rows: 3))
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(b, completion: $0) }, .duplicate)
        // Re-sent twice within one iteration (old and new session racing).
        var outcomes: [BatchOutcome] = []
        f.store.submitBatch(b) { outcomes.append(try! $0.get()) }
        f.store.submitBatch(b) { outcomes.append(try! $0.get()) }
        XCTAssertTrue(f.loop.run(until: { outcomes.count == 2 }, timeout: 10))
        XCTAssertEqual(outcomes, [.duplicate, .duplicate])
        XCTAssertEqual(try f.committedCount("measurements"), 2)
        XCTAssertEqual(try f.committedCount("events"), 1)
        XCTAssertEqual(f.store.stats.batchesStored, 1)
        XCTAssertEqual(f.store.stats.batchesDuplicate, 3)

        // The same sequence from a new boot is a different batch.
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(boot: "boot-2", seq: 7, measurements: [measurement(3_000)]), completion: $0) },
                       .stored(rows: 1))
        close(f.store)
    }

    func testOutOfOrderBatchesInAGapAreStored() throws {
        let f = try StoreFixture(self)
        func submit(_ seq: Int64) throws -> BatchOutcome {
            try wait(f.loop) { f.store.submitBatch(f.batch(seq: seq, measurements: [measurement(seq)]), completion: $0) }
        }
        XCTAssertEqual(try submit(5), .stored(rows: 1))
        XCTAssertEqual(try submit(3), .stored(rows: 1), "below the high-water mark but never stored")
        XCTAssertEqual(try submit(3), .duplicate)
        XCTAssertEqual(try submit(5), .duplicate)
        XCTAssertEqual(try submit(0), .stored(rows: 1))
        XCTAssertEqual(try submit(6), .stored(rows: 1))
        XCTAssertEqual(try f.store.db.scalar("SELECT high_seq FROM batch_sequences WHERE agent_id = 'a1'"), 6)
        XCTAssertEqual(try f.committedCount("measurements"), 4)
        close(f.store)
    }

    func testCompletionRunsAfterCommitAndNotBefore() throws {
        let f = try StoreFixture(self)
        var seenByOtherConnection: Int64 = -1
        var done = false
        f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(1), measurement(2)])) { result in
            XCTAssertEqual(try? result.get(), .stored(rows: 2))
            // Another connection sees only committed data: seeing the rows
            // here proves COMMIT returned before this callback.
            seenByOtherConnection = (try? f.committedCount("measurements")) ?? -2
            done = true
        }
        XCTAssertFalse(done, "no completion before the call returns")
        XCTAssertEqual(try f.committedCount("measurements"), 0, "nothing committed when submit returns")
        XCTAssertTrue(f.loop.run(until: { done }, timeout: 10))
        XCTAssertEqual(seenByOtherConnection, 2)
        XCTAssertEqual(f.store.stats.commitMicros.count, f.store.stats.transactions)
        close(f.store)
    }

    func testWritesOfOneIterationShareOneCommit() throws {
        let f = try StoreFixture(self)
        let before = f.store.stats.transactions
        var done = 0
        for seq in 0..<10 { f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1)])) { _ in done += 1 } }
        XCTAssertTrue(f.loop.run(until: { done == 10 }, timeout: 10))
        XCTAssertEqual(f.store.stats.transactions - before, 1, "group commit")
        close(f.store)
    }

    func testLargeBacklogIsCutIntoBoundedTransactions() throws {
        let f = try StoreFixture(self) { $0.maxRowsPerTransaction = 100 }
        let before = f.store.stats.transactions
        var completed: [Int64] = []
        for seq in 0..<10 {
            let ms = (0..<50).map { measurement(Int64($0), check: "c\($0)") }
            f.store.submitBatch(f.batch(seq: Int64(seq), measurements: ms)) { r in
                XCTAssertEqual(try? r.get(), .stored(rows: 50))
                completed.append(Int64(seq))
            }
        }
        XCTAssertTrue(f.loop.run(until: { completed.count == 10 }, timeout: 10))
        XCTAssertEqual(completed, Array(0..<10), "completions in submission order")
        XCTAssertEqual(f.store.stats.transactions - before, 5)
        XCTAssertLessThanOrEqual(f.store.stats.transactionRows.max, 100)
        XCTAssertEqual(try f.committedCount("measurements"), 500)
        close(f.store)
    }

    func testOneBadBatchFailsAloneAndCanBeResent() throws {
        let f = try StoreFixture(self)
        try f.store.db.exec("""
            CREATE TEMP TRIGGER refuse BEFORE INSERT ON events WHEN NEW.host = 'boom'
            BEGIN SELECT RAISE(ABORT, 'refused by test'); END
            """)
        let bad = RawEvent(ts: 1, monitor: "m", check: "c", method: "GET", host: "boom", path: "/", durationMs: 1)
        var results: [Int64: Result<BatchOutcome, StoreError>] = [:]
        f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(1)])) { results[0] = $0 }
        f.store.submitBatch(f.batch(seq: 1, measurements: [measurement(2)], events: [bad])) { results[1] = $0 }
        f.store.submitBatch(f.batch(seq: 2, measurements: [measurement(3)])) { results[2] = $0 }
        XCTAssertTrue(f.loop.run(until: { results.count == 3 }, timeout: 10))
        XCTAssertEqual(try results[0]?.get(), .stored(rows: 1))
        XCTAssertEqual(try results[2]?.get(), .stored(rows: 1))
        guard case .failure(.sqlite(let e))? = results[1] else { return XCTFail("\(String(describing: results[1]))") }
        XCTAssertTrue(e.message.contains("refused by test"), e.description)
        XCTAssertEqual(f.store.stats.batchesFailed, 1)
        XCTAssertEqual(try f.committedCount("measurements"), 2, "the failed batch's measurement was rolled back")

        // Not acknowledged, so the agent re-sends it; now it is stored.
        try f.store.db.exec("DROP TRIGGER temp.refuse")
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: 1, measurements: [measurement(2)], events: [bad]), completion: $0) },
                       .stored(rows: 2))
        XCTAssertEqual(try f.committedCount("measurements"), 3)
        close(f.store)
    }

    func testOverloadIsRefusedAndCounted() throws {
        let f = try StoreFixture(self) { $0.maxPendingRows = 100 }
        var results: [Result<BatchOutcome, StoreError>] = []
        for seq in 0..<3 {
            let ms = (0..<50).map { measurement(Int64($0), check: "c\($0)") }
            f.store.submitBatch(f.batch(seq: Int64(seq), measurements: ms)) { results.append($0) }
        }
        XCTAssertTrue(f.loop.run(until: { results.count == 3 }, timeout: 10))
        XCTAssertEqual(results.filter { (try? $0.get()) == .stored(rows: 50) }.count, 2)
        XCTAssertTrue(results.contains(.failure(.overloaded(pendingRows: 100, limit: 100))))
        XCTAssertEqual(f.store.stats.refusedOverloaded, 1)
        let huge = f.batch(seq: 9, measurements: (0..<101).map { measurement(Int64($0)) })
        guard case .failure(.invalid) = try waitResult(f.loop, { f.store.submitBatch(huge, completion: $0) }) else { return XCTFail() }
        XCTAssertEqual(try f.committedCount("measurements"), 100)
        close(f.store)
    }

    func testInvalidBatchIsRefused() throws {
        let f = try StoreFixture(self)
        guard case .failure(.invalid) = try waitResult(f.loop, { f.store.submitBatch(f.batch(seq: -1), completion: $0) }) else { return XCTFail() }
        guard case .failure(.invalid) = try waitResult(f.loop, { f.store.submitBatch(f.batch(agent: "", seq: 1), completion: $0) }) else { return XCTFail() }
        XCTAssertEqual(f.store.stats.refusedInvalid, 2)
        close(f.store)
    }

    func testLockedByAnotherProcessIsRetriedLater() throws {
        let f = try StoreFixture(self) { $0.busyTimeoutMillis = 1 }
        let other = try SQLiteConnection(path: f.store.path)
        try other.exec("BEGIN IMMEDIATE")
        var result: Result<BatchOutcome, StoreError>?
        f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(1)])) { result = $0 }
        XCTAssertTrue(f.loop.run(until: { f.store.stats.busyRetries >= 2 }, timeout: 10))
        XCTAssertNil(result, "no completion while the write lock is held elsewhere")
        try other.exec("COMMIT")
        other.close()
        XCTAssertTrue(f.loop.run(until: { result != nil }, timeout: 10))
        XCTAssertEqual(try result?.get(), .stored(rows: 1))
        close(f.store)
    }

    func testReadSeesEarlierWriteOfTheSameIteration() throws {
        let f = try StoreFixture(self)
        var stored = false
        f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(77)])) { _ in stored = true }
        let rows = try wait(f.loop) { f.store.measurements(MeasurementQuery(), completion: $0) }
        XCTAssertTrue(stored, "write completions run before later reads")
        XCTAssertEqual(rows.map(\.measurement.ts), [77])
        close(f.store)
    }

    func testRetentionDeletesInBoundedChunks() throws {
        let f = try StoreFixture(self) { $0.retentionChunkRows = 10 }
        let old = (0..<95).map { measurement(Int64(1_000 + $0), check: "c\($0 % 7)") }
        let new = (0..<5).map { measurement(Int64(900_000 + $0)) }
        _ = try wait(f.loop) { f.store.submitBatch(f.batch(seq: 0, measurements: old + new), completion: $0) }
        _ = try wait(f.loop) { f.store.appendAudit(AuditEntry(ts: 10, actor: "cli", action: "a", target: "t", result: "ok"), completion: $0) }
        _ = try wait(f.loop) { f.store.appendAudit(AuditEntry(ts: 950_000, actor: "cli", action: "a", target: "t", result: "ok"), completion: $0) }

        let tx = f.store.stats.transactions
        let it = f.loop.iteration
        let report = try wait(f.loop) { f.store.removeExpired(olderThan: 500_000, completion: $0) }
        XCTAssertEqual(report.deleted["measurements"], 95)
        XCTAssertEqual(report.deleted["audit"], 1)
        XCTAssertEqual(report.deleted["batch_sequences"], 1, "updated at 5000, before the cutoff")
        XCTAssertEqual(report.deleted["agent_states"], 1, "the 'connecting' change at 2000")
        XCTAssertGreaterThanOrEqual(report.chunks, 10, "95 rows at 10 per chunk")
        XCTAssertEqual(f.store.stats.transactions - tx, UInt64(report.chunks), "one transaction per chunk")
        XCTAssertGreaterThanOrEqual(f.loop.iteration - it, 10, "chunks spread over loop iterations")
        XCTAssertEqual(try f.committedCount("measurements"), 5)
        XCTAssertEqual(f.store.stats.retentionDeleted, UInt64(report.total))
        close(f.store)
    }

    func testRetentionTimerUsesTheConfiguredDays() throws {
        let f = try StoreFixture(self)
        let now = Clock.wallMillis()
        _ = try wait(f.loop) {
            f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(now - 3 * 86_400_000), measurement(now)]), completion: $0)
        }
        f.store.startRetention(days: 2, every: 0.01, firstAfter: 0)
        XCTAssertTrue(f.loop.run(until: { f.store.stats.retentionDeleted >= 1 }, timeout: 10))
        f.store.stopRetention()
        XCTAssertEqual(try f.committedCount("measurements"), 1)
        close(f.store)
    }
}
