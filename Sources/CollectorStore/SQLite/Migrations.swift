// Migrations: the database schema as an ordered list of steps. The file's
// `PRAGMA user_version` is the number of steps applied; opening a database
// applies the missing ones, each in its own IMMEDIATE transaction together
// with the new user_version, so a crash mid-upgrade leaves the previous
// version intact. `schema_migrations` records when each step ran, for people.
// docs/STORAGE.md describes every table.
//
// Rules: never edit a released step; add a new one. Times are integer
// milliseconds since the Unix epoch (`*_ms`); durations are integer
// microseconds (`*_us`, since step 4; REAL milliseconds before).
//
// Thread: whoever opens the database, before the store's writer starts.

struct Migration {
    let version: Int
    let name: String
    let sql: String
}

enum Migrations {
    static let all: [Migration] = [
        Migration(version: 1, name: "initial schema", sql: """
        CREATE TABLE schema_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_ms INTEGER NOT NULL
        );

        CREATE TABLE projects (
            id         INTEGER PRIMARY KEY,
            name       TEXT NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE project_keys (
            id         INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            secret     TEXT NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL,
            revoked_ms INTEGER
        );
        CREATE INDEX project_keys_project ON project_keys(project_id);

        CREATE TABLE agents (
            id             TEXT PRIMARY KEY,
            project_id     INTEGER NOT NULL REFERENCES projects(id),
            name           TEXT NOT NULL DEFAULT '',
            hostname       TEXT NOT NULL DEFAULT '',
            version        TEXT NOT NULL DEFAULT '',
            boot_id        TEXT NOT NULL DEFAULT '',
            state          TEXT NOT NULL,
            state_messages TEXT NOT NULL DEFAULT '',
            state_since_ms INTEGER NOT NULL,
            first_seen_ms  INTEGER NOT NULL,
            last_seen_ms   INTEGER NOT NULL,
            status_ms      INTEGER,
            status         TEXT
        );
        CREATE INDEX agents_project ON agents(project_id);

        CREATE TABLE agent_states (
            id       INTEGER PRIMARY KEY,
            agent_id TEXT NOT NULL,
            ts_ms    INTEGER NOT NULL,
            state    TEXT NOT NULL,
            messages TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX agent_states_agent_ts ON agent_states(agent_id, ts_ms);
        CREATE INDEX agent_states_ts ON agent_states(ts_ms);

        CREATE TABLE agent_status (
            id       INTEGER PRIMARY KEY,
            agent_id TEXT NOT NULL,
            ts_ms    INTEGER NOT NULL,
            status   TEXT NOT NULL
        );
        CREATE INDEX agent_status_agent_ts ON agent_status(agent_id, ts_ms);
        CREATE INDEX agent_status_ts ON agent_status(ts_ms);

        CREATE TABLE series (
            id         INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL,
            agent_id   TEXT NOT NULL,
            monitor    TEXT NOT NULL,
            check_name TEXT NOT NULL,
            source     TEXT NOT NULL,
            UNIQUE (agent_id, monitor, check_name, source)
        );
        CREATE INDEX series_project ON series(project_id);

        CREATE TABLE measurements (
            series_id INTEGER NOT NULL,
            ts_ms     INTEGER NOT NULL,
            count     INTEGER NOT NULL,
            sum_ms    REAL NOT NULL,
            min_ms    REAL NOT NULL,
            max_ms    REAL NOT NULL,
            p50_ms    REAL NOT NULL,
            p95_ms    REAL NOT NULL,
            p99_ms    REAL NOT NULL,
            meta      TEXT
        );
        CREATE INDEX measurements_series_ts ON measurements(series_id, ts_ms);
        CREATE INDEX measurements_ts ON measurements(ts_ms);

        CREATE TABLE events (
            id          INTEGER PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,
            project_id  INTEGER NOT NULL,
            agent_id    TEXT NOT NULL,
            monitor     TEXT NOT NULL,
            check_name  TEXT NOT NULL,
            method      TEXT NOT NULL,
            host        TEXT NOT NULL,
            path        TEXT NOT NULL,
            duration_ms REAL NOT NULL,
            meta        TEXT
        );
        CREATE INDEX events_ts ON events(ts_ms);
        CREATE INDEX events_agent_ts ON events(agent_id, ts_ms);

        CREATE TABLE monitor_definitions (
            project_id INTEGER PRIMARY KEY REFERENCES projects(id),
            version    INTEGER NOT NULL,
            body       TEXT NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE monitor_runs (
            id          INTEGER PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,
            project_id  INTEGER NOT NULL,
            agent_id    TEXT NOT NULL,
            monitor     TEXT NOT NULL,
            check_name  TEXT NOT NULL,
            ok          INTEGER NOT NULL,
            duration_ms REAL NOT NULL,
            detail      TEXT
        );
        CREATE INDEX monitor_runs_ts ON monitor_runs(ts_ms);
        CREATE INDEX monitor_runs_project_ts ON monitor_runs(project_id, ts_ms);

        CREATE TABLE pattern_sets (
            project_id INTEGER PRIMARY KEY REFERENCES projects(id),
            version    INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE patterns (
            project_id INTEGER NOT NULL,
            position   INTEGER NOT NULL,
            method     TEXT NOT NULL,
            host       TEXT NOT NULL,
            path       TEXT NOT NULL,
            monitor    TEXT NOT NULL,
            check_name TEXT NOT NULL,
            PRIMARY KEY (project_id, position)
        ) WITHOUT ROWID;

        CREATE TABLE config_overrides (
            project_id INTEGER NOT NULL REFERENCES projects(id),
            agent_id   TEXT NOT NULL DEFAULT '',
            key        TEXT NOT NULL,
            value      TEXT NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (project_id, agent_id, key)
        ) WITHOUT ROWID;

        CREATE TABLE audit (
            id     INTEGER PRIMARY KEY,
            ts_ms  INTEGER NOT NULL,
            actor  TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            result TEXT NOT NULL
        );
        CREATE INDEX audit_ts ON audit(ts_ms);

        CREATE TABLE batch_sequences (
            agent_id   TEXT NOT NULL,
            boot_id    TEXT NOT NULL,
            high_seq   INTEGER NOT NULL,
            gaps       TEXT NOT NULL DEFAULT '',
            batches    INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (agent_id, boot_id)
        ) WITHOUT ROWID;
        CREATE INDEX batch_sequences_updated ON batch_sequences(updated_ms);
        """),
        // Last run per (agent, monitor): every Schedule sent carries them.
        Migration(version: 2, name: "monitor runs by agent", sql: """
        CREATE INDEX monitor_runs_agent_monitor ON monitor_runs(project_id, agent_id, monitor, ts_ms);
        """),
        // One time-ordered index on measurements instead of (series, ts) and
        // (ts). Rows arrive in time order, so every insert lands at the right
        // edge of this index; the per-series index took one page write per
        // series per commit and capped durable ingest (docs/STORAGE.md,
        // "Indexes"). Queries for some series scan it newest first and test
        // series_id inside the index entries.
        Migration(version: 3, name: "measurements indexed by time, then series", sql: """
        DROP INDEX measurements_series_ts;
        DROP INDEX measurements_ts;
        CREATE INDEX measurements_ts_series ON measurements(ts_ms, series_id);
        """),
        // Latencies as the agent measured them, integer microseconds, and
        // typed columns instead of a JSON `meta` per row: measurements'
        // meta held only window_ms (and errors when there were any), events'
        // only the response status. Each table is rebuilt in rowid order (so
        // ties in time keep their insertion order); REAL milliseconds become
        // microseconds by rounding ms × 1000, which restores the integer the
        // agent sent. Meta that is not valid JSON yields 0.
        Migration(version: 4, name: "durations in integer microseconds, typed columns instead of meta", sql: """
        CREATE TABLE measurements_v4 (
            series_id INTEGER NOT NULL,
            ts_ms     INTEGER NOT NULL,
            window_ms INTEGER NOT NULL,
            count     INTEGER NOT NULL,
            errors    INTEGER NOT NULL,
            sum_us    INTEGER NOT NULL,
            min_us    INTEGER NOT NULL,
            max_us    INTEGER NOT NULL,
            p50_us    INTEGER NOT NULL,
            p95_us    INTEGER NOT NULL,
            p99_us    INTEGER NOT NULL
        );
        INSERT INTO measurements_v4(rowid, series_id, ts_ms, window_ms, count, errors,
                                    sum_us, min_us, max_us, p50_us, p95_us, p99_us)
            SELECT rowid, series_id, ts_ms,
                   COALESCE(CAST(CASE WHEN json_valid(meta) THEN json_extract(meta, '$.window_ms') END AS INTEGER), 0),
                   count,
                   COALESCE(CAST(CASE WHEN json_valid(meta) THEN json_extract(meta, '$.errors') END AS INTEGER), 0),
                   CAST(round(sum_ms * 1000) AS INTEGER), CAST(round(min_ms * 1000) AS INTEGER),
                   CAST(round(max_ms * 1000) AS INTEGER), CAST(round(p50_ms * 1000) AS INTEGER),
                   CAST(round(p95_ms * 1000) AS INTEGER), CAST(round(p99_ms * 1000) AS INTEGER)
            FROM measurements ORDER BY rowid;
        DROP TABLE measurements;
        ALTER TABLE measurements_v4 RENAME TO measurements;
        CREATE INDEX measurements_ts_series ON measurements(ts_ms, series_id);

        CREATE TABLE events_v4 (
            id          INTEGER PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,
            project_id  INTEGER NOT NULL,
            agent_id    TEXT NOT NULL,
            monitor     TEXT NOT NULL,
            check_name  TEXT NOT NULL,
            method      TEXT NOT NULL,
            host        TEXT NOT NULL,
            path        TEXT NOT NULL,
            status      INTEGER NOT NULL,
            duration_us INTEGER NOT NULL
        );
        INSERT INTO events_v4(id, ts_ms, project_id, agent_id, monitor, check_name, method, host, path, status, duration_us)
            SELECT id, ts_ms, project_id, agent_id, monitor, check_name, method, host, path,
                   COALESCE(CAST(CASE WHEN json_valid(meta) THEN json_extract(meta, '$.status') END AS INTEGER), 0),
                   CAST(round(duration_ms * 1000) AS INTEGER)
            FROM events ORDER BY id;
        DROP TABLE events;
        ALTER TABLE events_v4 RENAME TO events;
        CREATE INDEX events_ts ON events(ts_ms);
        CREATE INDEX events_agent_ts ON events(agent_id, ts_ms);

        CREATE TABLE monitor_runs_v4 (
            id          INTEGER PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,
            project_id  INTEGER NOT NULL,
            agent_id    TEXT NOT NULL,
            monitor     TEXT NOT NULL,
            check_name  TEXT NOT NULL,
            ok          INTEGER NOT NULL,
            duration_us INTEGER NOT NULL,
            detail      TEXT
        );
        INSERT INTO monitor_runs_v4(id, ts_ms, project_id, agent_id, monitor, check_name, ok, duration_us, detail)
            SELECT id, ts_ms, project_id, agent_id, monitor, check_name, ok, CAST(round(duration_ms * 1000) AS INTEGER), detail
            FROM monitor_runs ORDER BY id;
        DROP TABLE monitor_runs;
        ALTER TABLE monitor_runs_v4 RENAME TO monitor_runs;
        CREATE INDEX monitor_runs_ts ON monitor_runs(ts_ms);
        CREATE INDEX monitor_runs_project_ts ON monitor_runs(project_id, ts_ms);
        CREATE INDEX monitor_runs_agent_monitor ON monitor_runs(project_id, agent_id, monitor, ts_ms);
        """),
        Migration(version: 5, name: "filter rules that exclude", sql: """
        ALTER TABLE patterns ADD COLUMN exclude INTEGER NOT NULL DEFAULT 0;
        """),
        // Calls by outcome class per measurement (typed columns; rows from
        // before count none), and why an event got no response.
        Migration(version: 6, name: "measurement outcomes, event error class", sql: """
        ALTER TABLE measurements ADD COLUMN outcome_2xx INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE measurements ADD COLUMN outcome_3xx INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE measurements ADD COLUMN outcome_4xx INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE measurements ADD COLUMN outcome_5xx INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE measurements ADD COLUMN outcome_error INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE events ADD COLUMN error_class TEXT NOT NULL DEFAULT '';
        """),
        // An agent is (project, agent id, static public key). Agents known
        // before identities existed keep their project and enroll their key
        // at their next handshake (public_key NULL: enroll on next connect).
        Migration(version: 7, name: "agent identities", sql: """
        CREATE TABLE agent_identities (
            agent_id    TEXT PRIMARY KEY,
            project_id  INTEGER NOT NULL REFERENCES projects(id),
            public_key  TEXT,
            enrolled_ms INTEGER NOT NULL
        );
        INSERT INTO agent_identities(agent_id, project_id, public_key, enrolled_ms)
            SELECT id, project_id, NULL, 0 FROM agents;
        """),
        // The collector's own health, one row per sample (CollectorSample):
        // counts per interval, latencies in µs. The time is the key, so rows
        // sit in time order and retention deletes a range at the left edge.
        Migration(version: 8, name: "collector health history", sql: """
        CREATE TABLE collector_samples (
            ts_ms                      INTEGER PRIMARY KEY,
            interval_ms                INTEGER NOT NULL,
            sessions_handshake         INTEGER NOT NULL,
            sessions_established       INTEGER NOT NULL,
            sessions_closing           INTEGER NOT NULL,
            agents_connecting          INTEGER NOT NULL,
            agents_stopped             INTEGER NOT NULL,
            agents_capturing           INTEGER NOT NULL,
            agents_wrong_configuration INTEGER NOT NULL,
            handshakes                 INTEGER NOT NULL,
            handshake_failures         INTEGER NOT NULL,
            records_in                 INTEGER NOT NULL,
            rows_stored                INTEGER NOT NULL,
            commit_p99_us              INTEGER NOT NULL,
            commit_max_us              INTEGER NOT NULL,
            lag_p99_us                 INTEGER NOT NULL,
            lag_max_us                 INTEGER NOT NULL,
            dropped                    INTEGER NOT NULL,
            store_failures             INTEGER NOT NULL,
            pending_rows               INTEGER NOT NULL
        );
        """),
        // How an agent's data reaches the collector: `agent` (a vigil-agent
        // over a session) or `upload` (the virtual agent capture files
        // uploaded to a project are stored under).
        Migration(version: 9, name: "agent mode", sql: """
        ALTER TABLE agents ADD COLUMN mode TEXT NOT NULL DEFAULT 'agent';
        """),
        // Each measurement's latency histogram (the agent's LatencySketch
        // in its wire encoding), so windows and agents can be merged;
        // NULL for rows stored before, answered from their percentiles.
        Migration(version: 10, name: "measurement histograms", sql: """
        ALTER TABLE measurements ADD COLUMN histogram BLOB;
        """),
        // Alerting (docs/ALERTS.md): rules (their JSON document as the API
        // normalised it), each rule's current state and its transitions, the
        // named evaluation lease (holder, epoch, expiry), silences, and a
        // record of every notification. A rule's rows go with it.
        Migration(version: 11, name: "alerts", sql: """
        CREATE TABLE alert_rules (
            id         INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            name       TEXT NOT NULL,
            body       TEXT NOT NULL,
            version    INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE TABLE alert_states (
            rule_id      INTEGER PRIMARY KEY REFERENCES alert_rules(id),
            state        TEXT NOT NULL,
            since_ms     INTEGER NOT NULL,
            evaluated_ms INTEGER NOT NULL,
            value        REAL,
            detail       TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE alert_transitions (
            id         INTEGER PRIMARY KEY,
            rule_id    INTEGER NOT NULL REFERENCES alert_rules(id),
            ts_ms      INTEGER NOT NULL,
            from_state TEXT NOT NULL,
            to_state   TEXT NOT NULL,
            value      REAL,
            detail     TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX alert_transitions_rule ON alert_transitions(rule_id, id);
        CREATE TABLE alert_leases (
            name       TEXT PRIMARY KEY,
            holder     TEXT NOT NULL,
            epoch      INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL
        );
        CREATE TABLE alert_silences (
            id         INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            rule_id    INTEGER,
            matchers   TEXT NOT NULL DEFAULT '',
            starts_ms  INTEGER NOT NULL,
            ends_ms    INTEGER NOT NULL,
            comment    TEXT NOT NULL DEFAULT '',
            created_by TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX alert_silences_project ON alert_silences(project_id, ends_ms);
        CREATE TABLE alert_notifications (
            id            INTEGER PRIMARY KEY,
            project_id    INTEGER NOT NULL REFERENCES projects(id),
            rule_id       INTEGER NOT NULL,
            transition_id INTEGER NOT NULL,
            ts_ms         INTEGER NOT NULL,
            event         TEXT NOT NULL,
            receiver      TEXT NOT NULL,
            result        TEXT NOT NULL,
            attempts      INTEGER NOT NULL,
            detail        TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX alert_notifications_project ON alert_notifications(project_id, id);
        """),
        // The fleet in name order (GET /api/v1/agents?sort=name): with the
        // projects' unique name index, pages walk this index, no sort.
        Migration(version: 12, name: "agents by name", sql: """
        CREATE INDEX agents_project_name ON agents(project_id, name, id);
        """),
        // Notifications as an outbox: a notified transition is written with
        // one `pending` row per receiver of its rule (receiver_index: which
        // one), delivered from the table and marked with its result; due_ms
        // holds a retry back. The partial index finds what is pending.
        Migration(version: 13, name: "notification outbox", sql: """
        ALTER TABLE alert_notifications ADD COLUMN receiver_index INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE alert_notifications ADD COLUMN due_ms INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX alert_notifications_pending ON alert_notifications(id) WHERE result = 'pending';
        """),
        // Changes other processes made (rules, monitors, overrides, keys,
        // identities), for collectors to follow (ChangeLog.swift).
        // AUTOINCREMENT: a seq is never used twice, even after deletes.
        Migration(version: 14, name: "change log", sql: """
        CREATE TABLE change_log (
            seq     INTEGER PRIMARY KEY AUTOINCREMENT,
            project TEXT NOT NULL,
            kind    TEXT NOT NULL,
            agent   TEXT NOT NULL DEFAULT '',
            detail  TEXT NOT NULL DEFAULT '',
            origin  TEXT NOT NULL DEFAULT '',
            at_ms   INTEGER NOT NULL
        );
        """),
    ]

    static var latest: Int { all.last?.version ?? 0 }

    /// Brings `db` to the latest version; returns the versions applied.
    /// A database newer than this program is refused, untouched.
    @discardableResult
    static func migrate(_ db: SQLiteConnection, now: Int64, upTo target: Int = latest) throws(StoreError) -> [Int] {
        let current: Int
        do { current = Int(try db.scalar("PRAGMA user_version") ?? 0) } catch { throw .from(error) }
        if current > latest { throw .schemaTooNew(found: current, known: latest) }
        var applied: [Int] = []
        for m in all where m.version > current && m.version <= target {
            do { try apply(m, to: db, now: now) } catch { throw .from(error) }
            applied.append(m.version)
        }
        return applied
    }

    private static func apply(_ m: Migration, to db: SQLiteConnection, now: Int64) throws(SQLiteError) {
        try db.exec("BEGIN IMMEDIATE")
        do {
            try db.exec(m.sql)
            try db.run("INSERT INTO schema_migrations(version, name, applied_ms) VALUES (?, ?, ?)",
                       [.integer(Int64(m.version)), .text(m.name), .integer(now)])
            try db.exec("PRAGMA user_version = \(m.version)")
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
    }
}
