"""Customer value for the dashboard and the score table: historical (margin) and predicted CLV.

Historical CLV is what a customer has already been worth: the sum of ``margin_amount`` over their
purchases (orders with a purchase status placed before ``as_of``), with the number of orders,
revenue and the average order margin. Predicted CLV is the discounted 12-month value from BG/NBD
(purchases, P(alive)) and Gamma-Gamma (spend per purchase) fitted on the purchases of the customers
that may be profiled (see ``rapport.analytics.clv``).

``ClvJob`` (name ``clv``) writes per customer with ``profiling_allowed``:

* ``historical_clv``: value = margin to date; details = orders, revenue, avg_order_margin, currency
  mix is not converted (amounts are summed as stored).
* ``clv_12m``: value = discounted expected revenue over the next 12 months (customers with at least
  one purchase), details = expected purchases, expected spend, months, monthly discount rate.
* ``p_alive`` and ``expected_purchases_12m`` (BG/NBD).

Parameters (``JobContext.params``): ``time_unit`` ("day" or "week", default "week"), ``months``
(default 12), ``monthly_discount_rate`` (default 0.01). When the models cannot be fitted (too few
repeat customers), only ``historical_clv`` is written and ``metrics["model_fitted"]`` is 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from rapport.analytics.clv import (
    FitError,
    clv,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    months_to_units,
    prob_alive,
    summarise,
)
from rapport.analytics.jobs import JobContext, JobResult, ScoreRow
from rapport.analytics.storeio import naive_utc, profiling_customers, purchases, report


@dataclass(frozen=True)
class HistoricalValue:
    """Per customer (aligned arrays, ascending ids): margin to date and its parts."""

    customer_ids: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray
    margin: np.ndarray

    @property
    def avg_order_margin(self) -> np.ndarray:
        """Average margin per order; NaN for customers without orders."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.orders > 0, self.margin / np.maximum(self.orders, 1), np.nan)


def historical_value(frame: pd.DataFrame, customer_ids: np.ndarray) -> HistoricalValue:
    """Historical CLV of ``customer_ids`` from purchase rows (customer_id, total_amount, margin_amount)."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    pos = np.searchsorted(ids, frame["customer_id"].to_numpy())
    known = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == frame["customer_id"].to_numpy())
    pos = pos[known]
    n = len(ids)
    return HistoricalValue(
        customer_ids=ids,
        orders=np.bincount(pos, minlength=n).astype(np.int64),
        revenue=np.bincount(pos, weights=frame["total_amount"].to_numpy()[known], minlength=n),
        margin=np.bincount(pos, weights=frame["margin_amount"].to_numpy()[known], minlength=n),
    )


def historical_clv(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    """Dashboard table: customer_id, orders, revenue, margin (historical CLV), avg_order_margin.

    Covers the customers with ``profiling_allowed`` (customers without purchases have 0 and NaN).
    """
    ids = profiling_customers(con)
    value = historical_value(purchases(con, as_of), ids)
    return pd.DataFrame(
        {
            "customer_id": value.customer_ids,
            "orders": value.orders,
            "revenue": value.revenue,
            "margin": value.margin,
            "avg_order_margin": value.avg_order_margin,
        }
    )


def _round(value: float) -> float:
    return float(round(value, 6))


class ClvJob:
    """Historical and 12-month predicted CLV, P(alive) and expected purchases per profiled customer."""

    name = "clv"
    model_version = "bgnbd-gg-1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        time_unit = str(ctx.params.get("time_unit", "week"))
        months = int(ctx.params.get("months", 12))
        discount = float(ctx.params.get("monthly_discount_rate", 0.01))
        as_of = naive_utc(ctx.as_of)
        report(ctx, 0, 3, "reading purchases")
        ids = profiling_customers(con)
        frame = purchases(con, as_of)
        hist = historical_value(frame, ids)
        result = JobResult()
        for i, cid in enumerate(hist.customer_ids.tolist()):
            orders = int(hist.orders[i])
            avg = hist.avg_order_margin[i]
            result.scores.append(
                ScoreRow(
                    customer_id=cid,
                    kind="historical_clv",
                    value=_round(float(hist.margin[i])),
                    label=None,
                    details={
                        "orders": orders,
                        "revenue": _round(float(hist.revenue[i])),
                        "avg_order_margin": None if orders == 0 else _round(float(avg)),
                    },
                )
            )
        result.metrics["customers"] = float(len(ids))
        result.metrics["purchasers"] = float(np.count_nonzero(hist.orders))
        result.metrics["historical_margin_total"] = float(hist.margin.sum())
        result.tables["historical"] = pd.DataFrame(
            {
                "customer_id": hist.customer_ids,
                "orders": hist.orders,
                "revenue": hist.revenue,
                "margin": hist.margin,
                "avg_order_margin": hist.avg_order_margin,
            }
        )
        result.metrics["model_fitted"] = 0.0
        if frame.empty:
            return result

        report(ctx, 1, 3, "fitting BG/NBD and Gamma-Gamma")
        dates = frame["ordered_at"].to_numpy().astype("datetime64[D]")
        # The end of observation is the last whole day before as_of.
        end = (as_of - dt.timedelta(microseconds=1)).date()
        summary = summarise(
            frame["customer_id"].to_numpy(), dates, frame["total_amount"].to_numpy(), end, time_unit
        )
        try:
            bg = fit_bgnbd(summary)
            gg = fit_gamma_gamma(summary)
        except (ValueError, FitError) as exc:
            result.metrics["model_error"] = 1.0
            result.tables["params"] = pd.DataFrame({"error": [str(exc)]})
            return result
        if gg.q <= 1 or abs(bg.a - 1) < 1e-9:
            result.metrics["model_error"] = 1.0
            return result

        report(ctx, 2, 3, "predicting")
        x, tx, T, m = summary.frequency, summary.recency, summary.T, summary.monetary
        horizon = months_to_units(months, time_unit)
        value = clv(bg, gg, x, tx, T, m, months=months, monthly_discount_rate=discount, time_unit=time_unit)
        alive = prob_alive(bg, x, tx, T)
        n_expected = expected_purchases(bg, horizon, x, tx, T)
        spend = expected_spend(gg, x, m)
        for i, cid in enumerate(summary.customer_ids.tolist()):
            cid = int(cid)
            result.scores.append(
                ScoreRow(
                    cid,
                    "clv_12m" if months == 12 else f"clv_{months}m",
                    _round(float(value[i])),
                    None,
                    {
                        "expected_purchases": _round(float(n_expected[i])),
                        "expected_spend": _round(float(spend[i])),
                        "months": months,
                        "monthly_discount_rate": discount,
                    },
                )
            )
            result.scores.append(ScoreRow(cid, "p_alive", _round(float(alive[i])), None, None))
            result.scores.append(
                ScoreRow(cid, "expected_purchases_12m" if months == 12 else f"expected_purchases_{months}m",
                         _round(float(n_expected[i])), None, None)
            )  # fmt: skip
        result.metrics.update(
            {
                "model_fitted": 1.0,
                "r": bg.r,
                "alpha": bg.alpha,
                "a": bg.a,
                "b": bg.b,
                "loglik_bgnbd": bg.loglik,
                "p": gg.p,
                "q": gg.q,
                "gamma": gg.gamma,
                "loglik_gamma_gamma": gg.loglik,
                "clv_total": float(value.sum()),
            }
        )
        result.tables["params"] = pd.DataFrame(
            [{"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "gamma": gg.gamma,
              "time_unit": time_unit, "end": end.isoformat(), "model_version": self.model_version}]
        )  # fmt: skip
        report(ctx, 3, 3, "done")
        return result
