"""Customer export benchmark: rows/s per format and peak memory, on demo data.

    .venv/bin/python bench/export.py --customers 100000 [--formats csv,jsonl,vcard,xlsx] [--as lead.east]
    .venv/bin/python bench/export.py --data-dir DIR          # reuse a data dir that holds demo data

Loads demo customers into a fresh SQLite file with ``rapport demo`` (or reuses --data-dir), then
runs each export in a child process exactly as the CLI and API do (plan through Records, keyset
batches each in its own unit, decrypt and mask contact values per batch, one audit event per
batch, streaming writer) into a file, and prints rows, seconds, rows/s, the resident memory
after the first batches and at the end, and the peak (ru_maxrss): a constant-memory export keeps
the three close whatever the number of rows. ``--profile`` prints the top functions (cProfile).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Row = list[Any]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(fmt: str, out: Path, as_user: str | None, profile: bool) -> dict[str, float]:
    """In the child: one export into ``out``; returns its figures."""
    from rapport.access.principal import SYSTEM
    from rapport.access.records import Records
    from rapport.cli.common import open_database, settings
    from rapport.cli.exports import _principal
    from rapport.customers.schemas import CustomerExportParams
    from rapport.exports.service import plan_customer_export
    from rapport.pagination import CursorCodec

    cursors = CursorCodec(settings().resolved_secret_key())
    with open_database() as db:
        with db.unit(write=False) as session:
            principal = _principal(session, as_user) if as_user else SYSTEM
            plan = plan_customer_export(
                Records(session, principal, cursors), CustomerExportParams(format=fmt)
            )
        early: list[float] = []

        def batches() -> Iterator[list[Row]]:
            for n, batch in enumerate(plan.stream_batches(lambda: db.unit(write=False), cursors)):
                if n == 3:
                    early.append(rss_mib())
                yield batch

        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        with open(out, "wb") as fh:
            for chunk in plan.render(batches()):
                fh.write(chunk)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
                int(os.environ.get("TOP", "18"))
            )
    return {
        "rows": plan.rows,
        "seconds": seconds,
        "rows_per_s": plan.rows / seconds if seconds else 0.0,
        "cpu_seconds": cpu,
        "rows_per_cpu_s": plan.rows / cpu if cpu else 0.0,
        "rss_early_mib": early[0] if early else rss_mib(),
        "rss_end_mib": rss_mib(),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes": out.stat().st_size,
    }


def replicate(times: int) -> None:
    """Grow the demo data ``times``-fold in place: copies of every customer, tag and contact point
    with new ids (contact values re-sealed, since ciphertexts are bound to their row id). Far
    faster than ``rapport demo`` for a million customers; orders and the like are not copied."""
    from sqlalchemy import func, insert, select

    from rapport.cli.common import open_database
    from rapport.models import ContactPoint, Customer, CustomerTag
    from rapport.models.base import table_of
    from rapport.security.keyring import keyring_for, open_rows, sealed_columns

    cust, tags, cps = table_of(Customer), table_of(CustomerTag), table_of(ContactPoint)
    sealed = sealed_columns(cps.name)
    with open_database() as db, db.unit(write=True) as session:
        conn = session.connection()
        ring = keyring_for(session, for_write=True)
        top = conn.execute(select(func.max(cust.c.id))).scalar_one()
        top_cp = conn.execute(select(func.max(cps.c.id))).scalar_one()
        base = [dict(r) for r in conn.execute(select(cust)).mappings()]
        base_tags = [dict(r) for r in conn.execute(select(tags)).mappings()]
        base_cps = [dict(r) for r in conn.execute(select(cps)).mappings()]
        open_rows(session, cps, base_cps)
        for k in range(1, times):
            conn.execute(insert(cust), [{**r, "id": r["id"] + k * top} for r in base])
            conn.execute(insert(tags), [{**r, "customer_id": r["customer_id"] + k * top} for r in base_tags])
            rows = []
            for r in base_cps:
                new = {**r, "id": r["id"] + k * top_cp, "customer_id": r["customer_id"] + k * top}
                for c in sealed:
                    new[c] = ring.seal(cps.name, c, new["id"], r[c])
                rows.append(new)
            conn.execute(insert(cps), rows)
            print(f"replicated {k + 1} x {len(base)} customers", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--data-dir", type=Path, help="reuse a data dir that already holds demo data")
    ap.add_argument("--formats", default="csv,jsonl,vcard,xlsx")
    ap.add_argument("--as", dest="as_user", help="export as this demo user (default: system principal)")
    ap.add_argument("--profile", action="store_true", help="cProfile the export (slower)")
    ap.add_argument("--replicate", type=int, default=1, help="grow the demo data this many times first")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child == "replicate":
        replicate(args.replicate)
        return
    if args.child:
        print(json.dumps(run_one(args.child, args.out, args.as_user, args.profile)))
        return

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rapport-export-bench-"))
    env = {**os.environ, "RAPPORT_DATA_DIR": str(data_dir)}
    env.pop("RAPPORT_DATABASE_URL", None)
    if not (data_dir / "rapport.db").exists():
        t0 = time.monotonic()
        subprocess.run(
            [str(BIN / "rapport"), "demo", "--customers", str(args.customers), "--seed", "42"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"demo load: {args.customers} customers in {time.monotonic() - t0:.1f}s")
    if args.replicate > 1:
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, __file__, "--child", "replicate", "--replicate", str(args.replicate)],
            env=env,
            check=True,
        )
        print(f"replicated {args.replicate}x in {time.monotonic() - t0:.1f}s")
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores shared)")
    heads = [("rows", 10), ("wall s", 8), ("rows/s", 9), ("CPU s", 7), ("rows/CPU s", 11)]
    heads += [("RSS early", 10), ("RSS end", 8), ("peak", 6), ("MiB out", 8)]
    print(f"{'format':<7}" + "".join(f"{name:>{width}}" for name, width in heads))
    for fmt in args.formats.split(","):
        out = data_dir / f"bench-export.{fmt}"
        cmd = [sys.executable, __file__, "--child", fmt, "--out", str(out)]
        if args.as_user:
            cmd += ["--as", args.as_user]
        if args.profile:
            cmd.append("--profile")
        done = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{fmt:<7}{r['rows']:>10,}{r['seconds']:>8.1f}{r['rows_per_s']:>9,.0f}"
            f"{r['cpu_seconds']:>7.1f}{r['rows_per_cpu_s']:>11,.0f}"
            f"{r['rss_early_mib']:>10.0f}{r['rss_end_mib']:>8.0f}{r['peak_mib']:>6.0f}"
            f"{r['bytes'] / 2**20:>8.1f}"
        )
        out.unlink()


if __name__ == "__main__":
    main()
