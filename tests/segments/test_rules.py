from __future__ import annotations

from typing import Any

import duckdb
import pytest
from pydantic import ValidationError

from rapport.analytics.jobs import JobContext
from rapport.segments.evaluate import StoreNotReady, Visibility, count, member_ids, preview
from rapport.segments.features import build_features
from rapport.segments.job import SegmentsJob
from rapport.segments.rules import MAX_DEPTH, Definition, compile_rule
from tests.segments.store import AS_OF, consent, customer, empty_store, order, score


def _rule(raw: dict[str, Any]) -> Any:
    return Definition.model_validate({"rule": raw}).rule


@pytest.fixture
def store() -> duckdb.DuckDBPyConnection:
    con = empty_store()
    for i in range(1, 11):  # clv 100..1000, churn 0.1..1.0, wechat consent for even ids
        customer(con, i, region="华东" if i <= 5 else "华北", team_id=1 if i <= 5 else 2, owner_id=100 + i)
        score(con, i, "clv_12m", 100.0 * i)
        score(con, i, "churn_risk", i / 10)
        score(con, i, "cluster", None, "lapsed one-timers" if i < 4 else "high-value frequent")
        if i % 2 == 0:
            consent(con, i, "marketing_wechat")
    consent(con, 9, "marketing_wechat", granted=False)  # withdrawn: current state is false
    customer(con, 11, profiling=False)  # highest value of all, but refused profiling
    score(con, 11, "clv_12m", 5000.0)
    score(con, 11, "churn_risk", 0.9)
    consent(con, 11, "marketing_wechat")
    customer(con, 12, created_days_ago=30)  # no scores, no orders
    order(con, 1, 1, 10, 100.0)
    order(con, 2, 1, 200, 300.0)
    order(con, 3, 1, 500, 200.0)
    order(con, 4, 1, 5, 999.0, status="cancelled")
    order(con, 5, 2, 400, 50.0, status="paid")
    assert build_features(con, AS_OF) == 12
    return con


EXAMPLE = {
    "op": "and",
    "rules": [
        {"op": "top", "field": "clv_12m", "percent": 20},
        {"op": ">", "field": "churn_risk", "value": 0.6},
        {"op": "consent", "purpose": "marketing_wechat"},
    ],
}


def test_the_issue_example(store: duckdb.DuckDBPyConnection) -> None:
    result = preview(store, _rule(EXAMPLE))
    assert (result.count, result.first_ids) == (1, [10])


def test_top_percent_ranks_profiled_customers_with_a_value(store: duckdb.DuckDBPyConnection) -> None:
    assert member_ids(store, _rule({"op": "top", "field": "clv_12m", "percent": 20})) == [9, 10]
    assert member_ids(store, _rule({"op": "top", "field": "clv_12m", "percent": 100})) == list(range(1, 11))
    assert member_ids(store, _rule({"op": "top", "field": "clv_12m", "percent": 0.5})) == []


def test_not_is_the_complement_including_missing_values(store: duckdb.DuckDBPyConnection) -> None:
    assert member_ids(
        store, _rule({"op": "not", "rule": {"op": ">", "field": "churn_risk", "value": 0.6}})
    ) == [
        1,
        2,
        3,
        4,
        5,
        6,
        12,
    ]
    assert member_ids(
        store, _rule({"op": "not", "rule": {"op": "consent", "purpose": "marketing_wechat"}})
    ) == [
        1,
        3,
        5,
        7,
        9,
        12,
    ]


def test_behaviour_fields(store: duckdb.DuckDBPyConnection) -> None:
    row = store.execute(
        "SELECT orders, orders_12m, spend, spend_12m, avg_order_value, recency_days, tenure_days "
        "FROM segment_features WHERE customer_id = 1"
    ).fetchone()
    assert row == (3.0, 2.0, 600.0, 400.0, 200.0, 10.0, 400.0)
    assert member_ids(store, _rule({"op": ">=", "field": "orders", "value": 1})) == [1, 2]
    assert member_ids(store, _rule({"op": "between", "field": "recency_days", "low": 300, "high": 400})) == [
        2
    ]
    assert member_ids(store, _rule({"op": "=", "field": "recency_days", "value": 10})) == [1]
    assert member_ids(store, _rule({"op": "<", "field": "tenure_days", "value": 100})) == [12]


def test_in_or_and_labels(store: duckdb.DuckDBPyConnection) -> None:
    rule = {
        "op": "or",
        "rules": [
            {"op": "in", "field": "region", "values": ["华北", "西南"]},
            {"op": "=", "field": "cluster", "value": "lapsed one-timers"},
        ],
    }
    assert member_ids(store, _rule(rule)) == [1, 2, 3, 6, 7, 8, 9, 10]
    assert count(store, _rule({"op": "!=", "field": "cluster", "value": "lapsed one-timers"})) == 7


def test_user_values_are_parameters_never_sql(store: duckdb.DuckDBPyConnection) -> None:
    evil = "华东' OR 1=1 --"
    rule = _rule({"op": "=", "field": "region", "value": evil})
    compiled = compile_rule(rule)
    assert evil not in compiled.where
    assert compiled.where == "f.region = ?"
    assert compiled.params == [evil]
    negated = compile_rule(
        _rule({"op": "not", "rule": {"op": "in", "field": "region", "values": ["a", "b"]}})
    )
    assert negated.where == "(NOT COALESCE(f.region IN (?, ?), FALSE))"
    assert count(store, rule) == 0


def test_keyset_pages_and_visibility(store: duckdb.DuckDBPyConnection) -> None:
    everyone = _rule({"op": ">=", "field": "churn_risk", "value": 0.0})
    assert member_ids(store, everyone, limit=4) == [1, 2, 3, 4]
    assert member_ids(store, everyone, after=4, limit=4) == [5, 6, 7, 8]
    assert member_ids(store, everyone, after=8, limit=4) == [9, 10]
    team2 = Visibility(team_id=2, owner_id=103, everyone=False)
    assert member_ids(store, everyone, vis=team2) == [3, 6, 7, 8, 9, 10]
    own = Visibility(team_id=None, owner_id=104, everyone=False)
    assert member_ids(store, everyone, vis=own) == [4]


def test_unbuilt_store_is_reported() -> None:
    with pytest.raises(StoreNotReady):
        count(empty_store(), _rule({"op": "consent", "purpose": "profiling"}))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"op": ">", "field": "salary", "value": 1}, "unknown field 'salary'"),
        (
            {"op": ">", "field": "churn_risk", "value": "high"},
            "value for field 'churn_risk' must be a number",
        ),
        ({"op": "=", "field": "region", "value": 3}, "value for field 'region' must be a text"),
        ({"op": ">", "field": "region", "value": "a"}, "operator '>' needs a number field"),
        ({"op": "=", "field": "is_b2b", "value": 1}, "must be a bool"),
        ({"op": "top", "field": "clv_12m", "percent": 0}, "percent must be above 0 and at most 100"),
        ({"op": "top", "field": "clv_12m", "percent": 120}, "percent must be above 0 and at most 100"),
        ({"op": "top", "field": "region", "percent": 10}, "top N% needs a ranked number field"),
        ({"op": "between", "field": "orders", "low": 5, "high": 1}, "low (5) must not exceed high (1)"),
        ({"op": "in", "field": "region", "values": []}, "at least 1 item"),
        ({"op": "consent", "purpose": "spam"}, "marketing_email"),
        ({"op": "xor", "rules": []}, "does not match any of the expected tags"),
        ({"op": "and", "rules": [{"op": "consent", "purpose": "profiling"}], "x": 1}, "Extra inputs"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        _rule(raw)
    assert message in str(err.value)


def test_nesting_is_limited() -> None:
    node: dict[str, Any] = {"op": "consent", "purpose": "profiling"}
    for _ in range(MAX_DEPTH - 1):
        node = {"op": "not", "rule": node}
    _rule(node)
    with pytest.raises(ValidationError, match=f"nest {MAX_DEPTH + 1} levels deep"):
        _rule({"op": "not", "rule": node})


def test_segments_job_scores_members_of_saved_segments() -> None:
    con = empty_store()
    for i in range(1, 6):
        customer(con, i, profiling=i != 5)
        score(con, i, "churn_risk", i / 5)
    result = SegmentsJob().run(
        con,
        JobContext(as_of=AS_OF, params={"segments": {7: {"op": ">", "field": "churn_risk", "value": 0.5}}}),
    )
    assert [(s.customer_id, s.kind, s.value) for s in result.scores] == [
        (3, "segment:7", 1.0),
        (4, "segment:7", 1.0),
    ]
    assert result.tables["counts"].to_dict("records") == [{"segment_id": 7, "members": 2}]
    assert result.metrics == {"features": 5.0, "segments": 1.0}


def test_consent_purposes_follow_the_consent_module() -> None:
    from typing import get_args

    from rapport.privacy.consent import PARTNER_PURPOSES, Purpose
    from rapport.segments.rules import ConsentPurpose

    assert set(get_args(ConsentPurpose)) == {p.value for p in Purpose if p not in PARTNER_PURPOSES}
