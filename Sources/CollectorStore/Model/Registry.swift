// The collector's registry: projects and their access keys, filter patterns,
// monitor definitions, configuration overrides, and the audit log. Plain values.

public struct ProjectInfo: Equatable, Sendable {
    public var id: Int64
    public var name: String
    public var created: Int64
}

/// An access key without its secret: what `keys list` and the API may show.
public struct KeyInfo: Equatable, Sendable {
    public var id: Int64
    public var project: String
    public var created: Int64
    public var revoked: Int64?
}

/// The secrets a handshake may accept for a project (revoked keys excluded).
/// Never log or render these.
public struct ProjectKeys: Sendable, CustomStringConvertible {
    public var projectId: Int64
    public var project: String
    public var keys: [(id: Int64, secret: String)]
    /// Revoked keys; filled by `handshakeKeys` only (never accepted).
    public var revoked: [(id: Int64, secret: String)] = []

    /// Names the keys by id only, so interpolating this into a log line
    /// cannot leak a secret.
    public var description: String {
        "ProjectKeys(project: \(project) (\(projectId)), keys: \(keys.map { "#\($0.id)" }.joined(separator: ", ")), revoked: \(revoked.count))"
    }
}

/// One IPA filter rule: method (or `*`), host glob, path glob → (monitor,
/// check), or, with `exclude`, → dropped (monitor and check then unused).
public struct FilterPattern: Equatable, Sendable {
    public var method: String
    public var host: String
    public var path: String
    public var monitor: String
    public var check: String
    public var exclude: Bool

    public init(method: String, host: String, path: String, monitor: String, check: String, exclude: Bool = false) {
        self.method = method; self.host = host; self.path = path; self.monitor = monitor; self.check = check
        self.exclude = exclude
    }
}

/// A project's rules in order (first match wins) with the version that
/// changes on every replacement; version 0 means never set.
public struct PatternSet: Equatable, Sendable {
    public var version: Int64
    public var updated: Int64
    public var patterns: [FilterPattern]

    public init(version: Int64, updated: Int64, patterns: [FilterPattern]) {
        self.version = version; self.updated = updated; self.patterns = patterns
    }
}

/// A project's synthetic monitor definitions as JSON text, versioned.
public struct MonitorDefinitions: Equatable, Sendable {
    public var version: Int64
    public var updated: Int64
    public var json: String
}

/// The answer to `enrollAgent`: what the registry holds for an agent id
/// against the (project, static key) a completed handshake proved.
public enum Enrollment: Equatable, Sendable {
    /// The id was new (or reset): it is now bound to this project and key.
    case enrolled
    /// The id is bound to this project and this key.
    case known
    /// The id is bound to this project and another key: refused.
    case keyMismatch
    /// The id belongs to another project: refused, nothing changed.
    case otherProject
}

public struct AuditEntry: Equatable, Sendable {
    public var ts: Int64
    /// Who: e.g. `api` with a token fingerprint, `cli`.
    public var actor: String
    /// What: e.g. `capture.stop`, `config.update`, `keys.revoke`.
    public var action: String
    /// On what: an agent id, a project name, a key id.
    public var target: String
    public var detail: String
    /// How it ended: e.g. `ok`, `rejected`, `timeout`.
    public var result: String

    public init(ts: Int64, actor: String, action: String, target: String, detail: String = "", result: String) {
        self.ts = ts; self.actor = actor; self.action = action; self.target = target
        self.detail = detail; self.result = result
    }
}

public struct AuditRecord: Equatable, Sendable {
    public var id: Int64
    public var entry: AuditEntry
}
