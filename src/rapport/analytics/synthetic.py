"""Synthetic purchase logs and revenue series with planted structure (for tests and benchmarks).

``simulate_purchases``: items belong to taste groups (a group is a product category with its own
price range); each customer has a taste vector over groups (sparse Dirichlet: one or two dominant
groups) and buys at random times, picking a group from their taste and an item from that group by
within-group popularity (Zipf), with a share of purchases drawn from global popularity instead
(noise). A customer's region follows their dominant group most of the time, so region popularity is
informative for cold-start customers.

``seasonal_series``: level + linear trend + seasonal sine pattern + Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SyntheticPurchases:
    users: NDArray[np.int64]
    items: NDArray[np.int64]
    times: NDArray[np.datetime64]
    item_group: NDArray[np.int64]
    item_price: NDArray[np.float64]
    user_region: NDArray[np.int64]
    user_taste: NDArray[np.float64]

    def item_tokens(self) -> dict[int, list[str]]:
        """Category token per item (its group); price bands are added by the caller."""
        return {i: [f"category:g{int(g)}"] for i, g in enumerate(self.item_group)}


def simulate_purchases(
    rng: np.random.Generator,
    n_users: int = 2000,
    n_items: int = 300,
    n_groups: int = 12,
    *,
    purchases_per_user: float = 12.0,
    noise: float = 0.15,
    taste_concentration: float = 0.15,
    zipf: float = 1.0,
    n_regions: int = 4,
    region_fidelity: float = 0.8,
    start: str = "2024-01-01",
    days: int = 730,
) -> SyntheticPurchases:
    item_group = np.arange(n_items) % n_groups
    rng.shuffle(item_group)
    # Within-group popularity: Zipf over the items of each group; a global popularity for the noise.
    weight = np.zeros(n_items)
    for g in range(n_groups):
        members = np.flatnonzero(item_group == g)
        ranks = rng.permutation(len(members)) + 1
        weight[members] = 1.0 / ranks**zipf
    group_items = [np.flatnonzero(item_group == g) for g in range(n_groups)]
    group_probs = [weight[m] / weight[m].sum() for m in group_items]
    global_probs = weight / weight.sum()
    base_price = np.exp(rng.uniform(np.log(10), np.log(2000), n_groups))
    item_price = base_price[item_group] * np.exp(rng.normal(0, 0.15, n_items))

    taste = rng.dirichlet(np.full(n_groups, taste_concentration), size=n_users)
    dominant = taste.argmax(axis=1)
    region = np.where(
        rng.random(n_users) < region_fidelity, dominant % n_regions, rng.integers(0, n_regions, n_users)
    )
    counts = 1 + rng.poisson(purchases_per_user - 1, n_users)
    users = np.repeat(np.arange(n_users), counts)
    items = np.empty(len(users), dtype=np.int64)
    # Group per purchase from the buyer's taste (inverse CDF on the cumulated taste rows).
    cum = np.cumsum(taste, axis=1)
    draws = rng.random(len(users))
    groups = np.minimum((cum[users] < draws[:, None]).sum(axis=1), n_groups - 1)
    for g in range(n_groups):
        at = np.flatnonzero(groups == g)
        items[at] = rng.choice(group_items[g], size=len(at), p=group_probs[g])
    noisy = rng.random(len(users)) < noise
    items[noisy] = rng.choice(n_items, size=int(noisy.sum()), p=global_probs)
    offsets = rng.integers(0, days * 24 * 3600, len(users))
    times = np.datetime64(start, "s") + offsets.astype("timedelta64[s]")
    return SyntheticPurchases(
        users=users.astype(np.int64),
        items=items,
        times=times,
        item_group=item_group.astype(np.int64),
        item_price=item_price,
        user_region=region.astype(np.int64),
        user_taste=taste,
    )


def seasonal_series(
    rng: np.random.Generator,
    n: int,
    *,
    period: int = 12,
    level: float = 1000.0,
    trend: float = 10.0,
    amplitude: float = 200.0,
    noise: float = 40.0,
) -> NDArray[np.float64]:
    t = np.arange(n, dtype=np.float64)
    return level + trend * t + amplitude * np.sin(2 * np.pi * t / period) + rng.normal(0.0, noise, n)
