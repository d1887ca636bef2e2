"""Time the CLV pipeline on transactions drawn from the models themselves.

    .venv/bin/python bench/clv.py [--customers 1000000] [--seed 42] [--time-unit day|week]

Default size: 1,000,000 customers over a two-year window, about 10 million transactions. Prints the
wall time of each stage (summarise, BG/NBD fit, Gamma-Gamma fit, 12-month CLV) and the recovered
parameters next to the true ones. Recovery is approximate on a day grid: same-day repeat purchases
merge, and with --time-unit week the true α and γ are in per-day units, so only r, a, b, p, q compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from rapport.analytics.clv import clv, fit_bgnbd, fit_gamma_gamma, group_rows, summarise
from rapport.analytics.simulate import simulate_transactions

TRUE_BGNBD = (0.9, 22.0, 0.6, 8.0)  # per-day purchase rates
TRUE_GG = (4.0, 5.0, 160.0)  # mean purchase value p γ / (q - 1) = 160
END = dt.date(2025, 12, 31)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--time-unit", choices=["day", "week"], default="day")
    args = parser.parse_args()

    timings: dict[str, float] = {}
    started = time.perf_counter()
    ids, dates, amounts = simulate_transactions(
        np.random.default_rng(args.seed),
        args.customers,
        end=np.datetime64(END),
        window_days=730,
        bgnbd=TRUE_BGNBD,
        gamma_gamma=TRUE_GG,
    )
    timings["generate"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = summarise(ids, dates, amounts, END, args.time_unit)
    timings["summarise"] = time.perf_counter() - started

    started = time.perf_counter()
    bgnbd = fit_bgnbd(summary)
    timings["fit_bgnbd"] = time.perf_counter() - started

    started = time.perf_counter()
    gg = fit_gamma_gamma(summary)
    timings["fit_gamma_gamma"] = time.perf_counter() - started

    started = time.perf_counter()
    value = clv(
        bgnbd,
        gg,
        summary.frequency,
        summary.recency,
        summary.T,
        summary.monetary,
        months=12,
        monthly_discount_rate=0.01,
        time_unit=args.time_unit,
    )
    timings["clv_12_months"] = time.perf_counter() - started

    repeat = summary.frequency > 0
    groups = len(group_rows(summary.frequency, summary.recency, summary.T)[1])
    print(f"customers            {len(summary):>12,}")
    print(f"transactions         {len(ids):>12,}")
    print(f"repeat customers     {int(np.count_nonzero(repeat)):>12,}")
    print(f"(x, t_x, T) groups   {groups:>12,}")
    print(f"time unit            {args.time_unit:>12}")
    for stage, seconds in timings.items():
        print(f"{stage:<20} {seconds:>11.2f}s")
    pipeline = sum(v for k, v in timings.items() if k != "generate")
    print(f"{'pipeline total':<20} {pipeline:>11.2f}s  (excludes generate)")
    print(
        f"BG/NBD  r={bgnbd.r:.4f} alpha={bgnbd.alpha:.4f} a={bgnbd.a:.4f} b={bgnbd.b:.4f}"
        f"  ll={bgnbd.loglik:.1f}"
    )
    print(f"  true  r={TRUE_BGNBD[0]} alpha={TRUE_BGNBD[1]} a={TRUE_BGNBD[2]} b={TRUE_BGNBD[3]}")
    print(f"GammaG  p={gg.p:.4f} q={gg.q:.4f} gamma={gg.gamma:.4f}  ll={gg.loglik:.1f}")
    print(f"  true  p={TRUE_GG[0]} q={TRUE_GG[1]} gamma={TRUE_GG[2]}")
    print(f"12-month CLV: mean {value.mean():.2f}, median {np.median(value):.2f}, total {value.sum():,.0f}")


if __name__ == "__main__":
    main()
