from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from rapport.analytics.forecast import backtest, fit_forecast, seasonal_naive
from rapport.analytics.synthetic import seasonal_series
from rapport.cli.main import app

runner = CliRunner()


def _invoke(*args: str) -> Result:
    return runner.invoke(app, ["analytics", "forecast", *args])


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """48 months of orders (2021-01 .. 2024-12), each worth 10; one more order in January 2025."""
    counts = seasonal_series(np.random.default_rng(0), 48, level=60, trend=1, amplitude=20, noise=4)
    counts = counts.round().astype(int)
    rows = ["id,at,total"]
    for m, c in enumerate(counts):
        year, month = 2021 + m // 12, m % 12 + 1
        rows.extend(f"{len(rows)},{year}-{month:02d}-{1 + j % 28:02d}T12:00:00Z,10" for j in range(c))
    rows.append(f"{len(rows)},2025-01-05,10")
    path = tmp_path_factory.mktemp("fc") / "orders.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path, counts


def test_monthly_revenue_forecast_json_matches_the_library(
    orders: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, counts = orders
    png = tmp_path / "chart.png"
    result = _invoke(
        str(path), "--date-column", "at", "--amount-column", "total", "--horizon", "3", "--level", "0.8",
        "--folds", "6", "--png", str(png), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    y = counts * 10.0  # January 2025 is partial: left out
    fc = fit_forecast(y, 3, 12, 0.8)
    assert out["history_periods"] == 48 and out["series"] == "revenue" and out["model"] == fc.model
    assert [f["period_start"] for f in out["forecast"]] == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert [f["mean"] for f in out["forecast"]] == fc.mean.tolist()
    assert [f["lower"] for f in out["forecast"]] == fc.lower.tolist()
    assert out["backtest"]["model"] == backtest(y, 3, 12, folds=6, level=0.8).as_dict()
    naive = backtest(y, 3, 12, folds=6, level=0.8, forecaster=seasonal_naive)
    assert out["backtest"]["seasonal_naive"] == naive.as_dict()
    assert out["backtest"]["model"]["mase"] < naive.mase
    assert png.read_bytes().startswith(b"\x89PNG")


def test_order_counts_with_an_as_of_date(orders: tuple[Path, np.ndarray]) -> None:
    path, _ = orders
    for as_of in ("2022-12-31T23:59:59", "2022-12-31"):
        result = _invoke(str(path), "--date-column", "at", "--as-of", as_of, "--horizon", "2")
        assert result.exit_code == 0, result.output
        assert (
            result.output.startswith("model ETS(") and "24 months of history, 90% interval" in result.output
        )
        assert (
            "2023-01-01" in result.output
            and "2023-02-01" in result.output
            and "backtest model" in result.output
        )
    result = _invoke(str(path), "--date-column", "at", "--as-of", "2022-12-31T12:00:00", "--horizon", "2")
    assert "23 months of history" in result.output  # December not over at noon on the 31st


def test_forecast_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("at,total\n2025-01-01,abc\n", encoding="utf-8")
    result = _invoke(str(path), "--date-column", "at", "--amount-column", "total")
    assert (
        result.exit_code == 1 and "line 2: amount column 'total' value 'abc' is not a number" in result.output
    )
    path.write_text("at\n2025-01-01\n2025-01-02\n", encoding="utf-8")
    result = _invoke(str(path), "--date-column", "at")
    assert result.exit_code == 1 and "fewer than two complete periods" in result.output
    result = _invoke(str(path), "--date-column", "when")
    assert result.exit_code == 1 and "column 'when' is not in x.csv" in result.output
