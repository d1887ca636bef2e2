"""Time a duplicate scan over N demo customers with planted damaged copies, and score it.

    .venv/bin/python bench/dedup.py [--customers 100000] [--rate 0.05] [--threshold 0.95] [--data-dir DIR]

Loads ``rapport demo --customers N --max-orders 1`` into a fresh SQLite file (or reuses
``--data-dir``), plants damaged copies of about ``--rate`` of the customers
(:mod:`rapport.dedup.synth`; the truth goes to ``truth.json`` next to the database), then runs the
scan exactly as ``rapport dedup scan`` does (read through the data-access layer, train, predict,
cluster, store) and prints the wall and CPU time per step (CPU of all threads of this process:
on a machine shared with other work, wall time can be several times the CPU time), the pairs
compared and precision, recall and F1 over pairs (a pair is found when both records end up in one
cluster). DuckDB gets 2 threads. ``--seed`` seeds both the demo data and the planted copies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, help="reuse a data dir (demo data and planted copies)")
    args = ap.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rapport-bench-dedup-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path, truth_path = data_dir / "rapport.db", data_dir / "truth.json"
    os.environ["RAPPORT_DATA_DIR"] = str(data_dir)
    os.environ.pop("RAPPORT_DATABASE_URL", None)

    from rapport.cli.common import settings

    settings()  # configures the master key of the data dir
    from sqlalchemy import select

    from rapport.access.specs import CUSTOMER
    from rapport.db import Database, make_engine
    from rapport.dedup import service, synth

    if not db_path.exists():
        t0 = time.monotonic()
        subprocess.run(
            [str(BIN / "rapport"), "demo", "--customers", str(args.customers), "--seed", str(args.seed),
             "--max-orders", "1", "--no-progress"],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print(f"demo load: {args.customers:,} customers in {time.monotonic() - t0:.1f} s", flush=True)
    database = Database(make_engine(f"sqlite:///{db_path}"))
    if not truth_path.exists():
        t0 = time.monotonic()
        with database.unit(write=True) as session:
            copies = synth.plant(session, rate=args.rate, seed=args.seed)
        truth_path.write_text(json.dumps({str(k): v for k, v in copies.items()}))
        print(f"planted {len(copies):,} damaged copies in {time.monotonic() - t0:.1f} s", flush=True)
    copies = {int(k): v for k, v in json.loads(truth_path.read_text()).items()}

    t0 = time.monotonic()
    cpu0 = time.process_time()
    with database.unit(write=True) as session:
        result = service.scan(session, threshold=args.threshold)
        ids = [int(x) for x in session.execute(select(CUSTOMER.table.c.id)).scalars()]
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    q = service.quality(
        service.cluster_pairs(c.members for c in result.clusters),
        service.truth_pairs(service.entities(ids, copies)),
    )
    steps = ", ".join(f"{k} {v:.1f}/{result.cpu.get(k, 0.0):.1f}" for k, v in result.seconds.items())
    print(f"scan: {result.customers:,} customers, {wall:.1f} s wall, {cpu:.1f} s CPU in this process "
          f"(all threads), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"steps, seconds wall/CPU: {steps}")
    print(f"pairs compared {result.compared:,}, pairs at or above {args.threshold}: {result.matched:,}, "
          f"clusters {len(result.clusters):,}")  # fmt: skip
    print(f"true pairs {q.true_pairs:,}, found {q.found_pairs:,}, correct {q.correct_pairs:,}: "
          f"precision {q.precision:.4f}, recall {q.recall:.4f}, F1 {q.f1:.4f}")  # fmt: skip
    database.dispose()


if __name__ == "__main__":
    main()
