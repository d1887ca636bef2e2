"""Records for runner and API tests: three purchasers with worked-out RFM scores as of 2025-06-30.

n = 3 purchasers, 5 bins: score = floor(rank * 5 / 3) + 1, so ranks 0, 1, 2 score 1, 2, 4.

    A: 2025-06-01 100 + 2025-06-20 300 -> recency 10, F 2, M 400  -> r4 f4 m2 (442), potential loyalists
    B: 2025-01-10 50                   -> recency 171, F 1, M 50  -> r1 f1 m1 (111), lost
    C: 2025-05-01 1000 (+ a cancelled) -> recency 60, F 1, M 1000 -> r2 f1 m4 (214), at risk
    D: no orders
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import update

from rapport.models import Customer
from tests.factories import Factory

AS_OF = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)


def day(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 12, tzinfo=dt.UTC)


def build(factory: Factory, team_a: int | None = None, team_b: int | None = None) -> dict[str, int]:
    a = factory.customer(team_id=team_a, gender="female", region="East")
    b = factory.customer(team_id=team_a, gender="male", region="North")
    c = factory.customer(team_id=team_b, gender="female", region="=cmd")
    d = factory.customer(team_id=team_b, gender="male", region="East")
    # Customers exist before as_of (breakdowns count customers created by then).
    factory.conn.execute(
        update(Customer).where(Customer.id.in_([a, b, c, d])).values(created_at=day(2024, 12, 1))
    )
    for cid in (a, b, c, d):
        factory.consent(cid, "profiling")
    factory.order(a, total=Decimal("100.00"), ordered_at=day(2025, 6, 1))
    factory.order(a, total=Decimal("300.00"), ordered_at=day(2025, 6, 20))
    factory.order(b, total=Decimal("50.00"), ordered_at=day(2025, 1, 10), status="paid")
    factory.order(c, total=Decimal("1000.00"), ordered_at=day(2025, 5, 1), status="shipped")
    factory.order(c, total=Decimal("999.00"), ordered_at=day(2025, 6, 2), status="cancelled")
    return {"a": a, "b": b, "c": c, "d": d}
