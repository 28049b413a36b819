// StoreStats: what the store did, for /metrics and the periodic self-report.
// Every refused or failed operation is counted by cause.
import Reactor

public struct StoreStats: Sendable {
    public var batchesStored: UInt64 = 0
    public var batchesDuplicate: UInt64 = 0
    public var batchesFailed: UInt64 = 0
    public var rowsStored: UInt64 = 0
    /// Write operations of any kind that failed (batches included).
    public var writesFailed: UInt64 = 0
    public var refusedOverloaded: UInt64 = 0
    public var refusedClosed: UInt64 = 0
    public var refusedInvalid: UInt64 = 0
    public var transactions: UInt64 = 0
    public var transactionsFailed: UInt64 = 0
    /// BEGIN found another process holding the write lock; retried later.
    public var busyRetries: UInt64 = 0
    public var reads: UInt64 = 0
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
    /// BEGIN to COMMIT returned, µs (on the writer thread).
    public var transactionMicros = LogHistogram()
    public var transactionRows = LogHistogram()
    public var checkpointMicros = LogHistogram()
    public var readMicros = LogHistogram()

    public init() {}

    /// Copies the counters the writer thread keeps (transactions, reads,
    /// checkpoints, their latencies) from `w`; the rest stay the loop's.
    mutating func takeWriterCounters(from w: StoreStats) {
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
}
