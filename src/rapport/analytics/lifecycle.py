"""Lifecycle stage of every customer as of a date, stage transitions over time, early warnings.

Stages (checked in this order; the first that applies wins). ``days since last`` counts whole days
from the last purchase day to ``as_of``; purchases are orders with a purchase status before
``as_of``; ``gap`` = days between consecutive purchase days of a customer.

=============  ===========================================================================================
``potential``  no purchase yet.
``churned``    no purchase for ``churn_days`` (default 365) days, or P(alive) < ``churn_p_alive`` (0.15).
``new``        first purchase within the last ``new_days`` (90) days.
``won_back``   the latest purchase ended a gap of at least ``churn_days`` (or the previous run had the
               customer ``churned``), and that return purchase is within ``won_back_days`` (180).
``declining``  days since last > ``decline_gap_factor`` (2.0) × the customer's typical gap (median gap;
               the population's median gap for one-time buyers), or P(alive) < ``decline_p_alive`` (0.5).
``active``     everyone else who has purchased.
=============  ===========================================================================================

P(alive) comes from a BG/NBD model fitted (weekly grid) on the purchases of the customers that may
be profiled; when the model cannot be fitted (little data) the P(alive) rules are skipped. BG/NBD
gives one-time buyers P(alive) = 1, so for them only the day rules apply.

``risk`` = max(1 − P(alive), min(1, days since last / churn_days)); ``None`` for ``potential``.

``LifecycleJob`` (name ``lifecycle``) scores customers with ``profiling_allowed`` (kind
``lifecycle``, label = stage, value = risk) and returns the tables ``stages`` (this run's stage and
risk per customer, which the next run reads back as ``result_lifecycle_stages``), ``transitions``
(customer_id, from_stage, to_stage, at: the previous history from ``result_lifecycle_transitions``
plus this run's changes; a customer's first stage is recorded with from_stage NULL) and
``early_warning``: valuable customers (in the top ``valuable_share``, default 20%, of purchasers by
historical margin, or by predicted 12-month margin = BG/NBD expected purchases × average order
margin) whose risk rose by at least ``risk_rise`` (0.1) since the previous run or whose stage moved from
new/active/won_back to declining/churned. All thresholds are ``JobContext.params`` keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from rapport.analytics.clv import (
    FitError,
    expected_purchases,
    fit_bgnbd,
    months_to_units,
    prob_alive,
    summarise,
)
from rapport.analytics.customer_value import historical_value
from rapport.analytics.jobs import JobContext, JobResult, ScoreRow
from rapport.analytics.storeio import naive_utc, profiling_customers, purchases, report

STAGES = ("potential", "new", "active", "declining", "churned", "won_back")
_GOOD = {"new", "active", "won_back"}
_BAD = {"declining", "churned"}


@dataclass(frozen=True)
class Thresholds:
    new_days: int = 90
    churn_days: int = 365
    won_back_days: int = 180
    decline_gap_factor: float = 2.0
    decline_p_alive: float = 0.5
    churn_p_alive: float = 0.15
    valuable_share: float = 0.2
    risk_rise: float = 0.1

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Thresholds:
        known = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
        return cls(**known)


@dataclass(frozen=True)
class CustomerHistory:
    """Purchase-day facts per customer (aligned arrays); NaN where a customer has no purchase."""

    customer_ids: np.ndarray
    days_since_first: np.ndarray
    days_since_last: np.ndarray
    typical_gap: np.ndarray  # median gap between purchase days; NaN with fewer than two
    last_gap: np.ndarray  # gap ending at the latest purchase; NaN with fewer than two
    p_alive: np.ndarray = field(default_factory=lambda: np.empty(0))


def purchase_history(frame: pd.DataFrame, customer_ids: np.ndarray, as_of: dt.datetime) -> CustomerHistory:
    """Facts per customer from purchase rows (customer_id, ordered_at)."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    n = len(ids)
    since_first = np.full(n, np.nan)
    since_last = np.full(n, np.nan)
    typical = np.full(n, np.nan)
    last_gap = np.full(n, np.nan)
    if not frame.empty:
        today = np.datetime64(naive_utc(as_of).date(), "D")
        days = frame["ordered_at"].to_numpy().astype("datetime64[D]")
        distinct = pd.DataFrame({"c": frame["customer_id"].to_numpy(), "d": days}).drop_duplicates()
        distinct = distinct.sort_values(["c", "d"], kind="stable")
        c = distinct["c"].to_numpy()
        d = distinct["d"].to_numpy().astype("datetime64[D]")
        pos = np.searchsorted(ids, c)
        ok = (pos < n) & (ids[np.minimum(pos, n - 1)] == c)
        c, d, pos = c[ok], d[ok], pos[ok]
        age = (today - d).astype(np.float64)
        since_last_all = np.full(n, np.inf)
        np.minimum.at(since_last_all, pos, age)
        since_first_all = np.full(n, -np.inf)
        np.maximum.at(since_first_all, pos, age)
        has = np.isfinite(since_last_all)
        since_last[has], since_first[has] = since_last_all[has], since_first_all[has]
        same = np.zeros(len(c), dtype=bool)
        same[1:] = c[1:] == c[:-1]
        gaps = pd.DataFrame({"pos": pos[same], "gap": (d[1:] - d[:-1]).astype(np.float64)[same[1:]]})
        if not gaps.empty:
            med = gaps.groupby("pos")["gap"].median()
            typical[med.index.to_numpy()] = med.to_numpy()
            lastg = gaps.groupby("pos")["gap"].last()
            last_gap[lastg.index.to_numpy()] = lastg.to_numpy()
    return CustomerHistory(ids, since_first, since_last, typical, last_gap, np.full(n, np.nan))


def assign_stages(
    history: CustomerHistory, thresholds: Thresholds, previous_stage: dict[int, str] | None = None
) -> tuple[list[str], np.ndarray]:
    """(stage per customer, risk per customer; NaN for potential) by the documented rules."""
    t = thresholds
    previous_stage = previous_stage or {}
    typical_known = history.typical_gap[np.isfinite(history.typical_gap)]
    population_gap = float(np.median(typical_known)) if len(typical_known) else float(t.churn_days) / 2
    alive = history.p_alive if len(history.p_alive) == len(history.customer_ids) else None
    stages: list[str] = []
    risk = np.full(len(history.customer_ids), np.nan)
    for i, cid in enumerate(history.customer_ids.tolist()):
        last = history.days_since_last[i]
        if np.isnan(last):
            stages.append("potential")
            continue
        p = float(alive[i]) if alive is not None and np.isfinite(alive[i]) else None
        risk[i] = max(1.0 - p if p is not None else 0.0, min(1.0, last / t.churn_days))
        typical = history.typical_gap[i] if np.isfinite(history.typical_gap[i]) else population_gap
        # Back after having been churned: by the purchase history, or by the previous run's stage.
        returned = bool(np.isfinite(history.last_gap[i]) and history.last_gap[i] >= t.churn_days) or (
            previous_stage.get(int(cid)) == "churned"
        )
        if last >= t.churn_days or (p is not None and p < t.churn_p_alive):
            stage = "churned"
        elif history.days_since_first[i] <= t.new_days and not returned:
            stage = "new"
        elif returned and last <= t.won_back_days:
            stage = "won_back"
        elif last > t.decline_gap_factor * typical or (p is not None and p < t.decline_p_alive):
            stage = "declining"
        else:
            stage = "active"
        stages.append(stage)
    return stages, risk


def _previous(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame | None:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchall()
    if not exists[0][0]:
        return None
    return con.execute(f"SELECT * FROM {table}").df()  # noqa: S608 - fixed table names only


class LifecycleJob:
    """Lifecycle stage and risk per profiled customer, transitions, early warnings."""

    name = "lifecycle"
    model_version = "lifecycle-1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        t = Thresholds.from_params(ctx.params)
        as_of = naive_utc(ctx.as_of)
        report(ctx, 0, 3, "reading purchases")
        ids = profiling_customers(con)
        frame = purchases(con, as_of)
        history = purchase_history(frame, ids, as_of)
        metrics: dict[str, float] = {"p_alive_model": 0.0}
        expected_12m = np.full(len(ids), np.nan)
        if not frame.empty:
            report(ctx, 1, 3, "fitting BG/NBD for P(alive)")
            end = (as_of - dt.timedelta(microseconds=1)).date()
            summary = summarise(
                frame["customer_id"].to_numpy(),
                frame["ordered_at"].to_numpy().astype("datetime64[D]"),
                None,
                end,
                "week",
            )
            try:
                if np.count_nonzero(summary.frequency > 0) >= 20:
                    bg = fit_bgnbd(summary)
                    alive = prob_alive(bg, summary.frequency, summary.recency, summary.T)
                    pos = np.searchsorted(ids, summary.customer_ids)
                    history.p_alive[pos] = alive
                    horizon = months_to_units(12, "week")
                    expected_12m[pos] = expected_purchases(
                        bg, horizon, summary.frequency, summary.recency, summary.T
                    )
                    metrics["p_alive_model"] = 1.0
            except (ValueError, FitError):
                pass

        report(ctx, 2, 3, "assigning stages")
        # The stage before this run is the latest transition before as_of (so re-running a date
        # replaces its transitions); the risk before is the stored stages table if it is older.
        old = _previous(con, "result_lifecycle_transitions")
        if old is not None and not old.empty:
            old = old[old["at"] < pd.Timestamp(as_of)]
        prev_stage: dict[int, str] = {}
        if old is not None and not old.empty:
            latest = old.sort_values("at", kind="stable").groupby("customer_id").tail(1)
            prev_stage = dict(
                zip(latest["customer_id"].astype(int), latest["to_stage"].astype(str), strict=True)
            )
        prev_risk: dict[int, float] = {}
        prev = _previous(con, "result_lifecycle_stages")
        if prev is not None and not prev.empty:
            prev = prev[prev["as_of"] < pd.Timestamp(as_of)]
            prev_risk = dict(zip(prev["customer_id"].astype(int), prev["risk"].astype(float), strict=True))
        stages, risk = assign_stages(history, t, prev_stage)

        stage_table = pd.DataFrame(
            {
                "customer_id": ids,
                "stage": stages,
                "risk": risk,
                "days_since_last": history.days_since_last,
                "p_alive": history.p_alive,
                "as_of": [as_of] * len(ids),
            }
        )
        changes = [
            (int(cid), prev_stage.get(int(cid)), stage, as_of)
            for cid, stage in zip(ids.tolist(), stages, strict=True)
            if prev_stage.get(int(cid)) != stage
        ]
        new = pd.DataFrame(changes, columns=["customer_id", "from_stage", "to_stage", "at"])
        if old is not None and not old.empty:
            transitions = pd.concat([old, new], ignore_index=True) if len(new) else old.reset_index(drop=True)
        else:
            transitions = new

        value = historical_value(frame, ids)
        bought = value.orders > 0
        warnings: list[dict[str, Any]] = []
        if bought.any() and prev_stage:
            # Valuable: top share by margin so far, or by predicted 12-month margin (expected
            # purchases x average order margin) when the BG/NBD model is available.
            cutoff = float(np.quantile(value.margin[bought], 1.0 - t.valuable_share))
            predicted = np.where(bought, expected_12m * value.avg_order_margin, np.nan)
            known = np.isfinite(predicted)
            p_cutoff = float(np.quantile(predicted[known], 1.0 - t.valuable_share)) if known.any() else np.inf
            for i, cid in enumerate(ids.tolist()):
                valuable = value.margin[i] >= cutoff or (known[i] and predicted[i] >= p_cutoff)
                if not bought[i] or not valuable or cid not in prev_stage:
                    continue
                before, now = prev_risk.get(cid, np.nan), float(risk[i])
                rose = np.isfinite(before) and now - before >= t.risk_rise
                worse = prev_stage[cid] in _GOOD and stages[i] in _BAD
                if rose or worse:
                    warnings.append(
                        {"customer_id": cid, "historical_margin": float(value.margin[i]),
                         "predicted_margin_12m": float(predicted[i]) if known[i] else None,
                         "stage_before": prev_stage[cid], "stage_now": stages[i],
                         "risk_before": before, "risk_now": now}
                    )  # fmt: skip
        early = pd.DataFrame(
            warnings,
            columns=[
                "customer_id",
                "historical_margin",
                "stage_before",
                "stage_now",
                "risk_before",
                "risk_now",
            ],
        ).sort_values("historical_margin", ascending=False, kind="stable", ignore_index=True)

        scores = [
            ScoreRow(
                int(cid),
                "lifecycle",
                None if np.isnan(risk[i]) else round(float(risk[i]), 6),
                stages[i],
                None
                if stages[i] == "potential"
                else {
                    "days_since_last": int(history.days_since_last[i]),
                    "p_alive": None if np.isnan(history.p_alive[i]) else round(float(history.p_alive[i]), 6),
                },
            )
            for i, cid in enumerate(ids.tolist())
        ]
        for stage in STAGES:
            metrics[f"stage_{stage}"] = float(stages.count(stage))
        metrics["transitions"] = float(len(new))
        metrics["early_warnings"] = float(len(early))
        report(ctx, 3, 3, "done")
        return JobResult(
            scores=scores,
            tables={"stages": stage_table, "transitions": transitions, "early_warning": early},
            metrics=metrics,
        )
