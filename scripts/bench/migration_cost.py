#!/usr/bin/env python3
"""migration_cost.py — how long schema step 4 takes on a large database (docs/STORAGE.md, "Schema").

  python3 scripts/bench/migration_cost.py [ROWS]
      Builds a version-3 database in a temporary directory (steps 1–3 as
      Sources/CollectorStore/SQLite/Migrations.swift has them), fills `measurements` with
      ROWS (1,000,000) rows over 5,000 series the way the version-3 collector wrote them
      (REAL milliseconds, `meta` JSON with window_ms), then times step 4 — the rebuild into
      integer microseconds and typed columns — in one IMMEDIATE transaction, as the store
      applies it (WAL, synchronous=FULL). Prints the rows, the file size before and after,
      and the seconds the step took.
"""
import os
import re
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = os.path.join(HERE, "..", "..", "Sources", "CollectorStore", "SQLite", "Migrations.swift")
SERIES = 5000


def steps():
    text = open(MIGRATIONS).read()
    return {int(v): sql for v, sql in re.findall(r'Migration\(version: (\d+), name: "[^"]*", sql: """\n(.*?)"""\)', text, re.S)}


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    sql = steps()
    with tempfile.TemporaryDirectory(prefix="vigil-migration-") as d:
        path = os.path.join(d, "vigil.db")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        for v in (1, 2, 3):
            db.executescript("BEGIN;" + sql[v] + ";COMMIT;")
        db.execute("INSERT INTO projects(id, name, created_ms) VALUES (1, 'load', 0)")
        db.execute("BEGIN")
        db.executemany("INSERT INTO series(id, project_id, agent_id, monitor, check_name, source) VALUES (?, 1, ?, 'm', ?, 'ipa')",
                       [(i + 1, f"a{i // 50}", f"c{i % 50}") for i in range(SERIES)])

        def measurements():
            for i in range(rows):
                us = 1000 + i % 997
                yield (i % SERIES + 1, 1_700_000_000_000 + (i // SERIES) * 10_000, 10, us * 10 / 1000, us / 1000,
                       us * 3 / 1000, us / 1000, us * 2 / 1000, us * 3 / 1000, '{"window_ms":10000}')

        db.executemany("INSERT INTO measurements(series_id, ts_ms, count, sum_ms, min_ms, max_ms, p50_ms, p95_ms, p99_ms, meta)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", measurements())
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = os.path.getsize(path)
        t0 = time.monotonic()
        db.executescript("BEGIN IMMEDIATE;" + sql[4] + ";COMMIT;")
        seconds = time.monotonic() - t0
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after = os.path.getsize(path)
        db.close()
    print(f"step 4: rows={rows} seconds={seconds:.1f} per_million_s={seconds / rows * 1e6:.1f} "
          f"db_before_mb={before / 1e6:.0f} db_after_mb={after / 1e6:.0f} sqlite={sqlite3.sqlite_version}")


if __name__ == "__main__":
    main()
