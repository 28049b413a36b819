// PostgreSQLStore, alerting: rules, their states and transitions, the
// evaluation lease, silences and notification records (the `alert_*`
// tables of migration step "alerts"), with SQLite's semantics. Several
// collectors may share one database, so the lease is what keeps them from
// both evaluating: it is taken or renewed in one statement (the row's lock
// orders racing collectors), and a state is recorded only in a transaction
// that holds the lease row locked (FOR SHARE) at the expected holder and
// epoch — a collector taking the lease over waits for that transaction, and
// a writer whose epoch is gone records nothing. Notifications are an outbox
// (Model/Alerts.swift): a notified transition's `pending` rows are inserted
// in its transaction, and a delivery attempt is claimed under the same lock,
// so after a takeover the old holder starts no attempt and the new one
// finds every row still pending.
// Loop thread; each public method queues one write transaction or one read.

extension PostgreSQLStore {
    // MARK: rules

    public func alertRules(project: String?, completion: @escaping StoreCompletion<[AlertRuleRecord]>) {
        enqueueRead({ (tx: PGTransaction<[AlertRuleRecord]>) in
            let read = { Self.readAlertRules(tx, project: project, id: nil) { tx.done($0) } }
            if let project { Self.projectId(tx, project) { _ in read() } } else { read() }
        }, completion: completion)
    }

    public func createAlertRule(project: String, name: String, body: String, at: Int64,
                                completion: @escaping StoreCompletion<AlertRuleRecord>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<AlertRuleRecord>) in
            Self.projectId(tx, project) { pid in
                Self.requireFreeRuleName(tx, pid, name, except: nil) {
                    tx.query("""
                        INSERT INTO alert_rules(project_id, name, body, version, created_ms, updated_ms) VALUES ($1, $2, $3, 1, $4, $4)
                        RETURNING id
                        """, [PGText.int(pid), name, body, PGText.int(at)]) { r in
                        Self.readAlertRules(tx, project: project, id: r.int(0, 0)) { tx.done($0[0]) }
                    }
                }
            }
        }, completion: completion)
    }

    public func updateAlertRule(project: String, id: Int64, name: String, body: String, at: Int64,
                                completion: @escaping StoreCompletion<AlertRuleRecord>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<AlertRuleRecord>) in
            Self.projectId(tx, project) { pid in
                Self.requireFreeRuleName(tx, pid, name, except: id) {
                    tx.query("""
                        UPDATE alert_rules SET name = $1, body = $2, version = version + 1, updated_ms = $3 WHERE id = $4 AND project_id = $5
                        """, [name, body, PGText.int(at), PGText.int(id), PGText.int(pid)]) { r in
                        guard r.affected > 0 else { return tx.fail(.notFound("alert rule \(id) of project '\(project)'")) }
                        Self.readAlertRules(tx, project: project, id: id) { tx.done($0[0]) }
                    }
                }
            }
        }, completion: completion)
    }

    public func deleteAlertRule(project: String, id: Int64, completion: @escaping StoreCompletion<Void>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<Void>) in
            Self.projectId(tx, project) { pid in
                tx.query("SELECT id FROM alert_rules WHERE id = $1 AND project_id = $2 FOR UPDATE", [PGText.int(id), PGText.int(pid)]) { r in
                    guard r.count > 0 else { return tx.fail(.notFound("alert rule \(id) of project '\(project)'")) }
                    tx.query("DELETE FROM alert_states WHERE rule_id = $1", [PGText.int(id)]) { _ in
                        tx.query("DELETE FROM alert_transitions WHERE rule_id = $1", [PGText.int(id)]) { _ in
                            tx.query("DELETE FROM alert_notifications WHERE rule_id = $1", [PGText.int(id)]) { _ in
                                tx.query("DELETE FROM alert_silences WHERE rule_id = $1", [PGText.int(id)]) { _ in
                                    tx.query("DELETE FROM alert_rules WHERE id = $1", [PGText.int(id)]) { _ in tx.done(()) }
                                }
                            }
                        }
                    }
                }
            }
        }, completion: completion)
    }

    // MARK: states, lease, history

    public func alertStates(project: String?, completion: @escaping StoreCompletion<[AlertStateRecord]>) {
        enqueueRead({ (tx: PGTransaction<[AlertStateRecord]>) in
            let read = {
                tx.query("""
                    SELECT s.rule_id, s.state, s.since_ms, s.evaluated_ms, s.value, s.detail
                    FROM alert_states s JOIN alert_rules r ON r.id = s.rule_id JOIN projects p ON p.id = r.project_id
                    WHERE $1::text IS NULL OR p.name = $1 ORDER BY s.rule_id
                    """, [project]) { r in
                    tx.done((0..<r.count).map { i in
                        AlertStateRecord(ruleId: r.int(i, 0) ?? 0, state: r.text(i, 1) ?? "", since: r.int(i, 2) ?? 0,
                                         evaluated: r.int(i, 3) ?? 0, value: r.text(i, 4).flatMap { Double($0) }, detail: r.text(i, 5) ?? "")
                    })
                }
            }
            if let project { Self.projectId(tx, project) { _ in read() } } else { read() }
        }, completion: completion)
    }

    public func acquireAlertLease(name: String, holder: String, ttlMs: Int64, at: Int64,
                                  completion: @escaping StoreCompletion<AlertLease>) {
        guard !name.isEmpty, !holder.isEmpty, ttlMs > 0 else {
            counters.refusedInvalid &+= 1
            return deliverLater(completion, .failure(.invalid("a lease needs a name, a holder and a positive ttl")))
        }
        enqueueWrite(rows: 1, { (tx: PGTransaction<AlertLease>) in
            // One statement: created, renewed by its holder, or taken over
            // once expired (epoch + 1) — else left as it is.
            tx.query("""
                INSERT INTO alert_leases AS l (name, holder, epoch, expires_ms) VALUES ($1, $2, 1, $3::bigint + $4::bigint)
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms,
                    epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END
                WHERE l.holder = excluded.holder OR l.expires_ms <= $3::bigint
                """, [name, holder, PGText.int(at), PGText.int(ttlMs)]) { _ in
                tx.query("SELECT holder, epoch, expires_ms FROM alert_leases WHERE name = $1", [name]) { r in
                    guard r.count > 0 else { return tx.fail(.backend("lease '\(name)' vanished")) }
                    tx.done(AlertLease(name: name, holder: r.text(0, 0) ?? "", epoch: r.int(0, 1) ?? 0, expires: r.int(0, 2) ?? 0))
                }
            }
        }, completion: completion)
    }

    public func recordAlertState(_ st: AlertStateRecord, lease: AlertLease, receivers: [String],
                                 completion: @escaping StoreCompletion<AlertTransition?>) {
        let value = st.value.map { "\($0)" }
        enqueueWrite(rows: 2, { (tx: PGTransaction<AlertTransition?>) in
            tx.query("SELECT 1 FROM alert_leases WHERE name = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
                     [lease.name, lease.holder, PGText.int(lease.epoch)]) { l in
                guard l.count > 0 else {
                    return tx.fail(.invalid("lease lost: '\(lease.name)' is no longer held by \(lease.holder) at epoch \(lease.epoch)"))
                }
                tx.query("SELECT id FROM alert_rules WHERE id = $1", [PGText.int(st.ruleId)]) { rule in
                    guard rule.count > 0 else { return tx.fail(.notFound("alert rule \(st.ruleId)")) }
                    tx.query("SELECT state FROM alert_states WHERE rule_id = $1 FOR UPDATE", [PGText.int(st.ruleId)]) { prev in
                        let previous = prev.count > 0 ? prev.text(0, 0) ?? "ok" : "ok"
                        tx.query("""
                            INSERT INTO alert_states(rule_id, state, since_ms, evaluated_ms, value, detail) VALUES ($1, $2, $3, $4, $5, $6)
                            ON CONFLICT (rule_id) DO UPDATE SET state = $2, since_ms = $3, evaluated_ms = $4, value = $5, detail = $6
                            """, [PGText.int(st.ruleId), st.state, PGText.int(st.since), PGText.int(st.evaluated), value, st.detail]) { _ in
                            guard previous != st.state else { return tx.done(nil) }
                            tx.query("""
                                INSERT INTO alert_transitions(rule_id, ts_ms, from_state, to_state, value, detail)
                                VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
                                """, [PGText.int(st.ruleId), PGText.int(st.evaluated), previous, st.state, value, st.detail]) { t in
                                var transition = AlertTransition(id: t.int(0, 0) ?? 0, ruleId: st.ruleId, ts: st.evaluated, from: previous,
                                                                 to: st.state, value: st.value, detail: st.detail)
                                guard AlertTransition.notifies(from: previous, to: st.state), !receivers.isEmpty else { return tx.done(transition) }
                                // One pending row per receiver, in the receivers' order (ids ascend with the ordinality).
                                tx.query("""
                                    INSERT INTO alert_notifications(project_id, rule_id, transition_id, ts_ms, event, receiver, result, attempts,
                                                                    detail, receiver_index, due_ms)
                                    SELECT r.project_id, r.id, $2, $3, $4, x.receiver, 'pending', 0, '', x.n - 1, 0
                                    FROM alert_rules r, unnest($5::text[]) WITH ORDINALITY AS x(receiver, n)
                                    WHERE r.id = $1 ORDER BY x.n RETURNING id, receiver_index
                                    """, [PGText.int(st.ruleId), PGText.int(transition.id), PGText.int(st.evaluated), st.state,
                                          Self.textArray(receivers)]) { n in
                                    let rows = (0..<n.count).map { (index: n.int($0, 1) ?? 0, id: n.int($0, 0) ?? 0) }.sorted { $0.index < $1.index }
                                    transition.notificationIds = rows.map(\.id)
                                    tx.done(transition)
                                }
                            }
                        }
                    }
                }
            }
        }, completion: completion)
    }

    public func alertHistory(ruleId: Int64, limit: Int, completion: @escaping StoreCompletion<[AlertTransition]>) {
        let n = limits.clamp(limit)
        enqueueRead({ (tx: PGTransaction<[AlertTransition]>) in
            tx.query("""
                SELECT id, rule_id, ts_ms, from_state, to_state, value, detail FROM alert_transitions
                WHERE rule_id = $1 ORDER BY id DESC LIMIT $2
                """, [PGText.int(ruleId), PGText.int(Int64(n))]) { r in
                tx.done((0..<r.count).map { i in
                    AlertTransition(id: r.int(i, 0) ?? 0, ruleId: r.int(i, 1) ?? 0, ts: r.int(i, 2) ?? 0, from: r.text(i, 3) ?? "",
                                    to: r.text(i, 4) ?? "", value: r.text(i, 5).flatMap { Double($0) }, detail: r.text(i, 6) ?? "")
                })
            }
        }, completion: completion)
    }

    // MARK: silences

    public func createAlertSilence(_ silence: AlertSilence, completion: @escaping StoreCompletion<AlertSilence>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<AlertSilence>) in
            Self.projectId(tx, silence.project) { pid in
                tx.query("""
                    INSERT INTO alert_silences(project_id, rule_id, matchers, starts_ms, ends_ms, comment, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
                    """, [PGText.int(pid), PGText.int(silence.ruleId), SQLiteWriter.encodeMatchers(silence.matchers),
                          PGText.int(silence.starts), PGText.int(silence.ends), silence.comment, silence.createdBy]) { r in
                    var out = silence
                    out.id = r.int(0, 0) ?? 0
                    tx.done(out)
                }
            }
        }, completion: completion)
    }

    public func alertSilences(project: String, endingAfter: Int64, completion: @escaping StoreCompletion<[AlertSilence]>) {
        enqueueRead({ (tx: PGTransaction<[AlertSilence]>) in
            Self.projectId(tx, project) { pid in
                Self.readSilences(tx, projectId: pid, project: project, endingAfter: endingAfter, id: nil) { tx.done($0) }
            }
        }, completion: completion)
    }

    public func endAlertSilence(project: String, id: Int64, at: Int64, completion: @escaping StoreCompletion<AlertSilence>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<AlertSilence>) in
            Self.projectId(tx, project) { pid in
                tx.query("UPDATE alert_silences SET ends_ms = LEAST(ends_ms, $1) WHERE id = $2 AND project_id = $3",
                         [PGText.int(at), PGText.int(id), PGText.int(pid)]) { _ in
                    Self.readSilences(tx, projectId: pid, project: project, endingAfter: Int64.min, id: id) { s in
                        guard let s = s.first else { return tx.fail(.notFound("silence \(id) of project '\(project)'")) }
                        tx.done(s)
                    }
                }
            }
        }, completion: completion)
    }

    // MARK: notifications

    public func appendAlertNotification(_ n: AlertNotification, completion: @escaping StoreCompletion<Int64>) {
        enqueueWrite(rows: 1, { (tx: PGTransaction<Int64>) in
            Self.projectId(tx, n.project) { pid in
                tx.query("""
                    INSERT INTO alert_notifications(project_id, rule_id, transition_id, ts_ms, event, receiver, result, attempts, detail)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
                    """, [PGText.int(pid), PGText.int(n.ruleId), PGText.int(n.transitionId), PGText.int(n.ts), n.event, n.receiver,
                          n.result, PGText.int(n.attempts), n.detail]) { r in
                    tx.done(r.int(0, 0) ?? 0)
                }
            }
        }, completion: completion)
    }

    public func claimAlertNotifications(ids: [Int64], lease: AlertLease, at: Int64,
                                        completion: @escaping StoreCompletion<[Int64: Int64]>) {
        guard !ids.isEmpty else { return deliverLater(completion, .success([:])) }
        enqueueWrite(rows: ids.count, { (tx: PGTransaction<[Int64: Int64]>) in
            tx.query("SELECT 1 FROM alert_leases WHERE name = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
                     [lease.name, lease.holder, PGText.int(lease.epoch)]) { l in
                guard l.count > 0 else {
                    return tx.fail(.invalid("lease lost: '\(lease.name)' is no longer held by \(lease.holder) at epoch \(lease.epoch)"))
                }
                tx.query("""
                    UPDATE alert_notifications SET attempts = attempts + 1, ts_ms = $2
                    WHERE id = ANY($1::bigint[]) AND result = 'pending' RETURNING id, attempts
                    """, [Self.intArray(ids), PGText.int(at)]) { r in
                    var out: [Int64: Int64] = [:]
                    for i in 0..<r.count { out[r.int(i, 0) ?? 0] = r.int(i, 1) ?? 0 }
                    tx.done(out)
                }
            }
        }, completion: completion)
    }

    public func finishAlertNotifications(ids: [Int64], result: String, detail: String, at: Int64, due: Int64,
                                         completion: @escaping StoreCompletion<Int>) {
        guard !ids.isEmpty else { return deliverLater(completion, .success(0)) }
        enqueueWrite(rows: ids.count, { (tx: PGTransaction<Int>) in
            tx.query("""
                UPDATE alert_notifications SET result = $2, detail = $3, ts_ms = $4, due_ms = $5
                WHERE id = ANY($1::bigint[]) AND result = 'pending'
                """, [Self.intArray(ids), result, detail, PGText.int(at), PGText.int(due)]) { r in
                tx.done(r.affected)
            }
        }, completion: completion)
    }

    public func pendingAlertNotifications(dueBy: Int64, limit: Int, completion: @escaping StoreCompletion<[AlertOutboxEntry]>) {
        let n = limits.clamp(limit)
        enqueueRead({ (tx: PGTransaction<[AlertOutboxEntry]>) in
            tx.query("""
                SELECT n.id, p.name, n.rule_id, n.transition_id, n.ts_ms, n.event, n.receiver, n.attempts, n.detail, n.receiver_index,
                       n.due_ms, t.ts_ms, t.from_state, t.to_state, t.value, t.detail, r.name, r.body
                FROM alert_notifications n JOIN alert_rules r ON r.id = n.rule_id JOIN projects p ON p.id = n.project_id
                     JOIN alert_transitions t ON t.id = n.transition_id
                WHERE n.result = 'pending' AND n.due_ms <= $1 ORDER BY n.id LIMIT $2
                """, [PGText.int(dueBy), PGText.int(Int64(n))]) { r in
                tx.done((0..<r.count).map { i in
                    let note = AlertNotification(id: r.int(i, 0) ?? 0, project: r.text(i, 1) ?? "", ruleId: r.int(i, 2) ?? 0,
                                                 transitionId: r.int(i, 3) ?? 0, ts: r.int(i, 4) ?? 0, event: r.text(i, 5) ?? "",
                                                 receiver: r.text(i, 6) ?? "", result: "pending", attempts: r.int(i, 7) ?? 0,
                                                 detail: r.text(i, 8) ?? "", receiverIndex: r.int(i, 9) ?? 0, due: r.int(i, 10) ?? 0)
                    let t = AlertTransition(id: note.transitionId, ruleId: note.ruleId, ts: r.int(i, 11) ?? 0, from: r.text(i, 12) ?? "",
                                            to: r.text(i, 13) ?? "", value: r.text(i, 14).flatMap { Double($0) }, detail: r.text(i, 15) ?? "")
                    return AlertOutboxEntry(notification: note, transition: t, ruleName: r.text(i, 16) ?? "", ruleBody: r.text(i, 17) ?? "")
                })
            }
        }, completion: completion)
    }

    public func alertNotifications(project: String, ruleId: Int64?, limit: Int,
                                   completion: @escaping StoreCompletion<[AlertNotification]>) {
        let n = limits.clamp(limit)
        enqueueRead({ (tx: PGTransaction<[AlertNotification]>) in
            Self.projectId(tx, project) { pid in
                tx.query("""
                    SELECT id, rule_id, transition_id, ts_ms, event, receiver, result, attempts, detail, receiver_index, due_ms
                    FROM alert_notifications
                    WHERE project_id = $1 AND ($2::bigint IS NULL OR rule_id = $2) ORDER BY id DESC LIMIT $3
                    """, [PGText.int(pid), PGText.int(ruleId), PGText.int(Int64(n))]) { r in
                    tx.done((0..<r.count).map { i in
                        AlertNotification(id: r.int(i, 0) ?? 0, project: project, ruleId: r.int(i, 1) ?? 0, transitionId: r.int(i, 2) ?? 0,
                                          ts: r.int(i, 3) ?? 0, event: r.text(i, 4) ?? "", receiver: r.text(i, 5) ?? "",
                                          result: r.text(i, 6) ?? "", attempts: r.int(i, 7) ?? 0, detail: r.text(i, 8) ?? "",
                                          receiverIndex: r.int(i, 9) ?? 0, due: r.int(i, 10) ?? 0)
                    })
                }
            }
        }, completion: completion)
    }

    // MARK: helpers

    /// A bigint[] literal: `{1,2,3}`.
    static func intArray(_ ids: [Int64]) -> String { "{" + ids.map(String.init).joined(separator: ",") + "}" }

    /// A text[] literal, each element quoted (`\` and `"` escaped).
    static func textArray(_ items: [String]) -> String {
        "{" + items.map { "\"" + $0.replacingBackslashesAndQuotes() + "\"" }.joined(separator: ",") + "}"
    }

    static func readAlertRules<T>(_ tx: PGTransaction<T>, project: String?, id: Int64?, _ next: @escaping ([AlertRuleRecord]) -> Void) {
        tx.query("""
            SELECT r.id, p.name, r.name, r.body, r.version, r.created_ms, r.updated_ms
            FROM alert_rules r JOIN projects p ON p.id = r.project_id
            WHERE ($1::text IS NULL OR p.name = $1) AND ($2::bigint IS NULL OR r.id = $2) ORDER BY r.id
            """, [project, PGText.int(id)]) { r in
            next((0..<r.count).map { i in
                AlertRuleRecord(id: r.int(i, 0) ?? 0, project: r.text(i, 1) ?? "", name: r.text(i, 2) ?? "", body: r.text(i, 3) ?? "",
                                version: r.int(i, 4) ?? 0, created: r.int(i, 5) ?? 0, updated: r.int(i, 6) ?? 0)
            })
        }
    }

    static func requireFreeRuleName<T>(_ tx: PGTransaction<T>, _ pid: Int64, _ name: String, except id: Int64?,
                                       _ next: @escaping () -> Void) {
        tx.query("SELECT id FROM alert_rules WHERE project_id = $1 AND name = $2", [PGText.int(pid), name]) { r in
            if let other = r.count > 0 ? r.int(0, 0) : nil, other != id {
                return tx.fail(.invalid("the project has an alert rule named '\(name)' (id \(other))"))
            }
            next()
        }
    }

    static func readSilences<T>(_ tx: PGTransaction<T>, projectId pid: Int64, project: String, endingAfter: Int64, id: Int64?,
                                _ next: @escaping ([AlertSilence]) -> Void) {
        tx.query("""
            SELECT id, rule_id, matchers, starts_ms, ends_ms, comment, created_by FROM alert_silences
            WHERE project_id = $1 AND ends_ms > $2 AND ($3::bigint IS NULL OR id = $3) ORDER BY id
            """, [PGText.int(pid), PGText.int(endingAfter), PGText.int(id)]) { r in
            next((0..<r.count).map { i in
                AlertSilence(id: r.int(i, 0) ?? 0, project: project, ruleId: r.int(i, 1), matchers: SQLiteWriter.decodeMatchers(r.text(i, 2) ?? ""),
                             starts: r.int(i, 3) ?? 0, ends: r.int(i, 4) ?? 0, comment: r.text(i, 5) ?? "", createdBy: r.text(i, 6) ?? "")
            })
        }
    }
}

extension String {
    /// `\` and `"` escaped for a quoted array element.
    fileprivate func replacingBackslashesAndQuotes() -> String {
        var out = ""
        for c in self {
            if c == "\\" || c == "\"" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
