"""What field encryption costs: reads and bulk inserts with encryption on and off, same run.

    .venv/bin/python bench/encryption.py [--customers 2000] [--reads 3000] [--http-reads 600]
                                         [--bulk 20000]

Builds two SQLite files from the same seed, one with field encryption on (the default) and one
with RAPPORT_FIELD_ENCRYPTION=off (for this comparison only), then measures on each:

- demo load: customers/s of the bulk loader (executemany; contact values sealed per row),
- bulk insert of contact points alone: rows/s through the loader's path (id, 5 sealed columns,
  blind index, one executemany per 1,000 rows),
- GET customer by id with its contact points through the data-access layer (scoped, masked,
  decrypted; no HTTP, no audit write): reads/s,
- GET /api/v1/customers/{id}/360 in process (authenticated, audited, JSON): requests/s.

Single process, sequential. Rates are per CPU-second of this process (time.process_time, all
its threads, SQLite included): on a machine shared with other work, wall-clock rates measure
the neighbours more than the code. Comparable between the two modes only.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport import migrate
from rapport.access.principal import SYSTEM
from rapport.access.records import Records
from rapport.access.specs import CONTACT_POINT, CUSTOMER
from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database, make_engine
from rapport.demo.generator import DEFAULT_DEMO_PASSWORD, DemoConfig, load_demo
from rapport.models import ContactPoint, Customer
from rapport.models.base import table_of, utcnow
from rapport.pagination import CursorCodec
from rapport.security import crypto
from rapport.security.keyring import keyring_for, sealed_columns

CP = table_of(ContactPoint)


def _timed(fn: Callable[[], Any], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return n / (time.process_time() - started)


def build(path: Path, customers: int) -> tuple[Database, float]:
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db = Database(make_engine(url))
    started = time.process_time()
    with db.unit(write=True) as session:
        load_demo(session, DemoConfig(customers=customers, seed=7, max_orders_per_customer=10, workers=0))
    return db, customers / (time.process_time() - started)


def bulk_contacts(db: Database, rows: int) -> float:
    """The loader's contact path alone: allocate ids, seal, blind-index, executemany."""
    columns = ("id", "customer_id", "kind", "label", "value", "value_normalized", "district", "postal_code")
    columns += ("is_primary", "is_verified", "created_at", "updated_at", "version", "value_bidx")
    sealed = sealed_columns("contact_point")
    rng = random.Random(1)
    with db.unit(write=True) as session:
        conn = session.connection()
        customer_ids = list(conn.execute(select(table_of(Customer).c.id)).scalars())
        next_id = int(conn.execute(select(func.coalesce(func.max(CP.c.id), 0))).scalar_one()) + 1
        now = utcnow().isoformat(" ", "microseconds")[:26]
        started = time.process_time()
        ring = keyring_for(session, for_write=True)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO contact_point ({', '.join(columns)}) VALUES ({marks})"
        batch: list[tuple[Any, ...]] = []
        for i in range(rows):
            rid = next_id + i
            phone = f"+86139{rng.randrange(10**8):08d}"
            values = {"label": "手机", "value": phone, "value_normalized": phone, "district": "浦东新区"}
            values["postal_code"] = "200120"
            for c in sealed:
                values[c] = ring.seal("contact_point", c, rid, values[c])
            row = [rid, rng.choice(customer_ids), "phone", values["label"], values["value"]]
            row += [values["value_normalized"], values["district"], values["postal_code"], False, False]
            row += [now, now, 1, crypto.blind_index("phone", phone)]
            batch.append(tuple(row))
            if len(batch) == 1000:
                conn.exec_driver_sql(sql, batch)
                batch = []
        if batch:
            conn.exec_driver_sql(sql, batch)
        elapsed = time.process_time() - started
    return rows / elapsed


def reads_dal(db: Database, ids: list[int], n: int) -> float:
    cursors = CursorCodec("bench-secret-" + "x" * 32)
    rng = random.Random(2)

    def one() -> None:
        cid = rng.choice(ids)
        with db.unit(write=False) as session:
            recs = Records(session, SYSTEM, cursors)
            recs.get(CUSTOMER, cid, audit_action=None)
            stmt = recs.select(CONTACT_POINT).where(CONTACT_POINT.table.c.customer_id == cid)
            rows = recs.open(CONTACT_POINT, [dict(r) for r in session.execute(stmt).mappings()])
            assert all(isinstance(r["value"], str) for r in rows)

    return _timed(one, n)


def reads_http(
    db: Database, data_dir: Path, ids: list[int], n: int, master: crypto.KeyProvider, enabled: bool
) -> float:
    settings = Settings(data_dir=data_dir, secret_key="bench-secret-" + "x" * 32, tune_gc=False)
    app = create_app(settings, db)
    crypto.configure(master, enabled=enabled)  # create_app configured the settings' key; use ours
    rng = random.Random(3)
    with TestClient(app) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": DEFAULT_DEMO_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def one() -> None:
            r = client.get(f"/api/v1/customers/{rng.choice(ids)}/360", headers=headers)
            assert r.status_code == 200, r.text

        return _timed(one, n)


def primitives(n: int = 50_000) -> dict[str, float]:
    """Microseconds per call of the primitives every sealed value goes through."""
    ring_key = AESGCM(os.urandom(32))
    value = b"+8613912345678"
    blob = crypto.seal_bytes(ring_key, 1, "contact_point", "value", 1, value)
    out = {}
    for name, fn in {
        "seal one value (AES-256-GCM, row-bound AAD)": lambda: crypto.seal_bytes(
            ring_key, 1, "contact_point", "value", 1, value
        ),
        "open one value": lambda: crypto.open_bytes(
            lambda _v: ring_key, "contact_point", "value", 1, blob, allow_plain=False
        ),
        "blind index (HMAC-SHA256, truncated)": lambda: crypto.blind_index("phone", "+8613912345678"),
    }.items():
        out[name] = 1e6 / _timed(fn, n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--http-reads", type=int, default=600)
    parser.add_argument("--bulk", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many read runs")
    args = parser.parse_args()

    master = crypto.LocalKeyProvider(os.urandom(32))
    modes = ("off", "on")
    samples: dict[str, dict[str, list[float]]] = {m: {} for m in modes}

    def add(mode: str, key: str, value: float) -> None:
        samples[mode].setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(prefix="rapport-bench-enc-") as tmp:
        dbs: dict[str, tuple[Database, list[int]]] = {}
        crypto.configure(master)
        warm, _ = build(Path(tmp) / "warm-up.db", 100)  # imports, statement caches, first key
        reads_dal(warm, [1, 2, 3], 50)
        warm.dispose()
        # The machine is shared: every measurement alternates the two modes, and reads are the
        # median of --repeat alternating rounds.
        for round_ in range(args.repeat):
            for mode in modes:
                crypto.configure(master, enabled=mode == "on")
                if round_ == 0:
                    db, load_rate = build(Path(tmp) / f"{mode}.db", args.customers)
                    with db.unit(write=False) as session:
                        ids = list(session.execute(select(CP.c.customer_id).distinct()).scalars())
                    dbs[mode] = (db, ids)
                    add(mode, "demo load, customers/s", load_rate)
                db, ids = dbs[mode]
                add(mode, "bulk insert contact points, rows/s", bulk_contacts(db, args.bulk // args.repeat))
                add(
                    mode,
                    "GET customer + contact points (data-access layer), reads/s",
                    reads_dal(db, ids, args.reads),
                )
                add(
                    mode,
                    "GET /customers/{id}/360 (in-process HTTP), req/s",
                    reads_http(db, Path(tmp), ids, args.http_reads, master, mode == "on"),
                )
        for db, _ in dbs.values():
            db.dispose()
    results = {m: {k: statistics.median(v) for k, v in samples[m].items()} for m in modes}
    for name, micros in primitives().items():
        print(f"{name}: {micros:.1f} µs")
    width = max(len(k) for k in results["on"])
    print(f"{'measure':<{width}}  {'encryption off':>14}  {'encryption on':>13}  {'cost':>7}")
    for key in results["on"]:
        off, on = results["off"][key], results["on"][key]
        print(f"{key:<{width}}  {off:>14,.0f}  {on:>13,.0f}  {100 * (off - on) / off:>6.1f}%")


if __name__ == "__main__":
    main()
