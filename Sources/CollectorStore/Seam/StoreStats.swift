// StoreStats: what a store did, for /metrics and the periodic self-report.
// Every refused or failed operation is counted by cause.
//
// The store is the one owner of batch outcomes (stored, duplicate, failed,
// rows): every backend counts each `submitBatch` completion once with
// `countBatch`, and /metrics renders these. Counters a backend has no use
// for stay 0 (a networked backend has no checkpoints).
//
// Plain values; a store builds a copy on its loop thread when asked.
import Reactor

public struct StoreStats: Sendable {
    // Batch outcomes, one per `submitBatch` completion.
    public var batchesStored: UInt64 = 0
    public var batchesDuplicate: UInt64 = 0
    /// Refusals (overloaded, closed, invalid) included.
    public var batchesFailed: UInt64 = 0
    public var rowsStored: UInt64 = 0
    /// Write operations of any kind that failed (batches included; a
    /// `notFound` answer excluded).
    public var writesFailed: UInt64 = 0
    public var refusedOverloaded: UInt64 = 0
    /// Reads refused because `maxPendingReads` were queued.
    public var refusedReads: UInt64 = 0
    public var refusedClosed: UInt64 = 0
    public var refusedInvalid: UInt64 = 0
    public var transactions: UInt64 = 0
    public var transactionsFailed: UInt64 = 0
    /// Another process held the write lock; retried later.
    public var busyRetries: UInt64 = 0
    /// Writes run again because their server connection broke before
    /// COMMIT returned (PostgreSQL: batches, safe to run twice).
    public var writesRetried: UInt64 = 0
    /// Group transactions the server refused, run again batch by batch in
    /// savepoints so the bad batch fails alone (PostgreSQL).
    public var groupsSplit: UInt64 = 0
    /// Commands sent on the write connection, each one round trip to the
    /// server (PostgreSQL; a pipeline counts once).
    public var writeRoundTrips: UInt64 = 0
    /// Commands sent on the handshake connection (PostgreSQL): key reads,
    /// identity checks and enrollments, ownership claims, registry reads.
    public var handshakeRoundTrips: UInt64 = 0
    /// Handshake-lane transactions that carried several enrollments
    /// (PostgreSQL; one commit for all of them).
    public var handshakeGroups: UInt64 = 0
    public var reads: UInt64 = 0
    /// Reads that failed; a `notFound` answer is not a failure (`StoreError.isAnswer`).
    public var readsFailed: UInt64 = 0
    /// Reads stopped at `maxReadMillis` (counted in `readsFailed` too).
    public var readsInterrupted: UInt64 = 0
    public var checkpoints: UInt64 = 0
    public var retentionDeleted: UInt64 = 0
    /// Sequence gaps dropped because an (agent, boot) had too many; a batch
    /// in a forgotten gap would be taken for a duplicate.
    public var sequenceGapsForgotten: UInt64 = 0
    public var pendingWrites = 0
    public var pendingRows = 0
    public var pendingReads = 0
    /// COMMIT alone (the fsync), µs.
    public var commitMicros = LogHistogram()
    /// BEGIN to COMMIT returned, µs.
    public var transactionMicros = LogHistogram()
    public var transactionRows = LogHistogram()
    public var checkpointMicros = LogHistogram()
    public var readMicros = LogHistogram()

    public init() {}

    /// Counts the outcome of one `submitBatch`.
    public mutating func countBatch(_ result: Result<BatchOutcome, StoreError>) {
        switch result {
        case .success(.stored(let rows)):
            batchesStored &+= 1
            rowsStored &+= UInt64(rows)
        case .success(.duplicate):
            batchesDuplicate &+= 1
        case .failure:
            batchesFailed &+= 1
        }
    }

    /// The same counters with histograms of their own (LogHistogram.ownCopy).
    public func ownCopy() -> StoreStats {
        var c = self
        c.commitMicros = commitMicros.ownCopy()
        c.transactionMicros = transactionMicros.ownCopy()
        c.transactionRows = transactionRows.ownCopy()
        c.checkpointMicros = checkpointMicros.ownCopy()
        c.readMicros = readMicros.ownCopy()
        return c
    }

    /// Copies the counters a backend keeps off the loop thread
    /// (transactions, reads, checkpoints, their latencies) from `w`; the
    /// rest stay the loop's.
    public mutating func takeWriterCounters(from w: StoreStats) {
        writesFailed = w.writesFailed
        transactions = w.transactions
        transactionsFailed = w.transactionsFailed
        busyRetries = w.busyRetries
        reads = w.reads
        readsFailed = w.readsFailed
        readsInterrupted = w.readsInterrupted
        checkpoints = w.checkpoints
        sequenceGapsForgotten = w.sequenceGapsForgotten
        commitMicros = w.commitMicros
        transactionMicros = w.transactionMicros
        transactionRows = w.transactionRows
        checkpointMicros = w.checkpointMicros
        readMicros = w.readMicros
    }

    /// Admits a write of `rows` against the pending-rows bound: counts it
    /// pending, or counts the refusal and returns why (`.invalid` when it
    /// could never fit, `.overloaded` while the queue is full).
    public mutating func admitWrite(rows: Int, limit: Int) -> StoreError? {
        if pendingRows + rows > limit {
            if rows > limit {
                refusedInvalid &+= 1
                return .invalid("a write of \(rows) rows exceeds the queue limit of \(limit)")
            }
            refusedOverloaded &+= 1
            return .overloaded(pendingRows: pendingRows, limit: limit)
        }
        pendingWrites += 1
        pendingRows += rows
        return nil
    }
}
