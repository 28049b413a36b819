// StoreOptions: the knobs of SQLiteStore, with the defaults the collector
// uses. Every queue and cache the store keeps is bounded by one of these;
// the backend-neutral bounds (query rows, read time, queued rows) are its
// `limits`. Plain values.

public struct StoreOptions: Sendable {
    /// `PRAGMA synchronous`. `.full` fsyncs the WAL at every commit, so an
    /// acknowledged batch survives power loss; `.normal` survives process
    /// crashes only (docs/STORAGE.md has the measurements).
    public enum Synchronous: String, Sendable { case normal = "NORMAL", full = "FULL" }

    public var dataDirectory: String
    public var fileName = "vigil.db"
    public var synchronous = Synchronous.full
    /// Rows written per transaction at most (a single larger batch still
    /// goes in whole: a batch is atomic). Transactions are as large as
    /// what queued while the writer was busy, up to this.
    public var maxRowsPerTransaction = 50_000
    /// Query rows, read time and queued rows (StoreLimits). Reads run on
    /// the writer thread, so `limits.maxReadMillis` is also how long one
    /// read may hold up the commits behind it.
    public var limits = StoreLimits()
    /// SQLite's page cache of the store's connection, KiB: an upper bound,
    /// filled only as pages are used. The hot pages are the right edges of
    /// time-ordered tables and indexes, so a small cache holds them.
    public var cacheKiB = 8_192
    /// Rows handed to the writer per loop iteration at most (a read or a
    /// close counts as one; a single larger write still goes, alone); the
    /// rest are handed over on the next iterations, in order. Each job
    /// costs the hand-off a retain, an append under the worker's mutex and,
    /// later, a completion: a mass close or a burst of batches no longer
    /// hands thousands of jobs over in one iteration.
    public var maxRowsPerHandOff = 4_096
    /// Completions run per loop iteration at most; the rest run on the
    /// next ones (a commit of thousands of writes does not hold the loop).
    public var maxCompletionsPerIteration = 128
    /// Nice value of the writer thread (0: the process's own). Positive:
    /// the loop thread wins the CPU whenever both want it.
    public var writerNice: Int32 = 10
    /// Checkpoint once the WAL holds this many pages (4 KiB each).
    public var checkpointPages: Int32 = 1_000
    /// How long SQLite itself waits for another process's lock (ms) before
    /// the writer counts a busy retry, sleeps `busyRetryDelay` (s) and tries again.
    public var busyTimeoutMillis: Int32 = 20
    public var busyRetryDelay = 0.005
    /// Rows deleted per retention transaction.
    public var retentionChunkRows = 2_000
    /// (agent, monitor, check, source) → series id entries kept in memory.
    public var seriesCacheLimit = 100_000
    /// Gaps remembered per (agent, boot) sequence set (see ReceivedSequences).
    public var maxSequenceGaps = 64

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    public var databasePath: String {
        dataDirectory.hasSuffix("/") ? dataDirectory + fileName : dataDirectory + "/" + fileName
    }
}
