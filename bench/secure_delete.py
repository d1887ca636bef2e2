"""What PRAGMA secure_delete=ON costs on SQLite, and what a VACUUM after erasure costs.

    .venv/bin/python bench/secure_delete.py --rows 100000 --changes 5000

Builds two identical WAL-mode files shaped like Rapport's customer table (names, an index on the
name, a JSON attributes column), then times, with secure_delete off and on: single-row inserts
(one transaction each, like API creates), single-row updates of the name, single-row deletes,
and a bulk delete of ``--changes`` rows in one transaction. Then times a TRUNCATE checkpoint and
a VACUUM of the file. Prints a table of figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def connect(path: Path, secure: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA secure_delete={'ON' if secure else 'OFF'}")
    return conn


def build(path: Path, rows: int) -> None:
    conn = connect(path, False)
    conn.execute(
        "CREATE TABLE customer (id INTEGER PRIMARY KEY, display_name TEXT NOT NULL, name_latin TEXT, "
        "city TEXT, attributes TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX ix_customer_display_name_id ON customer (display_name, id)")
    rnd = random.Random(7)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO customer (display_name, name_latin, city, attributes, updated_at) VALUES (?,?,?,?,?)",
        (
            (
                f"客户{rnd.randrange(10**8):08d}",
                f"Customer {i}",
                rnd.choice(["上海", "北京", "杭州"]),
                '{"nickname": "x' + "y" * rnd.randrange(10, 80) + '"}',
                "2026-01-01T00:00:00",
            )
            for i in range(rows)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(path: Path, secure: bool, rows: int, changes: int) -> dict[str, float]:
    conn = connect(path, secure)
    rnd = random.Random(11)
    ids = rnd.sample(range(1, rows + 1), changes * 3)
    singles, bulk = ids[: changes * 2], ids[changes * 2 :]
    out: dict[str, float] = {}

    def inserts() -> None:
        for i in range(changes):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO customer (display_name, name_latin, city, attributes, updated_at) "
                "VALUES (?, ?, '上海', '{}', '2026-02-01')",
                (f"新客户{i:06d}", f"New {i}"),
            )
            conn.execute("COMMIT")

    def updates() -> None:
        for cid in singles[:changes]:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE customer SET display_name='[erased]', name_latin=NULL WHERE id=?", (cid,))
            conn.execute("COMMIT")

    def deletes() -> None:
        for cid in singles[changes:]:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM customer WHERE id=?", (cid,))
            conn.execute("COMMIT")

    def bulk_delete() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM customer WHERE id=?", ((c,) for c in bulk))
        conn.execute("COMMIT")

    out["insert (µs/row)"] = timed(inserts) / changes * 1e6
    out["update name (µs/row)"] = timed(updates) / changes * 1e6
    out["delete (µs/row)"] = timed(deletes) / changes * 1e6
    out[f"bulk delete {changes} (ms)"] = timed(bulk_delete) * 1e3
    out["checkpoint TRUNCATE (ms)"] = (
        timed(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()) * 1e3
    )
    out["VACUUM (ms)"] = timed(lambda: conn.execute("VACUUM").close()) * 1e3
    out["file size (MB)"] = os.path.getsize(path) / 1e6
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=5_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rapport-secure-delete-") as d:
        results = {}
        for secure in (False, True):
            path = Path(d) / f"secure-{secure}.db"
            build(path, args.rows)
            results[secure] = run(path, secure, args.rows, args.changes)
    print(f"SQLite {sqlite3.sqlite_version}, {args.rows} rows, {args.changes} changes per measure")
    print(f"{'measure':32} {'secure_delete=OFF':>18} {'secure_delete=ON':>18}")
    for key in results[False]:
        print(f"{key:32} {results[False][key]:18.1f} {results[True][key]:18.1f}")


if __name__ == "__main__":
    main()
