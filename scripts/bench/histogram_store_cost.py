#!/usr/bin/env python3
"""histogram_store_cost.py: what the measurements.histogram BLOB adds per row.

Builds a measurements table like the collector's (schema 6, with its
(ts_ms, series_id) index) with 100,000 rows over 5,000 series, once without
histograms and once per BLOB size, and prints the file bytes per row. The
sizes are those `wire-bench histogram-cost` prints for typical windows
(a BLOB's content does not change its cost: SQLite does not compress).
Figures go in docs/STORAGE.md and docs/PERFORMANCE.md, "Latency histograms".
"""
import os
import sqlite3
import sys
import tempfile

ROWS = 100_000


def bytes_per_row(blob_size):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.db")
        db = sqlite3.connect(path)
        db.execute("""CREATE TABLE measurements(series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
            window_ms INTEGER NOT NULL, count INTEGER NOT NULL, errors INTEGER NOT NULL, sum_us INTEGER NOT NULL,
            min_us INTEGER NOT NULL, max_us INTEGER NOT NULL, p50_us INTEGER NOT NULL, p95_us INTEGER NOT NULL,
            p99_us INTEGER NOT NULL, histogram BLOB)""")
        db.execute("CREATE INDEX measurements_ts_series ON measurements(ts_ms, series_id)")
        rows = ((i % 5000, 1_700_000_000_000 + (i // 5000) * 10_000, 10_000, 1000, 3, 20_000_000, 900, 400_000,
                 20_000, 45_000, 80_000, os.urandom(blob_size) if blob_size is not None else None)
                for i in range(ROWS))
        db.executemany("INSERT INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.commit()
        db.close()
        return os.path.getsize(path) / ROWS


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [5, 121, 251, 522, 1112]
    base = bytes_per_row(None)
    print(f"# sqlite {sqlite3.sqlite_version}, {ROWS} rows")
    print(f"without histogram: {base:.1f} B/row (row and index)")
    for s in sizes:
        print(f"histogram BLOB {s} B: +{bytes_per_row(s) - base:.1f} B/row")


if __name__ == "__main__":
    main()
