from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from rapport.analytics.clv import fit_bgnbd, fit_gamma_gamma, summarise
from rapport.analytics.simulate import simulate_transactions
from rapport.cli.analytics import _parse_date
from rapport.cli.main import app

runner = CliRunner()
END = np.datetime64("2025-06-30")


def _invoke(*args: str) -> Result:
    return runner.invoke(app, ["analytics", "fit-clv", *args])


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def transactions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str], list[float]]:
    rng = np.random.default_rng(3)
    ids, dates, amounts = simulate_transactions(
        rng, 1500, end=END, window_days=365, bgnbd=(0.6, 20.0, 1.2, 6.0), gamma_gamma=(4.0, 5.0, 40.0)
    )
    customer = [f"C{i:05d}" for i in ids]
    day = [str(d) for d in dates]
    path = _write(
        tmp_path_factory.mktemp("clv") / "tx.csv",
        ["order_id", "customer", "ordered_on", "total"],
        [[str(n), c, d, f"{a:.2f}"] for n, (c, d, a) in enumerate(zip(customer, day, amounts, strict=True))],
    )
    return path, customer, day, [float(f"{a:.2f}") for a in amounts]


def test_fit_clv_json_matches_the_library(
    transactions: tuple[Path, list[str], list[str], list[float]],
) -> None:
    path, customer, day, amounts = transactions
    result = _invoke(
        str(path), "--customer-column", "customer", "--date-column", "ordered_on", "--amount-column", "total",
        "--end", "2025-06-30", "--time-unit", "week", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)

    summary = summarise(customer, np.array(day, dtype="datetime64[D]"), amounts, dt.date(2025, 6, 30), "week")
    bgnbd, gg = fit_bgnbd(summary), fit_gamma_gamma(summary)
    assert (out["r"], out["alpha"], out["a"], out["b"]) == (bgnbd.r, bgnbd.alpha, bgnbd.a, bgnbd.b)
    assert (out["p"], out["q"], out["gamma"]) == (gg.p, gg.q, gg.gamma)
    assert (out["loglik_bgnbd"], out["loglik_gamma_gamma"]) == (bgnbd.loglik, gg.loglik)
    assert out["time_unit"] == "week"
    assert out["end"] == "2025-06-30"
    repeat = summary.frequency > 0
    assert out["counts"] == {
        "transactions": len(customer),
        "customers": 1500,
        "repeat_customers": int(np.count_nonzero(repeat)),
        "bgnbd_groups": len(
            {(f, r, t) for f, r, t in zip(summary.frequency, summary.recency, summary.T, strict=True)}
        ),
        "gamma_gamma_customers": int(np.count_nonzero(repeat & (summary.monetary > 0))),
    }
    assert out["counts"]["transactions"] > 3 * 1500  # the simulation really produced repeat business
    assert set(out["timings"]) == {
        "read_seconds",
        "summarise_seconds",
        "fit_bgnbd_seconds",
        "fit_gamma_gamma_seconds",
    }
    assert all(isinstance(v, float) and v >= 0 for v in out["timings"].values())


def test_fit_clv_without_amounts_fits_bgnbd_only(
    transactions: tuple[Path, list[str], list[str], list[float]],
) -> None:
    path, customer, day, _ = transactions
    result = _invoke(str(path), "--customer-column", "customer", "--date-column", "ordered_on", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    bgnbd = fit_bgnbd(summarise(customer, np.array(day, dtype="datetime64[D]"), None))
    assert out["r"] == bgnbd.r
    assert out["alpha"] == bgnbd.alpha
    assert out["p"] is None
    assert out["loglik_gamma_gamma"] is None
    assert out["time_unit"] == "day"
    assert out["end"] == max(day)
    assert "fit_gamma_gamma_seconds" not in out["timings"]


def test_fit_clv_prints_a_table_without_json(
    transactions: tuple[Path, list[str], list[str], list[float]],
) -> None:
    path = transactions[0]
    result = _invoke(str(path), "--customer-column", "customer", "--date-column", "ordered_on")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert lines["customers"] == "1500"
    assert float(lines["alpha"]) > 0
    assert "gamma" not in lines


def test_missing_column_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["cust", "when"], [["a", "2024-01-01"]])
    result = _invoke(str(path), "--customer-column", "customer", "--date-column", "when")
    assert result.exit_code == 1
    assert "error: customer column 'customer' is not in t.csv (columns: cust, when)" in result.output
    result = _invoke(
        str(path), "--customer-column", "cust", "--date-column", "when", "--amount-column", "total"
    )
    assert result.exit_code == 1
    assert "error: amount column 'total' is not in t.csv" in result.output
    assert "Traceback" not in result.output


def test_unparsable_date_and_amount_name_line_and_column(tmp_path: Path) -> None:
    rows = [["a", "2024-01-01", "3.50"], ["a", "01/02/2024", "4"]]
    path = _write(tmp_path / "t.csv", ["cust", "when", "total"], rows)
    result = _invoke(str(path), "--customer-column", "cust", "--date-column", "when")
    assert result.exit_code == 1
    assert "error: line 3: date column 'when' value '01/02/2024' is not an ISO date" in result.output

    rows = [["a", "2024-01-01", "3.50"], ["a", "2024-01-02", "n/a"]]
    path = _write(tmp_path / "t.csv", ["cust", "when", "total"], rows)
    result = _invoke(
        str(path), "--customer-column", "cust", "--date-column", "when", "--amount-column", "total"
    )
    assert result.exit_code == 1
    assert "error: line 3: amount column 'total' value 'n/a' is not a number" in result.output
    rows = [["a", "2024-01-01", "nan"]]
    path = _write(tmp_path / "t.csv", ["cust", "when", "total"], rows)
    result = _invoke(
        str(path), "--customer-column", "cust", "--date-column", "when", "--amount-column", "total"
    )
    assert result.exit_code == 1
    assert "amount column 'total' value 'nan' is not a number" in result.output


def test_negative_amounts_and_late_dates_are_rejected(tmp_path: Path) -> None:
    rows = [["a", "2024-01-01", "3.50"], ["a", "2024-01-05", "-4"]]
    path = _write(tmp_path / "t.csv", ["cust", "when", "total"], rows)
    result = _invoke(
        str(path), "--customer-column", "cust", "--date-column", "when", "--amount-column", "total"
    )
    assert result.exit_code == 1
    assert "error: amounts must be non-negative; 1 are negative" in result.output
    result = _invoke(str(path), "--customer-column", "cust", "--date-column", "when", "--end", "2024-01-03")
    assert result.exit_code == 1
    assert "error: 1 transaction date(s) fall after end 2024-01-03" in result.output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["cust", "when"], [["a", "2024-01-01"]])
    result = _invoke(str(path), "--customer-column", "cust", "--date-column", "when", "--time-unit", "month")
    assert result.exit_code == 2
    assert "'month' is not one of" in result.output
    result = _invoke(str(path), "--customer-column", "cust", "--date-column", "when", "--end", "June")
    assert result.exit_code == 2
    assert "error: --end 'June' is not an ISO date (YYYY-MM-DD)" in result.output


def test_empty_and_missing_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["cust", "when"], [])
    result = _invoke(str(path), "--customer-column", "cust", "--date-column", "when")
    assert result.exit_code == 1
    assert "error: t.csv has no transactions" in result.output
    result = _invoke(str(tmp_path / "nope.csv"), "--customer-column", "cust", "--date-column", "when")
    assert result.exit_code == 1
    assert "error: cannot read" in result.output
    assert "No such file or directory" in result.output


def test_aware_datetimes_count_on_their_utc_date() -> None:
    assert _parse_date("2024-01-01") == dt.date(2024, 1, 1)
    assert _parse_date(" 2024-01-01T23:30:00 ") == dt.date(2024, 1, 1)  # naive: taken as written
    # 23:30 at UTC-05:00 is already the next day in UTC.
    assert _parse_date("2024-01-01T23:30:00-05:00") == dt.date(2024, 1, 2)
    with pytest.raises(ValueError, match=r"month must be in 1\.\.12"):
        _parse_date("2024-13-01")
