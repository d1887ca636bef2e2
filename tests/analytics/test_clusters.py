from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from rapport.analytics.clusters import ClustersJob, load_features
from rapport.analytics.jobs import JobContext
from tests.segments.store import AS_OF, empty_store

CATEGORIES = ("数码电子", "家用电器", "美妆个护", "食品饮料")

# Planted groups: (name, size, purchases (lo, hi), order value, recency days (lo, hi), tenure (lo, hi))
PLANTED = (
    ("high-value frequent", 150, (12, 30), 2000.0, (1, 30), (600, 900)),
    ("lapsed low-value one-timers", 250, (1, 1), 120.0, (400, 700), (700, 900)),
    ("new mid-value frequent", 200, (2, 4), 400.0, (1, 40), (20, 90)),
)


def _planted_store(seed: int = 7) -> tuple[duckdb.DuckDBPyConnection, dict[int, int]]:
    rng = np.random.default_rng(seed)
    con = empty_store()
    customers, orders, lines, interactions = [], [], [], []
    truth: dict[int, int] = {}
    cid = oid = 0
    for g, (_, size, (f_lo, f_hi), value, (r_lo, r_hi), (t_lo, t_hi)) in enumerate(PLANTED):
        for _ in range(size):
            cid += 1
            truth[cid] = g
            tenure = int(rng.integers(t_lo, t_hi + 1))
            created = AS_OF - dt.timedelta(days=tenure)
            customers.append((cid, created, True))
            n = int(rng.integers(f_lo, f_hi + 1))
            last = min(int(rng.integers(r_lo, r_hi + 1)), tenure)
            days = [*np.sort(rng.uniform(last, tenure, size=n - 1)).tolist(), last]
            for d in days:
                oid += 1
                amount = float(value * rng.lognormal(0, 0.2))
                orders.append((oid, cid, AS_OF - dt.timedelta(days=float(d)), "completed", amount))
                lines.append((oid, oid, 1 + int(rng.integers(0, len(CATEGORIES))), amount))
            for _ in range(int(rng.poisson(3 if g == 0 else 0.3))):
                interactions.append(
                    (len(interactions) + 1, cid, AS_OF - dt.timedelta(days=float(rng.uniform(1, 300))))
                )
    # A refused-profiling customer with a big history: never clustered.
    customers.append((cid + 1, AS_OF - dt.timedelta(days=800), False))
    orders.append((oid + 1, cid + 1, AS_OF - dt.timedelta(days=3), "completed", 5000.0))
    frames = {
        "c": pd.DataFrame(customers, columns=["customer_id", "created_at", "profiling_allowed"]),
        "o": pd.DataFrame(
            orders, columns=["order_id", "customer_id", "ordered_at", "status", "total_amount"]
        ),
        "l": pd.DataFrame(lines, columns=["line_id", "order_id", "product_id", "line_total"]),
        "i": pd.DataFrame(interactions, columns=["interaction_id", "customer_id", "occurred_at"]),
    }
    for name, frame in frames.items():
        con.register(name, frame)
    con.execute("INSERT INTO customers (customer_id, created_at, profiling_allowed) SELECT * FROM c")
    con.execute(
        "INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount) SELECT * FROM o"
    )
    con.execute("INSERT INTO order_lines (line_id, order_id, product_id, line_total) SELECT * FROM l")
    con.execute("INSERT INTO interactions (interaction_id, customer_id, occurred_at) SELECT * FROM i")
    for pid, cat in enumerate(CATEGORIES, start=1):
        con.execute("INSERT INTO products VALUES (?, ?, ?, ?, 1.0, TRUE)", [pid, f"SKU{pid}", cat, cat])
    return con, truth


@pytest.fixture(scope="module")
def planted() -> tuple[duckdb.DuckDBPyConnection, dict[int, int]]:
    return _planted_store()


def test_features_per_buyer(planted: tuple[duckdb.DuckDBPyConnection, dict[int, int]]) -> None:
    con, truth = planted
    frame = load_features(con, AS_OF)
    assert len(frame) == len(truth)  # the refused-profiling customer is left out
    shares = frame[[c for c in frame.columns if c.startswith("share_")]]
    assert sorted(shares.columns) == sorted(f"share_{c}" for c in CATEGORIES)
    assert np.allclose(shares.sum(axis=1), 1.0)
    first = frame.iloc[0]
    assert first["monetary"] == pytest.approx(first["aov"] * first["frequency"])


def test_planted_clusters_are_recovered(planted: tuple[duckdb.DuckDBPyConnection, dict[int, int]]) -> None:
    con, truth = planted
    result = ClustersJob().run(con, JobContext(as_of=AS_OF))
    assert result.metrics["k"] == 3.0
    assert result.metrics["silhouette_k3"] == max(v for k, v in result.metrics.items() if k.startswith("sil"))
    found = {s.customer_id: int(s.value or 0) for s in result.scores}
    assert set(found) == set(truth)
    ids = sorted(truth)
    ari = adjusted_rand_score([truth[i] for i in ids], [found[i] for i in ids])
    assert ari > 0.95, ari
    # Each planted group's majority cluster carries the planted name.
    labels = {s.customer_id: s.label for s in result.scores}
    for g, (name, *_rest) in enumerate(PLANTED):
        members = [labels[i] for i in ids if truth[i] == g]
        assert max(set(members), key=members.count) == name
    profiles = result.tables["profiles"]
    assert sorted(profiles["size"]) == sorted(p[1] for p in PLANTED)
    assert all(s.kind == "cluster" for s in result.scores)
