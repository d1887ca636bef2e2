"""Next-best products per customer from implicit feedback (purchases), and their offline evaluation.

Recommenders (all work on integer codes: users 0..U-1 are rows, items 0..I-1 are columns of a
``scipy.sparse`` CSR matrix ``X`` whose values are log1p of the summed interaction weights):

- ``popularity``: number of distinct training buyers per item (the baseline).
- ``trending`` (when interactions have times): distinct buyers per item over the most recent 10 %
  of the training interactions.
- ``item_cf``: item-item collaborative filtering on binary item columns, with ``c_ij`` the number of
  users who bought both and ``n_i`` the buyers of i. Two shrunk similarities: ``cosine``,
  ``c_ij / (sqrt(n_i n_j) + shrink)`` (good on dense data), and ``support``,
  ``c_ij / sqrt(n_i n_j) * c_ij / (c_ij + shrink)`` (Koren's support shrinkage: on sparse, wide
  catalogues one chance co-purchase of two rare items no longer outranks a real pattern). The
  evaluation picks one on the validation split. Only the ``neighbours`` most similar items of each
  item are kept. The similarity is
  computed in column blocks (``X^T X[:, block]``) so memory stays at one dense block of
  ``items x block``. A user's score for item j is ``sum_i x_ui sim(i, j)``.
- ``content``: TF-IDF weighted one-hot item attributes (e.g. ``category:Tea``, ``price:3`` for the
  price band); the user's profile is the weighted sum of the attribute vectors of what they bought
  and an item's score is the cosine between profile and item. New items (no purchases yet) get
  content scores, so the hybrid can recommend them.
- ``hybrid``: a weighted blend of the components after scaling each user's scores to [0, 1] (divide
  by that user's best score). The weights are chosen on a validation split cut from the training
  data only (grid over the simplex, best NDCG@k), never on the test split.

Cold start: a user without training history gets the most popular items among buyers sharing their
first known segment attribute (e.g. region, then channel) with enough buyers, else overall or
trending popularity (whichever did better for the validation split's new users).
Every ranking breaks ties by popularity, so a user with few neighbours still gets k sensible items.

Scoring is done in user batches sized so one dense ``batch x items`` block stays small; top-k uses
``argpartition``. Already-bought items are excluded unless ``repurchase`` is configured.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Progress = Callable[[str, float], None]

COMPONENTS = ("item_cf", "content", "popularity", "trending")
COLD_SOURCES = ("popularity", "trending")
SIMILARITIES = ("cosine", "support")
RECENT_FRACTION = 0.1
# Scores within a component are ranked first; popularity only decides ties (and pads short lists).
_TIE_BREAK = 1e-6
# One dense block (batch x items, float32) holds at most this many cells.
_BLOCK_CELLS = 1 << 22


def _no_progress(message: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class RecommenderConfig:
    neighbours: int = 100
    shrink: float = 10.0
    repurchase: bool = False
    # Minimum distinct buyers in a segment before its own popularity is used for cold-start users.
    min_segment_buyers: int = 20
    # Hybrid weights by component; None = tune on a validation split (or the defaults below).
    weights: Mapping[str, float] | None = None
    # Fallback for users without history (and without a qualifying segment): popularity or trending.
    cold_source: str = "popularity"
    # Item-CF similarity (see the module doc); None lets evaluate_offline choose on validation.
    similarity: str | None = None


DEFAULT_WEIGHTS: Mapping[str, float] = {"item_cf": 0.75, "content": 0.0, "popularity": 0.25}


def interaction_matrix(
    user_codes: ArrayLike, item_codes: ArrayLike, n_users: int, n_items: int, weights: ArrayLike | None = None
) -> sp.csr_matrix:
    """Users x items CSR with log1p of the summed weights (1 per interaction without weights)."""
    rows = np.asarray(user_codes, dtype=np.int64)
    cols = np.asarray(item_codes, dtype=np.int64)
    vals = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items), dtype=np.float64)
    X.sum_duplicates()
    X.data = np.log1p(np.maximum(X.data, 0.0))
    X.eliminate_zeros()
    return X


def item_similarity(
    X: sp.csr_matrix,
    *,
    neighbours: int = 100,
    shrink: float = 10.0,
    similarity: str = "cosine",
    progress: Progress = _no_progress,
) -> sp.csr_matrix:
    """Items x items matrix W: column j holds the ``neighbours`` most similar items to j."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}")
    n_items = X.shape[1]
    binary = X.copy().astype(np.float32)
    binary.data[:] = 1.0
    counts = np.asarray(binary.sum(axis=0)).ravel()
    norms = np.sqrt(counts)
    left = binary.T.tocsr()
    right = binary.tocsc()
    block = max(1, min(n_items, _BLOCK_CELLS // max(n_items, 1)))
    k = min(neighbours, n_items - 1)
    rows_out: list[NDArray[np.int64]] = []
    cols_out: list[NDArray[np.int64]] = []
    vals_out: list[NDArray[np.float32]] = []
    if k <= 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        co = (left @ right[:, start:stop]).toarray()
        if similarity == "cosine":
            denom = norms[:, None] * norms[None, start:stop] + shrink
            sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0).astype(np.float32)
        else:
            denom = norms[:, None] * norms[None, start:stop]
            cos = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
            sim = (cos * (co / (co + shrink if shrink > 0 else np.maximum(co, 1)))).astype(np.float32)
        width = stop - start
        sim[np.arange(start, stop), np.arange(width)] = 0.0  # an item is not its own neighbour
        if k < n_items:
            top = np.argpartition(-sim, k - 1, axis=0)[:k]
        else:
            top = np.broadcast_to(np.arange(n_items)[:, None], (n_items, width))
        vals = np.take_along_axis(sim, top, axis=0)
        keep = vals > 0
        rows_out.append(top[keep].astype(np.int64))
        cols_out.append(np.broadcast_to(np.arange(start, stop), top.shape)[keep].astype(np.int64))
        vals_out.append(vals[keep])
        progress("item similarity", stop / n_items)
    return sp.csr_matrix(
        (np.concatenate(vals_out), (np.concatenate(rows_out), np.concatenate(cols_out))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )


def price_bands(prices: ArrayLike, n_bands: int = 5) -> list[str | None]:
    """Quantile band (1 = cheapest) per price as a token ``price:<band>``; None for a missing price."""
    values = np.asarray(prices, dtype=np.float64)
    known = values[np.isfinite(values)]
    if known.size == 0:
        return [None] * len(values)
    edges = np.unique(np.quantile(known, np.linspace(0, 1, n_bands + 1)[1:-1]))
    out: list[str | None] = []
    for v in values:
        out.append(f"price:{int(np.searchsorted(edges, v, side='right')) + 1}" if math.isfinite(v) else None)
    return out


def item_feature_matrix(tokens: Sequence[Sequence[str]]) -> sp.csr_matrix:
    """Items x attributes, TF-IDF weighted one-hot (smoothed idf), rows L2-normalised."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, item_tokens in enumerate(tokens):
        for token in dict.fromkeys(item_tokens):  # first-seen order: deterministic columns
            rows.append(i)
            cols.append(vocab.setdefault(token, len(vocab)))
    n = len(tokens)
    F = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocab)), dtype=np.float64)
    df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=len(vocab))
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    F = sp.csr_matrix(F.multiply(idf[None, :]))
    norms = np.sqrt(np.asarray(F.multiply(F).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv) @ F)


def _normalise_rows(scores: NDArray[np.float32]) -> NDArray[np.float32]:
    if scores.shape[1] == 0:  # an empty catalogue (no purchased lines yet) has nothing to scale
        return scores
    top = scores.max(axis=1, keepdims=True)
    out = np.zeros_like(scores)
    np.divide(scores, top, out=out, where=top > 0)
    return out


def top_k(scores: NDArray[Any], k: int) -> tuple[IntArray, NDArray[Any]]:
    """Indices and values of the k best columns per row, best first (ties: lower index first)."""
    n = scores.shape[1]
    k = min(k, n)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


class Recommender:
    """Fitted components over one training matrix; scores users in batches."""

    def __init__(
        self,
        X: sp.csr_matrix,
        *,
        features: sp.csr_matrix | None = None,
        segments: Sequence[NDArray[np.int64]] = (),
        allowed_items: NDArray[np.bool_] | None = None,
        trending: NDArray[np.float64] | None = None,
        config: RecommenderConfig | None = None,
        progress: Progress = _no_progress,
    ) -> None:
        self.config = config or RecommenderConfig()
        self.cold_source = self.config.cold_source
        self.trending = None if trending is None else np.asarray(trending, dtype=np.float32)
        self.X = sp.csr_matrix(X, dtype=np.float32)
        self.n_users, self.n_items = int(X.shape[0]), int(X.shape[1])
        self.features = features if features is not None and features.shape[1] > 0 else None
        if self.features is not None and self.features.shape[0] != self.n_items:
            raise ValueError("item features must have one row per item")
        self.allowed = allowed_items
        self.history = np.diff(self.X.indptr) > 0
        buyers = self.X.copy()
        buyers.data[:] = 1.0
        self.popularity = np.asarray(buyers.sum(axis=0), dtype=np.float32).ravel()
        pop_max = float(self.popularity.max()) if self.n_items else 0.0
        self._tie = (self.popularity / pop_max if pop_max > 0 else self.popularity) * _TIE_BREAK
        self.W = item_similarity(
            self.X,
            neighbours=self.config.neighbours,
            shrink=self.config.shrink,
            similarity=self.config.similarity or "cosine",
            progress=progress,
        )
        # Cold start: per segment attribute, per segment code, popularity among that segment's buyers.
        self.segments = [np.asarray(s, dtype=np.int64) for s in segments]
        self._segment_pop: list[dict[int, NDArray[np.float32]]] = []
        for codes in self.segments:
            if codes.shape != (self.n_users,):
                raise ValueError("segment codes must have one entry per user")
            table: dict[int, NDArray[np.float32]] = {}
            for code in np.unique(codes[(codes >= 0) & self.history]):
                members = np.flatnonzero((codes == code) & self.history)
                if len(members) >= self.config.min_segment_buyers:
                    table[int(code)] = np.asarray(buyers[members].sum(axis=0), dtype=np.float32).ravel()
            self._segment_pop.append(table)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(
            c
            for c in COMPONENTS
            if (c != "content" or self.features is not None)
            and (c != "trending" or self.trending is not None)
        )

    def batch_size(self) -> int:
        return max(1, _BLOCK_CELLS // max(self.n_items, 1))

    def component_scores(self, users: IntArray) -> dict[str, NDArray[np.float32]]:
        """Raw scores per component for a batch of users (dense, batch x items)."""
        hist = self.X[users]
        out: dict[str, NDArray[np.float32]] = {
            "item_cf": np.asarray((hist @ self.W).toarray(), dtype=np.float32),
            "popularity": np.broadcast_to(self.popularity, (len(users), self.n_items)).copy(),
        }
        if self.trending is not None:
            out["trending"] = np.broadcast_to(self.trending, (len(users), self.n_items)).copy()
        if self.features is not None:
            profile = hist @ self.features
            out["content"] = np.asarray((profile @ self.features.T).toarray(), dtype=np.float32)
        return out

    def cold_popularity(self, users: IntArray, source: str | None = None) -> NDArray[np.float32]:
        """Segment popularity for cold users (``source`` popularity when no segment qualifies)."""
        fallback = self.trending if (source or self.cold_source) == "trending" else None
        base = self.popularity if fallback is None else fallback
        out = np.broadcast_to(base, (len(users), self.n_items)).copy()
        for row, user in enumerate(users):
            for codes, table in zip(self.segments, self._segment_pop, strict=True):
                seg = table.get(int(codes[user]))
                if seg is not None:
                    out[row] = seg
                    break
        return out

    def blend(
        self,
        users: IntArray,
        components: Mapping[str, NDArray[np.float32]],
        weights: Mapping[str, float],
        cold_source: str | None = None,
    ) -> NDArray[np.float32]:
        """Weighted blend of row-normalised components, masked, popularity tie-break.

        With ``cold_source`` (the recommender's cold-start path), users without history get segment
        popularity, else that source; without, every user gets the plain blend (for baselines).
        """
        total = np.zeros((len(users), self.n_items), dtype=np.float32)
        for name, w in weights.items():
            if w and name in components:
                total += np.float32(w) * _normalise_rows(components[name])
        cold = ~self.history[users]
        if cold_source is not None and cold.any():
            total[cold] = _normalise_rows(self.cold_popularity(users[cold], cold_source))
        total += self._tie
        return self.mask(users, total)

    def mask(self, users: IntArray, scores: NDArray[np.float32]) -> NDArray[np.float32]:
        if not self.config.repurchase:
            hist = self.X[users].tocoo()
            scores[hist.row, hist.col] = -np.inf
        if self.allowed is not None:
            scores[:, ~self.allowed] = -np.inf
        return scores

    def recommend(
        self, users: ArrayLike, k: int = 10, weights: Mapping[str, float] | None = None
    ) -> list[tuple[list[int], list[float]]]:
        """Per user: (item codes, blended scores), best first; masked items never appear."""
        chosen = weights or self.config.weights or DEFAULT_WEIGHTS
        users_arr = np.asarray(users, dtype=np.intp)
        result: list[tuple[list[int], list[float]]] = []
        step = self.batch_size()
        for start in range(0, len(users_arr), step):
            batch = users_arr[start : start + step]
            scores = self.blend(batch, self.component_scores(batch), chosen, self.cold_source)
            idx, vals = top_k(scores, k)
            for row in range(len(batch)):
                ok = np.isfinite(vals[row])
                result.append(([int(i) for i in idx[row][ok]], [float(v) for v in vals[row][ok]]))
        return result


# --- offline evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    map: float
    ndcg: float
    coverage: float
    users: int

    def as_dict(self, k: int) -> dict[str, float]:
        return {
            f"precision@{k}": self.precision,
            f"recall@{k}": self.recall,
            f"map@{k}": self.map,
            f"ndcg@{k}": self.ndcg,
            "coverage": self.coverage,
            "users": float(self.users),
        }


def weight_grid(components: Sequence[str], step: float = 0.25) -> list[dict[str, float]]:
    """All weightings on the simplex with the given step (each sums to 1)."""
    n = round(1 / step)
    grid: list[dict[str, float]] = []
    for combo in itertools.product(range(n + 1), repeat=len(components)):
        if sum(combo) == n:
            grid.append({c: v / n for c, v in zip(components, combo, strict=True)})
    return grid


def evaluate(
    model: Recommender,
    test: sp.csr_matrix,
    weightings: Mapping[str, Mapping[str, float]],
    *,
    k: int = 10,
    users: IntArray | None = None,
    cold_sources: Mapping[str, str] | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Metrics]:
    """Top-k metrics of each named weighting against the test matrix (users x items, any positive value).

    Relevant items are the user's test items they had not bought in training (unless repurchase is
    on); users without relevant items are skipped. All weightings share one pass over user batches.
    ``cold_sources`` names the weightings that take the cold-start path (see ``Recommender.blend``).
    """
    cold_sources = cold_sources or {}
    test = relevant_items(model, test)
    if users is None:
        users = np.flatnonzero(np.diff(test.indptr) > 0)
    else:
        users = users[np.diff(test.indptr)[users] > 0]
    names = list(weightings)
    sums = {n: np.zeros(4) for n in names}
    shown = {n: np.zeros(model.n_items, dtype=bool) for n in names}
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    step = model.batch_size()
    for start in range(0, len(users), step):
        batch = users[start : start + step]
        comps = model.component_scores(batch)
        rel = test[batch]
        n_rel = np.diff(rel.indptr).astype(np.float64)
        rel_dense = rel.toarray() > 0
        for name in names:
            idx, vals = top_k(model.blend(batch, comps, weightings[name], cold_sources.get(name)), k)
            hits = np.take_along_axis(rel_dense, idx, axis=1) & np.isfinite(vals)
            n_hits = hits.sum(axis=1)
            cum = np.cumsum(hits, axis=1)
            prec_at = cum / np.arange(1, idx.shape[1] + 1)
            ap = (prec_at * hits).sum(axis=1) / np.minimum(n_rel, k)
            dcg = (hits * discounts[: idx.shape[1]]).sum(axis=1)
            ideal = np.cumsum(discounts)[np.minimum(n_rel, k).astype(np.intp) - 1]
            sums[name] += [
                (n_hits / k).sum(),
                (n_hits / n_rel).sum(),
                ap.sum(),
                (dcg / ideal).sum(),
            ]
            shown[name][idx[np.isfinite(vals)]] = True
        progress("evaluate", min(1.0, (start + step) / max(len(users), 1)))
    n_users = len(users)
    out: dict[str, Metrics] = {}
    for name in names:
        p, r, m, g = (sums[name] / n_users) if n_users else (0.0, 0.0, 0.0, 0.0)
        coverage = float(shown[name].sum() / model.n_items) if model.n_items else 0.0
        out[name] = Metrics(float(p), float(r), float(m), float(g), coverage, n_users)
    return out


def relevant_items(model: Recommender, test: sp.csr_matrix) -> sp.csr_matrix:
    """The test matrix less what each user bought in training (unless repurchase is on)."""
    test = sp.csr_matrix(test, dtype=np.float32)
    if not model.config.repurchase:
        seen = model.X.copy()
        seen.data[:] = 1.0
        test = sp.csr_matrix(test - test.multiply(seen))
        test.eliminate_zeros()
    return test


def single(component: str) -> dict[str, float]:
    return {component: 1.0}


def tune_weights(
    model: Recommender, validation: sp.csr_matrix, *, k: int = 10, step: float = 0.25, max_users: int = 3000,
    seed: int = 0, progress: Progress = _no_progress,
) -> tuple[dict[str, float], float]:  # fmt: skip
    """The grid weighting with the best validation NDCG@k (first one on ties) and that NDCG.

    Only users with training history count (cold users ignore the weights); without any, the
    defaults and NaN.
    """
    grid = weight_grid(model.components, step)
    users = np.flatnonzero(np.diff(sp.csr_matrix(validation).indptr) > 0)
    users = users[model.history[users]]  # cold users ignore the weights
    if len(users) == 0:  # nothing to learn from: the documented defaults
        return {c: w for c, w in DEFAULT_WEIGHTS.items() if c in model.components}, math.nan
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    results = evaluate(
        model, validation, {str(i): w for i, w in enumerate(grid)}, k=k, users=users, progress=progress
    )
    best = max(range(len(grid)), key=lambda i: (results[str(i)].ndcg, -i))
    return grid[best], results[str(best)].ndcg


def choose_cold_source(
    model: Recommender, validation: sp.csr_matrix, weights: Mapping[str, float], *, k: int = 10
) -> str:
    """``popularity`` or ``trending`` for new users, by validation NDCG@k of the users without history."""
    if model.trending is None:
        return "popularity"
    users = np.flatnonzero(np.diff(sp.csr_matrix(validation).indptr) > 0)
    users = users[~model.history[users]]
    if len(users) == 0:
        return "popularity"
    results = evaluate(
        model, validation, dict.fromkeys(COLD_SOURCES, weights), k=k, users=users,
        cold_sources={s: s for s in COLD_SOURCES},
    )  # fmt: skip
    return max(COLD_SOURCES, key=lambda s: (results[s].ndcg, s == "popularity"))


def recent_buyers(
    user_codes: ArrayLike,
    item_codes: ArrayLike,
    times: ArrayLike,
    n_items: int,
    fraction: float = RECENT_FRACTION,
) -> NDArray[np.float64]:
    """Distinct buyers per item among the most recent ``fraction`` of interactions."""
    t = np.asarray(times)
    if len(t) == 0:
        return np.zeros(n_items)
    cutoff = np.sort(t)[min(len(t) - 1, int(len(t) * (1 - fraction)))]
    recent = t >= cutoff
    pairs = np.unique(
        np.column_stack(
            [np.asarray(user_codes, dtype=np.int64)[recent], np.asarray(item_codes, dtype=np.int64)[recent]]
        ),
        axis=0,
    )
    return np.bincount(pairs[:, 1], minlength=n_items).astype(np.float64)


# --- splits -------------------------------------------------------------------------------------


def time_split(times: ArrayLike, test_fraction: float = 0.2) -> tuple[Any, NDArray[np.bool_]]:
    """(cutoff, train mask): interactions strictly before the cutoff train, the rest test.

    The cutoff is the time at the (1 - test_fraction) quantile of interactions.
    """
    values = np.asarray(times)
    order = np.sort(values)
    cutoff = order[min(len(order) - 1, int(len(order) * (1 - test_fraction)))]
    return cutoff, values < cutoff


def random_split_by_user(
    user_codes: ArrayLike, test_fraction: float = 0.2, seed: int = 0
) -> NDArray[np.bool_]:
    """Train mask: each user keeps n - floor(f n) of their n interactions (at least one), at random."""
    users = np.asarray(user_codes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(users)), users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    pos = np.arange(len(users)) - np.repeat(starts, counts)
    n_test = np.floor(counts * test_fraction).astype(np.int64)
    n_test = np.minimum(n_test, counts - 1)
    train = np.ones(len(users), dtype=bool)
    train[order] = pos >= np.repeat(n_test, counts)
    return train


# --- end-to-end evaluation ------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    metrics: dict[str, dict[str, float]]
    weights: dict[str, float]
    cold_source: str
    similarity: str
    validation_ndcg: float | None
    counts: dict[str, int]
    split: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "hybrid_weights": self.weights,
            "cold_start": self.cold_source,
            "similarity": self.similarity,
            "validation_ndcg": self.validation_ndcg,
            "counts": self.counts,
            "split": self.split,
            "timings": self.timings,
        }


def evaluate_offline(
    users: ArrayLike,
    items: ArrayLike,
    *,
    times: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    item_tokens: Mapping[Any, Sequence[str]] | None = None,
    user_segments: Sequence[Mapping[Any, Any]] = (),
    test_fraction: float = 0.2,
    k: int = 10,
    seed: int = 0,
    config: RecommenderConfig | None = None,
    max_eval_users: int | None = None,
    progress: Progress = _no_progress,
) -> EvaluationReport:
    """Split, tune the hybrid on a validation split of the training part, refit, evaluate on test.

    With ``times`` the split is by time (train before the cutoff, test from it); without, a random
    per-user holdout. The validation split is cut the same way from the training part only.
    ``item_tokens`` maps an item label to its attribute tokens (enables the content recommender);
    each ``user_segments`` mapping gives user label -> segment (for cold-start popularity).
    ``max_eval_users`` evaluates a seeded random sample of the test users (for very wide catalogues,
    where every evaluated user costs a dense row per recommender).
    """
    config = config or RecommenderConfig()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    user_codes, user_labels = pd.factorize(np.asarray(users), sort=True)
    item_codes, item_labels = pd.factorize(np.asarray(items), sort=True)
    n_users, n_items = len(user_labels), len(item_labels)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    features = None
    if item_tokens is not None:
        features = item_feature_matrix([list(item_tokens.get(label, ())) for label in item_labels.tolist()])
    segments: list[NDArray[np.int64]] = []
    for mapping in user_segments:
        labels = [mapping.get(u) for u in user_labels.tolist()]
        vocab: dict[Any, int] = {}
        segments.append(np.array([-1 if v is None else vocab.setdefault(v, len(vocab)) for v in labels]))

    def split(mask: NDArray[np.bool_]) -> tuple[Any, NDArray[np.bool_]]:
        sub = np.flatnonzero(mask)
        if times is not None:
            cutoff, train_sub = time_split(np.asarray(times)[sub], test_fraction)
            return cutoff, train_sub
        return None, random_split_by_user(user_codes[sub], test_fraction, seed)

    def trending(idx: NDArray[np.intp]) -> NDArray[np.float64] | None:
        if times is None:
            return None
        return recent_buyers(user_codes[idx], item_codes[idx], np.asarray(times)[idx], n_items)

    def matrix(idx: NDArray[np.intp]) -> sp.csr_matrix:
        return interaction_matrix(
            user_codes[idx], item_codes[idx], n_users, n_items, None if w is None else w[idx]
        )

    everything = np.ones(len(user_codes), dtype=bool)
    cutoff, train_mask = split(everything)
    train_idx, test_idx = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)
    timings["prepare_seconds"] = time.perf_counter() - started

    validation_ndcg: float | None = None
    chosen = dict(config.weights) if config.weights is not None else None
    cold_source = config.cold_source
    if chosen is None or config.similarity is None:
        started = time.perf_counter()
        _, fit_sub = split(train_mask)
        fit_idx, val_idx = train_idx[fit_sub], train_idx[~fit_sub]
        fit, validation = matrix(fit_idx), matrix(val_idx)
        best: tuple[float, str, dict[str, float], str] | None = None
        for sim in [config.similarity] if config.similarity else SIMILARITIES:
            val_config = replace(config, similarity=sim)
            val_model = Recommender(
                fit, features=features, segments=segments, trending=trending(fit_idx), config=val_config
            )
            progress(f"tune hybrid ({sim})", 0.0)
            if chosen is None or config.weights is None:
                weights_sim, ndcg = tune_weights(val_model, validation, k=k, seed=seed, progress=progress)
            else:
                weights_sim = chosen
                ndcg = evaluate(val_model, validation, {"w": chosen}, k=k)["w"].ndcg
            score = -1.0 if math.isnan(ndcg) else ndcg
            if best is None or score > best[0]:
                source = choose_cold_source(val_model, validation, weights_sim, k=k)
                best = (score, sim, weights_sim, source)
        assert best is not None
        _, similarity, chosen, cold_source = best
        config = replace(config, similarity=similarity)
        validation_ndcg = None if best[0] < 0 else best[0]
        timings["tune_seconds"] = time.perf_counter() - started
    assert chosen is not None and config.similarity is not None

    started = time.perf_counter()
    train = matrix(train_idx)
    model = Recommender(
        train,
        features=features,
        segments=segments,
        trending=trending(train_idx),
        config=config,
        progress=progress,
    )
    model.cold_source = cold_source
    timings["fit_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    weightings: dict[str, Mapping[str, float]] = {c: single(c) for c in model.components}
    weightings["hybrid"] = chosen
    test = matrix(test_idx)
    eval_users = None
    if max_eval_users is not None:
        candidates = np.flatnonzero(np.diff(relevant_items(model, test).indptr) > 0)
        if len(candidates) > max_eval_users:
            eval_users = np.sort(
                np.random.default_rng(seed).choice(candidates, max_eval_users, replace=False)
            )
    results = evaluate(
        model,
        test,
        weightings,
        k=k,
        users=eval_users,
        cold_sources={"hybrid": cold_source},
        progress=progress,
    )
    timings["evaluate_seconds"] = time.perf_counter() - started
    n_eval = next(iter(results.values())).users
    test_users = np.flatnonzero(np.diff(test.indptr) > 0)
    counts = {
        "interactions": len(user_codes),
        "users": n_users,
        "items": n_items,
        "train_interactions": len(train_idx),
        "test_interactions": len(test_idx),
        "evaluated_users": n_eval,
        "cold_test_users": int(np.count_nonzero(~model.history[test_users])),
    }
    split_info: dict[str, Any] = {"method": "time" if times is not None else "random_by_user",
                                  "test_fraction": test_fraction}  # fmt: skip
    if cutoff is not None:
        split_info["cutoff"] = cutoff.item() if hasattr(cutoff, "item") else cutoff
    return EvaluationReport(
        metrics={name: m.as_dict(k) for name, m in results.items()},
        weights=chosen,
        cold_source=cold_source,
        similarity=config.similarity,
        validation_ndcg=validation_ndcg,
        counts=counts,
        split=split_info,
        timings=timings,
    )
