"""Time the CLV pipeline against the reference ``lifetimes`` package on the same transactions.

    .venv/bin/python bench/clv.py [--customers 1000000] [--seed 42] [--no-reference]

Transactions are drawn from the models themselves (1,000,000 customers over a two-year window,
about 9.7 million transactions, day grid). Both implementations run in this one process on the same
arrays: summarise, BG/NBD fit, Gamma-Gamma fit, 12-month discounted CLV (1% a month). Prints the
wall time of each stage side by side, the speedup, the fitted parameters of both with their relative
differences, and how closely the per-customer CLVs agree. ``lifetimes`` counts a month as 30 days,
so for the comparison our CLV is also computed with 30-day months (the product default is an average
Gregorian month). ``lifetimes`` is a dev dependency (``pip install lifetimes``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from rapport.analytics.clv import clv, fit_bgnbd, fit_gamma_gamma, group_rows, summarise
from rapport.analytics.simulate import simulate_transactions

TRUE_BGNBD = (0.9, 22.0, 0.6, 8.0)  # per-day purchase rates
TRUE_GG = (4.0, 5.0, 160.0)  # mean purchase value p γ / (q - 1) = 160
END = dt.date(2025, 12, 31)
MONTHS, DISCOUNT = 12, 0.01


CPU: dict[str, float] = {}  # our stages' CPU seconds: the figure that a busy machine does not inflate


def _timed(timings: dict[str, float], stage: str, fn: Callable[[], Any], cpu: bool = False) -> Any:
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fn()
    timings[stage] = time.perf_counter() - started
    if cpu:
        CPU[stage] = time.process_time() - cpu_started
    return result


def run_ours(ids: np.ndarray, dates: np.ndarray, amounts: np.ndarray) -> dict[str, Any]:
    t: dict[str, float] = {}
    s = _timed(t, "summarise", lambda: summarise(ids, dates, amounts, END, "day"), True)
    bg = _timed(t, "fit_bgnbd", lambda: fit_bgnbd(s), True)
    gg = _timed(t, "fit_gamma_gamma", lambda: fit_gamma_gamma(s), True)
    value = _timed(
        t,
        "clv_12_months",
        lambda: clv(bg, gg, s.frequency, s.recency, s.T, s.monetary, months=MONTHS,
                    monthly_discount_rate=DISCOUNT, month_days=30.0),
        True,
    )  # fmt: skip
    params = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "gamma": gg.gamma}
    return {"timings": t, "params": params, "clv": value, "summary": s, "ll": bg.loglik}


def run_lifetimes(ids: np.ndarray, dates: np.ndarray, amounts: np.ndarray) -> dict[str, Any]:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    frame = pd.DataFrame({"customer_id": ids, "date": dates.astype("datetime64[ns]"), "amount": amounts})
    t: dict[str, float] = {}
    s = _timed(
        t,
        "summarise",
        lambda: summary_data_from_transaction_data(
            frame, "customer_id", "date", "amount", observation_period_end=pd.Timestamp(END), freq="D"
        ),
    )
    bg = BetaGeoFitter()
    _timed(t, "fit_bgnbd", lambda: bg.fit(s["frequency"], s["recency"], s["T"]))
    repeat = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    gg = GammaGammaFitter()
    _timed(t, "fit_gamma_gamma", lambda: gg.fit(repeat["frequency"], repeat["monetary_value"]))
    value = _timed(
        t,
        "clv_12_months",
        lambda: gg.customer_lifetime_value(
            bg, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=MONTHS,
            discount_rate=DISCOUNT, freq="D",
        ),
    )  # fmt: skip
    params = {
        "r": bg.params_["r"], "alpha": bg.params_["alpha"], "a": bg.params_["a"], "b": bg.params_["b"],
        "p": gg.params_["p"], "q": gg.params_["q"], "gamma": gg.params_["v"],
    }  # fmt: skip
    return {"timings": t, "params": {k: float(v) for k, v in params.items()}, "clv": value, "summary": s}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-reference", action="store_true", help="skip lifetimes (ours only)")
    args = parser.parse_args()

    started = time.perf_counter()
    ids, dates, amounts = simulate_transactions(
        np.random.default_rng(args.seed), args.customers, end=np.datetime64(END), window_days=730,
        bgnbd=TRUE_BGNBD, gamma_gamma=TRUE_GG,
    )  # fmt: skip
    generate = time.perf_counter() - started
    ours = run_ours(ids, dates, amounts)
    s = ours["summary"]
    groups = len(group_rows(s.frequency, s.recency, s.T)[1])
    print(f"customers {len(s):,}  transactions {len(ids):,}  repeat customers "
          f"{int(np.count_nonzero(s.frequency > 0)):,}  (x, t_x, T) groups {groups:,}  "
          f"(generated in {generate:.1f}s)")  # fmt: skip

    ref: dict[str, Any] | None = None
    if not args.no_reference:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = run_lifetimes(ids, dates, amounts)

    print(f"\n{'stage':<18}{'rapport s':>12}{'(CPU s)':>9}{'lifetimes s':>14}{'speedup':>10}")
    for stage, mine in ours["timings"].items():
        theirs = ref["timings"][stage] if ref else float("nan")
        print(f"{stage:<18}{mine:>12.2f}{CPU[stage]:>9.2f}{theirs:>14.2f}{theirs / mine:>9.1f}x")
    total = sum(ours["timings"].values())
    ref_total = sum(ref["timings"].values()) if ref else float("nan")
    print(f"{'total':<18}{total:>12.2f}{sum(CPU.values()):>9.2f}{ref_total:>14.2f}{ref_total / total:>9.1f}x")

    print(f"\n{'parameter':<10}{'true':>10}{'rapport':>14}{'lifetimes':>14}{'rel. diff':>12}")
    true = dict(zip(("r", "alpha", "a", "b", "p", "q", "gamma"), (*TRUE_BGNBD, *TRUE_GG), strict=True))
    worst = 0.0
    for name, mine in ours["params"].items():
        theirs = ref["params"][name] if ref else float("nan")
        rel = abs(mine - theirs) / abs(theirs)
        worst = max(worst, rel) if ref else worst
        print(f"{name:<10}{true[name]:>10.4g}{mine:>14.6g}{theirs:>14.6g}{rel:>12.2e}")
    print(f"BG/NBD log-likelihood (rapport) {ours['ll']:.1f}")
    if ref:
        rs = ref["summary"]
        same = (
            np.array_equal(rs["frequency"].to_numpy(), s.frequency)
            and np.array_equal(rs["recency"].to_numpy(), s.recency)
            and np.array_equal(rs["T"].to_numpy(), s.T)
            and np.allclose(rs["monetary_value"].to_numpy(), s.monetary, rtol=1e-12, atol=1e-9)
        )
        theirs_clv = ref["clv"].to_numpy()
        rel_total = abs(ours["clv"].sum() - theirs_clv.sum()) / theirs_clv.sum()
        print(f"summaries identical: {same}; largest parameter difference {worst:.2e} "
              f"({'within' if worst <= 0.01 else 'OUTSIDE'} 1%)")  # fmt: skip
        print(f"12-month CLV total: rapport {ours['clv'].sum():,.0f}, lifetimes {theirs_clv.sum():,.0f} "
              f"(rel. diff {rel_total:.2e}); per-customer correlation "
              f"{np.corrcoef(ours['clv'], theirs_clv)[0, 1]:.6f}")  # fmt: skip


if __name__ == "__main__":
    main()
