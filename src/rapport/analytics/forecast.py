"""Revenue and order-count forecasts per month and per week, with prediction intervals and a backtest.

Model (statsmodels): additive-error exponential smoothing, ETS(A, N|A|Ad, A|N), chosen by AICc
(Hyndman & Athanasopoulos, "Forecasting: principles and practice", ch. 8). Seasonal when the history
holds at least two full seasons and two points; for long seasons (weeks: 52) the seasonal pattern is
six Fourier harmonic pairs fitted by least squares and ETS runs on the seasonally adjusted series,
since 52 seasonal states would not be identifiable from two or three years (STL has the same issue:
its seasonal part soaks up noise and its intervals come out far too narrow). The interval adds the
variance of the estimated seasonal part to the ETS one. Intervals are the model's
analytic ones at ``level``.

Baseline: seasonal naive (the value one season earlier; naive when the history is shorter than a
season) with intervals sigma * sqrt(k + 1), k = completed seasons within the horizon (fpp3 5.5).

Backtest: rolling origin; each of ``folds`` origins refits on the history before it and forecasts the
next ``horizon`` points. Reported: MAPE (points with a non-zero actual), sMAPE, MASE (errors scaled
by the in-sample seasonal naive one-step error of each origin's training part) and the share of
actuals inside the intervals (coverage, to compare with ``level``).

Fits run with BLAS limited to one thread: these are tiny problems, and a multi-threaded BLAS on a
busy machine makes each L-BFGS step many times slower.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from threadpoolctl import threadpool_limits

from rapport.analytics import purchases as store
from rapport.analytics.jobs import JobContext, JobResult

FloatArray = NDArray[np.float64]
Frequency = Literal["month", "week"]
SEASON: dict[Frequency, int] = {"month": 12, "week": 52}
# Seasons longer than this go through STL instead of ETS seasonal states.
_MAX_ETS_SEASON = 24
_HARMONICS = 6
_TRENDS: tuple[tuple[str | None, bool], ...] = ((None, False), ("add", False), ("add", True))


@dataclass(frozen=True)
class Forecast:
    model: str
    mean: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float


def _z(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


def seasonal_naive(y: FloatArray, horizon: int, period: int, level: float = 0.9) -> Forecast:
    n = len(y)
    m = period if n > period else 1
    steps = np.arange(horizon)
    mean = y[n - m + steps % m] if n >= m else np.full(horizon, y[-1] if n else 0.0)
    resid = y[m:] - y[:-m] if n > m else np.zeros(1)
    sigma = math.sqrt(float(np.mean(resid**2)))
    se = sigma * np.sqrt(steps // m + 1)
    z = _z(level)
    return Forecast(
        "seasonal_naive" if m > 1 else "naive", mean.astype(np.float64), mean - z * se, mean + z * se, level
    )


def _fourier_season(y: FloatArray, horizon: int, period: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(deseasonalised y, seasonal part over the horizon, its estimation variance) for a long season.

    The season is ``_HARMONICS`` Fourier pairs fitted by least squares jointly with a level and a
    linear trend (the trend only keeps the harmonics honest; ETS models the trend).
    """
    n = len(y)
    k = min(_HARMONICS, period // 2)
    t = np.arange(n + horizon, dtype=np.float64)
    waves = [f(2 * np.pi * (j + 1) * t / period) for j in range(k) for f in (np.sin, np.cos)]
    F = np.column_stack(waves)
    X = np.column_stack([np.ones(n + horizon), t / max(n, 1), F])
    Xh, Xf = X[:n], X[n:]
    beta, *_ = np.linalg.lstsq(Xh, y, rcond=None)
    resid = y - Xh @ beta
    dof = max(n - X.shape[1], 1)
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(Xh.T @ Xh)
    sel = slice(2, X.shape[1])
    season_hist = F[:n] @ beta[sel]
    future = F[n:] @ beta[sel]
    var = np.einsum("ij,jk,ik->i", Xf[:, sel], cov[sel, sel], Xf[:, sel])
    return y - season_hist, future, var


def _ets_name(trend: str | None, damped: bool, seasonal: bool, stl: bool = False) -> str:
    t = "N" if trend is None else ("Ad" if damped else "A")
    name = f"ETS(A,{t},{'A' if seasonal else 'N'})"
    return f"STL+{name}" if stl else name


def _ets(series: pd.Series, trend: str | None, damped: bool, period: int | None) -> Any:
    """Fitted additive-error ETS. Initial states from the heuristic (fast: only the smoothing
    parameters are optimised); where the series is too short for it, estimated with the rest."""
    for init in ("heuristic", "estimated"):
        try:
            return ETSModel(
                series, error="add", trend=trend, damped_trend=damped, seasonal="add" if period else None,
                seasonal_periods=period, initialization_method=init,
            ).fit(disp=False)  # fmt: skip
        except ValueError:
            if init == "estimated":
                raise
    raise AssertionError("unreachable")


def fit_forecast(y: FloatArray, horizon: int, period: int, level: float = 0.9) -> Forecast:
    """The AICc-best additive ETS (see module doc); seasonal naive when the series is too short."""
    values = np.asarray(y, dtype=np.float64)
    n = len(values)
    if n < 6 or np.ptp(values) == 0:
        return seasonal_naive(values, horizon, period, level)
    series = pd.Series(values)
    seasonal = period > 1 and n >= 2 * period + 2
    alpha = 1 - level
    best: tuple[float, Forecast] | None = None
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short series; the AICc still ranks
        for trend, damped in _TRENDS:
            if trend is not None and n < 8:
                continue
            try:
                if seasonal and period > _MAX_ETS_SEASON:
                    adjusted, future_season, season_var = _fourier_season(values, horizon, period)
                    result = _ets(pd.Series(adjusted), trend, damped, None)
                    frame = result.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=alpha)
                    aicc = float(result.aicc)
                    base = frame["mean"].to_numpy(dtype=np.float64)
                    # ETS interval half-width -> its standard error; add the seasonal estimate's variance.
                    se_ets = (frame["pi_upper"].to_numpy(dtype=np.float64) - base) / _z(level)
                    se = np.sqrt(se_ets**2 + season_var)
                    frame = pd.DataFrame({"mean": base + future_season})
                    lo = frame["mean"] - _z(level) * se
                    hi = frame["mean"] + _z(level) * se
                    name = _ets_name(trend, damped, False).replace("ETS", "Fourier+ETS")
                else:
                    result = _ets(series, trend, damped, period if seasonal else None)
                    frame = result.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=alpha)
                    aicc = float(result.aicc)
                    lo, hi = frame["pi_lower"], frame["pi_upper"]
                    name = _ets_name(trend, damped, seasonal)
            except (ValueError, np.linalg.LinAlgError):
                continue
            mean = frame["mean"].to_numpy(dtype=np.float64)
            if not (np.isfinite(aicc) and np.all(np.isfinite(mean))):
                continue
            candidate = Forecast(
                name, mean, lo.to_numpy(dtype=np.float64), hi.to_numpy(dtype=np.float64), level
            )
            if best is None or aicc < best[0]:
                best = (aicc, candidate)
    return best[1] if best is not None else seasonal_naive(values, horizon, period, level)


Forecaster = Callable[[FloatArray, int, int, float], Forecast]


@dataclass(frozen=True)
class Backtest:
    mape: float
    smape: float
    mase: float
    coverage: float
    points: int
    folds: int

    def as_dict(self) -> dict[str, float]:
        return {
            "mape": self.mape,
            "smape": self.smape,
            "mase": self.mase,
            "coverage": self.coverage,
            "points": float(self.points),
            "folds": float(self.folds),
        }


def backtest(
    y: FloatArray,
    horizon: int,
    period: int,
    *,
    folds: int,
    level: float = 0.9,
    forecaster: Forecaster = fit_forecast,
) -> Backtest:
    """Rolling-origin evaluation over the last ``folds`` origins (each forecasting ``horizon`` points)."""
    values = np.asarray(y, dtype=np.float64)
    n = len(values)
    first = n - horizon - folds + 1
    if first < 2:
        raise ValueError(f"a backtest of {folds} folds x {horizon} needs more than {horizon + folds} points")
    ape: list[float] = []
    sape: list[float] = []
    scaled: list[float] = []
    inside: list[bool] = []
    for origin in range(first, n - horizon + 1):
        train, actual = values[:origin], values[origin : origin + horizon]
        fc = forecaster(train, horizon, period, level)
        err = actual - fc.mean
        m = period if origin > period else 1
        scale = float(np.mean(np.abs(train[m:] - train[:-m]))) if origin > m else 0.0
        if scale > 0:
            scaled.extend(np.abs(err) / scale)
        nz = actual != 0
        ape.extend(np.abs(err[nz] / actual[nz]))
        denom = np.abs(actual) + np.abs(fc.mean)
        ok = denom > 0
        sape.extend(2 * np.abs(err[ok]) / denom[ok])
        inside.extend((actual >= fc.lower) & (actual <= fc.upper))

    def mean(xs: list[Any]) -> float:
        return float(np.mean(xs)) if xs else math.nan

    return Backtest(mean(ape), mean(sape), mean(scaled), mean(inside), len(inside), n - horizon - first + 1)


# --- series from the store --------------------------------------------------------------------------

_PERIOD_FREQ: dict[Frequency, str] = {"month": "M", "week": "W-SUN"}  # weeks run Monday..Sunday


def period_series(
    when: pd.Series, amounts: pd.Series, freq: Frequency, as_of: pd.Timestamp
) -> tuple[pd.DatetimeIndex, FloatArray, FloatArray]:
    """(period starts, revenue, order counts) for every complete period from the first order's period.

    The period holding ``as_of`` is left out unless ``as_of`` is in its last second (a partial month
    would read as a collapse). Periods without orders are zeros.
    """
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    times = pd.to_datetime(when)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert(None)
    code = _PERIOD_FREQ[freq]
    current = stamp.to_period(code)
    # Complete once as_of reaches the period's last second (23:59:59 on its last day counts).
    last = current if stamp >= (current + 1).start_time - pd.Timedelta(seconds=1) else current - 1
    if len(times) == 0:
        return pd.DatetimeIndex([]), np.zeros(0), np.zeros(0)
    periods = times.dt.to_period(code)
    index = pd.period_range(periods.min(), last, freq=code)
    frame = pd.DataFrame({"p": periods, "a": amounts.astype("float64").to_numpy()})
    grouped = frame.groupby("p")["a"].agg(["sum", "count"]).reindex(index, fill_value=0)
    starts = pd.DatetimeIndex(index.start_time)
    return starts, grouped["sum"].to_numpy(np.float64), grouped["count"].to_numpy(np.float64)


def forecast_table(
    starts: pd.DatetimeIndex, history: FloatArray, fc: Forecast, freq: Frequency
) -> pd.DataFrame:
    """history + forecast rows: period_start, kind, value, lower, upper, model."""
    step = pd.offsets.MonthBegin(1) if freq == "month" else pd.offsets.Week(1)
    future: list[pd.Timestamp] = (
        list(pd.date_range(starts[-1] + step, periods=len(fc.mean), freq=step)) if len(starts) else []
    )
    n = len(history)
    return pd.DataFrame(
        {
            "period_start": list(starts) + future,
            "kind": ["history"] * n + ["forecast"] * len(fc.mean),
            "value": np.r_[history, fc.mean],
            "lower": np.r_[np.full(n, np.nan), fc.lower],
            "upper": np.r_[np.full(n, np.nan), fc.upper],
            "model": [None] * n + [fc.model] * len(fc.mean),
        }
    )


class ForecastJob:
    name = "forecast"
    model_version = "ets-aicc-statsmodels/1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        params = ctx.params
        level = float(params.get("level", 0.9))
        orders = store.purchase_orders(con, ctx.as_of)
        metrics: dict[str, float] = {}
        if len(orders):
            currency = params.get("currency") or orders["currency"].mode().iloc[0]
            other = orders["currency"] != currency
            metrics["orders_other_currency"] = float(other.sum())
            orders = orders[~other]
        tables: dict[str, pd.DataFrame] = {}
        backtests: list[dict[str, Any]] = []
        plan: tuple[tuple[Frequency, int, int], ...] = (
            ("month", int(params.get("horizon_months", 6)), int(params.get("folds_months", 6))),
            ("week", int(params.get("horizon_weeks", 13)), int(params.get("folds_weeks", 12))),
        )
        for step, (freq, horizon, folds) in enumerate(plan):
            starts, revenue, counts = period_series(
                orders["ordered_at"], orders["total_amount"], freq, pd.Timestamp(ctx.as_of)
            )
            period = SEASON[freq]
            for series_name, y in (("revenue", revenue), ("orders", counts)):
                key = f"{series_name}_{freq}"
                ctx.progress((2 * step + (series_name == "orders")) / 4, f"forecast: {key}")
                if len(y) == 0:
                    continue
                fc = fit_forecast(y, horizon, period, level)
                tables[key] = forecast_table(starts, y, fc, freq)
                if len(y) >= horizon + folds + max(period, 2) // 2 + 2:
                    for label, forecaster in (("model", fit_forecast), ("seasonal_naive", seasonal_naive)):
                        bt = backtest(y, horizon, period, folds=folds, level=level, forecaster=forecaster)
                        name = fc.model if label == "model" else "seasonal_naive"
                        backtests.append({"series": key, "model": name, "role": label, **bt.as_dict()})
                        for metric, value in bt.as_dict().items():
                            metrics[f"{key}.{label}.{metric}"] = value
        tables["backtest"] = pd.DataFrame(
            backtests,
            columns=["series", "model", "role", "mape", "smape", "mase", "coverage", "points", "folds"],
        )
        ctx.progress(1.0, "forecast: done")
        return JobResult(scores=[], tables=tables, metrics=metrics)
