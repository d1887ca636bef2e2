"""What SQLite alone costs to store an import's rows: the floor under any import pipeline.

    .venv/bin/python bench/import_customers.py --rows 100000 --keep /tmp/imp
    .venv/bin/python bench/import_floor.py /tmp/imp/bench.db

Copies every row an import wrote (customers, contact points, search terms, tags, external ids,
the import's change journal) from that database into a freshly migrated one, batch by batch, with
``INSERT ... SELECT`` from the attached source: no Python per row, no normalisation, validation,
encryption or matching, only SQLite's own work (rows, indexes, the dashboard triggers, foreign
keys, commits) under the settings the import uses. Divide the row count by its time to get the
most rows per second any import into this schema can reach on this machine.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Children before parents' dependants: the order the importer writes them.
TABLES = (
    "customer",
    "contact_point",
    "customer_search_term",
    "customer_tag",
    "customer_external_id",
    "import_change",
)


def fresh_database(work: Path) -> Path:
    db = work / "floor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "RAPPORT_DATA_DIR": str(work), "RAPPORT_DATABASE_URL": f"sqlite:///{db}"}
    subprocess.run(
        [sys.executable, "-m", "rapport.cli.main", "db", "upgrade"], check=True, env=env, capture_output=True
    )
    return db


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source", type=Path, help="a database an import filled (bench/import_customers.py --keep)"
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rapport-floor-"))
    target = fresh_database(work)
    conn = sqlite3.connect(target, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "secure_delete=ON",
        "cache_size=-131072",
        "wal_autocheckpoint=16384",
    ):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("ATTACH DATABASE ? AS src", (str(args.source),))
    # The rows the copied ones point at (job, organisations) exist before the clock starts.
    conn.execute("INSERT INTO import_job SELECT * FROM src.import_job")
    conn.execute("INSERT INTO organisation SELECT * FROM src.organisation")
    last = conn.execute("SELECT max(id) FROM src.customer").fetchone()[0] or 0
    customers = conn.execute("SELECT count(*) FROM src.customer").fetchone()[0]
    seconds = dict.fromkeys((*TABLES, "commit"), 0.0)
    for low in range(1, last + 1, args.batch_size):
        high = low + args.batch_size - 1
        conn.execute("BEGIN IMMEDIATE")
        for table in TABLES:
            key = {"customer": "id", "import_change": "record_id"}.get(table, "customer_id")
            # Search terms in key order, as the importer writes them.
            order = " ORDER BY term, customer_id" if table == "customer_search_term" else ""
            started = time.perf_counter()
            conn.execute(
                f"INSERT INTO main.{table} SELECT * FROM src.{table} WHERE {key} BETWEEN ? AND ?{order}",
                (low, high),
            )
            seconds[table] += time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("COMMIT")
        seconds["commit"] += time.perf_counter() - started
    total = sum(seconds.values())
    rows = {t: conn.execute(f"SELECT count(*) FROM main.{t}").fetchone()[0] for t in TABLES}
    conn.close()
    print(f"{customers:,} customers, rows per table: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    print("seconds per step: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
    print(
        f"SQLite alone: {total:.1f} s = {total / customers * 1e6:.0f} us per customer = "
        f"at most {customers / total:,.0f} customers/s for any import into this schema on this machine"
    )


if __name__ == "__main__":
    main()
