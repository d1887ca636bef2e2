"""Association rules on purchase baskets (one basket = the distinct products of one order), by FP-growth.

Frequent itemsets come from mlxtend's FP-growth on a sparse one-hot basket matrix; rules are derived
from them and their measures recomputed from whole basket counts, so they are exact ratios:

- support(A => B) = n(A and B) / N, confidence = n(A and B) / n(A),
- lift = confidence / (n(B) / N), leverage = support - support(A) support(B),
- conviction = (1 - support(B)) / (1 - confidence) (infinite when confidence is 1).

``min_baskets`` is a floor on n(A and B) on top of ``min_support``: a rule seen in a handful of
orders would describe those few customers rather than the customer base.

``also_bought`` answers "customers who buy A also buy B" from the single-product rules A => B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mlxtend.frequent_patterns import fpgrowth
from numpy.typing import ArrayLike

from rapport.analytics import purchases as store
from rapport.analytics.jobs import JobContext, JobResult

RULE_COLUMNS = [
    "antecedents",
    "consequents",
    "antecedent_size",
    "baskets",
    "antecedent_baskets",
    "consequent_baskets",
    "support",
    "confidence",
    "lift",
    "leverage",
    "conviction",
]
ALSO_BOUGHT_COLUMNS = ["product_id", "other_product_id", "baskets", "support", "confidence", "lift"]


@dataclass(frozen=True)
class RulesResult:
    baskets: int
    itemsets: pd.DataFrame  # items (tuple of product ids), baskets, support
    rules: pd.DataFrame  # RULE_COLUMNS; antecedents/consequents are tuples of product ids


def _ids(items: frozenset[Any]) -> tuple[int, ...]:
    return tuple(sorted(int(i) for i in items))


def frequent_itemsets(
    order_ids: ArrayLike, product_ids: ArrayLike, *, min_support: float = 0.01, max_len: int | None = 3
) -> tuple[int, pd.DataFrame]:
    """(number of baskets, itemsets with their basket counts) by FP-growth."""
    orders = pd.factorize(np.asarray(order_ids))[0]
    products, labels = pd.factorize(np.asarray(product_ids))
    n_baskets = int(orders.max()) + 1 if len(orders) else 0
    empty = pd.DataFrame({"items": pd.Series([], dtype=object), "baskets": pd.Series([], dtype="int64")})
    if n_baskets == 0:
        return 0, empty.assign(support=pd.Series([], dtype="float64"))
    matrix = sp.csr_matrix(
        (np.ones(len(orders), dtype=bool), (orders, products)), shape=(n_baskets, len(labels)), dtype=bool
    )
    # Items below the support floor cannot be in any frequent itemset: drop them before FP-growth.
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    keep = np.flatnonzero(counts >= math.ceil(min_support * n_baskets - 1e-9))
    if len(keep) == 0:
        return n_baskets, empty.assign(support=pd.Series([], dtype="float64"))
    frame = pd.DataFrame.sparse.from_spmatrix(  # type: ignore[attr-defined]  # accessor untyped in stubs
        sp.csc_matrix(matrix[:, keep]), columns=[str(int(x)) for x in np.asarray(labels)[keep]]
    )
    found = fpgrowth(frame, min_support=min_support, use_colnames=True, max_len=max_len)
    items = [_ids(s) for s in found["itemsets"]]
    baskets = np.rint(found["support"].to_numpy() * n_baskets).astype(np.int64)
    out = pd.DataFrame({"items": pd.Series(items, dtype=object), "baskets": baskets})
    out["support"] = out["baskets"] / n_baskets
    return n_baskets, out.sort_values(["baskets", "items"], ascending=[False, True], ignore_index=True)


def mine_rules(
    order_ids: ArrayLike,
    product_ids: ArrayLike,
    *,
    min_support: float = 0.01,
    min_confidence: float = 0.1,
    max_len: int | None = 3,
    min_baskets: int = 1,
) -> RulesResult:
    n, itemsets = frequent_itemsets(order_ids, product_ids, min_support=min_support, max_len=max_len)
    count = dict(zip(itemsets["items"], itemsets["baskets"], strict=True))
    rows: list[dict[str, Any]] = []
    for items, n_ab in count.items():
        if len(items) < 2 or n_ab < min_baskets:
            continue
        # Every non-empty proper subset as antecedent (itemsets are small: max_len bounds them).
        for mask in range(1, (1 << len(items)) - 1):
            a = tuple(x for bit, x in enumerate(items) if mask >> bit & 1)
            b = tuple(x for bit, x in enumerate(items) if not mask >> bit & 1)
            n_a, n_b = count[a], count[b]  # subsets of a frequent itemset are frequent
            confidence = n_ab / n_a
            if confidence < min_confidence:
                continue
            support, s_a, s_b = n_ab / n, n_a / n, n_b / n
            rows.append(
                {
                    "antecedents": a,
                    "consequents": b,
                    "antecedent_size": len(a),
                    "baskets": n_ab,
                    "antecedent_baskets": n_a,
                    "consequent_baskets": n_b,
                    "support": support,
                    "confidence": confidence,
                    "lift": confidence / s_b,
                    "leverage": support - s_a * s_b,
                    "conviction": math.inf if n_ab == n_a else (1 - s_b) / (1 - confidence),
                }
            )
    rules = pd.DataFrame(rows, columns=RULE_COLUMNS)
    if len(rules):
        rules = rules.sort_values(
            ["lift", "confidence", "baskets", "antecedents", "consequents"],
            ascending=[False, False, False, True, True],
            ignore_index=True,
        )
    return RulesResult(n, itemsets, rules)


def also_bought_table(rules: pd.DataFrame) -> pd.DataFrame:
    """Single-product rules A => B as (product_id, other_product_id, ...), best first per product."""
    pairs = rules[(rules["antecedent_size"] == 1) & (rules["consequents"].map(len) == 1)]
    out = pd.DataFrame(
        {
            "product_id": [a[0] for a in pairs["antecedents"]],
            "other_product_id": [b[0] for b in pairs["consequents"]],
            "baskets": pairs["baskets"].to_numpy(),
            "support": pairs["support"].to_numpy(),
            "confidence": pairs["confidence"].to_numpy(),
            "lift": pairs["lift"].to_numpy(),
        },
        columns=ALSO_BOUGHT_COLUMNS,
    )
    return out.sort_values(
        ["product_id", "confidence", "lift", "other_product_id"],
        ascending=[True, False, False, True],
        ignore_index=True,
    )


def also_bought(table: pd.DataFrame, product_id: int, k: int = 10) -> list[dict[str, Any]]:
    """Customers who buy ``product_id`` also buy: the other products by confidence, then lift."""
    rows = table[table["product_id"] == product_id].head(k)
    return [
        {
            "product_id": int(r["other_product_id"]),
            "confidence": float(r["confidence"]),
            "lift": float(r["lift"]),
            "support": float(r["support"]),
            "baskets": int(r["baskets"]),
        }
        for r in rows.to_dict("records")
    ]


def also_bought_from_store(
    con: duckdb.DuckDBPyConnection, product_id: int, k: int = 10
) -> list[dict[str, Any]]:
    """Service function: the lookup on the stored result table ``result_rules_also_bought``.

    The same table is served as JSON by GET /api/v1/analytics/tables?table=also_bought. Rules are
    aggregates over orders (no customer ids).
    """
    frame = con.execute(
        "SELECT * FROM result_rules_also_bought WHERE product_id = ? "
        "ORDER BY confidence DESC, lift DESC, other_product_id LIMIT ?",
        [product_id, k],
    ).df()
    return also_bought(frame, product_id, k)


def _stored(rules: pd.DataFrame) -> pd.DataFrame:
    """Rules with id tuples as comma-separated text (plain VARCHAR columns in DuckDB)."""
    out = rules.copy()
    for col in ("antecedents", "consequents"):
        out[col] = out[col].map(lambda ids: ",".join(str(i) for i in ids)).astype(str)
    return out


class RulesJob:
    name = "rules"
    model_version = "fpgrowth-mlxtend/1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        params = ctx.params
        ctx.progress(0.1, "rules: reading baskets")
        lines = store.purchase_lines(con, ctx.as_of)
        ctx.progress(0.3, "rules: FP-growth")
        result = mine_rules(
            lines["order_id"].to_numpy(),
            lines["product_id"].to_numpy(),
            # Baskets are spread over a whole catalogue: 0.1 % of orders (with min_baskets) is signal.
            min_support=float(params.get("min_support", 0.001)),
            min_confidence=float(params.get("min_confidence", 0.1)),
            max_len=int(params.get("max_len", 3)),
            min_baskets=int(params.get("min_baskets", 5)),
        )
        ctx.progress(1.0, "rules: done")
        return JobResult(
            scores=[],
            tables={"rules": _stored(result.rules), "also_bought": also_bought_table(result.rules)},
            metrics={
                "baskets": float(result.baskets),
                "itemsets": float(len(result.itemsets)),
                "rules": float(len(result.rules)),
            },
        )
