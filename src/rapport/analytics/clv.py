"""Predictive customer lifetime value: BG/NBD (purchase counts, P(alive)) and Gamma-Gamma (spend).

Models: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
Pareto/NBD model", Marketing Science 24(2); and Fader, Hardie & Lee (2005), "RFM and CLV: using
iso-value curves for customer base analysis", JMR 42(4) for the Gamma-Gamma spend model.

Notation: ``x`` = frequency (number of repeat purchase periods), ``t_x`` = recency (time from the
first to the last purchase), ``T`` = age (time from the first purchase to the end of observation),
``m`` = mean value of the repeat purchases. Times are in ``time_unit`` (day or week).

Both likelihoods are maximised on log-parameters (so every parameter stays positive without
constraints) with L-BFGS-B and analytic gradients. Customers sharing the same sufficient statistics
contribute identical terms, so rows are collapsed to unique tuples weighted by their count: real
data on a day or week grid has far fewer distinct (x, t_x, T) tuples than customers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

FloatArray = NDArray[np.float64]
TimeUnit = Literal["day", "week"]
TIME_UNITS: tuple[TimeUnit, ...] = ("day", "week")

# An average Gregorian month, so a 12-month horizon is exactly one year whatever the time unit.
DAYS_PER_MONTH = 365.2425 / 12
# Keeps exp(log-parameter) finite and away from zero while the line search explores.
_LOG_BOUND = 25.0
_EPOCH = dt.date(1970, 1, 1)
# Above this many (grouped) rows the fits start from a fit on a tenth of this many rows.
_WARM_START_ROWS = 200_000


class FitError(RuntimeError):
    """The optimiser stopped without reaching a maximum (message says why)."""


@dataclass(frozen=True)
class Summary:
    """Per-customer sufficient statistics, aligned arrays (one entry per customer)."""

    customer_ids: NDArray[Any]
    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    monetary: FloatArray
    time_unit: TimeUnit = "day"
    end: dt.date | None = None

    def __post_init__(self) -> None:
        n = len(self.customer_ids)
        for name in ("frequency", "recency", "T", "monetary"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"summary {name} has shape {arr.shape}, expected ({n},)")
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"summary {name} must be finite and non-negative")
        if np.any(self.frequency != np.floor(self.frequency)):
            raise ValueError("summary frequency must hold whole numbers")
        if np.any(self.recency > self.T):
            raise ValueError("summary recency exceeds T for some customers")
        if np.any((self.frequency == 0) & (self.recency != 0)):
            raise ValueError("summary recency must be 0 for customers without repeat purchases")

    def __len__(self) -> int:
        return len(self.customer_ids)


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    loglik: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    loglik: float


# --------------------------------------------------------------------------------------------------
# Summaries from transactions


def _days(dates: ArrayLike | Sequence[dt.date]) -> NDArray[np.int64]:
    """Days since 1970-01-01; datetimes are truncated to their date."""
    arr = np.asarray(dates)
    if arr.dtype == np.dtype("datetime64[D]"):
        return arr.view(np.int64)  # no copy: NaT stays the int64 minimum
    return arr.astype("datetime64[D]").astype(np.int64)


def _periods(days: NDArray[np.int64], time_unit: TimeUnit) -> NDArray[np.int64]:
    if time_unit == "day":
        return days
    # 1970-01-01 was a Thursday; shifting by 3 makes every period run Monday..Sunday.
    return (days + 3) // 7


def _check_time_unit(time_unit: str) -> TimeUnit:
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {', '.join(TIME_UNITS)}, not {time_unit!r}")
    return time_unit


def _customer_index(ids: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.integer[Any]]]:
    """Distinct ids (ascending) and each row's position among them.

    Integer ids in a compact range use a presence table (linear time, no sort); others sort.
    """
    if ids.dtype.kind in "iu" and len(ids) > 0:
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo < 4 * len(ids) + 1_000_000:
            shifted = ids.astype(np.intp, copy=False) if lo == 0 else (ids - lo).astype(np.intp)
            present = np.zeros(hi - lo + 1, dtype=bool)
            present[shifted] = True
            position = np.cumsum(present, dtype=np.intp)  # intp: bincount would convert anything else
            position -= 1
            return np.flatnonzero(present).astype(ids.dtype) + ids.dtype.type(lo), position[shifted]
    try:
        uniq, inverse = np.unique(ids, return_inverse=True)
    except TypeError as exc:  # e.g. None among strings: ids must sort to be grouped
        raise ValueError(f"customer_ids must all be of one comparable type: {exc}") from exc
    return uniq, inverse.reshape(-1)


def summarise(
    customer_ids: ArrayLike,
    dates: ArrayLike | Sequence[dt.date],
    amounts: ArrayLike | None,
    end: dt.date | None = None,
    time_unit: str = "day",
) -> Summary:
    """Reduce transactions to (frequency, recency, T, monetary) per customer.

    Transactions of one customer in the same period (day or Monday-to-Sunday week) count as one
    purchase whose value is their sum. frequency = purchase periods - 1; recency = last - first
    period; T = ``end``'s period - first period; monetary = mean value of the repeat purchase
    periods (the first is excluded, it is not a draw from the repeat-spend process), 0 without
    repeats. ``end`` defaults to the latest transaction date. ``amounts=None`` yields monetary 0.
    """
    unit = _check_time_unit(time_unit)
    ids = np.asarray(customer_ids)
    try:
        days = _days(dates)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"dates must be dates or ISO date strings: {exc}") from exc
    n = len(ids)
    if n == 0:
        raise ValueError("no transactions: cannot summarise empty data")
    if ids.ndim != 1 or days.shape != (n,):
        raise ValueError(f"customer_ids ({n}) and dates ({days.size}) must be 1-D and the same length")
    if np.any(days == np.iinfo(np.int64).min):  # NaT: numpy's missing date
        raise ValueError(f"dates must not be missing; {int(np.sum(days == np.iinfo(np.int64).min))} are NaT")
    period = _periods(days, unit)
    if amounts is None:
        value = np.zeros(n)
    else:
        try:
            value = np.asarray(amounts, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"amounts must be numbers: {exc}") from exc
        if value.shape != (n,):
            raise ValueError(f"amounts ({value.size}) must have one value per transaction ({n})")
        if not np.all(np.isfinite(value)):
            raise ValueError(
                f"amounts must be finite; {int(np.sum(~np.isfinite(value)))} are NaN or infinite"
            )
        if np.any(value < 0):
            raise ValueError(f"amounts must be non-negative; {int(np.sum(value < 0))} are negative")
    if end is None:
        end_period = int(period.max())
        end = _EPOCH + dt.timedelta(days=int(days.max()))
    else:
        end_day = _days(np.array([end], dtype="datetime64[D]"))
        end_period = int(_periods(end_day, unit)[0])
        if days.max() > end_day[0]:
            late = int(np.sum(days > end_day[0]))
            raise ValueError(f"{late} transaction date(s) fall after end {end.isoformat()}")

    uniq_ids, cust = _customer_index(ids)
    m = len(uniq_ids)
    p_min = int(period.min())
    span = int(period.max()) - p_min + 1
    # Narrow integers halve the memory traffic, which dominates on ~10 million rows.
    idx_t = np.int32 if m * span < 2**31 else np.int64
    offset: NDArray[Any] = np.subtract(period, p_min, dtype=idx_t, casting="unsafe")
    # Purchase periods are the distinct (customer, period) pairs: one sort of a packed key (no
    # argsort, no gather in sorted order) finds the repeated pairs, which are few; first and last
    # periods come from unbuffered min/max per customer, values from bincount.
    key: NDArray[Any] = cust.astype(idx_t)
    key *= idx_t(span)
    key += offset
    key.sort(kind="stable")
    repeated_pair = key[1:][key[1:] == key[:-1]]
    n_periods = np.bincount(cust, minlength=m) - np.bincount(repeated_pair // span, minlength=m)
    first_off: NDArray[Any] = np.full(m, span, dtype=idx_t)
    np.minimum.at(first_off, cust, offset)
    last_off: NDArray[Any] = np.zeros(m, dtype=idx_t)
    np.maximum.at(last_off, cust, offset)
    # Summing only the repeat periods (rather than total - first) avoids cancellation error.
    repeat_value = np.bincount(cust, weights=np.where(offset != first_off[cust], value, 0.0), minlength=m)
    frequency = (n_periods - 1).astype(np.float64)
    monetary = repeat_value / np.maximum(frequency, 1)
    first_period = first_off + p_min
    return Summary(
        customer_ids=uniq_ids,
        frequency=frequency,
        recency=(last_off - first_off).astype(np.float64),
        T=(end_period - first_period).astype(np.float64),
        monetary=monetary,
        time_unit=unit,
        end=end,
    )


# --------------------------------------------------------------------------------------------------
# Grouping


def _pack_integral(
    columns: Sequence[FloatArray],
) -> tuple[NDArray[np.int64], list[int], list[int]] | None:
    """Whole-number columns packed into one int64 key that sorts like the rows, or None.

    Summaries on a day or week grid are whole numbers, so one integer sort replaces a lexsort.
    """
    if len(columns[0]) == 0:
        return None
    lows: list[int] = []
    spans: list[int] = []
    total = 1
    for c in columns:
        lo, hi = float(c.min()), float(c.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > 2**40:
            return None
        lows.append(int(lo))
        spans.append(int(hi) - int(lo) + 1)
        total *= spans[-1]
        if total >= 2**62:
            return None
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for c, low, span in zip(columns, lows, spans, strict=True):
        as_int = c.astype(np.int64)
        if not np.array_equal(as_int, c):
            return None
        key *= span
        key += as_int - low
    return key, lows, spans


def group_rows(*columns: FloatArray) -> tuple[tuple[FloatArray, ...], FloatArray, NDArray[np.intp]]:
    """Unique rows of the stacked columns, their counts, and the index mapping each row to its group."""
    n = len(columns[0])
    packed = _pack_integral(columns)
    if packed is not None:
        key, lows, spans = packed
        ukey, uinverse, ucounts = np.unique(key, return_inverse=True, return_counts=True)
        unpacked: list[FloatArray] = []
        for low, span in zip(lows[::-1], spans[::-1], strict=True):
            unpacked.append((ukey % span + low).astype(np.float64))
            ukey = ukey // span
        inv: NDArray[np.intp] = uinverse.reshape(-1).astype(np.intp)
        return tuple(unpacked[::-1]), ucounts.astype(np.float64), inv
    order = np.lexsort(columns[::-1])
    sorted_cols = [c[order] for c in columns]
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in sorted_cols:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(change) - 1
    return tuple(c[starts] for c in sorted_cols), counts, inverse


# --------------------------------------------------------------------------------------------------
# BG/NBD


def _bgnbd_rows(
    theta: Sequence[float], x: FloatArray, tx: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-row log-likelihood and its gradient (shape 4 x rows) with respect to (r, alpha, a, b).

    L = B(a, b+x)/B(a, b) Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
        + [x>0] B(a+1, b+x-1)/B(a, b) Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x)),
    written as C + logaddexp(u1, u2) so large x and T do not overflow.
    """
    r, alpha, a, b = theta
    repeat = x > 0
    xs = np.where(repeat, x, 1.0)  # keeps the masked second term finite where x = 0
    c = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    log_at, log_atx = np.log(alpha + T), np.log(alpha + tx)
    u1 = betaln(a, b + x) - (r + x) * log_at
    u2 = np.where(repeat, betaln(a + 1, b + xs - 1) - (r + x) * log_atx, -np.inf)
    lse = np.logaddexp(u1, u2)
    w1, w2 = np.exp(u1 - lse), np.exp(u2 - lse)

    psi_abx = digamma(a + b + x)
    psi_ab = digamma(a + b)
    grad = np.empty((4, len(x)))
    grad[0] = digamma(r + x) - digamma(r) + np.log(alpha) - w1 * log_at - w2 * log_atx
    grad[1] = r / alpha - (r + x) * (w1 / (alpha + T) + w2 / (alpha + tx))
    grad[2] = -(digamma(a) - psi_ab) + w1 * (digamma(a) - psi_abx) + w2 * (digamma(a + 1) - psi_abx)
    grad[3] = (
        -(digamma(b) - psi_ab)
        + w1 * (digamma(b + x) - psi_abx)
        + w2 * (np.where(repeat, digamma(b + xs - 1), 0.0) - psi_abx)
    )
    return c + lse, grad


def bgnbd_loglik(
    theta: Sequence[float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> tuple[float, FloatArray]:
    """Total BG/NBD log-likelihood at (r, alpha, a, b) and its gradient in those parameters."""
    x, tx, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    ll, grad = _bgnbd_rows(theta, x, tx, t)
    return float(w @ ll), grad @ w


def gamma_gamma_loglik(
    theta: Sequence[float], frequency: ArrayLike, monetary: ArrayLike, weights: ArrayLike | None = None
) -> tuple[float, FloatArray]:
    """Total Gamma-Gamma log-likelihood at (p, q, gamma) and its gradient; rows need x > 0, m > 0.

    f(m | x) = Γ(px+q) / (Γ(px) Γ(q)) γ^q m^(px-1) x^(px) / (γ + m x)^(px+q).
    """
    p, q, g = theta
    x, m = np.asarray(frequency, dtype=np.float64), np.asarray(monetary, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    px = p * x
    log_m, log_x, log_gmx = np.log(m), np.log(x), np.log(g + m * x)
    ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + (px - 1) * log_m + px * log_x
    ll -= (px + q) * log_gmx
    psi_pxq = digamma(px + q)
    grad = np.empty((3, len(x)))
    grad[0] = x * (psi_pxq - digamma(px) + log_m + log_x - log_gmx)
    grad[1] = psi_pxq - digamma(q) + np.log(g) - log_gmx
    grad[2] = q / g - (px + q) / (g + m * x)
    return float(w @ ll), grad @ w


class _BgNbdObjective:
    """Fast evaluation of the total BG/NBD log-likelihood and gradient for one data set.

    Equal to ``bgnbd_loglik`` (the per-row reference form) but organised for repeated evaluation:
    the special functions depend only on x, so they are computed once per distinct x value;
    log(α + T) and log(α + t_x) once per distinct T and t_x value; customers without repeat
    purchases reduce to r log(α / (α + T)) aggregated per T. Per row (x > 0) only a few
    arithmetic operations, one log-sum-exp and one exp remain.
    """

    def __init__(self, x: FloatArray, tx: FloatArray, T: FloatArray, w: FloatArray) -> None:
        zero = x == 0
        self.w_total = float(w.sum())
        self.zero_T, inv0 = np.unique(T[zero], return_inverse=True)
        self.zero_w = np.bincount(inv0.reshape(-1), weights=w[zero], minlength=len(self.zero_T))
        rep = ~zero
        self.x = x[rep]
        self.w = w[rep]
        self.ux, ix = np.unique(self.x, return_inverse=True)
        self.ix = ix.reshape(-1)
        self.wx = np.bincount(self.ix, weights=self.w, minlength=len(self.ux))
        self.uT, iT = np.unique(T[rep], return_inverse=True)
        self.utx, itx = np.unique(tx[rep], return_inverse=True)
        self.iT, self.itx = iT.reshape(-1), itx.reshape(-1)
        self.wxx = self.w * self.x  # Σ over rows of w x terms

    def __call__(self, theta: Sequence[float]) -> tuple[float, FloatArray]:
        r, alpha, a, b = theta
        ux, wx = self.ux, self.wx
        # Customers without repeat purchases: log L = r log(α / (α + T)).
        log_a0 = np.log(alpha + self.zero_T)
        ll = float(self.zero_w @ (r * (np.log(alpha) - log_a0)))
        g = np.zeros(4)
        g[0] = float(self.zero_w @ (np.log(alpha) - log_a0))
        g[1] = float(self.zero_w @ (r / alpha - r / (alpha + self.zero_T)))
        # Repeat customers.
        if len(self.x):
            c = gammaln(r + ux) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
            b1 = betaln(a, b + ux)
            b2 = betaln(a + 1, b + ux - 1)
            log_at = np.log(alpha + self.uT)[self.iT]
            log_atx = np.log(alpha + self.utx)[self.itx]
            rx = r + self.x
            u1 = b1[self.ix] - rx * log_at
            u2 = b2[self.ix] - rx * log_atx
            lse = np.logaddexp(u1, u2)
            w1 = np.exp(u1 - lse)
            ww1 = self.w * w1
            ww2 = self.w - ww1
            ll += float(wx @ c) + float(self.w @ lse)
            s1 = np.bincount(self.ix, weights=ww1, minlength=len(ux))
            s2 = wx - s1
            g[0] += float(wx @ (digamma(r + ux) - digamma(r) + np.log(alpha)))
            g[0] -= float(ww1 @ log_at) + float(ww2 @ log_atx)
            inv_at = (1.0 / (alpha + self.uT))[self.iT]
            inv_atx = (1.0 / (alpha + self.utx))[self.itx]
            g[1] += r / alpha * float(wx.sum()) - float((ww1 * rx) @ inv_at) - float((ww2 * rx) @ inv_atx)
            psi_abx = digamma(a + b + ux)
            psi_ab = digamma(a + b)
            sw = float(wx.sum())
            g[2] = -(digamma(a) - psi_ab) * sw + float(s1 @ (digamma(a) - psi_abx))
            g[2] += float(s2 @ (digamma(a + 1) - psi_abx))
            g[3] = -(digamma(b) - psi_ab) * sw + float(s1 @ (digamma(b + ux) - psi_abx))
            g[3] += float(s2 @ (digamma(b + ux - 1) - psi_abx))
        return ll, g


class _GammaGammaObjective:
    """Fast total Gamma-Gamma log-likelihood and gradient (equal to ``gamma_gamma_loglik``).

    Terms in p and q alone depend only on x (computed per distinct x); terms linear in p or q are
    precomputed sums; per row only log(γ + m x) and 1 / (γ + m x) remain.
    """

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        self.ux, ix = np.unique(x, return_inverse=True)
        ix = ix.reshape(-1)
        self.wx = np.bincount(ix, weights=w, minlength=len(self.ux))
        self.w_total = float(w.sum())
        self.mx = m * x
        self.w = w
        self.wxr = w * x
        log_m, log_x = np.log(m), np.log(x)
        self.sum_w_logm = float(w @ log_m)
        self.sum_wx_logmx = float(self.wxr @ (log_m + log_x))

    def __call__(self, theta: Sequence[float]) -> tuple[float, FloatArray]:
        p, q, g = theta
        ux, wx = self.ux, self.wx
        px = p * ux
        log_g = np.log(g)
        L = np.log(g + self.mx)
        inv = 1.0 / (g + self.mx)
        sum_w_L, sum_wx_L = float(self.w @ L), float(self.wxr @ L)
        ll = float(wx @ (gammaln(px + q) - gammaln(px))) + (q * log_g - gammaln(q)) * self.w_total
        ll += p * self.sum_wx_logmx - self.sum_w_logm - p * sum_wx_L - q * sum_w_L
        psi_pxq = digamma(px + q)
        grad = np.empty(3)
        grad[0] = float((wx * ux) @ (psi_pxq - digamma(px))) + self.sum_wx_logmx - sum_wx_L
        grad[1] = float(wx @ psi_pxq) - digamma(q) * self.w_total + log_g * self.w_total - sum_w_L
        grad[2] = q / g * self.w_total - p * float(self.wxr @ inv) - q * float(self.w @ inv)
        return float(ll), grad


def _maximise(
    loglik: Callable[[Sequence[float]], tuple[float, FloatArray]], start: FloatArray, what: str
) -> tuple[FloatArray, float]:
    """Maximise on log-parameters; returns (natural parameters, log-likelihood)."""
    scale = 1.0  # set from the first evaluation so the objective is O(1) per row on any data size

    def objective(log_theta: FloatArray) -> tuple[float, FloatArray]:
        theta = np.exp(log_theta)
        ll, grad = loglik(theta.tolist())
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(log_theta)
        # d ll / d log θ = θ d ll / d θ
        return -ll / scale, -(grad * theta) / scale

    # Vector dot products would otherwise go to a multi-threaded BLAS whose spinning threads cost
    # several times the work itself on small, busy machines.
    with threadpool_limits(1, user_api="blas"):
        scale = max(abs(loglik(np.exp(start).tolist())[0]), 1.0)
        res = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start),
            options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
        )
        theta = np.exp(res.x)
        ll, grad = loglik(theta.tolist())
    # L-BFGS-B may stop on an "abnormal" line search when already at the optimum to machine
    # precision; only a still-sizeable gradient means it genuinely failed.
    if not np.isfinite(ll) or (not res.success and np.max(np.abs(grad * theta)) / scale > 1e-5):
        raise FitError(f"{what} fit did not converge: {res.message}")
    if np.any(np.abs(res.x) >= _LOG_BOUND - 1e-6):
        raise FitError(f"{what} fit ran to a parameter bound; the data do not identify the model")
    return theta, ll


def fit_bgnbd(summary: Summary, *, grouped: bool = True) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for the summary."""
    if len(summary) == 0:
        raise ValueError("no customers: cannot fit BG/NBD on an empty summary")
    x, tx, t = summary.frequency, summary.recency, summary.T
    if not np.any(t > 0):
        raise ValueError("every customer has T = 0: there is no observation time to fit on")
    if grouped:
        (x, tx, t), w = group_rows(x, tx, t)[:2]
    else:
        w = np.ones_like(x)
    r0 = 1.0
    rate = max(float(w @ x) / max(float(w @ t), 1e-9), 1e-6)
    start = np.log([r0, r0 / rate, 1.0, 1.0])
    if len(x) > _WARM_START_ROWS:
        # Most iterations are spent far from the optimum: take them on a fixed random subsample
        # (each row kept with its weight), then polish on all rows from there.
        keep = np.random.default_rng(0).random(len(x)) < _WARM_START_ROWS / 10 / len(x)
        with contextlib.suppress(FitError):  # if the subsample cannot be fitted, the full data decide
            sub = _BgNbdObjective(x[keep], tx[keep], t[keep], w[keep])
            start = np.log(_maximise(sub, start, "BG/NBD")[0])
    theta, ll = _maximise(_BgNbdObjective(x, tx, t, w), start, "BG/NBD")
    return BgNbdParams(
        r=float(theta[0]), alpha=float(theta[1]), a=float(theta[2]), b=float(theta[3]), loglik=ll
    )


def fit_gamma_gamma(summary: Summary, *, grouped: bool = True) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from repeat customers with positive spend."""
    keep = (summary.frequency > 0) & (summary.monetary > 0)
    if np.count_nonzero(keep) < 2:
        raise ValueError(
            "Gamma-Gamma needs at least 2 customers with repeat purchases of positive value, "
            f"found {int(np.count_nonzero(keep))}"
        )
    x, m = summary.frequency[keep], summary.monetary[keep]
    if grouped:
        (x, m), w = group_rows(x, m)[:2]
    else:
        w = np.ones_like(x)
    p0, q0 = 1.0, 2.0
    # With q0 = 2 the prior mean spend p γ / (q - 1) equals the observed mean: a sensible start.
    start = np.log([p0, q0, float(w @ m) / float(w.sum()) * (q0 - 1) / p0])
    if len(x) > _WARM_START_ROWS:  # as in fit_bgnbd
        keep = np.random.default_rng(0).random(len(x)) < _WARM_START_ROWS / 10 / len(x)
        with contextlib.suppress(FitError):
            sub = _GammaGammaObjective(x[keep], m[keep], w[keep])
            start = np.log(_maximise(sub, start, "Gamma-Gamma")[0])
    theta, ll = _maximise(_GammaGammaObjective(x, m, w), start, "Gamma-Gamma")
    return GammaGammaParams(p=float(theta[0]), q=float(theta[1]), gamma=float(theta[2]), loglik=ll)


# --------------------------------------------------------------------------------------------------
# Predictions


def _as_float(*values: ArrayLike) -> list[FloatArray]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def prob_alive(params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(customer still active at T | x, t_x, T); 1 for customers without repeat purchases."""
    x, tx, t = _as_float(frequency, recency, T)
    return np.asarray(1.0 / (1.0 + _death_odds(params, x, tx, t)), dtype=np.float64)


def _death_odds(params: BgNbdParams, x: FloatArray, tx: FloatArray, t: FloatArray) -> FloatArray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs = np.where(x > 0, x, 1.0)
    # a/(b+x-1) ((α+T)/(α+t_x))^(r+x), in logs since the power overflows for frequent buyers
    log_odds = np.log(a) - np.log(b + xs - 1) + (r + x) * (np.log(alpha + t) - np.log(alpha + tx))
    return np.where(x > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)


def expected_purchases(
    params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """E[purchases in (T, T+t] | x, t_x, T] (BG/NBD conditional expectation, eq. 10 of the paper).

    The paper writes ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) with z = t/(α+T+t). Euler's
    transformation turns that into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series converges
    fast for large x, where the original loses all precision. Requires a != 1.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    horizon, x, tx, big_t = _as_float(t, frequency, recency, T)
    z = horizon / (alpha + big_t + horizon)
    tail = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    numerator = (a + b + x - 1) / (a - 1) * (1.0 - tail)
    return np.asarray(numerator / (1.0 + _death_odds(params, x, tx, big_t)), dtype=np.float64)


def expected_spend(params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike) -> FloatArray:
    """E[value of a future purchase | x, m]: a credibility-weighted blend of m and the population mean.

    Customers without repeat purchases get the population mean p γ / (q - 1). Requires q > 1.
    """
    x, m = _as_float(frequency, monetary)
    p, q, g = params.p, params.q, params.gamma
    return np.asarray(p * (g + x * m) / (p * x + q - 1), dtype=np.float64)


def months_to_units(months: float, time_unit: str) -> float:
    days = months * DAYS_PER_MONTH
    return days if _check_time_unit(time_unit) == "day" else days / 7


def clv(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    time_unit: str = "day",
    month_days: float = DAYS_PER_MONTH,
) -> FloatArray:
    """Discounted expected revenue over the next ``months``: Σ_k ΔE[purchases in month k] / (1+d)^k × spend.

    Purchases expected in month k are discounted at the end of that month; a month is ``month_days``
    long (an average Gregorian month; ``lifetimes`` uses 30). The series part of the
    expectation depends only on (x, T), so it is computed once per distinct pair.
    """
    if months < 1:
        raise ValueError(f"months must be at least 1, not {months}")
    if not 0 <= monthly_discount_rate < 1:
        raise ValueError(f"monthly_discount_rate must be in [0, 1), not {monthly_discount_rate}")
    x, tx, t, m = _as_float(frequency, recency, T, monetary)
    r, alpha, a, b = bgnbd.r, bgnbd.alpha, bgnbd.a, bgnbd.b
    # E[purchases in (T, T+h]] = N(h; x, T) / (1 + death odds(x, t_x, T)): the horizon-dependent
    # numerator needs only (x, T), so the hypergeometric series runs once per distinct pair and month.
    (ux, ut), _, inverse = group_rows(x, t)
    month = month_days if _check_time_unit(time_unit) == "day" else month_days / 7
    discounted = np.zeros_like(ux)
    previous = np.zeros_like(ux)
    for k in range(1, months + 1):
        horizon = k * month
        z = horizon / (alpha + ut + horizon)
        tail = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, a + b + ux - 1, z)
        cumulative = (a + b + ux - 1) / (a - 1) * (1.0 - tail)
        discounted += (cumulative - previous) / (1 + monthly_discount_rate) ** k
        previous = cumulative
    per_purchase = expected_spend(gamma_gamma, x, m) / (1.0 + _death_odds(bgnbd, x, tx, t))
    return np.asarray(discounted[inverse] * per_purchase, dtype=np.float64)
