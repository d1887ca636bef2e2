"""Scale check for association rules: FP-growth on many baskets with planted co-purchases.

.venv/bin/python bench/rules.py --baskets 200000 --products 3000 --min-support 0.002
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from rapport.analytics.rules import also_bought_table, mine_rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baskets", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--min-support", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    popularity = 1.0 / np.arange(1, args.products + 1) ** 0.9
    popularity /= popularity.sum()
    sizes = 1 + rng.poisson(1.5, args.baskets)
    orders = np.repeat(np.arange(args.baskets), sizes)
    products = rng.choice(args.products, size=len(orders), p=popularity)
    # Planted: 5 % of baskets also hold the pair (100, 101), 2 % the triple (200, 201, 202).
    pair = np.flatnonzero(rng.random(args.baskets) < 0.05)
    triple = np.flatnonzero(rng.random(args.baskets) < 0.02)
    orders = np.r_[orders, np.repeat(pair, 2), np.repeat(triple, 3)]
    products = np.r_[products, np.tile([100, 101], len(pair)), np.tile([200, 201, 202], len(triple))]
    print(f"{len(orders):,} order lines, {args.baskets:,} baskets, {args.products:,} products")

    started = time.perf_counter()
    result = mine_rules(orders, products, min_support=args.min_support, min_confidence=0.1, min_baskets=5)
    seconds = time.perf_counter() - started
    table = also_bought_table(result.rules)
    print(f"{len(result.itemsets):,} itemsets, {len(result.rules):,} rules in {seconds:.1f} s")
    top = table[table["product_id"] == 100].head(1).to_dict("records")
    print("also bought with 100:", top)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
