// SQLiteStore's write path: what the conformance suite cannot see from
// outside — group commit, transaction sizes, savepoints, another process's
// lock, retention chunks and the retention timer.
import XCTest
import Reactor
@testable import CollectorStore

final class StoreWritePathTests: XCTestCase {
    func testReceivedSequencesAreOneRowPerBoot() throws {
        let f = try StoreFixture(self)
        for seq: Int64 in [5, 3, 0, 6] {
            XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: seq, measurements: [measurement(seq)]), completion: $0) },
                           .stored(rows: 1))
        }
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: 3, measurements: [measurement(3)]), completion: $0) },
                       .duplicate)
        XCTAssertEqual(try f.sql(self) { try $0.scalar("SELECT count(*) FROM batch_sequences WHERE agent_id = 'a1'") }, 1)
        XCTAssertEqual(try f.sql(self) { try $0.scalar("SELECT high_seq FROM batch_sequences WHERE agent_id = 'a1'") }, 6)
        XCTAssertEqual(try f.sql(self) { try $0.scalarText("SELECT gaps FROM batch_sequences WHERE agent_id = 'a1'") }, "1-2,4-4")
        XCTAssertEqual(try f.sql(self) { try $0.scalar("SELECT batches FROM batch_sequences WHERE agent_id = 'a1'") }, 4)
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

    /// Completions of one commit stop, after the first of an iteration,
    /// once the loop's time box is spent; the rest run on the next
    /// iterations, in order. The clock is the test's: each completion
    /// "costs" 200 µs of a 500 µs box, so at most three run per iteration.
    func testCompletionsStopWhenTheIterationsTimeBoxIsSpent() throws {
        let f = try StoreFixture(self)
        var now: UInt64 = 1_000_000
        f.loop.timeBox.clock = { now }
        f.loop.timeBox.budgetNanos = 500_000
        var iterations: [UInt] = []
        var order: [Int] = []
        for seq in 0..<10 {
            f.store.submitBatch(f.batch(seq: Int64(seq), measurements: [measurement(1)])) { _ in
                now += 200_000
                iterations.append(f.loop.iteration)
                order.append(seq)
            }
        }
        XCTAssertTrue(f.loop.run(until: { order.count == 10 }, timeout: 10))
        XCTAssertEqual(order, Array(0..<10), "completions in submission order")
        let perIteration = Dictionary(grouping: iterations, by: { $0 }).mapValues(\.count)
        XCTAssertLessThanOrEqual(perIteration.values.max() ?? 0, 3, "\(perIteration)")
        XCTAssertGreaterThanOrEqual(perIteration.count, 4)
        XCTAssertGreaterThan(f.loop.timeBox.cutShort, 0)
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

    /// Jobs queued in one iteration reach the writer at most
    /// `maxRowsPerHandOff` rows per iteration, the rest on the next ones,
    /// in order; a single larger write still goes, alone.
    func testHandOffCarriesAtMostItsRowBudgetPerIteration() throws {
        let f = try StoreFixture(self) { $0.maxRowsPerHandOff = 100 }
        // The fixture's own setup writes were handed over before.
        let h0 = f.store.handOffs, c0 = f.store.handOffsCarriedOver
        XCTAssertLessThan(f.store.largestHandOffRows, 100)
        var completed: [Int64] = []
        for seq in 0..<30 {
            let ms = (0..<10).map { measurement(Int64($0), check: "c\($0)") }
            f.store.submitBatch(f.batch(seq: Int64(seq), measurements: ms)) { r in
                XCTAssertEqual(try? r.get(), .stored(rows: 10))
                completed.append(Int64(seq))
            }
        }
        let big = (0..<150).map { measurement(Int64($0), check: "big\($0)") }
        f.store.submitBatch(f.batch(seq: 30, measurements: big)) { r in
            XCTAssertEqual(try? r.get(), .stored(rows: 150))
            completed.append(30)
        }
        XCTAssertEqual(f.store.handOffs, h0, "nothing handed over before the call returns")
        _ = f.loop.runOnce()
        XCTAssertEqual(f.store.handOffs, h0 + 1)
        XCTAssertEqual(f.store.largestHandOffRows, 100, "ten batches of ten rows, the other twenty and the large one wait")
        XCTAssertTrue(f.loop.run(until: { completed.count == 31 }, timeout: 10))
        XCTAssertEqual(completed, Array(0...30), "completions in submission order")
        XCTAssertEqual(f.store.handOffs, h0 + 4, "100 + 100 + 100 rows, then the 150-row batch alone")
        XCTAssertEqual(f.store.handOffsCarriedOver, c0 + 3)
        XCTAssertEqual(f.store.largestHandOffRows, 150)
        XCTAssertEqual(try f.committedCount("measurements"), 450)
        close(f.store)
    }

    func testOneBadBatchFailsAloneAndCanBeResent() throws {
        let f = try StoreFixture(self)
        try f.sql(self) {
            try $0.exec("""
                CREATE TEMP TRIGGER refuse BEFORE INSERT ON events WHEN NEW.host = 'boom'
                BEGIN SELECT RAISE(ABORT, 'refused by test'); END
                """)
        }
        let bad = RawEvent(ts: 1, monitor: "m", check: "c", method: "GET", host: "boom", path: "/", durationUs: 1_000)
        var results: [Int64: Result<BatchOutcome, StoreError>] = [:]
        f.store.submitBatch(f.batch(seq: 0, measurements: [measurement(1)])) { results[0] = $0 }
        f.store.submitBatch(f.batch(seq: 1, measurements: [measurement(2)], events: [bad])) { results[1] = $0 }
        f.store.submitBatch(f.batch(seq: 2, measurements: [measurement(3)])) { results[2] = $0 }
        XCTAssertTrue(f.loop.run(until: { results.count == 3 }, timeout: 10))
        XCTAssertEqual(try results[0]?.get(), .stored(rows: 1))
        XCTAssertEqual(try results[2]?.get(), .stored(rows: 1))
        guard case .failure(.backend(let message))? = results[1] else { return XCTFail("\(String(describing: results[1]))") }
        XCTAssertTrue(message.contains("refused by test"), message)
        XCTAssertEqual(f.store.stats.batchesFailed, 1)
        XCTAssertEqual(f.store.stats.writesFailed, 1)
        XCTAssertEqual(try f.committedCount("measurements"), 2, "the failed batch's measurement was rolled back")

        // Not acknowledged, so the agent re-sends it; now it is stored.
        try f.sql(self) { try $0.exec("DROP TRIGGER temp.refuse") }
        XCTAssertEqual(try wait(f.loop) { f.store.submitBatch(f.batch(seq: 1, measurements: [measurement(2)], events: [bad]), completion: $0) },
                       .stored(rows: 2))
        XCTAssertEqual(try f.committedCount("measurements"), 3)
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
