"""Behavioural clusters of customers (KMeans) with a readable profile and name per cluster.

Who is clustered: customers with ``profiling_allowed`` and at least one purchase (status paid,
shipped or completed) up to ``as_of``; people who never bought have no behaviour to cluster.

Features per customer (as of ``as_of``):

* ``recency_days``: days since the last purchase; ``frequency``: number of purchases;
  ``monetary``: their total; ``aov``: average order value; ``tenure_days``: days since the
  customer record was created; ``interactions``: interactions in the last 365 days;
* ``share_<category>``: share of the customer's line totals per product category, shrunk towards
  the population's mix with the weight of two orders: ``(share * n + 2 * population) / (n + 2)``
  for a customer with ``n`` purchases (one purchase says little about taste).

Scaling: ``log1p`` of the six counts and amounts (they are heavy-tailed), then standard scaling.
The category shares are standardised and multiplied by ``1/sqrt(number of categories)`` so the
whole taste block weighs as much as one behavioural feature and cannot drown recency/frequency/
value in noise.

Choice of k (the stated criterion): KMeans (k-means++, 4 restarts, fixed seed) is fitted for every
k in 2..8 on a random sample of at most 20,000 customers; the k with the highest mean silhouette
coefficient, computed on at most 5,000 of those customers, wins (ties: the smaller k). The final
model is that fit; every customer is then assigned to the nearest centre.

Names come from the cluster medians compared with the medians of everyone clustered: a value word
(``high-value``/``mid-value``/``low-value``: median spend >= 1.5x, between, <= 0.67x), a frequency
word (``one-timers`` when the median customer bought once, ``frequent`` when >= 1.5x the overall
median frequency and >= 3, ``occasional`` otherwise), prefixed by ``lapsed`` (median recency
> 1.5x overall and > 180 days), ``new`` (median tenure < 120 days) or nothing. Duplicate names get
``#2``, ``#3``. E.g. "high-value frequent", "lapsed low-value one-timers".
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from rapport.analytics.jobs import JobContext, JobResult, ScoreRow
from rapport.analytics.store import PURCHASE_STATUSES

BEHAVIOUR = ("recency_days", "frequency", "monetary", "aov", "tenure_days", "interactions")
K_RANGE = range(2, 9)
# fit() needs two more customers than the largest k it tries.
MIN_CUSTOMERS = max(K_RANGE) + 2
FIT_SAMPLE = 20_000
SILHOUETTE_SAMPLE = 5_000
PRIOR_ORDERS = 2.0


@dataclass(frozen=True)
class ClusterModel:
    k: int
    silhouette: dict[int, float]  # k -> mean silhouette on the sample
    labels: NDArray[np.int64]  # per customer row of the features frame
    names: list[str]
    profiles: pd.DataFrame  # one row per cluster: name, size, share, medians of features


def load_features(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    """One row per profiling-allowed buyer: behaviour columns and ``share_<category>`` columns."""
    t = as_of.astimezone(dt.UTC).replace(tzinfo=None) if as_of.tzinfo else as_of
    statuses = ", ".join(f"'{s}'" for s in PURCHASE_STATUSES)
    base = con.execute(
        f"""
        WITH o AS (
            SELECT customer_id, count(*) AS frequency, sum(total_amount) AS monetary,
                   max(ordered_at) AS last_order
            FROM orders WHERE status IN ({statuses}) AND ordered_at <= ?
            GROUP BY customer_id
        ), i AS (
            SELECT customer_id, count(*) AS interactions FROM interactions
            WHERE occurred_at <= ? AND occurred_at > ? - INTERVAL 365 DAY GROUP BY customer_id
        )
        SELECT c.customer_id,
               CAST(date_diff('day', o.last_order, ?) AS DOUBLE) AS recency_days,
               CAST(o.frequency AS DOUBLE) AS frequency,
               o.monetary AS monetary,
               o.monetary / o.frequency AS aov,
               CAST(greatest(date_diff('day', c.created_at, ?), 0) AS DOUBLE) AS tenure_days,
               CAST(coalesce(i.interactions, 0) AS DOUBLE) AS interactions
        FROM customers c JOIN o USING (customer_id) LEFT JOIN i USING (customer_id)
        WHERE c.profiling_allowed
        ORDER BY c.customer_id
        """,  # noqa: S608 (statuses are constants of this module)
        [t, t, t, t, t],
    ).df()
    mix = con.execute(
        f"""
        SELECT o.customer_id, coalesce(p.category, 'other') AS category, sum(l.line_total) AS amount
        FROM order_lines l JOIN orders o USING (order_id) JOIN products p USING (product_id)
        WHERE o.status IN ({statuses}) AND o.ordered_at <= ?
        GROUP BY ALL
        """,  # noqa: S608
        [t],
    ).df()
    if len(mix):
        wide = mix.pivot_table(index="customer_id", columns="category", values="amount", fill_value=0.0)
        totals = wide.sum(axis=1).replace(0, np.nan)
        shares = wide.div(totals, axis=0).fillna(0.0)
        shares.columns = [f"share_{c}" for c in shares.columns]
        base = base.merge(shares, left_on="customer_id", right_index=True, how="left")
    share_cols = [c for c in base.columns if c.startswith("share_")]
    base[share_cols] = base[share_cols].fillna(0.0)
    base[list(BEHAVIOUR)] = base[list(BEHAVIOUR)].fillna(0.0).clip(lower=0.0)
    if share_cols:
        # Shrink each customer's mix towards everyone's with the weight of PRIOR_ORDERS orders: one
        # purchase says little about taste, and unshrunk one-hot mixes split one-timers by category.
        population = base[share_cols].mul(base["monetary"], axis=0).sum()
        population = population / population.sum() if population.sum() > 0 else population
        f = base["frequency"].to_numpy()[:, None]
        base[share_cols] = (base[share_cols].to_numpy() * f + PRIOR_ORDERS * population.to_numpy()) / (
            f + PRIOR_ORDERS
        )
    return base.reset_index(drop=True)


def design_matrix(frame: pd.DataFrame) -> NDArray[np.float64]:
    """log1p + standard scaling; the category-share block weighted to one feature in total."""
    parts = []
    behaviour = np.log1p(frame[list(BEHAVIOUR)].to_numpy(dtype=np.float64))
    parts.append(_standardise(behaviour))
    share_cols = [c for c in frame.columns if c.startswith("share_")]
    if share_cols:
        shares = _standardise(frame[share_cols].to_numpy(dtype=np.float64))
        parts.append(shares / math.sqrt(len(share_cols)))
    return np.hstack(parts)


def _standardise(x: NDArray[np.float64]) -> NDArray[np.float64]:
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return (x - x.mean(axis=0)) / sd  # type: ignore[no-any-return]


def fit(frame: pd.DataFrame, *, seed: int = 0, k_range: range = K_RANGE) -> ClusterModel:
    if len(frame) < max(k_range) + 2:
        raise ValueError(f"need at least {max(k_range) + 2} customers to cluster, got {len(frame)}")
    x = design_matrix(frame)
    rng = np.random.default_rng(seed)
    fit_idx = rng.choice(len(x), size=min(FIT_SAMPLE, len(x)), replace=False)
    sample = x[fit_idx]
    sil_idx = rng.choice(len(sample), size=min(SILHOUETTE_SAMPLE, len(sample)), replace=False)
    scores: dict[int, float] = {}
    models: dict[int, KMeans] = {}
    for k in k_range:
        model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sample)
        models[k] = model
        scores[k] = float(silhouette_score(sample[sil_idx], model.labels_[sil_idx]))
    best = max(scores, key=lambda k: (scores[k], -k))
    labels = models[best].predict(x).astype(np.int64)
    names, profiles = profile(frame, labels, best)
    return ClusterModel(best, scores, labels, names, profiles)


def _name(med: pd.Series, overall: pd.Series) -> str:
    words = []
    if med["recency_days"] > 1.5 * overall["recency_days"] and med["recency_days"] > 180:
        words.append("lapsed")
    elif med["tenure_days"] < 120:
        words.append("new")
    ratio = med["monetary"] / overall["monetary"] if overall["monetary"] > 0 else 1.0
    words.append("high-value" if ratio >= 1.5 else "low-value" if ratio <= 0.67 else "mid-value")
    if med["frequency"] <= 1:
        words.append("one-timers")
    elif med["frequency"] >= 1.5 * overall["frequency"] and med["frequency"] >= 3:
        words.append("frequent")
    else:
        words.append("occasional")
    return " ".join(words)


def profile(frame: pd.DataFrame, labels: NDArray[np.int64], k: int) -> tuple[list[str], pd.DataFrame]:
    cols = list(BEHAVIOUR) + [c for c in frame.columns if c.startswith("share_")]
    overall = frame[cols].median()
    rows = []
    names: list[str] = []
    for c in range(k):
        part = frame.loc[labels == c, cols]
        med = part.median() if len(part) else overall
        name = _name(med, overall)
        n = 2
        base = name
        while name in names:
            name, n = f"{base} #{n}", n + 1
        names.append(name)
        rows.append({"cluster": c, "name": name, "size": len(part), "share": len(part) / len(frame), **med})
    return names, pd.DataFrame(rows)


class ClustersJob:
    name = "clusters"
    model_version = "kmeans-silhouette-1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        frame = load_features(con, ctx.as_of)
        if len(frame) < MIN_CUSTOMERS:
            # Too few buyers for a silhouette choice of k: no clusters rather than arbitrary ones.
            return JobResult(metrics={"customers": float(len(frame)), "skipped": 1.0})
        ctx.progress(0.1, "fitting")
        model = fit(frame, seed=int(ctx.params.get("seed", 0)))
        ids = frame["customer_id"].to_numpy()
        scores = [
            ScoreRow(int(cid), "cluster", float(lab), model.names[lab], {"cluster": int(lab)})
            for cid, lab in zip(ids, model.labels.tolist(), strict=True)
        ]
        ctx.progress(1.0, "scored")
        metrics = {"k": float(model.k), "customers": float(len(frame))}
        metrics |= {f"silhouette_k{k}": v for k, v in model.silhouette.items()}
        return JobResult(scores=scores, tables={"profiles": model.profiles}, metrics=metrics)
