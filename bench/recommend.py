"""Scale check for `rapport analytics recommend-eval`: ~1M planted-taste interactions in MovieLens format.

Writes a ``user::item::rating::unix_time`` file (no header, like ratings.dat), runs the command on it
and prints the metrics, the stage timings, wall time and the peak memory of the command.

    .venv/bin/python bench/recommend.py --users 6000 --items 3700 --per-user 165
    .venv/bin/python bench/recommend.py --users 100000 --items 50000 --groups 500 --per-user 10 \
        --max-eval-users 5000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rapport.analytics.synthetic import simulate_purchases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--items", type=int, default=3700)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--per-user", type=float, default=165.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-eval-users", type=int, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    data = simulate_purchases(rng, args.users, args.items, args.groups, purchases_per_user=args.per_user)
    ratings = rng.integers(1, 6, len(data.users))
    unix = data.times.astype("datetime64[s]").astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.dat"
        lines = (
            f"{u + 1}::{i + 1}::{r}::{t}"
            for u, i, r, t in zip(data.users, data.items, ratings, unix, strict=True)
        )
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{len(data.users):,} interactions, {args.users:,} users, {args.items:,} items")
        started = time.perf_counter()
        out = subprocess.run(
            [
                str(Path(sys.executable).parent / "rapport"),
                "analytics",
                "recommend-eval",
                str(path),
                "--user-column",
                "1",
                "--item-column",
                "2",
                "--rating-column",
                "3",
                "--time-column",
                "4",
                "--json",
                *(["--max-eval-users", str(args.max_eval_users)] if args.max_eval_users else []),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = json.loads(out.stdout)
    for name, values in result["metrics"].items():
        print(
            f"{name:<12} "
            + "  ".join(f"{key}={value:.4f}" for key, value in values.items() if key != "users")
        )
    print("hybrid weights:", result["hybrid_weights"])
    print("timings:", {key: round(value, 2) for key, value in result["timings"].items()})
    print(f"wall {wall:.1f} s, peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
