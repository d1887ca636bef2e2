"""RecommendJob: next-best products for every customer who allows profiling, from the analytics store.

Privacy: customers whose ``profiling_allowed`` is false (or NULL) are neither scored nor used as
training signal (their purchases do not enter the item similarities or popularity counts).

Item universe: every product of the catalogue (so a new product with no sales can still be recommended
through its category and price band); inactive products are never recommended. Cold-start customers
(no purchases yet) get the most popular products of their region, else of their preferred channel,
else overall.

Hybrid weights: given in ``params["weights"]``, or tuned on a validation split cut from the purchases
before a holdout (time split, last 20 % of purchase lines); the holdout then measures the tuned hybrid
and the popularity baseline (``metrics`` and the ``evaluation`` table). With too little history the
default weights are used and no evaluation is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from rapport.analytics import purchases as store
from rapport.analytics.jobs import JobContext, JobResult, ScoreRow
from rapport.analytics.recommend import (
    DEFAULT_WEIGHTS,
    Recommender,
    RecommenderConfig,
    evaluate_offline,
    interaction_matrix,
    item_feature_matrix,
    price_bands,
    recent_buyers,
)

KIND = "recommendations"
# Below these, a holdout says nothing and the default weights are used.
MIN_LINES_FOR_TUNING = 200
MIN_BUYERS_FOR_TUNING = 20


class ProfilingNotAllowed(Exception):
    """The customer does not allow profiling (or is unknown to the store): no recommendations."""


def _tokens(products: pd.DataFrame) -> list[list[str]]:
    bands = price_bands(products["list_price"].astype("float64").to_numpy())
    out: list[list[str]] = []
    for category, band in zip(products["category"].tolist(), bands, strict=True):
        tokens = [f"category:{category}"] if isinstance(category, str) and category else []
        if band is not None:
            tokens.append(band)
        out.append(tokens)
    return out


@dataclass
class FittedRecommender:
    """A recommender fitted on the store for the customers who allow profiling."""

    model: Recommender
    customer_ids: np.ndarray[Any, Any]
    product_ids: np.ndarray[Any, Any]
    weights: dict[str, float]
    evaluation: dict[str, dict[str, float]] | None
    cold_source: str = "popularity"

    def row_of(self, customer_id: int) -> int:
        pos = int(np.searchsorted(self.customer_ids, customer_id))
        if pos >= len(self.customer_ids) or self.customer_ids[pos] != customer_id:
            raise ProfilingNotAllowed(customer_id)
        return pos

    def for_customers(self, customer_ids: list[int], k: int = 10) -> list[tuple[list[int], list[float]]]:
        """(product ids, scores) per customer, best first; ProfilingNotAllowed for anyone else."""
        rows = np.array([self.row_of(c) for c in customer_ids], dtype=np.intp)
        out = []
        for items, scores in self.model.recommend(rows, k, self.weights):
            out.append(([int(self.product_ids[i]) for i in items], scores))
        return out

    def has_history(self, customer_id: int) -> bool:
        return bool(self.model.history[self.row_of(customer_id)])


def fit_store_recommender(
    con: duckdb.DuckDBPyConnection, ctx: JobContext, *, evaluate: bool = True
) -> FittedRecommender:
    """Fit on the store's purchases up to ``ctx.as_of`` (see the module doc for privacy and tuning)."""
    params = ctx.params
    config = RecommenderConfig(
        neighbours=int(params.get("neighbours", 100)),
        shrink=float(params.get("shrink", 10.0)),
        repurchase=bool(params.get("repurchase", False)),
        min_segment_buyers=int(params.get("min_segment_buyers", 20)),
        similarity=params.get("similarity"),
    )
    customers = store.customers(con, ctx.as_of)
    customers = customers[customers["profiling_allowed"].astype(bool)]
    customer_ids = customers["customer_id"].astype("int64").to_numpy()
    products = store.products(con)
    lines = store.purchase_lines(con, ctx.as_of)
    lines = lines[lines["customer_id"].isin(customer_ids)]
    # Products sold but missing from the catalogue table still count as evidence (never recommended).
    extra = np.setdiff1d(lines["product_id"].astype("int64").to_numpy(), products["product_id"].to_numpy())
    if len(extra):
        products = pd.concat(
            [
                products,
                pd.DataFrame(
                    {"product_id": extra, "category": None, "list_price": np.nan, "is_active": False}
                ),
            ],
            ignore_index=True,
        ).sort_values("product_id", ignore_index=True)
    product_ids = products["product_id"].astype("int64").to_numpy()
    tokens = _tokens(products)
    user_rows = np.searchsorted(customer_ids, lines["customer_id"].astype("int64").to_numpy())
    item_cols = np.searchsorted(product_ids, lines["product_id"].astype("int64").to_numpy())
    quantity = lines["quantity"].astype("float64").fillna(1.0).clip(lower=0.0).to_numpy()
    segments = []
    for column in ("region", "preferred_channel"):
        codes, _ = pd.factorize(customers[column], use_na_sentinel=True)
        segments.append(codes.astype(np.int64))

    weights = dict(params["weights"]) if "weights" in params else None
    cold_source = str(params.get("cold_source", "popularity"))
    evaluation = None
    ctx.progress(0.1, "recommend: tuning")
    if weights is None:
        weights = dict(DEFAULT_WEIGHTS)
        n_buyers = len(np.unique(user_rows))
        if evaluate and len(lines) >= MIN_LINES_FOR_TUNING and n_buyers >= MIN_BUYERS_FOR_TUNING:
            segment_maps = [dict(zip(customer_ids.tolist(), s.tolist(), strict=True)) for s in segments]
            report = evaluate_offline(
                customer_ids[user_rows],
                product_ids[item_cols],
                times=lines["ordered_at"].to_numpy(dtype="datetime64[ns]"),
                weights=quantity,
                item_tokens=dict(zip(product_ids.tolist(), tokens, strict=True)),
                user_segments=[{c: v for c, v in m.items() if v >= 0} for m in segment_maps],
                k=int(params.get("k", 10)),
                config=config,
            )
            weights = report.weights
            cold_source = report.cold_source
            config = replace(config, similarity=report.similarity)
            evaluation = report.metrics
    ctx.progress(0.5, "recommend: fitting")
    if config.similarity is None:  # not tuned: support shrinkage, the safer one on sparse histories
        config = replace(config, similarity="support")
    X = interaction_matrix(user_rows, item_cols, len(customer_ids), len(product_ids), quantity)
    model = Recommender(
        X,
        features=item_feature_matrix(tokens),
        segments=segments,
        allowed_items=products["is_active"].fillna(False).astype(bool).to_numpy(),
        trending=recent_buyers(
            user_rows, item_cols, lines["ordered_at"].to_numpy(dtype="datetime64[ns]"), len(product_ids)
        ),
        config=config,
    )
    model.cold_source = cold_source
    return FittedRecommender(model, customer_ids, product_ids, weights, evaluation, cold_source)


class RecommendJob:
    name = "recommend"
    model_version = "hybrid-itemcf-content-popularity/1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        fitted = fit_store_recommender(con, ctx)
        k = int(ctx.params.get("k", 10))
        ids = fitted.customer_ids.tolist()
        scores: list[ScoreRow] = []
        ctx.progress(0.7, "recommend: scoring")
        for cid, (products, values) in zip(ids, fitted.for_customers(ids, k), strict=True):
            if not products:  # nothing to suggest (an empty catalogue): no score rather than an empty one
                continue
            rounded = [round(v, 6) for v in values]
            scores.append(
                ScoreRow(
                    customer_id=int(cid),
                    kind=KIND,
                    value=rounded[0] if rounded else None,
                    label="personal" if fitted.has_history(cid) else "cold_start",
                    details={"products": products, "scores": rounded},
                )
            )
        tables: dict[str, pd.DataFrame] = {}
        metrics: dict[str, float] = {"customers_scored": float(len(scores))}
        metrics.update({f"weight.{c}": w for c, w in fitted.weights.items()})
        metrics["cold_start_trending"] = float(fitted.cold_source == "trending")
        metrics["similarity_support"] = float(fitted.model.config.similarity == "support")
        if fitted.evaluation is not None:
            tables["evaluation"] = pd.DataFrame(
                [{"recommender": name, **values} for name, values in fitted.evaluation.items()]
            )
            for name in ("hybrid", "popularity"):
                for key, value in fitted.evaluation[name].items():
                    if key != "users":
                        metrics[f"{name}.{key}"] = value
        ctx.progress(1.0, "recommend: done")
        return JobResult(scores=scores, tables=tables, metrics=metrics)


def customer_recommendations(
    fitted: FittedRecommender, customer_id: int, k: int = 10
) -> list[dict[str, Any]]:
    """Service function for the API: ``[{"product_id", "score"}]`` for one customer, best first.

    Raises ProfilingNotAllowed when the customer does not allow profiling. The caller (endpoint) must
    have read the customer through rapport.access.records.Records first, so scope and audit apply.
    The API serves the stored result instead: the customer_score row of kind "recommendations"
    (GET /api/v1/customers/{id}/scores), whose details hold the same lists.
    """
    [(products, values)] = fitted.for_customers([customer_id], k)
    return [{"product_id": p, "score": s} for p, s in zip(products, values, strict=True)]
