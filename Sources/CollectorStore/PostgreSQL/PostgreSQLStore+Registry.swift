// PostgreSQLStore, registry: projects and keys, filter patterns, monitor
// definitions, configuration overrides, forgetting an agent, agent
// identities, the audit log. Each change to what agents are told also
// appends a change-log row in its transaction (PostgreSQLStore+Changes.swift).
// Keys, identities and what a session reads right after its handshake —
// filter patterns, monitor definitions, configuration overrides — go
// through the handshake lane (PostgreSQLStore's header), their writes too:
// a handshake and the session's first reads run there without waiting for
// ingest, and see every registry write queued before them (the lane runs in
// order); a job on the other connections waits for the lane's writes queued
// before it. A session's last monitor runs (PostgreSQLStore+Queries) are
// ingest data and stay behind ingest.
// Loop thread; each public method queues one write transaction or one read.
import Reactor

extension PostgreSQLStore {
    // MARK: keys

    public func createKey(project: String, secret: String, at: Int64, completion: @escaping StoreCompletion<KeyInfo>) {
        guard !project.isEmpty, !secret.isEmpty else {
            counters.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("a key needs a project name and a secret")))
        }
        let origin = changeOrigin
        enqueueWrite(rows: 3, lane: .handshake, { (tx: PGTransaction<KeyInfo>) in
            tx.query("""
                WITH p AS (INSERT INTO projects(name, created_ms) VALUES ($1, $3)
                           ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id)
                INSERT INTO project_keys(project_id, secret, created_ms) SELECT id, $2, $3 FROM p RETURNING id
                """, [project, secret, PGText.int(at)]) { r in
                Self.appendChange(tx, .key, project: project, origin: origin, at: at) {
                    tx.done(KeyInfo(id: r.int(0, 0) ?? 0, project: project, created: at, revoked: nil))
                }
            }
        }, completion: completion)
    }

    public func keys(project: String?, completion: @escaping StoreCompletion<[KeyInfo]>) {
        enqueueRead({ (tx: PGTransaction<[KeyInfo]>) in
            tx.query("""
                SELECT k.id, p.name, k.created_ms, k.revoked_ms FROM project_keys k JOIN projects p ON p.id = k.project_id
                WHERE $1::text IS NULL OR p.name = $1 ORDER BY k.id
                """, [project]) { r in
                tx.done((0..<r.count).map { KeyInfo(id: r.int($0, 0)!, project: r.text($0, 1)!, created: r.int($0, 2)!, revoked: r.int($0, 3)) })
            }
        }, completion: completion)
    }

    public func revokeKey(id: Int64, at: Int64, completion: @escaping StoreCompletion<KeyInfo>) {
        let origin = changeOrigin
        enqueueWrite(rows: 2, lane: .handshake, { (tx: PGTransaction<KeyInfo>) in
            tx.query("UPDATE project_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL", [PGText.int(at), PGText.int(id)]) { u in
                tx.query("""
                    SELECT k.id, p.name, k.created_ms, k.revoked_ms FROM project_keys k JOIN projects p ON p.id = k.project_id WHERE k.id = $1
                    """, [PGText.int(id)]) { r in
                    guard r.count == 1 else { return tx.fail(.notFound("key \(id)")) }
                    let info = KeyInfo(id: r.int(0, 0)!, project: r.text(0, 1)!, created: r.int(0, 2)!, revoked: r.int(0, 3))
                    guard u.affected > 0 else { return tx.done(info) }
                    Self.appendChange(tx, .key, project: info.project, origin: origin, at: at) { tx.done(info) }
                }
            }
        }, completion: completion)
    }

    public func activeKeys(project: String, completion: @escaping StoreCompletion<ProjectKeys>) {
        handshakeKeys(project: project) { result in
            completion(result.map { var k = $0; k.revoked = []; return k })
        }
    }

    public func handshakeKeys(project: String, completion: @escaping StoreCompletion<ProjectKeys>) {
        enqueueRead(lane: .handshake, { (tx: PGTransaction<ProjectKeys>) in
            Self.projectId(tx, project) { pid in
                tx.query("SELECT id, secret, revoked_ms IS NOT NULL FROM project_keys WHERE project_id = $1 ORDER BY id", [PGText.int(pid)]) { r in
                    var keys = ProjectKeys(projectId: pid, project: project, keys: [])
                    for i in 0..<r.count {
                        if r.text(i, 2) == "t" { keys.revoked.append((r.int(i, 0)!, r.text(i, 1)!)) } else { keys.keys.append((r.int(i, 0)!, r.text(i, 1)!)) }
                    }
                    tx.done(keys)
                }
            }
        }, completion: completion)
    }

    public func keysRevoked(since: Int64, completion: @escaping StoreCompletion<[KeyInfo]>) {
        enqueueRead({ (tx: PGTransaction<[KeyInfo]>) in
            tx.query("""
                SELECT k.id, p.name, k.created_ms, k.revoked_ms FROM project_keys k JOIN projects p ON p.id = k.project_id
                WHERE k.revoked_ms >= $1 ORDER BY k.id
                """, [PGText.int(since)]) { r in
                tx.done((0..<r.count).map { KeyInfo(id: r.int($0, 0)!, project: r.text($0, 1)!, created: r.int($0, 2)!, revoked: r.int($0, 3)) })
            }
        }, completion: completion)
    }

    public func projects(completion: @escaping StoreCompletion<[ProjectInfo]>) {
        enqueueRead({ (tx: PGTransaction<[ProjectInfo]>) in
            tx.query("SELECT id, name, created_ms FROM projects ORDER BY name") { r in
                tx.done((0..<r.count).map { ProjectInfo(id: r.int($0, 0)!, name: r.text($0, 1)!, created: r.int($0, 2)!) })
            }
        }, completion: completion)
    }

    static func projectId<T>(_ tx: PGTransaction<T>, _ name: String, _ next: @escaping (Int64) -> Void) {
        tx.query("SELECT id FROM projects WHERE name = $1", [name]) { r in
            guard let id = r.count > 0 ? r.int(0, 0) : nil else { return tx.fail(.notFound("project '\(name)'")) }
            next(id)
        }
    }

    // MARK: patterns

    public func patterns(project: String, completion: @escaping StoreCompletion<PatternSet>) {
        enqueueRead(lane: .handshake, { (tx: PGTransaction<PatternSet>) in
            Self.projectId(tx, project) { pid in Self.readPatterns(tx, pid) { tx.done($0) } }
        }, completion: completion)
    }

    public func replacePatterns(project: String, patterns: [FilterPattern], at: Int64,
                                completion: @escaping StoreCompletion<PatternSet>) {
        let origin = changeOrigin
        enqueueWrite(rows: patterns.count + 3, lane: .handshake, { (tx: PGTransaction<PatternSet>) in
            Self.projectId(tx, project) { pid in
                tx.query("DELETE FROM patterns WHERE project_id = $1", [PGText.int(pid)]) { _ in
                    tx.query("""
                        INSERT INTO patterns(project_id, position, method, host, path, monitor, check_name, exclude)
                        SELECT $1, u.ord - 1, u.m, u.h, u.p, u.mo, u.c, u.x
                        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[])
                             WITH ORDINALITY AS u(m, h, p, mo, c, x, ord)
                        """, [PGText.int(pid), PGText.array(patterns.map(\.method)), PGText.array(patterns.map(\.host)),
                              PGText.array(patterns.map(\.path)), PGText.array(patterns.map(\.monitor)),
                              PGText.array(patterns.map(\.check)), "{" + patterns.map { $0.exclude ? "t" : "f" }.joined(separator: ",") + "}"]) { _ in
                        tx.query("""
                            INSERT INTO pattern_sets(project_id, version, updated_ms) VALUES ($1, 1, $2)
                            ON CONFLICT (project_id) DO UPDATE SET version = pattern_sets.version + 1, updated_ms = $2
                            """, [PGText.int(pid), PGText.int(at)]) { _ in
                            Self.appendChange(tx, .patterns, project: project, origin: origin, at: at) {
                                Self.readPatterns(tx, pid) { tx.done($0) }
                            }
                        }
                    }
                }
            }
        }, completion: completion)
    }

    static func readPatterns<T>(_ tx: PGTransaction<T>, _ pid: Int64, _ next: @escaping (PatternSet) -> Void) {
        tx.query("SELECT version, updated_ms FROM pattern_sets WHERE project_id = $1", [PGText.int(pid)]) { v in
            var set = PatternSet(version: v.count > 0 ? v.int(0, 0)! : 0, updated: v.count > 0 ? v.int(0, 1)! : 0, patterns: [])
            tx.query("SELECT method, host, path, monitor, check_name, exclude FROM patterns WHERE project_id = $1 ORDER BY position",
                     [PGText.int(pid)]) { r in
                set.patterns = (0..<r.count).map {
                    FilterPattern(method: r.text($0, 0)!, host: r.text($0, 1)!, path: r.text($0, 2)!, monitor: r.text($0, 3)!,
                                  check: r.text($0, 4)!, exclude: r.text($0, 5) == "t")
                }
                next(set)
            }
        }
    }

    // MARK: forgetting an agent

    public func forgetAgent(id: String, completion: @escaping StoreCompletion<Void>) {
        let origin = changeOrigin, at = Clock.wallMillis()
        enqueueWrite(rows: 5, changesIdentities: true, { (tx: PGTransaction<Void>) in
            tx.query("SELECT p.name FROM agents a JOIN projects p ON p.id = a.project_id WHERE a.id = $1", [id]) { r in
                guard r.count == 1, let project = r.text(0, 0) else { return tx.fail(.notFound("agent '\(id)'")) }
                tx.query("""
                    WITH a AS (DELETE FROM agent_states WHERE agent_id = $1), b AS (DELETE FROM agent_status WHERE agent_id = $1),
                         c AS (DELETE FROM config_overrides WHERE agent_id = $1), d AS (DELETE FROM agent_identities WHERE agent_id = $1)
                    DELETE FROM agents WHERE id = $1
                    """, [id]) { _ in Self.appendChange(tx, .identity, project: project, agent: id, origin: origin, at: at) { tx.done(()) } }
            }
        }, completion: completion)
    }

    // MARK: agent identity

    /// As SQLite's. A known id with its key is a plain read (no lock, nothing
    /// to flush at COMMIT): every reconnect takes this way. Otherwise the
    /// insert is tried (ON CONFLICT DO NOTHING), so two collectors enrolling
    /// one new id at once bind it once; an existing row is then read locked
    /// (FOR UPDATE) before it is compared or, reset, given the key.
    public func enrollAgent(id: String, projectId: Int64, publicKey: String, at: Int64,
                            completion: @escaping StoreCompletion<Enrollment>) {
        guard !id.isEmpty, !publicKey.isEmpty else {
            counters.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("enrolling needs an agent id and a key")))
        }
        // As SQLite's: enrolling appends no change-log row (no advisory lock
        // taken per first connect).
        // Enrollments queued together share one commit (PostgreSQLStore,
        // `runHandshakeGroup`), each in its savepoint.
        enqueueWrite(rows: 2, lane: .handshake, shareCommit: true, { (tx: PGTransaction<Enrollment>) in
            let enrolled = { tx.done(.enrolled) }
            tx.query("SELECT project_id, public_key FROM agent_identities WHERE agent_id = $1", [id]) { known in
                if known.count == 1, let key = known.text(0, 1) {
                    guard known.int(0, 0) == projectId else { return tx.done(.otherProject) }
                    return tx.done(key == publicKey ? .known : .keyMismatch)
                }
                tx.query("""
                    INSERT INTO agent_identities(agent_id, project_id, public_key, enrolled_ms) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (agent_id) DO NOTHING RETURNING 1
                    """, [id, PGText.int(projectId), publicKey, PGText.int(at)]) { r in
                    if r.count == 1 { return enrolled() }
                    tx.query("SELECT project_id, public_key FROM agent_identities WHERE agent_id = $1 FOR UPDATE", [id]) { r in
                        guard r.count == 1 else { return tx.fail(.unavailable("agent identity '\(id)' went while enrolling")) }
                        guard r.int(0, 0) == projectId else { return tx.done(.otherProject) }
                        guard let key = r.text(0, 1) else {
                            return tx.query("UPDATE agent_identities SET public_key = $1, enrolled_ms = $2 WHERE agent_id = $3",
                                            [publicKey, PGText.int(at), id]) { _ in enrolled() }
                        }
                        tx.done(key == publicKey ? .known : .keyMismatch)
                    }
                }
            }
        }, completion: completion)
    }

    public func resetAgentIdentity(id: String, completion: @escaping StoreCompletion<Void>) {
        let origin = changeOrigin, at = Clock.wallMillis()
        enqueueWrite(rows: 2, lane: .handshake, { (tx: PGTransaction<Void>) in
            tx.query("UPDATE agent_identities SET public_key = NULL WHERE agent_id = $1 RETURNING project_id", [id]) { r in
                guard r.count > 0, let pid = r.int(0, 0) else { return tx.fail(.notFound("agent '\(id)'")) }
                Self.appendChange(tx, .identity, projectId: pid, agent: id, origin: origin, at: at) { tx.done(()) }
            }
        }, completion: completion)
    }

    public func agentIdentity(id: String, completion: @escaping StoreCompletion<String?>) {
        enqueueRead(lane: .handshake, { (tx: PGTransaction<String?>) in
            tx.query("SELECT public_key FROM agent_identities WHERE agent_id = $1", [id]) { r in
                guard r.count == 1 else { return tx.fail(.notFound("agent '\(id)'")) }
                tx.done(r.text(0, 0))
            }
        }, completion: completion)
    }

    // MARK: monitor definitions

    public func monitorDefinitions(project: String, completion: @escaping StoreCompletion<MonitorDefinitions>) {
        enqueueRead(lane: .handshake, { (tx: PGTransaction<MonitorDefinitions>) in
            Self.projectId(tx, project) { pid in Self.readMonitors(tx, pid) { tx.done($0) } }
        }, completion: completion)
    }

    public func replaceMonitorDefinitions(project: String, json: String, at: Int64,
                                          completion: @escaping StoreCompletion<MonitorDefinitions>) {
        let origin = changeOrigin
        enqueueWrite(rows: 2, lane: .handshake, { (tx: PGTransaction<MonitorDefinitions>) in
            Self.projectId(tx, project) { pid in
                tx.query("""
                    INSERT INTO monitor_definitions(project_id, version, body, updated_ms) VALUES ($1, 1, $2, $3)
                    ON CONFLICT (project_id) DO UPDATE SET version = monitor_definitions.version + 1, body = $2, updated_ms = $3
                    """, [PGText.int(pid), json, PGText.int(at)]) { _ in
                    Self.appendChange(tx, .monitors, project: project, origin: origin, at: at) { Self.readMonitors(tx, pid) { tx.done($0) } }
                }
            }
        }, completion: completion)
    }

    static func readMonitors<T>(_ tx: PGTransaction<T>, _ pid: Int64, _ next: @escaping (MonitorDefinitions) -> Void) {
        tx.query("SELECT version, updated_ms, body FROM monitor_definitions WHERE project_id = $1", [PGText.int(pid)]) { r in
            guard r.count == 1 else { return next(MonitorDefinitions(version: 0, updated: 0, json: "[]")) }
            next(MonitorDefinitions(version: r.int(0, 0)!, updated: r.int(0, 1)!, json: r.text(0, 2)!))
        }
    }

    // MARK: configuration overrides

    public func configOverrides(project: String, agent: String?, completion: @escaping StoreCompletion<[String: String]>) {
        enqueueRead(lane: .handshake, { (tx: PGTransaction<[String: String]>) in
            Self.projectId(tx, project) { pid in Self.readOverrides(tx, pid, agent ?? "") { tx.done($0) } }
        }, completion: completion)
    }

    public func setConfigOverrides(project: String, agent: String?, values: [String: String?], at: Int64,
                                   completion: @escaping StoreCompletion<[String: String]>) {
        let sorted = values.sorted(by: { $0.key < $1.key })
        let origin = changeOrigin, detail = sorted.map(\.key).joined(separator: ",")
        enqueueWrite(rows: max(values.count, 1) + 1, lane: .handshake, { (tx: PGTransaction<[String: String]>) in
            Self.projectId(tx, project) { pid in
                func step(_ i: Int) {
                    guard i < sorted.count else {
                        return Self.appendChange(tx, .config, project: project, agent: agent ?? "", detail: detail, origin: origin, at: at) {
                            Self.readOverrides(tx, pid, agent ?? "") { tx.done($0) }
                        }
                    }
                    let (key, value) = sorted[i]
                    if let value {
                        tx.query("""
                            INSERT INTO config_overrides(project_id, agent_id, key, value, updated_ms) VALUES ($1, $2, $3, $4, $5)
                            ON CONFLICT (project_id, agent_id, key) DO UPDATE SET value = $4, updated_ms = $5
                            """, [PGText.int(pid), agent ?? "", key, value, PGText.int(at)]) { _ in step(i + 1) }
                    } else {
                        tx.query("DELETE FROM config_overrides WHERE project_id = $1 AND agent_id = $2 AND key = $3",
                                 [PGText.int(pid), agent ?? "", key]) { _ in step(i + 1) }
                    }
                }
                step(0)
            }
        }, completion: completion)
    }

    static func readOverrides<T>(_ tx: PGTransaction<T>, _ pid: Int64, _ agent: String, _ next: @escaping ([String: String]) -> Void) {
        tx.query("SELECT key, value FROM config_overrides WHERE project_id = $1 AND agent_id = $2", [PGText.int(pid), agent]) { r in
            var out: [String: String] = [:]
            for i in 0..<r.count { out[r.text(i, 0)!] = r.text(i, 1)! }
            next(out)
        }
    }

    // MARK: audit

    public func appendAudit(_ entry: AuditEntry, completion: @escaping StoreCompletion<Int64>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<Int64>) in
            tx.query("INSERT INTO audit(ts_ms, actor, action, target, detail, result) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                     [PGText.int(entry.ts), entry.actor, entry.action, entry.target, entry.detail, entry.result]) { r in
                tx.done(r.int(0, 0) ?? 0)
            }
        }, completion: completion)
    }
}
