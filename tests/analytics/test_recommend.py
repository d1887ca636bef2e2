from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import scipy.sparse as sp

from rapport.analytics.jobs import JobContext
from rapport.analytics.recommend import (
    Recommender,
    RecommenderConfig,
    choose_cold_source,
    evaluate,
    evaluate_offline,
    interaction_matrix,
    item_feature_matrix,
    item_similarity,
    price_bands,
    random_split_by_user,
    recent_buyers,
    time_split,
    top_k,
    tune_weights,
    weight_grid,
)
from rapport.analytics.recommend_job import (
    KIND,
    ProfilingNotAllowed,
    RecommendJob,
    customer_recommendations,
    fit_store_recommender,
)
from rapport.analytics.synthetic import SyntheticPurchases, simulate_purchases
from tests.analytics.store_tables import Store

# users x items: item 0 <- users {0, 1}; item 1 <- {0, 1, 2}; item 2 <- {1, 2}
SMALL = ([0, 0, 1, 1, 1, 2, 2], [0, 1, 0, 1, 2, 1, 2])


def test_item_similarity_is_the_shrunk_cosine_with_top_neighbours() -> None:
    X = interaction_matrix(*SMALL, 3, 3)
    W = item_similarity(X, neighbours=2, shrink=1.0).toarray()
    both_01 = 2 / (math.sqrt(2 * 3) + 1)
    both_02 = 1 / (math.sqrt(2 * 2) + 1)
    both_12 = 2 / (math.sqrt(3 * 2) + 1)
    expected = np.array([[0, both_01, both_02], [both_01, 0, both_12], [both_02, both_12, 0]])
    np.testing.assert_allclose(W, expected, rtol=1e-6)
    # One neighbour: item 0 keeps item 1 (0.58 > 0.33), item 2 keeps item 1.
    W1 = item_similarity(X, neighbours=1, shrink=1.0).toarray()
    assert W1[1, 0] == pytest.approx(both_01) and W1[2, 0] == 0
    assert W1[1, 2] == pytest.approx(both_12) and W1[0, 2] == 0
    assert np.count_nonzero(W1) == 3


def test_similarity_blocks_give_the_same_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    X = interaction_matrix(rng.integers(0, 50, 600), rng.integers(0, 40, 600), 50, 40)
    whole = item_similarity(X, neighbours=10, shrink=2.0).toarray()
    monkeypatch.setattr("rapport.analytics.recommend._BLOCK_CELLS", 40 * 3)  # blocks of 3 items
    np.testing.assert_array_equal(item_similarity(X, neighbours=10, shrink=2.0).toarray(), whole)


def test_interaction_matrix_sums_repeats_then_log1p() -> None:
    X = interaction_matrix([0, 0, 1], [2, 2, 0], 2, 3, weights=[2.0, 3.0, 1.0])
    np.testing.assert_allclose(X.toarray(), [[0, 0, math.log(6)], [math.log(2), 0, 0]])


def test_top_k_orders_by_score_then_lower_index() -> None:
    scores = np.array([[0.1, 0.5, 0.5, -np.inf, 0.9]], dtype=np.float32)
    idx, vals = top_k(scores, 3)
    assert idx.tolist() == [[4, 1, 2]]
    np.testing.assert_allclose(vals, [[0.9, 0.5, 0.5]])


def test_price_bands_and_tf_idf_features() -> None:
    assert price_bands([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, math.nan]) == [
        "price:1", "price:1", "price:2", "price:2", "price:3", "price:3",
        "price:4", "price:4", "price:5", "price:5", None,
    ]  # fmt: skip
    F = item_feature_matrix([["a", "b"], ["a"], ["c"]]).toarray()
    idf_a, idf_b = math.log(4 / 3) + 1, math.log(4 / 2) + 1
    norm = math.hypot(idf_a, idf_b)
    np.testing.assert_allclose(F[0], [idf_a / norm, idf_b / norm, 0])
    np.testing.assert_allclose(F[1:], [[1, 0, 0], [0, 0, 1]])


def test_splits() -> None:
    users = np.repeat(np.arange(4), [1, 2, 5, 10])
    train = random_split_by_user(users, 0.2, seed=1)
    held = [int((~train[users == u]).sum()) for u in range(4)]
    assert held == [0, 0, 1, 2]  # floor(0.2 n), and a user never loses all history
    cutoff, before = time_split(np.arange(10), 0.2)
    assert cutoff == 8 and before.tolist() == [True] * 8 + [False] * 2


def test_weight_grid_covers_the_simplex() -> None:
    grid = weight_grid(["a", "b", "c"], 0.25)
    assert len(grid) == 15
    assert all(sum(w.values()) == pytest.approx(1) for w in grid)
    assert {"a": 1.0, "b": 0.0, "c": 0.0} in grid


def test_seen_items_are_excluded_unless_repurchase_and_inactive_never_shown() -> None:
    X = interaction_matrix(*SMALL, 3, 3)
    allowed = np.array([True, True, False])
    model = Recommender(X, allowed_items=allowed)
    # User 0 bought items 0 and 1; item 2 is inactive: nothing left.
    assert model.recommend([0], k=3) == [([], [])]
    again = Recommender(X, allowed_items=allowed, config=RecommenderConfig(repurchase=True))
    [(items, scores)] = again.recommend([0], k=3)
    assert sorted(items) == [0, 1] and scores == sorted(scores, reverse=True)


def test_cold_users_get_their_segment_popularity() -> None:
    # Users 0-2 (region 0) bought item 0; users 3-4 (region 1) bought item 1 and item 2; user 5 is new.
    users, items = [0, 1, 2, 3, 4, 3, 4], [0, 0, 0, 1, 1, 2, 2]
    X = interaction_matrix(users, items, 7, 3)
    region = np.array([0, 0, 0, 1, 1, 1, -1])
    config = RecommenderConfig(min_segment_buyers=2)
    model = Recommender(X, segments=[region], config=config)
    [(new_in_region_1, _), (unknown, _)] = model.recommend([5, 6], k=1)
    assert new_in_region_1 == [1]  # region 1's favourite (tie with 2 broken by the lower index)
    assert unknown == [0]  # overall favourite
    strict = Recommender(X, segments=[region], config=RecommenderConfig(min_segment_buyers=3))
    assert strict.recommend([5], k=1)[0][0] == [0]  # region 1 has only 2 buyers: overall popularity


def test_metrics_by_hand() -> None:
    # Popularity ranking: item 0 (3 buyers) > 1 (2) > 2 (1) > 3, 4 (0).
    X = interaction_matrix([0, 1, 2, 0, 1, 0], [0, 0, 0, 1, 1, 2], 4, 5)
    test = sp.csr_matrix(([1, 1, 1], ([3, 3, 2], [1, 4, 3])), shape=(4, 5))
    model = Recommender(X)
    [m] = evaluate(model, test, {"pop": {"popularity": 1.0}}, k=2).values()
    # User 3 (cold): list [0, 1], relevant {1, 4}: 1 hit at rank 2. User 2: list [1, 2], relevant {3}: 0.
    assert m.users == 2
    assert m.precision == pytest.approx((1 / 2 + 0) / 2)
    assert m.recall == pytest.approx((1 / 2 + 0) / 2)
    assert m.map == pytest.approx(((1 / 2) / 2 + 0) / 2)
    ideal = 1 + 1 / math.log2(3)
    assert m.ndcg == pytest.approx(((1 / math.log2(3)) / ideal + 0) / 2)
    assert m.coverage == pytest.approx(3 / 5)  # items 0, 1, 2 were shown


@pytest.fixture(scope="module")
def planted() -> SyntheticPurchases:
    return simulate_purchases(np.random.default_rng(11), n_users=1500, n_items=240, n_groups=12)


def _tokens(data: SyntheticPurchases) -> dict[int, list[str]]:
    bands = price_bands(data.item_price)
    return {i: [*t, str(bands[i])] for i, t in data.item_tokens().items()}


def test_hybrid_beats_popularity_on_planted_tastes(planted: SyntheticPurchases) -> None:
    report = evaluate_offline(planted.users, planted.items, times=planted.times, item_tokens=_tokens(planted))
    m = report.metrics
    assert set(m) == {"item_cf", "content", "popularity", "trending", "hybrid"}
    hybrid, pop = m["hybrid"], m["popularity"]
    assert hybrid["precision@10"] > 1.5 * pop["precision@10"]
    assert hybrid["recall@10"] > 1.5 * pop["recall@10"]
    assert hybrid["ndcg@10"] > 2 * pop["ndcg@10"]
    assert hybrid["coverage"] > 10 * pop["coverage"]
    assert hybrid["ndcg@10"] >= max(m["item_cf"]["ndcg@10"], m["content"]["ndcg@10"]) - 0.01
    assert report.counts["evaluated_users"] == hybrid["users"] > 1000
    assert report.split["method"] == "time"
    assert sum(report.weights.values()) == pytest.approx(1)


def test_hybrid_weights_never_see_the_test_split(planted: SyntheticPurchases) -> None:
    tokens = _tokens(planted)
    first = evaluate_offline(planted.users, planted.items, times=planted.times, item_tokens=tokens)
    _, train = time_split(planted.times, 0.2)
    scrambled = planted.items.copy()
    scrambled[~train] = np.random.default_rng(5).permutation(scrambled[~train])
    second = evaluate_offline(planted.users, scrambled, times=planted.times, item_tokens=tokens)
    assert second.weights == first.weights
    assert second.validation_ndcg == first.validation_ndcg
    assert second.metrics["hybrid"]["ndcg@10"] < first.metrics["hybrid"]["ndcg@10"]


def test_random_split_without_times(planted: SyntheticPurchases) -> None:
    report = evaluate_offline(planted.users, planted.items)
    assert report.split == {"method": "random_by_user", "test_fraction": 0.2}
    assert report.metrics["hybrid"]["recall@10"] > 1.5 * report.metrics["popularity"]["recall@10"]
    assert "content" not in report.metrics


# --- the job on the analytics store -----------------------------------------------------------------


def _store_from(data: SyntheticPurchases, n_users: int) -> Store:
    store = Store()
    regions = ["east", "north", "south", "west"]
    # Customer ids are 1000 + user; every 10th customer does not allow profiling; NULL for user 7.
    store.customers(
        (1000 + u, regions[int(data.user_region[u])], "web", None if u == 7 else u % 10 != 3)
        for u in range(n_users)
    )
    # Two extra customers with no orders: region east (cold start) and one without region.
    store.customers([(5000, "east", "web", True), (5001, None, None, True)])
    n_items = len(data.item_group)
    store.products(
        (1 + i, f"g{int(data.item_group[i])}", float(round(data.item_price[i], 2)), i != 5)
        for i in range(n_items)
    )
    store.orders_bulk(
        [
            (
                n + 1,
                1000 + int(u),
                t.astype("datetime64[s]").item(),
                "cancelled" if n % 17 == 0 else "paid",
                1 + int(i),
            )
            for n, (u, i, t) in enumerate(zip(data.users, data.items, data.times, strict=True))
        ]
    )
    return store


def test_recommend_job_scores_only_profiling_customers(planted: SyntheticPurchases) -> None:
    n_users = 400
    data = simulate_purchases(np.random.default_rng(2), n_users=n_users, n_items=80, n_groups=6)
    store = _store_from(data, n_users)
    ctx = JobContext(as_of=dt.datetime(2030, 1, 1), params={"k": 5, "min_segment_buyers": 5})
    result = RecommendJob().run(store.con, ctx)

    allowed = {1000 + u for u in range(n_users) if u % 10 != 3 and u != 7} | {5000, 5001}
    assert {s.customer_id for s in result.scores} == allowed
    assert all(s.kind == KIND for s in result.scores)
    bought = {
        (c, p)
        for c, p in store.con.execute(
            "SELECT o.customer_id, l.product_id FROM orders o JOIN order_lines l USING (order_id) "
            "WHERE o.status = 'paid'"
        ).fetchall()
    }
    for s in result.scores:
        assert s.details is not None
        products, scores = s.details["products"], s.details["scores"]
        assert len(products) == 5 and len(set(products)) == 5
        assert scores == sorted(scores, reverse=True) and s.value == scores[0]
        assert 6 not in products  # inactive product (item 5)
        assert not any((s.customer_id, p) in bought for p in products)
    labels = {s.customer_id: s.label for s in result.scores}
    assert labels[5000] == labels[5001] == "cold_start"
    assert labels[1000] == "personal"
    assert result.metrics["hybrid.ndcg@5"] > result.metrics["popularity.ndcg@5"]
    assert result.metrics["hybrid.precision@5"] > result.metrics["popularity.precision@5"]
    assert list(result.tables["evaluation"]["recommender"]) == [
        "item_cf", "content", "popularity", "trending", "hybrid",
    ]  # fmt: skip
    assert result.metrics["customers_scored"] == len(allowed)

    # Cold start: the east customer gets east's favourites among profiling customers.
    east = store.con.execute(
        """SELECT l.product_id, count(DISTINCT o.customer_id) AS buyers
           FROM orders o JOIN order_lines l USING (order_id) JOIN customers c USING (customer_id)
           WHERE o.status = 'paid' AND c.region = 'east' AND c.profiling_allowed AND l.product_id <> 6
           GROUP BY 1 ORDER BY buyers DESC, l.product_id LIMIT 5"""
    ).fetchall()
    cold = next(s for s in result.scores if s.customer_id == 5000)
    assert cold.details is not None
    assert cold.details["products"] == [p for p, _ in east]


def test_service_function_refuses_customers_without_profiling() -> None:
    data = simulate_purchases(np.random.default_rng(4), n_users=60, n_items=20, n_groups=3)
    store = _store_from(data, 60)
    fitted = fit_store_recommender(store.con, JobContext(as_of=dt.datetime(2030, 1, 1)), evaluate=False)
    recs = customer_recommendations(fitted, 1000, k=3)
    assert len(recs) == 3 and set(recs[0]) == {"product_id", "score"}
    with pytest.raises(ProfilingNotAllowed):
        customer_recommendations(fitted, 1003, k=3)  # u % 10 == 3
    with pytest.raises(ProfilingNotAllowed):
        customer_recommendations(fitted, 999_999, k=3)


def test_as_of_caps_the_history() -> None:
    store = Store()
    store.customers([(1, "east", "web", True), (2, "east", "web", True)])
    store.products([(10, "tea", 5.0, True), (11, "tea", 6.0, True), (12, "cups", 20.0, True)])
    store.order(1, 1, dt.datetime(2025, 1, 1), [10, 11])
    store.order(2, 2, dt.datetime(2025, 1, 2), [10])
    store.order(3, 2, dt.datetime(2025, 3, 1), [11])  # after as_of: must not count
    ctx = JobContext(as_of=dt.datetime(2025, 2, 1), params={"weights": {"item_cf": 1.0}})
    fitted = fit_store_recommender(store.con, ctx)
    [(products, _)] = fitted.for_customers([2], k=1)
    assert products == [11]  # bought with 10 by customer 1; 2 has not bought it yet as of February


def test_tuning_without_validation_users_keeps_the_defaults() -> None:
    X = interaction_matrix(*SMALL, 3, 3)
    model = Recommender(X)
    validation = sp.csr_matrix((3, 3))
    weights, ndcg = tune_weights(model, validation)
    assert weights == {"item_cf": 0.75, "popularity": 0.25} and math.isnan(ndcg)


def test_recent_buyers_and_the_cold_start_source() -> None:
    # Items 0 (5 buyers) and 1 (4) sold early (times 0-8); item 2 (3) is what buyers take lately (9-11).
    users = [0, 1, 2, 3, 4, 0, 1, 2, 3, 5, 6, 7]
    items = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    times = list(range(12))
    assert recent_buyers(users, items, times, 3, fraction=0.25).tolist() == [0.0, 0.0, 3.0]
    X = interaction_matrix(users, items, 12, 3)
    model = Recommender(X, trending=recent_buyers(users, items, times, 3, fraction=0.25))
    assert model.components == ("item_cf", "popularity", "trending")
    # New users 10 and 11 buy item 2 in validation: trending serves them better than overall popularity.
    validation = sp.csr_matrix(([1.0, 1.0], ([10, 11], [2, 2])), shape=(12, 3))
    assert choose_cold_source(model, validation, {"item_cf": 1.0}) == "trending"
    old_taste = sp.csr_matrix(([1.0], ([10], [0])), shape=(12, 3))
    assert choose_cold_source(model, old_taste, {"item_cf": 1.0}) == "popularity"
    assert choose_cold_source(Recommender(X), validation, {"item_cf": 1.0}) == "popularity"  # no times
    model.cold_source = "trending"
    assert model.recommend([10], k=1)[0][0] == [2]
    model.cold_source = "popularity"
    assert model.recommend([10], k=1)[0][0] == [0]


def test_evaluation_on_a_sample_of_test_users(planted: SyntheticPurchases) -> None:
    weights = {"item_cf": 1.0}
    config = RecommenderConfig(weights=weights, similarity="cosine")
    full = evaluate_offline(planted.users, planted.items, times=planted.times, config=config)
    sampled = evaluate_offline(
        planted.users, planted.items, times=planted.times, config=config, max_eval_users=300
    )
    assert sampled.counts["evaluated_users"] == 300 < full.counts["evaluated_users"]
    assert sampled.weights == full.weights == weights and sampled.validation_ndcg is None
    assert abs(sampled.metrics["hybrid"]["recall@10"] - full.metrics["hybrid"]["recall@10"]) < 0.05


def test_support_shrinkage_by_hand_and_its_choice_on_validation(planted: SyntheticPurchases) -> None:
    X = interaction_matrix(*SMALL, 3, 3)
    W = item_similarity(X, neighbours=2, shrink=1.0, similarity="support").toarray()
    assert W[1, 0] == pytest.approx(2 / math.sqrt(2 * 3) * 2 / 3)
    assert W[2, 0] == pytest.approx(1 / math.sqrt(2 * 2) * 1 / 2)
    with pytest.raises(ValueError, match="unknown similarity"):
        item_similarity(X, similarity="jaccard")
    chosen = evaluate_offline(planted.users, planted.items, times=planted.times)
    assert chosen.similarity in ("cosine", "support")
    fixed = evaluate_offline(
        planted.users, planted.items, times=planted.times, config=RecommenderConfig(similarity="support")
    )
    assert fixed.similarity == "support"
    assert fixed.as_dict()["similarity"] == "support"
