// The change log: one row per committed change to what agents are told —
// filter rules, monitors, configuration overrides, keys, agent identities —
// written in the same transaction as the change, so every collector on one
// database can follow what any of them (or `vigil-collector keys` in
// another process) changed by reading the rows after the last one it saw
// (docs/COLLECTOR.md, "Changes between collectors"). Ingest never writes it.
// Plain values.

/// What changed.
public enum ChangeKind: String, Sendable, CaseIterable {
    /// A project's filter rules (`replacePatterns`).
    case patterns
    /// A project's monitor definitions (`replaceMonitorDefinitions`).
    case monitors
    /// Configuration overrides of a project (agent empty) or of one agent;
    /// `ChangeRecord.detail` lists the keys set or removed.
    case config
    /// An access key created or revoked.
    case key
    /// An agent's identity enrolled, reset or forgotten.
    case identity
}

/// One row of the change log.
public struct ChangeRecord: Equatable, Sendable {
    /// Ascending in commit order (each backend makes sure of that).
    public var seq: Int64
    public var project: String
    public var kind: ChangeKind
    /// The agent, for a change of one agent's overrides or identity; "" otherwise.
    public var agent: String
    /// For `.config`: the keys set or removed, comma-separated, sorted.
    public var detail: String
    /// `changeOrigin` of the store that wrote it ("" for a process that set none).
    public var origin: String
    /// Wall clock of the writer (ms).
    public var at: Int64

    public init(seq: Int64, project: String, kind: ChangeKind, agent: String, detail: String, origin: String, at: Int64) {
        self.seq = seq
        self.project = project
        self.kind = kind
        self.agent = agent
        self.detail = detail
        self.origin = origin
        self.at = at
    }
}

public enum ChangeLog {
    /// Rows older than this are deleted by the retention timer (but for the
    /// newest row, which a follower needs to tell a gap from quiet): one day.
    public static let retentionMs: Int64 = 86_400_000
    /// Rows deleted per retention transaction.
    public static let retentionChunk = 1_000
}
