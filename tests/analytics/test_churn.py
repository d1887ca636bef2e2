from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from rapport.analytics.churn import (
    ChurnDataError,
    ChurnJob,
    calibration_table,
    churn_features,
    cross_validate,
    evaluate,
    explain,
    fit_calibrated,
    parse_target,
    prepare_table,
)
from rapport.analytics.jobs import JobContext
from rapport.cli.main import app
from tests.analytics.store_helpers import make_store

runner = CliRunner()
D = dt.datetime


def _planted(n: int, seed: int) -> pd.DataFrame:
    """Churn depends on tenure (down), a month-to-month plan (up) and charges (up); the rest is noise."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["monthly", "yearly", "two-year"], n, p=[0.5, 0.3, 0.2])
    charges = np.round(rng.uniform(20, 120, n), 2)
    noise = rng.normal(size=n)
    logit = 0.5 - 0.07 * tenure + 1.8 * (plan == "monthly") + 0.02 * (charges - 70)
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    total = np.where(tenure == 0, " ", np.char.mod("%.2f", charges * tenure))
    return pd.DataFrame(
        {
            "customer_id": [f"C-{i:06d}" for i in range(n)],
            "tenure": tenure.astype(str),
            "plan": plan,
            "charges": charges.astype(str),
            "total_charges": total,
            "noise": noise.round(4).astype(str),
            "region": rng.choice(["east", "west", None], n),
            "constant": "x",
            "Churn": np.where(churn, "Yes", "No"),
        }
    )


def test_parse_target_accepts_the_usual_spellings_and_refuses_others() -> None:
    y, mapping, keep = parse_target(pd.Series([" Yes", "no", "YES", None, "No "]), "Churn")
    assert y.tolist() == [1, 0, 1, 0]
    assert mapping == {"no": 0, "yes": 1}
    assert keep.tolist() == [True, True, True, False, True]
    assert parse_target(pd.Series([1, 0, 0]))[0].tolist() == [1, 0, 0]
    assert parse_target(pd.Series([True, False]))[0].tolist() == [1, 0]
    assert parse_target(pd.Series(["churned", "retained"]))[0].tolist() == [1, 0]
    assert parse_target(pd.Series(["False.", "True."]))[0].tolist() == [0, 1]
    y, mapping, _ = parse_target(pd.Series(["Existing Customer", "Attrited Customer"]))
    assert y.tolist() == [0, 1]
    assert mapping == {"attrited customer": 1, "existing customer": 0}
    with pytest.raises(ChurnDataError, match=r"must be binary .* found 3 distinct values: '0', '1', '2'"):
        parse_target(pd.Series(["0", "1", "2"]), "t")
    with pytest.raises(ChurnDataError, match="found 2 distinct values: 'blue', 'red'"):
        parse_target(pd.Series(["red", "blue"]), "t")
    with pytest.raises(ChurnDataError, match="only one class"):
        parse_target(pd.Series(["yes", "yes"]), "t")


def test_prepare_types_columns_and_drops_identifiers() -> None:
    table = prepare_table(_planted(300, 1), "Churn")
    assert table.numeric == ["tenure", "charges", "total_charges", "noise"]
    assert table.categorical == ["plan", "region"]
    assert table.dropped == {"customer_id": "identifier", "constant": "constant"}
    # Blank TotalCharges-like values are missing numbers, not a reason to treat the column as text.
    assert table.X["total_charges"].isna().sum() == (table.X["tenure"] == 0).sum() > 0
    assert len(table.y) == 300


def test_pipeline_recovers_a_planted_signal() -> None:
    table = prepare_table(_planted(3000, 2), "Churn")
    for model in ("logistic_regression", "hist_gradient_boosting"):
        metrics, oof = cross_validate(table, model, folds=3)
        assert metrics["roc_auc"] > 0.8, model
        assert metrics["pr_auc"] > table.y.mean() + 0.2, model  # far above the base rate
        assert oof.shape == (3000,)
    # Shuffled labels carry no signal: the same pipeline must not find any.
    shuffled = prepare_table(_planted(3000, 2), "Churn")
    shuffled.y = np.random.default_rng(0).permutation(shuffled.y)
    assert abs(cross_validate(shuffled, "logistic_regression", folds=3)[0]["roc_auc"] - 0.5) < 0.05


def test_evaluate_reports_cv_holdout_and_calibration() -> None:
    table = prepare_table(_planted(1200, 3), "Churn")
    out = evaluate(table, folds=3, seed=0)
    assert set(out["cv"]) == {"hist_gradient_boosting", "logistic_regression"}
    assert out["selected_model"] == max(out["cv"], key=lambda m: out["cv"][m]["roc_auc"])
    assert out["roc_auc"] == out["cv"][out["selected_model"]]["roc_auc"]
    hold = out["holdout"]
    assert hold["rows"] == 300
    assert sum(row["rows"] for row in hold["calibration"]) == 300
    assert hold["roc_auc"] > 0.8
    assert 0 < hold["brier"] < 0.2
    assert out["positives"] == int(table.y.sum())


def test_calibration_table_bins() -> None:
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 0.9])
    table = calibration_table(y, p, bins=2)
    assert [row["rows"] for row in table] == [4.0, 4.0]
    assert table[0]["mean_predicted"] == pytest.approx(0.175)
    assert table[0]["observed_rate"] == 0.5
    assert table[1]["observed_rate"] == 0.75


def test_reasons_name_the_planted_driver() -> None:
    table = prepare_table(_planted(2000, 4), "Churn")
    model = fit_calibrated(table, "logistic_regression")
    rows = pd.DataFrame(
        {"tenure": [1.0, 70.0], "charges": [70.0, 70.0], "total_charges": [70.0, 4900.0], "noise": [0.0, 0.0],
         "plan": ["yearly", "two-year"], "region": ["east", "east"]}
    )  # fmt: skip
    reasons = explain(model, rows, top=2)
    # A one-month customer's risk is above a typical one's mostly because of the short tenure.
    assert reasons[0][0]["feature"] == "tenure"
    assert reasons[0][0]["value"] == 1.0
    assert reasons[0][0]["contribution"] > 0.05
    assert all(r["contribution"] > 0 for rs in reasons for r in rs)


# ---- CLI ------------------------------------------------------------------------------------------


def _invoke(*args: str) -> Result:
    return runner.invoke(app, ["analytics", "churn-eval", *args])


def _messy_csv(path: Path) -> Path:
    frame = _planted(600, 5)
    frame["Churn"] = np.where(frame["Churn"] == "Yes", " yes", "NO ")
    frame["notes"] = [f"called on {i} about the bill" for i in range(600)]  # free text, unique
    frame["empty"] = ""
    frame["row"] = np.arange(600)  # a row number
    frame.loc[::7, "charges"] = "NA"
    frame.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return path


def test_churn_eval_on_a_messy_csv(tmp_path: Path) -> None:
    path = _messy_csv(tmp_path / "churn.csv")
    result = _invoke(str(path), "--target", "Churn", "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rows"] == 600
    assert out["folds"] == 3
    assert out["target"]["mapping"] == {"no": 0, "yes": 1}
    assert out["columns"]["numeric"] == ["tenure", "charges", "total_charges", "noise"]
    assert out["columns"]["categorical"] == ["plan", "region"]
    assert out["columns"]["dropped"] == {
        "customer_id": "identifier",
        "constant": "constant",
        "notes": "identifier (unique per row)",
        "empty": "empty",
        "row": "identifier (row number)",
    }
    assert out["roc_auc"] > 0.75
    assert out["pr_auc"] > out["positive_rate"]
    assert {"roc_auc", "pr_auc", "brier", "calibration"} <= set(out["holdout"])
    text = _invoke(str(path), "--target", "Churn", "--folds", "3")
    assert text.exit_code == 0
    assert "logistic_regression" in text.stdout and "dropped customer_id: identifier" in text.stdout


@pytest.mark.parametrize(
    ("rows", "args", "message"),
    [
        (
            [["a", "yes"], ["b", "no"]],
            ["--target", "status"],
            "target column 'status' is not in the table (columns: plan, Churn)",
        ),
        ([["a", "1"], ["b", "2"], ["c", "3"]], ["--target", "Churn"], "must be binary"),
        ([["a", "yes"], ["b", "yes"]], ["--target", "Churn"], "only one class"),
        ([["a", "yes"], ["b", "no"]], ["--target", "Churn"], "need at least 5 rows of each class"),
    ],
)
def test_churn_eval_bad_input_fails_clearly(
    tmp_path: Path, rows: list[list[str]], args: list[str], message: str
) -> None:
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["plan", "Churn"])
        writer.writerows(rows)
    result = _invoke(str(path), *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_churn_eval_reads_semicolon_separated_files(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    _planted(200, 9).to_csv(path, sep=";", index=False)
    result = _invoke(str(path), "--target", "churn", "--folds", "3", "--json")  # column name in any case
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rows"] == 200
    assert out["target"]["column"] == "Churn"
    assert out["columns"]["categorical"] == ["plan", "region"]


def test_churn_eval_missing_file(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path / "nope.csv"), "--target", "Churn")
    assert result.exit_code == 1
    assert "no such file" in result.stderr


# ---- store features and the job -------------------------------------------------------------------


def test_churn_features_at_a_cutoff() -> None:
    con = make_store(
        [
            {"customer_id": 1, "region": "east"},
            {"customer_id": 2},
            {"customer_id": 3, "profiling_allowed": False},
        ],
        [
            (1, D(2025, 1, 1), "paid", 100.0, 10.0),
            (1, D(2025, 3, 2), "paid", 50.0, 5.0),
            (1, D(2025, 5, 1), "completed", 30.0, 3.0),
            (1, D(2025, 5, 20), "cancelled", 30.0, 3.0),
            (1, D(2025, 8, 1), "paid", 30.0, 3.0),  # after the cutoff: label only
            (2, D(2025, 2, 1), "shipped", 20.0, 2.0),
            (3, D(2025, 2, 1), "paid", 20.0, 2.0),
        ],
        [
            (1, D(2025, 5, 10), "complaint", "inbound", "phone"),
            (1, D(2025, 1, 10), "call", "outbound", "phone"),
            (2, D(2025, 6, 10), "email", "outbound", "email"),
        ],
        [
            (1, D(2025, 5, 1), D(2025, 5, 15), None, "open"),  # open and overdue at the cutoff
            (1, D(2025, 5, 1), D(2025, 7, 15), D(2025, 6, 1), "done"),  # completed before the cutoff
            (2, D(2025, 6, 1), D(2025, 7, 15), D(2025, 7, 2), "done"),  # still open at the cutoff
        ],
    )
    f = churn_features(con, D(2025, 7, 1), window_days=60).set_index("customer_id")
    assert f.index.tolist() == [1, 2]
    one = f.loc[1]
    assert (one["recency_days"], one["frequency"], one["monetary"], one["tenure_days"]) == (61, 3, 180.0, 181)
    assert one["margin"] == 18.0
    # 90 days before the cutoff is 2025-04-02 and 180 days 2025-01-02: May in, March in the previous.
    assert (one["orders_90d"], one["orders_prev_90d"], one["trend_90d"]) == (1, 1, 0)
    assert one["mean_gap_days"] == pytest.approx((60 + 60) / 2)
    assert one["last_gap_days"] == 60
    assert one["recency_over_gap"] == pytest.approx(61 / 60)
    assert (one["interactions"], one["interactions_90d"], one["interactions_inbound"]) == (2, 1, 1)
    assert one["interactions_kind_complaint"] == 1 and one["interactions_channel_phone"] == 2
    assert one["days_since_interaction"] == 52
    assert (one["open_tasks"], one["overdue_tasks"]) == (1, 1)
    assert one["region"] == "east"
    assert one["churned"] == 0  # bought on 2025-08-01, within 60 days
    two = f.loc[2]
    assert (
        two["open_tasks"],
        two["overdue_tasks"],
        two["interactions_channel_email"],
    ) == (1, 0, 1)
    assert two["churned"] == 1
    assert np.isnan(two["mean_gap_days"])


def _churn_store(n: int, seed: int) -> tuple[object, set[int]]:
    """Customers who complain and whose orders thin out stop buying; others keep a steady rhythm."""
    rng = np.random.default_rng(seed)
    customers = [{"customer_id": i, "region": str(rng.choice(["east", "west"]))} for i in range(1, n + 1)]
    customers.append({"customer_id": n + 1, "profiling_allowed": False})
    orders: list[tuple[int, dt.datetime, str, float, float]] = []
    interactions: list[tuple[int, dt.datetime, str, str, str]] = []
    leavers = set()
    start = D(2024, 1, 1)
    for cid in range(1, n + 1):
        leaves = rng.random() < 0.4
        gap = int(rng.integers(15, 40))
        stop = D(2025, 1, 1) + dt.timedelta(days=int(rng.integers(-60, 300))) if leaves else D(2026, 1, 1)
        if leaves:
            leavers.add(cid)
            for _ in range(int(rng.integers(1, 4))):
                at = stop - dt.timedelta(days=int(rng.integers(0, 60)))
                interactions.append((cid, at, "complaint", "inbound", "phone"))
        day = start + dt.timedelta(days=int(rng.integers(0, 60)))
        while day < D(2025, 12, 31) and day < stop:
            orders.append((cid, day, "paid", float(rng.integers(20, 200)), 5.0))
            day += dt.timedelta(days=gap * (2 if leaves and day > stop - dt.timedelta(days=120) else 1))
    orders.append((n + 1, D(2025, 5, 1), "paid", 10.0, 1.0))
    return make_store(customers, orders, interactions), leavers


def test_churn_job_trains_on_a_time_split_and_scores_with_reasons() -> None:
    con, _ = _churn_store(500, 7)
    result = ChurnJob().run(con, JobContext(as_of=D(2025, 7, 1, tzinfo=dt.UTC), params={"folds": 3}))
    assert result.metrics["trained"] == 1.0
    assert result.metrics["cv_roc_auc"] > 0.8
    assert result.metrics["holdout_roc_auc"] > 0.75
    scores = result.scores
    assert {s.kind for s in scores} == {"churn_risk"}
    ids = [s.customer_id for s in scores]
    assert 501 not in ids  # may not be profiled
    assert len(ids) == len(set(ids)) == result.metrics["scored"]
    assert all(0.0 <= (s.value or 0.0) <= 1.0 for s in scores)
    assert all(s.label in {"low", "medium", "high"} for s in scores)
    high = max(scores, key=lambda s: s.value or 0.0)
    assert high.details is not None and high.details["reasons"]
    assert {"feature", "value", "contribution"} == set(high.details["reasons"][0])
    assert list(result.tables["calibration"].columns) == ["bin", "rows", "mean_predicted", "observed_rate"]


def test_churn_job_without_both_classes_does_not_train() -> None:
    con = make_store([{"customer_id": 1}], [(1, D(2025, 1, 1), "paid", 10.0, 1.0)])
    result = ChurnJob().run(con, JobContext(as_of=D(2025, 7, 1)))
    assert result.metrics["trained"] == 0.0
    assert result.scores == []


def test_churn_job_copes_with_profile_columns_missing_for_everyone() -> None:
    con, _ = _churn_store(300, 8)
    con.execute("UPDATE customers SET region = NULL")
    result = ChurnJob().run(con, JobContext(as_of=D(2025, 7, 1), params={"folds": 3}))
    assert result.metrics["trained"] == 1.0
    assert len(result.scores) == result.metrics["scored"] > 0
