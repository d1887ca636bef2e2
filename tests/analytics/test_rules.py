from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from rapport.analytics.jobs import JobContext
from rapport.analytics.rules import RULE_COLUMNS, RulesJob, also_bought, also_bought_table, mine_rules
from tests.analytics.store_tables import Store

# 20 baskets: {1,2} x8, {1} x2, {2,3} x4, {4} x6; plus tea(10)+cups(11)+pot(12) planted in 3-item baskets.
BASKETS: list[list[int]] = [[1, 2]] * 8 + [[1]] * 2 + [[2, 3]] * 4 + [[4]] * 6


def _flatten(baskets: list[list[int]]) -> tuple[list[int], list[int]]:
    orders = [n for n, b in enumerate(baskets) for _ in b]
    products = [p for b in baskets for p in b]
    return orders, products


def _rule(rules: pd.DataFrame, a: tuple[int, ...], b: tuple[int, ...]) -> dict[str, object]:
    [row] = rules[(rules["antecedents"] == a) & (rules["consequents"] == b)].to_dict("records")
    return row


def test_planted_co_purchases_have_exact_measures() -> None:
    result = mine_rules(*_flatten(BASKETS), min_support=0.1, min_confidence=0.5)
    assert result.baskets == 20
    counts = dict(zip(result.itemsets["items"], result.itemsets["baskets"], strict=True))
    assert counts == {(2,): 12, (1,): 10, (1, 2): 8, (4,): 6, (2, 3): 4, (3,): 4}
    assert list(result.rules.columns) == RULE_COLUMNS
    pairs = {(r["antecedents"], r["consequents"]) for r in result.rules.to_dict("records")}
    assert pairs == {((1,), (2,)), ((2,), (1,)), ((3,), (2,))}  # 2 => 3 has confidence 4/12 < 0.5

    one_two = _rule(result.rules, (1,), (2,))
    assert one_two["baskets"] == 8
    assert one_two["support"] == 8 / 20
    assert one_two["confidence"] == 8 / 10
    assert one_two["lift"] == (8 / 10) / (12 / 20)
    assert one_two["leverage"] == 8 / 20 - (10 / 20) * (12 / 20)
    assert one_two["conviction"] == (1 - 12 / 20) / (1 - 8 / 10)
    three_two = _rule(result.rules, (3,), (2,))
    assert (three_two["support"], three_two["confidence"]) == (4 / 20, 1.0)
    assert three_two["conviction"] == math.inf
    # Sorted by lift: 3 => 2 (1.667) first.
    assert result.rules.iloc[0]["antecedents"] == (3,)


def test_three_item_rules_and_support_floor() -> None:
    baskets = [[10, 11, 12]] * 5 + [[10, 11]] * 3 + [[10]] * 2 + [[13]] * 10
    result = mine_rules(*_flatten(baskets), min_support=0.2, min_confidence=0.5, max_len=3)
    rule = _rule(result.rules, (10, 11), (12,))
    assert (rule["baskets"], rule["support"], rule["confidence"]) == (5, 5 / 20, 5 / 8)
    assert rule["lift"] == (5 / 8) / (5 / 20)
    # Item 12 alone: support 5/20 = 0.25 passes 0.2; at 0.3 nothing with 12 survives.
    higher = mine_rules(*_flatten(baskets), min_support=0.3, min_confidence=0.5)
    assert not any(
        12 in a + c for a, c in zip(higher.rules["antecedents"], higher.rules["consequents"], strict=True)
    )
    # min_baskets: a floor on the joint count on top of min_support.
    floored = mine_rules(*_flatten(baskets), min_support=0.2, min_confidence=0.5, min_baskets=6)
    assert set(floored.rules["baskets"]) == {8}


def test_duplicate_products_in_one_order_count_once() -> None:
    result = mine_rules([1, 1, 1, 2, 2], [7, 7, 8, 7, 8], min_support=0.5, min_confidence=0.5)
    assert _rule(result.rules, (7,), (8,))["confidence"] == 1.0
    assert dict(zip(result.itemsets["items"], result.itemsets["baskets"], strict=True))[(7,)] == 2


def test_also_bought_lookup() -> None:
    result = mine_rules(*_flatten(BASKETS), min_support=0.1, min_confidence=0.3)
    table = also_bought_table(result.rules)
    assert also_bought(table, 2) == [
        {
            "product_id": 1,
            "confidence": 8 / 12,
            "lift": (8 / 12) / (10 / 20),
            "support": 8 / 20,
            "baskets": 8,
        },
        {"product_id": 3, "confidence": 4 / 12, "lift": (4 / 12) / (4 / 20), "support": 4 / 20, "baskets": 4},
    ]
    assert also_bought(table, 2, k=1)[0]["product_id"] == 1
    assert also_bought(table, 4) == []


def test_no_baskets() -> None:
    result = mine_rules([], [], min_support=0.1)
    assert result.baskets == 0 and len(result.rules) == 0


def test_rules_job_counts_purchases_only_up_to_as_of() -> None:
    store = Store()
    store.customers([(1, "east", "web", True)])
    store.products([(p, "tea", 10.0, True) for p in (1, 2, 3, 4)])
    for n, basket in enumerate(BASKETS):
        store.order(n + 1, 1, dt.datetime(2025, 1, 1) + dt.timedelta(hours=n), basket)
    store.order(100, 1, dt.datetime(2025, 1, 2), [1, 3], status="cancelled")
    store.order(101, 1, dt.datetime(2025, 1, 3), [1, 3], status="refunded")
    store.order(102, 1, dt.datetime(2025, 1, 4), [1, 3], status="pending")
    store.order(103, 1, dt.datetime(2026, 1, 1), [1, 3])  # after as_of
    ctx = JobContext(
        as_of=dt.datetime(2025, 6, 1), params={"min_support": 0.1, "min_confidence": 0.5, "min_baskets": 5}
    )
    result = RulesJob().run(store.con, ctx)
    assert result.scores == []
    assert result.metrics == {"baskets": 20.0, "itemsets": 6.0, "rules": 2.0}  # 3 => 2 has 4 < 5 baskets
    rules = result.tables["rules"]
    assert sorted(zip(rules["antecedents"], rules["consequents"], strict=True)) == [("1", "2"), ("2", "1")]
    also = result.tables["also_bought"]
    assert also.to_dict("records")[0] == {
        "product_id": 1, "other_product_id": 2, "baskets": 8, "support": 0.4, "confidence": 0.8,
        "lift": (8 / 10) / (12 / 20),
    }  # fmt: skip
    # Stored shape: plain columns DuckDB can hold, and the store lookup reads them back.
    store.con.register("frame", also)
    store.con.execute("CREATE TABLE result_rules_also_bought AS SELECT * FROM frame")
    from rapport.analytics.rules import also_bought_from_store

    assert [r["product_id"] for r in also_bought_from_store(store.con, 2)] == [1]
