from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from rapport.analytics.recommend import evaluate_offline
from rapport.analytics.synthetic import SyntheticPurchases, simulate_purchases
from rapport.cli.main import app

runner = CliRunner()


def _invoke(*args: str) -> Result:
    return runner.invoke(app, ["analytics", "recommend-eval", *args])


@pytest.fixture(scope="module")
def data() -> SyntheticPurchases:
    return simulate_purchases(np.random.default_rng(21), n_users=600, n_items=120, n_groups=8)


def _unix(data: SyntheticPurchases) -> np.ndarray:
    return data.times.astype("datetime64[s]").astype(np.int64)


def test_csv_with_header_and_iso_times_matches_the_library(tmp_path: Path, data: SyntheticPurchases) -> None:
    path = tmp_path / "purchases.csv"
    stamps = [str(t) + "Z" for t in data.times.astype("datetime64[s]")]
    rows = [f"C{u},P{i},{t}" for u, i, t in zip(data.users, data.items, stamps, strict=True)]
    path.write_text("customer,product,at\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = _invoke(
        str(path), "--user-column", "customer", "--item-column", "product", "--time-column", "at", "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    expected = evaluate_offline(
        np.array([f"C{u}" for u in data.users]), np.array([f"P{i}" for i in data.items]),
        times=data.times.astype("datetime64[s]").astype("datetime64[ns]"),
    )  # fmt: skip
    assert out["metrics"] == expected.metrics
    assert out["hybrid_weights"] == expected.weights
    assert out["counts"] == expected.counts
    assert out["split"]["method"] == "time" and out["k"] == 10
    assert set(out["metrics"]) == {"item_cf", "popularity", "trending", "hybrid"}
    assert out["cold_start"] == expected.cold_source
    assert out["metrics"]["hybrid"]["precision@10"] > out["metrics"]["popularity"]["precision@10"]
    assert {"read_seconds", "fit_seconds", "evaluate_seconds", "tune_seconds"} <= set(out["timings"])


def test_movielens_format_without_header_with_item_file(tmp_path: Path, data: SyntheticPurchases) -> None:
    ratings = tmp_path / "ratings.dat"
    stars = (np.arange(len(data.users)) % 5) + 1
    lines = [
        f"{u}::{i}::{r}::{t}" for u, i, r, t in zip(data.users, data.items, stars, _unix(data), strict=True)
    ]
    ratings.write_text("\n".join(lines) + "\n", encoding="utf-8")
    movies = tmp_path / "movies.dat"
    movies.write_bytes(
        "\n".join(f"{i}::Caf\xe9 {i} (1995)::G{g}|All" for i, g in enumerate(data.item_group)).encode(
            "latin-1"
        )
    )
    result = _invoke(
        str(ratings), "--user-column", "1", "--item-column", "2", "--rating-column", "3",
        "--time-column", "4", "--items-file", str(movies), "--item-features", "3",
        "--items-id-column", "1", "--min-rating", "2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    keep = stars >= 2
    assert out["counts"]["interactions"] == int(keep.sum())
    assert set(out["metrics"]) == {"item_cf", "content", "popularity", "trending", "hybrid"}
    tokens = {str(i): [f"3:G{g}", "3:All"] for i, g in enumerate(data.item_group)}
    expected = evaluate_offline(
        data.users[keep].astype(str), data.items[keep].astype(str), times=_unix(data)[keep].astype(float),
        weights=stars[keep].astype(float), item_tokens=tokens,
    )  # fmt: skip
    assert out["metrics"] == expected.metrics


def test_tsv_random_split_and_table_output(tmp_path: Path, data: SyntheticPurchases) -> None:
    path = tmp_path / "log.tsv"
    rows = [f"{u}\t{i}" for u, i in zip(data.users, data.items, strict=True)]
    path.write_text("user\titem\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = _invoke(str(path), "--user-column", "user", "--item-column", "item", "--k", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["recommender", "precision@5", "recall@5", "map@5", "ndcg@5", "coverage"]
    assert [line.split()[0] for line in lines[1:4]] == ["item_cf", "popularity", "hybrid"]
    assert any(line.startswith("hybrid weights: item_cf=") for line in lines)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user,item,at\nu1,i1,2025-01-01\nu2,,2025-01-02\n", encoding="utf-8")
    result = _invoke(str(path), "--user-column", "user", "--item-column", "product")
    assert result.exit_code == 1
    assert "column 'product' is not in x.csv (columns: user, item, at)" in result.output
    result = _invoke(str(path), "--user-column", "user", "--item-column", "item")
    assert result.exit_code == 1 and "line 3: item column 'item' is empty" in result.output
    path.write_text("user,item,at\nu1,i1,yesterday\n", encoding="utf-8")
    result = _invoke(str(path), "--user-column", "user", "--item-column", "item", "--time-column", "at")
    assert result.exit_code == 1
    assert (
        "line 2: time column 'at' value 'yesterday' is neither an ISO date nor Unix seconds" in result.output
    )
    result = _invoke(str(path), "--user-column", "user", "--item-column", "item", "--min-rating", "3")
    assert result.exit_code == 2 and "--min-rating needs --rating-column" in result.output
    result = _invoke(str(tmp_path / "missing.csv"), "--user-column", "user", "--item-column", "item")
    assert result.exit_code == 1 and "cannot read" in result.output
