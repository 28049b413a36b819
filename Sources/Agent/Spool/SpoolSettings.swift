// SpoolSettings: the disk spool's tunables (`spool_dir`, `spool_max_bytes`,
// `spool_sync`, `spool_sync_interval_ms`), resolved: a relative `spool_dir`
// lives under `state_dir`.
//
// Thread: a value; read on the loop thread.

public struct SpoolSettings: Equatable, Sendable {
    /// When appended records are forced to the disk (fdatasync). A kill -9
    /// loses nothing that was written (the kernel holds it); these decide
    /// what a power loss or kernel crash can lose (docs/AGENT.md, "Spool").
    public enum Sync: String, Equatable, Sendable, CaseIterable {
        /// After every record.
        case always
        /// Every `spool_sync_interval_ms` when something was written.
        case interval
        /// Never; the kernel writes back in its own time.
        case never
    }

    public var directory: String
    public var maxBytes: Int
    public var sync: Sync
    public var syncIntervalMs: Int

    public init(directory: String, maxBytes: Int = 256 << 20, sync: Sync = .interval, syncIntervalMs: Int = 1000) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.sync = sync
        self.syncIntervalMs = syncIntervalMs
    }

    /// `spool_dir` as given when absolute, else under `state_dir`.
    public static func resolve(spoolDir: String, stateDir: String) -> String {
        if spoolDir.hasPrefix("/") { return spoolDir }
        return stateDir.hasSuffix("/") ? stateDir + spoolDir : stateDir + "/" + spoolDir
    }

    /// Smallest accepted `spool_max_bytes` (0 turns the spool off).
    public static let minMaxBytes = 128 << 10

    /// Bytes per segment file: an eighth of the spool (so dropping the
    /// oldest frees little at a time), between 16 KiB and 4 MiB.
    public var segmentBytes: Int { max(16 << 10, min(4 << 20, maxBytes / 8)) }
}
