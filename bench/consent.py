"""Time consent checks: one may_use probe and the bulk allowed_customer_ids select.

    .venv/bin/python bench/consent.py [--customers 100000] [--probes 20000] [--url sqlite:///...]

Loads customers and a consent ledger (each customer: a few grants, some later withdrawn, 2%
restricted) into a fresh migrated database, then prints the mean and p99 of single may_use calls
(current state and as of a past instant) and the wall time of counting allowed_customer_ids.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

from rich.progress import Progress
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from rapport import migrate
from rapport.db import make_engine
from rapport.models import ConsentEvent, ConsentState, Customer, ProcessingRestriction
from rapport.models.base import utcnow
from rapport.privacy.consent import Purpose, allowed_customer_ids, may_use

PURPOSES = [Purpose.marketing_email, Purpose.marketing_sms, Purpose.profiling]


def load(session: Session, customers: int, rng: random.Random) -> None:
    now = utcnow()
    start = now - dt.timedelta(days=365)
    batch = 5000
    with Progress() as progress:
        task = progress.add_task("loading", total=customers)
        for first in range(0, customers, batch):
            ids = range(first + 1, min(first + batch, customers) + 1)
            session.execute(
                insert(Customer),
                [
                    {
                        "id": i,
                        "display_name": f"c{i}",
                        "lifecycle_stage": "customer",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                        "version": 1,
                    }
                    for i in ids
                ],
            )
            events, states, restricted = [], [], []
            for i in ids:
                for p in PURPOSES:
                    if rng.random() < 0.6:
                        at = start + dt.timedelta(days=rng.randint(0, 300))
                        events.append(
                            {
                                "customer_id": i,
                                "purpose": p.value,
                                "granted": True,
                                "source": "import",
                                "at": at,
                                "actor_kind": "system",
                            }
                        )
                        granted = rng.random() > 0.2
                        if not granted:
                            events.append(
                                {
                                    "customer_id": i,
                                    "purpose": p.value,
                                    "granted": False,
                                    "source": "import",
                                    "at": at + dt.timedelta(days=30),
                                    "actor_kind": "system",
                                }
                            )
                        states.append((i, p.value, granted, at))
                if rng.random() < 0.02:
                    restricted.append(
                        {
                            "customer_id": i,
                            "restricted": True,
                            "reason": "bench",
                            "changed_at": now,
                            "changed_by": None,
                        }
                    )
            session.execute(insert(ConsentEvent), events)
            ids_by_key = {
                (r.customer_id, r.purpose): r.id
                for r in session.execute(
                    select(
                        ConsentEvent.customer_id, ConsentEvent.purpose, func.max(ConsentEvent.id).label("id")
                    )
                    .where(ConsentEvent.customer_id.between(ids[0], ids[-1]))
                    .group_by(ConsentEvent.customer_id, ConsentEvent.purpose)
                )
            }
            session.execute(
                insert(ConsentState),
                [
                    {
                        "customer_id": i,
                        "purpose": p,
                        "partner_key": 0,
                        "granted": g,
                        "at": at,
                        "event_id": ids_by_key[(i, p)],
                    }
                    for i, p, g, at in states
                ],
            )
            if restricted:
                session.execute(insert(ProcessingRestriction), restricted)
            session.commit()
            progress.advance(task, len(ids))


def timed(fn: object, probes: list[int], purpose: Purpose, session: Session, **kw: object) -> list[float]:
    out = []
    for cid in probes:
        started = time.perf_counter()
        may_use(session, cid, purpose, **kw)  # type: ignore[arg-type]
        out.append((time.perf_counter() - started) * 1000)
    return out


def since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def report(name: str, ms: list[float]) -> None:
    ms.sort()
    print(f"{name:<38} mean {statistics.fmean(ms):7.3f} ms   p99 {ms[int(len(ms) * 0.99)]:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=20_000)
    parser.add_argument(
        "--url", default=None, help="empty database to use (default: a temporary SQLite file)"
    )
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench-consent.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    rng = random.Random(42)
    with Session(engine) as session:
        load(session, args.customers, rng)
        probes = [rng.randint(1, args.customers) for _ in range(args.probes)]
        report("may_use (current state)", timed(may_use, probes, Purpose.profiling, session))
        past = utcnow() - dt.timedelta(days=90)
        report("may_use (as of 90 days ago)", timed(may_use, probes, Purpose.profiling, session, at=past))
        started = time.perf_counter()
        count = session.execute(
            select(func.count()).select_from(allowed_customer_ids(session, Purpose.profiling).subquery())
        ).scalar_one()
        print(f"allowed_customer_ids(profiling)          {count:,} in {since(started):.1f} ms")
        started = time.perf_counter()
        count = session.execute(
            select(func.count()).select_from(
                allowed_customer_ids(session, Purpose.profiling, at=past).subquery()
            )
        ).scalar_one()
        print(f"allowed_customer_ids(profiling, at=past) {count:,} in {since(started):.1f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
