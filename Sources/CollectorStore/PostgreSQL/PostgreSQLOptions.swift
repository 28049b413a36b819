// PostgreSQLOptions: the knobs of PostgreSQLStore. `conninfo` goes to libpq
// as it is (a `postgresql://` URI or `key=value` pairs); the password, when
// given here, goes separately, so it need not sit in the URL — without it
// libpq's own sources apply (PGPASSWORD, ~/.pgpass). Never log `conninfo`
// itself: `PGConnInfo.redacted` is what logs and configuration output show.
// Plain values.

public struct PostgreSQLOptions: Sendable {
    public var conninfo: String
    public var password: String?
    public var limits = StoreLimits()
    /// Seconds a connection attempt may take.
    public var connectTimeout = 10.0
    /// Longest wait between reconnection attempts (s); the wait doubles from 0.1 s.
    public var maxReconnectDelay = 5.0
    /// Rows of the batches that share one transaction at most (group
    /// commit: the batches queued while the previous COMMIT ran).
    public var maxRowsPerTransaction = 50_000
    /// Connections batches are stored over (the write connection and
    /// more), each agent's always over the same one: a PostgreSQL backend
    /// works on one core. 1: every write on the write connection.
    public var ingestConnections = 2
    /// Daily measurement partitions created ahead of today.
    public var partitionDaysAhead = 3
    /// Rows deleted per retention transaction (the default partition and
    /// the other tables; whole partitions are dropped instead).
    public var retentionChunkRows = 2_000
    /// (agent, monitor, check, source) → series id entries kept in memory.
    public var seriesCacheLimit = 100_000
    /// Gaps remembered per (agent, boot) sequence set (see ReceivedSequences).
    public var maxSequenceGaps = 64

    public init(conninfo: String, password: String? = nil) {
        self.conninfo = conninfo
        self.password = password
    }
}

/// Connection strings as logs and configuration output may show them.
public enum PGConnInfo {
    /// `conninfo` with any password replaced by `***`: the `user:password@`
    /// of a URI, a `password=` URI parameter, a `password=` key=value pair
    /// (quoted or not).
    public static func redacted(_ conninfo: String) -> String {
        let s = conninfo.trimmingLeadingSpaces
        if s.hasPrefix("postgresql://") || s.hasPrefix("postgres://") {
            var out = s
            let schemeEnd = s.firstRange(of: "://")!.upperBound
            let rest = s[schemeEnd...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@"),
               let colon = rest[..<at].firstIndex(of: ":") {
                out = String(s[..<rest.index(after: colon)]) + "***" + String(s[at...])
            }
            return redactParameter(out, separator: "&", assignment: "=")
        }
        return redactKeyValue(s)
    }

    private static func redactParameter(_ s: String, separator: Character, assignment: Character) -> String {
        guard let q = s.firstIndex(of: "?") else { return s }
        let params = s[s.index(after: q)...].split(separator: separator, omittingEmptySubsequences: false).map { p -> String in
            let key = p.split(separator: assignment, maxSplits: 1).first.map(String.init) ?? ""
            return key.lowercased() == "password" ? key + "=***" : String(p)
        }
        return String(s[...q]) + params.joined(separator: String(separator))
    }

    /// key=value pairs; values may be single-quoted with \' and \\ inside.
    private static func redactKeyValue(_ s: String) -> String {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            // Copy spaces, then a key up to '='.
            while i < s.endIndex, s[i] == " " { out.append(s[i]); i = s.index(after: i) }
            var key = ""
            while i < s.endIndex, s[i] != "=", s[i] != " " { key.append(s[i]); i = s.index(after: i) }
            out += key
            while i < s.endIndex, s[i] == " " { out.append(s[i]); i = s.index(after: i) }
            guard i < s.endIndex, s[i] == "=" else { continue }
            out.append("="); i = s.index(after: i)
            while i < s.endIndex, s[i] == " " { out.append(s[i]); i = s.index(after: i) }
            var value = ""
            if i < s.endIndex, s[i] == "'" {
                value.append("'"); i = s.index(after: i)
                while i < s.endIndex {
                    let c = s[i]
                    value.append(c); i = s.index(after: i)
                    if c == "\\", i < s.endIndex { value.append(s[i]); i = s.index(after: i); continue }
                    if c == "'" { break }
                }
            } else {
                while i < s.endIndex, s[i] != " " { value.append(s[i]); i = s.index(after: i) }
            }
            out += key.lowercased() == "password" ? "***" : value
        }
        return out
    }
}

private extension String {
    var trimmingLeadingSpaces: String { String(drop(while: { $0 == " " })) }
}
