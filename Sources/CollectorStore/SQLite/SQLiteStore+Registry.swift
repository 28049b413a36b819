// SQLiteStore, registry: projects and keys, filter patterns, monitor
// definitions, configuration overrides and the audit log; each change to
// what agents are told also appends a change-log row (ChangeLog.swift). The public
// methods run on the loop thread and queue a job; the bodies and the
// SQLiteWriter helpers at the end run on the writer thread.
import Reactor

extension SQLiteStore {
    // MARK: keys

    public func createKey(project: String, secret: String, at: Int64, completion: @escaping StoreCompletion<KeyInfo>) {
        guard !project.isEmpty, !secret.isEmpty else {
            loopStats.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("a key needs a project name and a secret")))
        }
        let origin = changeOrigin
        enqueueWrite(rows: 3, { writer in
            try writer.db.run("INSERT INTO projects(name, created_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                              [.text(project), .integer(at)])
            let pid = try writer.projectId(named: project)
            try writer.db.run("INSERT INTO project_keys(project_id, secret, created_ms) VALUES (?, ?, ?)",
                              [.integer(pid), .text(secret), .integer(at)])
            let id = writer.db.lastInsertRowID
            try writer.appendChange(.key, project: project, origin: origin, at: at)
            return KeyInfo(id: id, project: project, created: at, revoked: nil)
        }, completion: completion)
    }

    public func keys(project: String?, completion: @escaping StoreCompletion<[KeyInfo]>) {
        enqueueRead({ writer in
            let s = try writer.db.statement("""
                SELECT k.id, p.name, k.created_ms, k.revoked_ms FROM project_keys k JOIN projects p ON p.id = k.project_id
                WHERE ?1 IS NULL OR p.name = ?1 ORDER BY k.id
                """)
            defer { s.reset() }
            s.bind(1, project)
            var out: [KeyInfo] = []
            while try s.step() { out.append(KeyInfo(id: s.int64(0), project: s.text(1), created: s.int64(2), revoked: s.optionalInt64(3))) }
            return out
        }, completion: completion)
    }

    public func revokeKey(id: Int64, at: Int64, completion: @escaping StoreCompletion<KeyInfo>) {
        let origin = changeOrigin
        enqueueWrite(rows: 2, { writer in
            let changed = try writer.db.run("UPDATE project_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
                                            [.integer(at), .integer(id)])
            let s = try writer.db.statement("""
                SELECT k.id, p.name, k.created_ms, k.revoked_ms FROM project_keys k JOIN projects p ON p.id = k.project_id WHERE k.id = ?
                """)
            s.bind(1, id)
            guard try s.step() else { s.reset(); throw StoreError.notFound("key \(id)") }
            let info = KeyInfo(id: s.int64(0), project: s.text(1), created: s.int64(2), revoked: s.optionalInt64(3))
            s.reset()
            if changed > 0 { try writer.appendChange(.key, project: info.project, origin: origin, at: at) }
            return info
        }, completion: completion)
    }

    public func activeKeys(project: String, completion: @escaping StoreCompletion<ProjectKeys>) {
        enqueueRead({ writer in
            let pid = try writer.projectId(named: project)
            let s = try writer.db.statement("SELECT id, secret FROM project_keys WHERE project_id = ? AND revoked_ms IS NULL ORDER BY id")
            defer { s.reset() }
            s.bind(1, pid)
            var keys: [(id: Int64, secret: String)] = []
            while try s.step() { keys.append((s.int64(0), s.text(1))) }
            return ProjectKeys(projectId: pid, project: project, keys: keys)
        }, completion: completion)
    }

    public func handshakeKeys(project: String, completion: @escaping StoreCompletion<ProjectKeys>) {
        enqueueRead({ writer in
            let pid = try writer.projectId(named: project)
            let s = try writer.db.statement("SELECT id, secret, revoked_ms IS NOT NULL FROM project_keys WHERE project_id = ? ORDER BY id")
            defer { s.reset() }
            s.bind(1, pid)
            var keys = ProjectKeys(projectId: pid, project: project, keys: [])
            while try s.step() {
                if s.int64(2) != 0 { keys.revoked.append((s.int64(0), s.text(1))) } else { keys.keys.append((s.int64(0), s.text(1))) }
            }
            return keys
        }, completion: completion)
    }

    public func keysRevoked(since: Int64, completion: @escaping StoreCompletion<[KeyInfo]>) {
        enqueueRead({ writer in
            let s = try writer.db.statement("""
                SELECT k.id, p.name, k.created_ms, k.revoked_ms FROM project_keys k JOIN projects p ON p.id = k.project_id
                WHERE k.revoked_ms >= ? ORDER BY k.id
                """)
            defer { s.reset() }
            s.bind(1, since)
            var out: [KeyInfo] = []
            while try s.step() { out.append(KeyInfo(id: s.int64(0), project: s.text(1), created: s.int64(2), revoked: s.optionalInt64(3))) }
            return out
        }, completion: completion)
    }

    public func projects(completion: @escaping StoreCompletion<[ProjectInfo]>) {
        enqueueRead({ writer in
            let s = try writer.db.statement("SELECT id, name, created_ms FROM projects ORDER BY name")
            defer { s.reset() }
            var out: [ProjectInfo] = []
            while try s.step() { out.append(ProjectInfo(id: s.int64(0), name: s.text(1), created: s.int64(2))) }
            return out
        }, completion: completion)
    }

    // MARK: patterns

    public func patterns(project: String, completion: @escaping StoreCompletion<PatternSet>) {
        enqueueRead({ writer in try writer.readPatterns(projectId: try writer.projectId(named: project)) }, completion: completion)
    }

    public func replacePatterns(project: String, patterns: [FilterPattern], at: Int64,
                                completion: @escaping StoreCompletion<PatternSet>) {
        let origin = changeOrigin
        enqueueWrite(rows: patterns.count + 3, { writer in
            let pid = try writer.projectId(named: project)
            try writer.db.run("DELETE FROM patterns WHERE project_id = ?", [.integer(pid)])
            let s = try writer.db.statement("""
                INSERT INTO patterns(project_id, position, method, host, path, monitor, check_name, exclude) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for (i, p) in patterns.enumerated() {
                defer { s.reset() }
                s.bind(1, pid); s.bind(2, i); s.bind(3, p.method); s.bind(4, p.host); s.bind(5, p.path)
                s.bind(6, p.monitor); s.bind(7, p.check); s.bind(8, p.exclude)
                try s.run()
            }
            try writer.db.run("""
                INSERT INTO pattern_sets(project_id, version, updated_ms) VALUES (?1, 1, ?2)
                ON CONFLICT (project_id) DO UPDATE SET version = version + 1, updated_ms = ?2
                """, [.integer(pid), .integer(at)])
            try writer.appendChange(.patterns, project: project, origin: origin, at: at)
            return try writer.readPatterns(projectId: pid)
        }, completion: completion)
    }

    // MARK: forgetting an agent

    public func forgetAgent(id: String, completion: @escaping StoreCompletion<Void>) {
        let origin = changeOrigin, at = Clock.wallMillis()
        enqueueWrite(rows: 5, { writer in
            guard let pid = try writer.db.scalar("SELECT project_id FROM agents WHERE id = ?", [.text(id)]) else {
                throw StoreError.notFound("agent '\(id)'")
            }
            try writer.appendChange(.identity, projectId: pid, agent: id, origin: origin, at: at)
            for table in ["agent_states", "agent_status", "config_overrides", "agent_identities", "agents"] {
                try writer.db.run("DELETE FROM \(table) WHERE \(table == "agents" ? "id" : "agent_id") = ?", [.text(id)])
            }
        }, completion: completion)
    }

    // MARK: agent identity

    public func enrollAgent(id: String, projectId: Int64, publicKey: String, at: Int64,
                            completion: @escaping StoreCompletion<Enrollment>) {
        guard !id.isEmpty, !publicKey.isEmpty else {
            loopStats.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("enrolling needs an agent id and a key")))
        }
        // An agent enrolling its own key is not an operator's change: no
        // change-log row (a fleet's first connects must not queue on it).
        enqueueWrite(rows: 2, { writer in
            let s = try writer.db.statement("SELECT project_id, public_key FROM agent_identities WHERE agent_id = ?")
            s.bind(1, id)
            let found = try s.step() ? (project: s.int64(0), key: s.optionalText(1)) : nil
            s.reset()
            guard let found else {
                try writer.db.run("INSERT INTO agent_identities(agent_id, project_id, public_key, enrolled_ms) VALUES (?, ?, ?, ?)",
                                  [.text(id), .integer(projectId), .text(publicKey), .integer(at)])
                return .enrolled
            }
            guard found.project == projectId else { return .otherProject }
            guard let key = found.key else {
                try writer.db.run("UPDATE agent_identities SET public_key = ?, enrolled_ms = ? WHERE agent_id = ?",
                                  [.text(publicKey), .integer(at), .text(id)])
                return .enrolled
            }
            return key == publicKey ? .known : .keyMismatch
        }, completion: completion)
    }

    public func resetAgentIdentity(id: String, completion: @escaping StoreCompletion<Void>) {
        let origin = changeOrigin, at = Clock.wallMillis()
        enqueueWrite(rows: 2, { writer in
            try writer.db.run("UPDATE agent_identities SET public_key = NULL WHERE agent_id = ?", [.text(id)])
            guard writer.db.changes > 0 else { throw StoreError.notFound("agent '\(id)'") }
            guard let pid = try writer.db.scalar("SELECT project_id FROM agent_identities WHERE agent_id = ?", [.text(id)]) else { return }
            try writer.appendChange(.identity, projectId: pid, agent: id, origin: origin, at: at)
        }, completion: completion)
    }

    public func agentIdentity(id: String, completion: @escaping StoreCompletion<String?>) {
        enqueueRead({ writer in
            let s = try writer.db.statement("SELECT public_key FROM agent_identities WHERE agent_id = ?")
            defer { s.reset() }
            s.bind(1, id)
            guard try s.step() else { throw StoreError.notFound("agent '\(id)'") }
            return s.optionalText(0)
        }, completion: completion)
    }

    // MARK: monitor definitions

    public func monitorDefinitions(project: String, completion: @escaping StoreCompletion<MonitorDefinitions>) {
        enqueueRead({ writer in try writer.readMonitors(projectId: try writer.projectId(named: project)) }, completion: completion)
    }

    public func replaceMonitorDefinitions(project: String, json: String, at: Int64,
                                          completion: @escaping StoreCompletion<MonitorDefinitions>) {
        let origin = changeOrigin
        enqueueWrite(rows: 2, { writer in
            let pid = try writer.projectId(named: project)
            try writer.appendChange(.monitors, project: project, origin: origin, at: at)
            try writer.db.run("""
                INSERT INTO monitor_definitions(project_id, version, body, updated_ms) VALUES (?1, 1, ?2, ?3)
                ON CONFLICT (project_id) DO UPDATE SET version = version + 1, body = ?2, updated_ms = ?3
                """, [.integer(pid), .text(json), .integer(at)])
            return try writer.readMonitors(projectId: pid)
        }, completion: completion)
    }

    // MARK: configuration overrides

    public func configOverrides(project: String, agent: String?, completion: @escaping StoreCompletion<[String: String]>) {
        enqueueRead({ writer in try writer.readOverrides(projectId: try writer.projectId(named: project), agent: agent ?? "") },
                    completion: completion)
    }

    public func setConfigOverrides(project: String, agent: String?, values: [String: String?], at: Int64,
                                   completion: @escaping StoreCompletion<[String: String]>) {
        let origin = changeOrigin
        let detail = values.keys.sorted().joined(separator: ",")
        enqueueWrite(rows: max(values.count, 1) + 1, { writer in
            let pid = try writer.projectId(named: project)
            try writer.appendChange(.config, project: project, agent: agent ?? "", detail: detail, origin: origin, at: at)
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                if let value {
                    try writer.db.run("""
                        INSERT INTO config_overrides(project_id, agent_id, key, value, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                        ON CONFLICT (project_id, agent_id, key) DO UPDATE SET value = ?4, updated_ms = ?5
                        """, [.integer(pid), .text(agent ?? ""), .text(key), .text(value), .integer(at)])
                } else {
                    try writer.db.run("DELETE FROM config_overrides WHERE project_id = ? AND agent_id = ? AND key = ?",
                                      [.integer(pid), .text(agent ?? ""), .text(key)])
                }
            }
            return try writer.readOverrides(projectId: pid, agent: agent ?? "")
        }, completion: completion)
    }

    // MARK: audit

    public func appendAudit(_ entry: AuditEntry, completion: @escaping StoreCompletion<Int64>) {
        enqueueWrite(rows: 1, { writer in
            try writer.db.run("INSERT INTO audit(ts_ms, actor, action, target, detail, result) VALUES (?, ?, ?, ?, ?, ?)",
                              [.integer(entry.ts), .text(entry.actor), .text(entry.action), .text(entry.target),
                               .text(entry.detail), .text(entry.result)])
            return writer.db.lastInsertRowID
        }, completion: completion)
    }
}

extension SQLiteWriter {
    /// Appends a change-log row, inside the caller's transaction.
    func appendChange(_ kind: ChangeKind, project: String, agent: String = "", detail: String = "", origin: String, at: Int64) throws {
        try db.run("INSERT INTO change_log(project, kind, agent, detail, origin, at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                   [.text(project), .text(kind.rawValue), .text(agent), .text(detail), .text(origin), .integer(at)])
    }

    /// The same, naming the project by id.
    func appendChange(_ kind: ChangeKind, projectId: Int64, agent: String, origin: String, at: Int64) throws {
        try db.run("""
            INSERT INTO change_log(project, kind, agent, detail, origin, at_ms) SELECT name, ?, ?, '', ?, ? FROM projects WHERE id = ?
            """, [.text(kind.rawValue), .text(agent), .text(origin), .integer(at), .integer(projectId)])
    }

    func projectId(named name: String) throws -> Int64 {
        guard let id = try db.scalar("SELECT id FROM projects WHERE name = ?", [.text(name)]) else {
            throw StoreError.notFound("project '\(name)'")
        }
        return id
    }

    func readPatterns(projectId pid: Int64) throws -> PatternSet {
        var set = PatternSet(version: 0, updated: 0, patterns: [])
        let v = try db.statement("SELECT version, updated_ms FROM pattern_sets WHERE project_id = ?")
        defer { v.reset() }
        v.bind(1, pid)
        if try v.step() { set.version = v.int64(0); set.updated = v.int64(1) }
        let s = try db.statement("SELECT method, host, path, monitor, check_name, exclude FROM patterns WHERE project_id = ? ORDER BY position")
        defer { s.reset() }
        s.bind(1, pid)
        while try s.step() {
            set.patterns.append(FilterPattern(method: s.text(0), host: s.text(1), path: s.text(2), monitor: s.text(3), check: s.text(4),
                                              exclude: s.int64(5) != 0))
        }
        return set
    }

    func readMonitors(projectId pid: Int64) throws -> MonitorDefinitions {
        let s = try db.statement("SELECT version, updated_ms, body FROM monitor_definitions WHERE project_id = ?")
        defer { s.reset() }
        s.bind(1, pid)
        guard try s.step() else { return MonitorDefinitions(version: 0, updated: 0, json: "[]") }
        return MonitorDefinitions(version: s.int64(0), updated: s.int64(1), json: s.text(2))
    }

    func readOverrides(projectId pid: Int64, agent: String) throws -> [String: String] {
        let s = try db.statement("SELECT key, value FROM config_overrides WHERE project_id = ? AND agent_id = ?")
        defer { s.reset() }
        s.bind(1, pid); s.bind(2, agent)
        var out: [String: String] = [:]
        while try s.step() { out[s.text(0)] = s.text(1) }
        return out
    }
}
