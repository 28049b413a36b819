// PostgreSQLStore, statuses in groups: many agents' Status records in one
// statement of one transaction (`recordAgentStatuses`), as batches share
// their transaction. One at a time (`recordAgentStatus`) a Status costs a
// transaction of three statements — five round trips and a commit flushed
// to disk — and with tens of thousands of sessions those, not the batches,
// were what the write connection could not keep up with
// (docs/PERFORMANCE.md, "Cluster density").
//
// The statement, with the rows given as arrays (unnest): every Status of an
// agent the store holds goes to `agent_status`, becomes its snapshot
// (unless a newer one is stored) and sets its state, with a history row in
// `agent_states` when state or messages changed — what `recordAgentStatus`
// does, for all of them at once. A statement may not update a row twice,
// so an agent appears once per statement (a group with two Statuses of one
// agent runs as two statements in the transaction). The row's values
// before the update come from a second reference to the table (`old`),
// which is how the "changed" answer and the history row are decided.
//
// Ingest lane: statuses never depend on keys or identities. Loop thread.
import Reactor

extension PostgreSQLStore {
    public func recordAgentStatuses(_ statuses: [AgentStatusWrite], completion: @escaping StoreCompletion<[Bool]>) {
        guard !statuses.isEmpty else { return deliverLater(completion, .success([])) }
        // Rounds in which no agent appears twice, in order: one statement
        // each (usually one round; an agent with two Statuses in the group
        // gets its second in the next round, as if written one by one).
        var rounds: [[Int]] = [[]]
        var inRound = Set<String>()
        for (i, st) in statuses.enumerated() {
            if !inRound.insert(st.agent).inserted {
                rounds.append([])
                inRound = [st.agent]
            }
            rounds[rounds.count - 1].append(i)
        }
        enqueueWrite(rows: 2 * statuses.count, lane: .ingest, { (tx: PGTransaction<[Bool]>) in
            var out = [Bool](repeating: false, count: statuses.count)
            func round(_ r: Int) {
                guard r < rounds.count else { return tx.done(out) }
                let part = rounds[r].map { statuses[$0] }
                tx.query(PostgreSQLStore.statusesSQL, [
                    PGText.array(part.map(\.agent)), PGText.intArray(part.map(\.snapshot.ts)), PGText.array(part.map(\.snapshot.json)),
                    PGText.array(part.map(\.state.rawValue)), PGText.array(part.map { MessageList.encode($0.messages) }),
                ]) { rows in
                    var changed = Set<String>()
                    for i in 0..<rows.count where rows.text(i, 1) == "t" { changed.insert(rows.text(i, 0) ?? "") }
                    for i in rounds[r] { out[i] = changed.contains(statuses[i].agent) }
                    round(r + 1)
                }
            }
            round(0)
        }, completion: completion)
    }

    /// One round: $1…$5 are the agents (each once), the snapshots' times and
    /// JSON, the states and the encoded messages.
    static let statusesSQL = """
        WITH input AS (
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
                AS i(agent, ts, status, state, messages, ord)
            WHERE EXISTS (SELECT 1 FROM agents WHERE id = i.agent)),
        history AS (INSERT INTO agent_status(agent_id, ts_ms, status) SELECT agent, ts, status FROM input ORDER BY ord),
        updated AS (
            UPDATE agents a SET
                status = CASE WHEN old.status_ms IS NULL OR old.status_ms <= i.ts THEN i.status ELSE old.status END,
                status_ms = CASE WHEN old.status_ms IS NULL OR old.status_ms <= i.ts THEN i.ts ELSE old.status_ms END,
                last_seen_ms = CASE WHEN old.status_ms IS NULL OR old.status_ms <= i.ts
                                    THEN greatest(old.last_seen_ms, i.ts) ELSE old.last_seen_ms END,
                state = i.state, state_messages = i.messages,
                state_since_ms = CASE WHEN old.state <> i.state OR old.state_messages <> i.messages
                                      THEN i.ts ELSE old.state_since_ms END
            FROM agents old, input i
            WHERE old.id = a.id AND a.id = i.agent
            RETURNING a.id, i.ts, i.state, i.messages, i.ord, (old.state <> i.state OR old.state_messages <> i.messages) AS changed),
        states AS (INSERT INTO agent_states(agent_id, ts_ms, state, messages)
                   SELECT id, ts, state, messages FROM updated WHERE changed ORDER BY ord)
        SELECT id, changed FROM updated
        """
}
