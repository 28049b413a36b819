// SQLiteStore, alerting: rules, their states and transitions, the
// evaluation lease, silences and notification records (the `alert_*`
// tables of schema step "alerts"). On SQLite a single collector uses the
// database, so it trivially holds the lease; the lease rows are still
// written and checked, so the evaluator's fencing is the same code on any
// backend — and so is the notification outbox (Model/Alerts.swift): a
// notified transition's `pending` rows are inserted in its transaction, and
// a restarted collector delivers what it left pending. Loop thread, but for the statements (jobs on the writer).
import Reactor

extension SQLiteStore {
    // MARK: rules

    public func alertRules(project: String?, completion: @escaping StoreCompletion<[AlertRuleRecord]>) {
        enqueueRead({ writer in
            if let project { _ = try writer.projectId(named: project) }
            return try writer.readAlertRules(project: project, id: nil)
        }, completion: completion)
    }

    public func createAlertRule(project: String, name: String, body: String, at: Int64,
                                completion: @escaping StoreCompletion<AlertRuleRecord>) {
        enqueueWrite(rows: 1, { writer in
            let pid = try writer.projectId(named: project)
            try writer.requireFreeRuleName(pid, name, except: nil)
            try writer.db.run("INSERT INTO alert_rules(project_id, name, body, version, created_ms, updated_ms) VALUES (?, ?, ?, 1, ?, ?)",
                              [.integer(pid), .text(name), .text(body), .integer(at), .integer(at)])
            return try writer.readAlertRules(project: project, id: writer.db.lastInsertRowID)[0]
        }, completion: completion)
    }

    public func updateAlertRule(project: String, id: Int64, name: String, body: String, at: Int64,
                                completion: @escaping StoreCompletion<AlertRuleRecord>) {
        enqueueWrite(rows: 1, { writer in
            let pid = try writer.projectId(named: project)
            try writer.requireFreeRuleName(pid, name, except: id)
            let n = try writer.db.run("UPDATE alert_rules SET name = ?, body = ?, version = version + 1, updated_ms = ? WHERE id = ? AND project_id = ?",
                                      [.text(name), .text(body), .integer(at), .integer(id), .integer(pid)])
            if n == 0 { throw StoreError.notFound("alert rule \(id) of project '\(project)'") }
            return try writer.readAlertRules(project: project, id: id)[0]
        }, completion: completion)
    }

    public func deleteAlertRule(project: String, id: Int64, completion: @escaping StoreCompletion<Void>) {
        enqueueWrite(rows: 1, { writer in
            let pid = try writer.projectId(named: project)
            guard try writer.db.scalar("SELECT id FROM alert_rules WHERE id = ? AND project_id = ?", [.integer(id), .integer(pid)]) != nil else {
                throw StoreError.notFound("alert rule \(id) of project '\(project)'")
            }
            for table in ["alert_states", "alert_transitions", "alert_notifications"] {
                try writer.db.run("DELETE FROM \(table) WHERE rule_id = ?", [.integer(id)])
            }
            try writer.db.run("DELETE FROM alert_silences WHERE rule_id = ?", [.integer(id)])
            try writer.db.run("DELETE FROM alert_rules WHERE id = ?", [.integer(id)])
        }, completion: completion)
    }

    // MARK: states, lease, history

    public func alertStates(project: String?, completion: @escaping StoreCompletion<[AlertStateRecord]>) {
        enqueueRead({ writer in
            if let project { _ = try writer.projectId(named: project) }
            let s = try writer.db.statement("""
                SELECT s.rule_id, s.state, s.since_ms, s.evaluated_ms, s.value, s.detail
                FROM alert_states s JOIN alert_rules r ON r.id = s.rule_id JOIN projects p ON p.id = r.project_id
                WHERE ?1 IS NULL OR p.name = ?1 ORDER BY s.rule_id
                """)
            defer { s.reset() }
            s.bind(1, project)
            var out: [AlertStateRecord] = []
            while try s.step() {
                out.append(AlertStateRecord(ruleId: s.int64(0), state: s.text(1), since: s.int64(2), evaluated: s.int64(3),
                                            value: s.isNull(4) ? nil : s.double(4), detail: s.text(5)))
            }
            return out
        }, completion: completion)
    }

    public func acquireAlertLease(name: String, holder: String, ttlMs: Int64, at: Int64,
                                  completion: @escaping StoreCompletion<AlertLease>) {
        guard !name.isEmpty, !holder.isEmpty, ttlMs > 0 else {
            loopStats.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("a lease needs a name, a holder and a positive ttl")))
        }
        enqueueWrite(rows: 1, { writer in
            if let current = try writer.readLease(name) {
                if current.holder == holder {
                    try writer.db.run("UPDATE alert_leases SET expires_ms = ? WHERE name = ?", [.integer(at + ttlMs), .text(name)])
                } else if current.expires <= at {
                    try writer.db.run("UPDATE alert_leases SET holder = ?, epoch = epoch + 1, expires_ms = ? WHERE name = ?",
                                      [.text(holder), .integer(at + ttlMs), .text(name)])
                }
            } else {
                try writer.db.run("INSERT INTO alert_leases(name, holder, epoch, expires_ms) VALUES (?, ?, 1, ?)",
                                  [.text(name), .text(holder), .integer(at + ttlMs)])
            }
            return try writer.readLease(name)!
        }, completion: completion)
    }

    public func recordAlertState(_ st: AlertStateRecord, lease: AlertLease, receivers: [String],
                                 completion: @escaping StoreCompletion<AlertTransition?>) {
        enqueueWrite(rows: 2 + receivers.count, { writer in
            try writer.requireLease(lease)
            guard try writer.db.scalar("SELECT id FROM alert_rules WHERE id = ?", [.integer(st.ruleId)]) != nil else {
                throw StoreError.notFound("alert rule \(st.ruleId)")
            }
            let q = try writer.db.statement("SELECT state FROM alert_states WHERE rule_id = ?")
            q.bind(1, st.ruleId)
            let previous = try q.step() ? q.text(0) : "ok"
            q.reset()
            let value: SQLiteValue = st.value.map { .real($0) } ?? .null
            try writer.db.run("""
                INSERT INTO alert_states(rule_id, state, since_ms, evaluated_ms, value, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                ON CONFLICT (rule_id) DO UPDATE SET state = ?2, since_ms = ?3, evaluated_ms = ?4, value = ?5, detail = ?6
                """, [.integer(st.ruleId), .text(st.state), .integer(st.since), .integer(st.evaluated), value, .text(st.detail)])
            guard previous != st.state else { return nil }
            try writer.db.run("INSERT INTO alert_transitions(rule_id, ts_ms, from_state, to_state, value, detail) VALUES (?, ?, ?, ?, ?, ?)",
                              [.integer(st.ruleId), .integer(st.evaluated), .text(previous), .text(st.state), value, .text(st.detail)])
            var transition = AlertTransition(id: writer.db.lastInsertRowID, ruleId: st.ruleId, ts: st.evaluated, from: previous, to: st.state,
                                             value: st.value, detail: st.detail)
            guard AlertTransition.notifies(from: previous, to: st.state) else { return transition }
            for (i, receiver) in receivers.enumerated() {
                try writer.db.run("""
                    INSERT INTO alert_notifications(project_id, rule_id, transition_id, ts_ms, event, receiver, result, attempts, detail,
                                                    receiver_index, due_ms)
                    SELECT project_id, id, ?, ?, ?, ?, 'pending', 0, '', ?, 0 FROM alert_rules WHERE id = ?
                    """, [.integer(transition.id), .integer(st.evaluated), .text(st.state), .text(receiver), .integer(Int64(i)), .integer(st.ruleId)])
                transition.notificationIds.append(writer.db.lastInsertRowID)
            }
            return transition
        }, completion: completion)
    }

    public func alertHistory(ruleId: Int64, limit: Int, completion: @escaping StoreCompletion<[AlertTransition]>) {
        enqueueRead({ writer in
            let s = try writer.db.statement("""
                SELECT id, rule_id, ts_ms, from_state, to_state, value, detail FROM alert_transitions
                WHERE rule_id = ? ORDER BY id DESC LIMIT ?
                """)
            defer { s.reset() }
            s.bind(1, ruleId)
            s.bind(2, writer.options.limits.clamp(limit))
            var out: [AlertTransition] = []
            while try s.step() {
                out.append(AlertTransition(id: s.int64(0), ruleId: s.int64(1), ts: s.int64(2), from: s.text(3), to: s.text(4),
                                           value: s.isNull(5) ? nil : s.double(5), detail: s.text(6)))
            }
            return out
        }, completion: completion)
    }

    // MARK: silences

    public func createAlertSilence(_ silence: AlertSilence, completion: @escaping StoreCompletion<AlertSilence>) {
        enqueueWrite(rows: 1, { writer in
            let pid = try writer.projectId(named: silence.project)
            try writer.db.run("""
                INSERT INTO alert_silences(project_id, rule_id, matchers, starts_ms, ends_ms, comment, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [.integer(pid), silence.ruleId.map { .integer($0) } ?? .null, .text(SQLiteWriter.encodeMatchers(silence.matchers)),
                      .integer(silence.starts), .integer(silence.ends), .text(silence.comment), .text(silence.createdBy)])
            var out = silence
            out.id = writer.db.lastInsertRowID
            return out
        }, completion: completion)
    }

    public func alertSilences(project: String, endingAfter: Int64, completion: @escaping StoreCompletion<[AlertSilence]>) {
        enqueueRead({ writer in
            try writer.readSilences(projectId: try writer.projectId(named: project), project: project, endingAfter: endingAfter, id: nil)
        }, completion: completion)
    }

    public func endAlertSilence(project: String, id: Int64, at: Int64, completion: @escaping StoreCompletion<AlertSilence>) {
        enqueueWrite(rows: 1, { writer in
            let pid = try writer.projectId(named: project)
            try writer.db.run("UPDATE alert_silences SET ends_ms = MIN(ends_ms, ?) WHERE id = ? AND project_id = ?",
                              [.integer(at), .integer(id), .integer(pid)])
            guard let s = try writer.readSilences(projectId: pid, project: project, endingAfter: Int64.min, id: id).first else {
                throw StoreError.notFound("silence \(id) of project '\(project)'")
            }
            return s
        }, completion: completion)
    }

    // MARK: notifications

    public func appendAlertNotification(_ n: AlertNotification, completion: @escaping StoreCompletion<Int64>) {
        enqueueWrite(rows: 1, { writer in
            let pid = try writer.projectId(named: n.project)
            try writer.db.run("""
                INSERT INTO alert_notifications(project_id, rule_id, transition_id, ts_ms, event, receiver, result, attempts, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.integer(pid), .integer(n.ruleId), .integer(n.transitionId), .integer(n.ts), .text(n.event), .text(n.receiver),
                      .text(n.result), .integer(n.attempts), .text(n.detail)])
            return writer.db.lastInsertRowID
        }, completion: completion)
    }

    public func claimAlertNotifications(ids: [Int64], lease: AlertLease, at: Int64,
                                        completion: @escaping StoreCompletion<[Int64: Int64]>) {
        guard !ids.isEmpty else { return deliverLater(completion, .success([:])) }
        enqueueWrite(rows: ids.count, { writer in
            try writer.requireLease(lease)
            var out: [Int64: Int64] = [:]
            for id in ids {
                guard try writer.db.run("UPDATE alert_notifications SET attempts = attempts + 1, ts_ms = ? WHERE id = ? AND result = 'pending'",
                                        [.integer(at), .integer(id)]) > 0 else { continue }
                out[id] = try writer.db.scalar("SELECT attempts FROM alert_notifications WHERE id = ?", [.integer(id)]) ?? 0
            }
            return out
        }, completion: completion)
    }

    public func finishAlertNotifications(ids: [Int64], result: String, detail: String, at: Int64, due: Int64,
                                         completion: @escaping StoreCompletion<Int>) {
        guard !ids.isEmpty else { return deliverLater(completion, .success(0)) }
        enqueueWrite(rows: ids.count, { writer in
            var changed = 0
            for id in ids {
                changed += try writer.db.run("""
                    UPDATE alert_notifications SET result = ?, detail = ?, ts_ms = ?, due_ms = ? WHERE id = ? AND result = 'pending'
                    """, [.text(result), .text(detail), .integer(at), .integer(due), .integer(id)])
            }
            return changed
        }, completion: completion)
    }

    public func pendingAlertNotifications(dueBy: Int64, limit: Int, completion: @escaping StoreCompletion<[AlertOutboxEntry]>) {
        enqueueRead({ writer in
            let s = try writer.db.statement("""
                SELECT n.id, p.name, n.rule_id, n.transition_id, n.ts_ms, n.event, n.receiver, n.attempts, n.detail, n.receiver_index,
                       n.due_ms, t.ts_ms, t.from_state, t.to_state, t.value, t.detail, r.name, r.body
                FROM alert_notifications n JOIN alert_rules r ON r.id = n.rule_id JOIN projects p ON p.id = n.project_id
                     JOIN alert_transitions t ON t.id = n.transition_id
                WHERE n.result = 'pending' AND n.due_ms <= ? ORDER BY n.id LIMIT ?
                """)
            defer { s.reset() }
            s.bind(1, dueBy)
            s.bind(2, writer.options.limits.clamp(limit))
            var out: [AlertOutboxEntry] = []
            while try s.step() {
                let note = AlertNotification(id: s.int64(0), project: s.text(1), ruleId: s.int64(2), transitionId: s.int64(3), ts: s.int64(4),
                                             event: s.text(5), receiver: s.text(6), result: "pending", attempts: s.int64(7), detail: s.text(8),
                                             receiverIndex: s.int64(9), due: s.int64(10))
                let t = AlertTransition(id: note.transitionId, ruleId: note.ruleId, ts: s.int64(11), from: s.text(12), to: s.text(13),
                                        value: s.isNull(14) ? nil : s.double(14), detail: s.text(15))
                out.append(AlertOutboxEntry(notification: note, transition: t, ruleName: s.text(16), ruleBody: s.text(17)))
            }
            return out
        }, completion: completion)
    }

    public func alertNotifications(project: String, ruleId: Int64?, limit: Int,
                                   completion: @escaping StoreCompletion<[AlertNotification]>) {
        enqueueRead({ writer in
            let pid = try writer.projectId(named: project)
            let s = try writer.db.statement("""
                SELECT id, rule_id, transition_id, ts_ms, event, receiver, result, attempts, detail, receiver_index, due_ms
                FROM alert_notifications WHERE project_id = ?1 AND (?2 IS NULL OR rule_id = ?2) ORDER BY id DESC LIMIT ?3
                """)
            defer { s.reset() }
            s.bind(1, pid)
            s.bind(2, ruleId)
            s.bind(3, writer.options.limits.clamp(limit))
            var out: [AlertNotification] = []
            while try s.step() {
                out.append(AlertNotification(id: s.int64(0), project: project, ruleId: s.int64(1), transitionId: s.int64(2), ts: s.int64(3),
                                             event: s.text(4), receiver: s.text(5), result: s.text(6), attempts: s.int64(7),
                                             detail: s.text(8), receiverIndex: s.int64(9), due: s.int64(10)))
            }
            return out
        }, completion: completion)
    }
}

extension SQLiteWriter {
    func readAlertRules(project: String?, id: Int64?) throws -> [AlertRuleRecord] {
        let s = try db.statement("""
            SELECT r.id, p.name, r.name, r.body, r.version, r.created_ms, r.updated_ms
            FROM alert_rules r JOIN projects p ON p.id = r.project_id
            WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR r.id = ?2) ORDER BY r.id
            """)
        defer { s.reset() }
        s.bind(1, project)
        s.bind(2, id)
        var out: [AlertRuleRecord] = []
        while try s.step() {
            out.append(AlertRuleRecord(id: s.int64(0), project: s.text(1), name: s.text(2), body: s.text(3), version: s.int64(4),
                                       created: s.int64(5), updated: s.int64(6)))
        }
        return out
    }

    func requireFreeRuleName(_ pid: Int64, _ name: String, except id: Int64?) throws {
        if let other = try db.scalar("SELECT id FROM alert_rules WHERE project_id = ? AND name = ?", [.integer(pid), .text(name)]),
           other != id {
            throw StoreError.invalid("the project has an alert rule named '\(name)' (id \(other))")
        }
    }

    /// Throws `.invalid("lease lost")` unless `lease` is the stored one.
    func requireLease(_ lease: AlertLease) throws {
        guard let current = try readLease(lease.name), current.holder == lease.holder, current.epoch == lease.epoch else {
            throw StoreError.invalid("lease lost: '\(lease.name)' is no longer held by \(lease.holder) at epoch \(lease.epoch)")
        }
    }

    func readLease(_ name: String) throws -> AlertLease? {
        let s = try db.statement("SELECT holder, epoch, expires_ms FROM alert_leases WHERE name = ?")
        defer { s.reset() }
        s.bind(1, name)
        guard try s.step() else { return nil }
        return AlertLease(name: name, holder: s.text(0), epoch: s.int64(1), expires: s.int64(2))
    }

    func readSilences(projectId pid: Int64, project: String, endingAfter: Int64, id: Int64?) throws -> [AlertSilence] {
        let s = try db.statement("""
            SELECT id, rule_id, matchers, starts_ms, ends_ms, comment, created_by FROM alert_silences
            WHERE project_id = ?1 AND ends_ms > ?2 AND (?3 IS NULL OR id = ?3) ORDER BY id
            """)
        defer { s.reset() }
        s.bind(1, pid)
        s.bind(2, endingAfter)
        s.bind(3, id)
        var out: [AlertSilence] = []
        while try s.step() {
            out.append(AlertSilence(id: s.int64(0), project: project, ruleId: s.optionalInt64(1), matchers: SQLiteWriter.decodeMatchers(s.text(2)),
                                    starts: s.int64(3), ends: s.int64(4), comment: s.text(5), createdBy: s.text(6)))
        }
        return out
    }

    /// Matchers as `name=value` lines (names and values the API checked
    /// carry no control characters), sorted, so the column needs no JSON.
    static func encodeMatchers(_ m: [String: String]) -> String {
        m.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
    }

    static func decodeMatchers(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }
}
