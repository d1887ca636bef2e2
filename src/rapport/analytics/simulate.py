"""Draw customer histories from the BG/NBD and Gamma-Gamma models (for tests and benchmarks).

Generative story (Fader, Hardie & Lee 2005): each customer buys at Poisson rate λ ~ Gamma(r, rate α)
while active, and after each repeat purchase drops out with probability p ~ Beta(a, b). Each purchase
is worth z ~ Gamma(p_s, rate ν) with the customer's ν ~ Gamma(q, rate γ).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rapport.analytics.clv import FloatArray


def _repeat_counts(
    rng: np.random.Generator, T: FloatArray, r: float, alpha: float, a: float, b: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(x, n): observed repeat purchases and what a never-dropping customer would have made in (0, T]."""
    lam = rng.gamma(r, 1.0 / alpha, size=len(T))
    drop = rng.beta(a, b, size=len(T))
    # The K-th repeat purchase is the customer's last; the clip keeps dead-certain dropouts valid.
    k = rng.geometric(np.clip(drop, 1e-12, 1.0))
    n = rng.poisson(lam * T)
    return np.minimum(k, n), n


def _first_order_statistics(
    rng: np.random.Generator, x: NDArray[np.int64], n: NDArray[np.int64]
) -> tuple[FloatArray, NDArray[np.intp]]:
    """The smallest x_i of n_i uniform(0, 1) draws per customer, flat and ascending within a customer.

    Uses U_(i) = 1 - Π_{j<=i} V_j^(1/(n-j+1)) so only x_i (not n_i) draws are needed per customer.
    Returns the flat values and, per value, its customer's index.
    """
    owner = np.repeat(np.arange(len(x)), x)
    offsets = np.concatenate(([0], np.cumsum(x)[:-1]))
    j = np.arange(len(owner)) - offsets[owner]  # 0-based position within the customer
    steps = np.log(rng.random(len(owner))) / (n[owner] - j)
    cum = np.cumsum(steps)
    # Restart the running sum at each customer's first value.
    base = np.concatenate(([0.0], cum))[offsets[owner]]
    return -np.expm1(cum - base), owner


def simulate_summary(
    rng: np.random.Generator,
    T: FloatArray,
    r: float,
    alpha: float,
    a: float,
    b: float,
) -> tuple[FloatArray, FloatArray]:
    """(frequency, recency) in continuous time for customers observed for T each."""
    x, n = _repeat_counts(rng, T, r, alpha, a, b)
    recency = np.zeros(len(T))
    has = x > 0
    # The x-th smallest of n uniforms on (0, T] is T × Beta(x, n - x + 1).
    recency[has] = T[has] * rng.beta(x[has], n[has] - x[has] + 1)
    return x.astype(np.float64), recency


def simulate_monetary(
    rng: np.random.Generator, frequency: FloatArray, p: float, q: float, gamma: float
) -> FloatArray:
    """Mean value of each customer's repeat purchases (0 where frequency is 0)."""
    nu = rng.gamma(q, 1.0 / gamma, size=len(frequency))
    x = frequency.astype(np.int64)
    # A sum of x Gamma(p, ν) draws is Gamma(p x, ν).
    total = np.where(x > 0, rng.gamma(np.maximum(p * x, 1e-300), 1.0 / nu), 0.0)
    return np.where(x > 0, total / np.maximum(x, 1), 0.0)


def simulate_transactions(
    rng: np.random.Generator,
    customers: int,
    *,
    end: np.datetime64,
    window_days: int,
    bgnbd: tuple[float, float, float, float],
    gamma_gamma: tuple[float, float, float],
) -> tuple[NDArray[np.int64], NDArray[np.datetime64], FloatArray]:
    """(customer id, date, amount) per transaction; rates are per day, first purchases uniform in the window.

    Repeat purchases falling on the first purchase's day merge with it when summarised by day, so
    summaries of this data deviate slightly from the continuous-time model.
    """
    r, alpha, a, b = bgnbd
    p, q, gamma = gamma_gamma
    first = rng.integers(1, window_days + 1, size=customers)  # days before end
    T = first.astype(np.float64)
    x, n = _repeat_counts(rng, T, r, alpha, a, b)
    u, owner = _first_order_statistics(rng, x, n)
    repeat_offset = np.floor(u * T[owner]).astype(np.int64)
    ids = np.concatenate((np.arange(customers), owner))
    offset = np.concatenate((np.zeros(customers, dtype=np.int64), repeat_offset))
    start = end - first.astype("timedelta64[D]")
    dates = start[ids] + offset.astype("timedelta64[D]")
    nu = rng.gamma(q, 1.0 / gamma, size=customers)
    amounts = np.round(rng.gamma(p, 1.0 / nu[ids]), 2)
    order = np.argsort(dates, kind="stable")
    return ids[order], dates[order], amounts[order]
