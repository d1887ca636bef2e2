"""`rapport analytics sync | run | report` on a real, committed database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from rapport.cli.main import app
from rapport.models import CustomerScore
from tests.analytics.jobs_data import build
from tests.factories import Factory

runner = CliRunner()


def rapport(url: str, *args: str) -> Result:
    return runner.invoke(app, ["analytics", *args], env={"RAPPORT_DATABASE_URL": url})


def _seed(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        return build(Factory(conn))


def test_run_sync_and_report(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], tmp_path: Path
) -> None:
    url = fresh_url()
    engine = engines(url)
    _seed(engine)
    store = str(tmp_path / "store" / "analytics.duckdb")

    ran = rapport(url, "run", "--as-of", "2025-06-30", "--store", store)
    assert ran.exit_code == 0, ran.output
    assert "Jobs as of 2025-06-30" in ran.output
    assert "rfm-1" in ran.output
    with engine.connect() as conn:
        kinds = conn.execute(
            select(CustomerScore.kind, func.count()).group_by(CustomerScore.kind).order_by(CustomerScore.kind)
        ).all()
    # Every job ran; with three purchasers the BG/NBD and churn models have too little data to fit,
    # so they write no predictions while the descriptive scores cover every consenting customer.
    assert [tuple(k) for k in kinds] == [("historical_clv", 4), ("lifecycle", 4), ("rfm", 3)]

    synced = rapport(url, "sync", "--store", store)
    assert synced.exit_code == 0, synced.output
    lines = {line.split("│")[1].strip(): line for line in synced.output.splitlines() if line.count("│") > 3}
    # Tables with rows have a mark and copy nothing new; empty ones (no mark yet) stay "full".
    for table in ("customers", "orders", "order_lines"):
        assert "incremental" in lines[table]
        assert "│ 0 " in lines[table]

    out = tmp_path / "report"
    reported = rapport(url, "report", "--out", str(out), "--store", store)
    assert reported.exit_code == 0, reported.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "basket_rules.png",
        "breakdowns.png",
        "cohorts.png",
        "customer_value.png",
        "distributions.png",
        "forecast_orders_month.png",
        "forecast_orders_week.png",
        "forecast_revenue_month.png",
        "forecast_revenue_week.png",
        "revenue.png",
        "rfm_grid.png",
        "rfm_segments.png",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "rfm_segments.csv").exists()
    # per-person rows stay in the store
    assert [
        p.name for p in out.glob("*.csv") if p.name.startswith(("rfm_customers", "lifecycle", "clv_hist"))
    ] == []
    region = (out / "descriptive_breakdown_region.csv").read_text(encoding="utf-8-sig")
    assert "'=cmd,1,0.25" in region


def test_usage_errors(fresh_url: Callable[[], str], tmp_path: Path) -> None:
    url = fresh_url()
    store = str(tmp_path / "a.duckdb")
    unknown = rapport(url, "run", "--only", "nope", "--store", store)
    assert unknown.exit_code == 2
    assert "unknown job nope" in unknown.output
    bad_date = rapport(url, "run", "--as-of", "2025-13-01", "--store", store)
    assert bad_date.exit_code == 2
    missing = rapport(url, "report", "--out", str(tmp_path / "r"), "--store", str(tmp_path / "none.duckdb"))
    assert missing.exit_code == 1
    assert "no analytics store" in missing.output
