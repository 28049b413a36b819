#!/usr/bin/env python3
"""measurement_index.py — what the measurements index costs (docs/STORAGE.md, "Indexes").

  python3 scripts/bench/measurement_index.py model [ROWS]
      Inserts ROWS (3,000,000) aggregate rows over 5,000 series, in order of time, in
      20,000-row transactions (WAL, synchronous=FULL, 64 MiB cache) into a temporary
      database, once per index layout, and prints rows/s (overall and per million):
        both      (series_id, ts_ms) and (ts_ms)            — schema 1–2
        time      (ts_ms, series_id) only                    — schema 3
        bulk-N    schema 3 plus a per-series index filled in sorted chunks of N rows
                  behind the inserts (the fix "Not done yet" describes)
      A model: Python's sqlite3 `executemany` is the driver, so the ceilings are its own.

  python3 scripts/bench/measurement_index.py queries DB
      Times the collector's measurement query (newest first) on a collector database
      for one agent and for one series, limits 100 and 10,000. A database from a run:
      KEEP=1 scripts/collector-alone.sh ingest   (it prints where it kept the directory)
"""
import os
import sqlite3
import sys
import tempfile
import time

COLS = ("(series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, count INTEGER NOT NULL, sum_ms REAL NOT NULL,"
        " min_ms REAL NOT NULL, max_ms REAL NOT NULL, p50_ms REAL NOT NULL, p95_ms REAL NOT NULL,"
        " p99_ms REAL NOT NULL, meta TEXT)")
SERIES = 5000
TX = 20000


def rows(start, n):
    return (((j % SERIES) + 1, 1_700_000_000_000 + (j // SERIES) * 10_000, 100, 1234.5, 1.5, 99.25, 10.5, 50.25,
             90.75, None) for j in range(start, start + n))


def run(name, indexes, total, chunk=0):
    path = os.path.join(tempfile.mkdtemp(prefix="vigil-index-"), "m.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-65536")
    db.execute("CREATE TABLE measurements " + COLS)
    for sql in indexes:
        db.execute(sql)
    if chunk:
        db.execute("CREATE TABLE by_series (series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL, row INTEGER NOT NULL,"
                   " PRIMARY KEY (series_id, ts_ms, row)) WITHOUT ROWID")
    indexed = 0
    t0 = time.time()
    marks = []
    i = 0
    while i < total:
        db.execute("BEGIN")
        db.executemany("INSERT INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?)", rows(i, TX))
        db.execute("COMMIT")
        i += TX
        if chunk and i - indexed >= chunk:
            db.execute("BEGIN")
            db.execute("INSERT INTO by_series SELECT series_id, ts_ms, rowid FROM measurements"
                       " WHERE rowid > ? AND rowid <= ? ORDER BY series_id, ts_ms", (indexed, i))
            db.execute("COMMIT")
            indexed = i
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        if i % 1_000_000 == 0:
            marks.append(f"{i // 1_000_000}M: {i / (time.time() - t0):,.0f}")
    rate = total / (time.time() - t0)
    db.close()
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    os.rmdir(os.path.dirname(path))
    print(f"{name:10} {rate:>10,.0f} rows/s   ({'; '.join(marks)})", flush=True)


def model(total):
    print(f"{total:,} rows, {SERIES:,} series, {TX:,}-row transactions, synchronous=FULL")
    run("both", ["CREATE INDEX s ON measurements(series_id, ts_ms)", "CREATE INDEX t ON measurements(ts_ms)"], total)
    run("time", ["CREATE INDEX t ON measurements(ts_ms, series_id)"], total)
    for chunk in (100_000, 300_000):
        run(f"bulk-{chunk // 1000}k", ["CREATE INDEX t ON measurements(ts_ms, series_id)"], total, chunk)


QUERY = ("SELECT m.ts_ms, s.agent_id, s.check_name, m.count FROM measurements m JOIN series s ON s.id = m.series_id"
         " JOIN projects p ON p.id = s.project_id WHERE m.series_id IN (SELECT s2.id FROM series s2"
         " JOIN projects p2 ON p2.id = s2.project_id WHERE {where}) ORDER BY m.ts_ms DESC, m.rowid DESC LIMIT ?")


def queries(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    n = db.execute("SELECT count(*) FROM measurements").fetchone()[0]
    agent, check = db.execute("SELECT agent_id, check_name FROM series ORDER BY id LIMIT 1").fetchone()
    print(f"{path}: {n:,} measurements, {db.execute('SELECT count(*) FROM series').fetchone()[0]:,} series")
    for label, where, args in (("one agent", "s2.agent_id = ?", (agent,)),
                               ("one series", "s2.agent_id = ? AND s2.check_name = ?", (agent, check))):
        for limit in (100, 10_000):
            t0 = time.time()
            got = len(db.execute(QUERY.format(where=where), args + (limit,)).fetchall())
            print(f"{label:10} limit {limit:>6}: {got:>6} rows in {(time.time() - t0) * 1000:8.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "model":
        model(int(sys.argv[2]) if len(sys.argv) > 2 else 3_000_000)
    elif len(sys.argv) == 3 and sys.argv[1] == "queries":
        queries(sys.argv[2])
    else:
        sys.exit(__doc__)
