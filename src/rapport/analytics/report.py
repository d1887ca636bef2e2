"""PNG charts and CSV tables from the result tables of the last analytics run.

Charts use matplotlib's Agg backend (no display needed). Chinese labels (regions, cities) are
drawn with a CJK font when one is installed; otherwise they are written in pinyin so a chart
never shows empty boxes.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import duckdb
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import font_manager

from rapport.analytics.csvout import frame_to_csv
from rapport.analytics.metrics import BREAKDOWNS, RFM_SEGMENTS
from rapport.analytics.store import first_row

_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "SimHei")
_BREAKDOWN_TITLES = {
    "gender": "Customers by gender",
    "age_band": "Customers by age band",
    "region": "Customers by region",
    "channel": "Customers by preferred channel",
    "stage": "Customers by lifecycle stage",
}


@functools.cache
def _cjk_font() -> str | None:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in installed), None)


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def label(value: Any) -> str:
    """A chart label: as is with a CJK font, else Chinese characters become pinyin."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    if not _has_cjk(text) or _cjk_font():
        return text
    from pypinyin import Style, lazy_pinyin

    return " ".join(w.capitalize() for w in lazy_pinyin(text, style=Style.NORMAL))


def _read(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    found = first_row(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
    if not found or not found[0]:
        raise LookupError(f"no table {table} in the analytics store; run `rapport analytics run` first")
    return con.execute(f"SELECT * FROM {table}").df()  # noqa: S608 (known names)


def _style() -> None:
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "font.size": 9,
        }
    )
    font = _cjk_font()
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]


def _bars(ax: Any, frame: pd.DataFrame, key: str, title: str, top: int = 12) -> None:
    data = frame.head(top).iloc[::-1]
    labels = [label(v) for v in data[key]]
    bars = ax.barh(labels, data["customers"], color="#4C72B0")
    total = frame["customers"].sum()
    for bar, count in zip(bars, data["customers"], strict=True):
        share = count / total if total else 0
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {count:,} ({share:.0%})", va="center")
    ax.set_title(title)
    ax.set_xlabel("customers")
    ax.set_xlim(0, max(data["customers"].max() * 1.3, 1) if len(data) else 1)


def breakdowns_chart(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, by in zip(axes.flat, BREAKDOWNS, strict=False):
        _bars(ax, _read(con, f"result_descriptive_breakdown_{by}"), "key", _BREAKDOWN_TITLES[by])
    repeat = _read(con, "result_descriptive_repeat_purchase").iloc[0]
    ax = axes.flat[len(BREAKDOWNS)]
    ax.axis("off")
    ax.text(
        0.05,
        0.6,
        f"Repeat-purchase rate\n{repeat['repeat_rate']:.1%}\n\n"
        f"{int(repeat['repeat_purchasers']):,} of {int(repeat['purchasers']):,} purchasers\n"
        "bought more than once",
        fontsize=13,
        va="center",
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def distributions_chart(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    titles = {
        "frequency": ("Purchases per customer", "purchases"),
        "monetary": ("Spend per customer", "total spend"),
        "recency": ("Days since last purchase", "recency"),
    }
    for ax, (of, (title, xlabel)) in zip(axes, titles.items(), strict=True):
        frame = _read(con, f"result_descriptive_distribution_{of}")
        ax.bar([label(b) for b in frame["bucket"]], frame["customers"], color="#55A868")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("customers")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def rfm_grid_chart(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    grid = _read(con, "result_rfm_grid")
    bins = int(grid[["r", "f"]].to_numpy().max()) if len(grid) else 5
    counts = np.zeros((bins, bins), dtype=int)
    for r, f, n in grid[["r", "f", "customers"]].to_numpy(dtype=int):
        counts[r - 1, f - 1] = n
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(counts, cmap="Blues", origin="lower")
    for r in range(bins):
        for f in range(bins):
            value = counts[r, f]
            dark = value > counts.max() * 0.6
            ax.text(f, r, f"{value:,}", ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(bins), [str(i + 1) for i in range(bins)])
    ax.set_yticks(range(bins), [str(i + 1) for i in range(bins)])
    ax.set_xlabel("F score (frequency, higher buys more often)")
    ax.set_ylabel("R score (recency, higher bought more recently)")
    ax.set_title("RFM grid: customers per R x F cell")
    fig.colorbar(image, ax=ax, label="customers")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def rfm_segments_chart(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    frame = _read(con, "result_rfm_segments").set_index("segment")
    frame = frame.reindex([s for s in RFM_SEGMENTS if s in frame.index]).reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    _bars(axes[0], frame.sort_values("customers", ascending=False), "segment", "RFM segments: customers")
    revenue = frame.sort_values("revenue", ascending=True)
    axes[1].barh(revenue["segment"], revenue["revenue"], color="#C44E52")
    axes[1].set_title("RFM segments: revenue")
    axes[1].set_xlabel("revenue")
    axes[1].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def cohort_chart(con: duckdb.DuckDBPyConnection, path: Path, max_periods: int = 24) -> Path:
    frame = _read(con, "result_descriptive_cohorts")
    frame = frame[frame["period"] < max_periods]
    table = frame.pivot(index="cohort", columns="period", values="retention").sort_index()
    table = table.reindex(columns=range(int(frame["period"].max()) + 1 if len(frame) else 1))
    # A month in which nobody of the cohort bought has no row: 0 %, as far as the data reaches.
    index = {c: int(c[:4]) * 12 + int(c[5:7]) for c in table.index}
    last = int((frame["cohort"].map(index) + frame["period"]).max()) if len(frame) else 0
    for i, cohort in enumerate(table.index):
        span = last - index[cohort] + 1
        table.iloc[i, :span] = table.iloc[i, :span].fillna(0.0)
    sizes = frame.groupby("cohort")["cohort_size"].first().reindex(table.index)
    height = max(4.0, 0.32 * len(table) + 1.5)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.45 * table.shape[1] + 3), height))
    values = table.to_numpy(dtype=float)
    masked = np.ma.masked_invalid(values)
    # Period 0 is 100 % by definition; the scale follows the later months so they stay readable.
    later = values[:, 1:] if values.shape[1] > 1 else values
    top = np.nanmax(later) if np.isfinite(later).any() else 1.0
    image = ax.imshow(masked, cmap="YlGnBu", aspect="auto", vmin=0, vmax=max(top, 0.01))
    if table.shape[0] * table.shape[1] <= 400:
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(
        range(table.shape[0]), [f"{c} (n={int(n):,})" for c, n in zip(table.index, sizes, strict=True)]
    )
    ax.set_xlabel("months since first purchase")
    ax.set_ylabel("first-purchase month")
    ax.set_title("Cohort retention: share of each cohort purchasing again")
    fig.colorbar(image, ax=ax, label="retention", format=matplotlib.ticker.PercentFormatter(1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def revenue_chart(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    monthly = _read(con, "result_descriptive_revenue_monthly")
    weekly = _read(con, "result_descriptive_revenue_weekly")
    fig, axes = plt.subplots(2, 1, figsize=(13, 8))
    ax = axes[0]
    x = pd.to_datetime(monthly["period"])
    ax.bar(x, monthly["revenue"], width=20, color="#4C72B0", label="revenue")
    ax.set_title("Monthly revenue and orders")
    ax.set_ylabel("revenue")
    ax2 = ax.twinx()
    ax2.plot(x, monthly["orders"], color="#DD8452", marker="o", markersize=3, label="orders")
    ax2.set_ylabel("orders")
    ax2.spines["right"].set_visible(True)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, ["revenue", "orders"], loc="upper left")
    ax = axes[1]
    ax.plot(pd.to_datetime(weekly["period"]), weekly["revenue"], color="#4C72B0", linewidth=1)
    ax.set_title("Weekly revenue (weeks start on Monday)")
    ax.set_ylabel("revenue")
    for a in (axes[0], axes[1]):
        a.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def customer_value_chart(con: duckdb.DuckDBPyConnection, path: Path) -> Path | None:
    """Predicted 12-month CLV, churn risk and lifecycle stages of the scored customers (aggregates).

    Reads the store's mirror of the scores written back by the last run; None before any run.
    """
    found = first_row(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scores'")
    if not found or not found[0]:
        return None
    clv = np.asarray(
        con.execute("SELECT value FROM scores WHERE kind = 'clv_12m' AND value > 0").fetchnumpy()["value"],
        dtype=np.float64,
    )
    risk = np.asarray(
        con.execute("SELECT value FROM scores WHERE kind = 'churn_risk'").fetchnumpy()["value"],
        dtype=np.float64,
    )
    stages = con.execute(
        "SELECT label, count(*) AS customers FROM scores WHERE kind = 'lifecycle' GROUP BY label "
        "ORDER BY customers DESC"
    ).df()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    if len(clv):
        # Lifetime values are heavy-tailed: equal-width bins on a log scale show the whole range.
        bins = np.logspace(np.log10(max(float(clv.min()), 1.0)), np.log10(float(clv.max()) + 1.0), 30)
        ax.hist(clv, bins=bins, color="#8172B2")
        ax.set_xscale("log")
    ax.set_title(f"Predicted 12-month CLV ({len(clv):,} customers)")
    ax.set_xlabel("CLV (log scale)")
    ax.set_ylabel("customers")
    ax = axes[1]
    if len(risk):
        ax.hist(risk, bins=np.linspace(0, 1, 11), color="#C44E52")
    ax.set_title(f"Churn risk ({len(risk):,} customers)")
    ax.set_xlabel("probability of no purchase in the churn window")
    ax.set_ylabel("customers")
    ax.set_xlim(0, 1)
    if len(stages):
        _bars(axes[2], stages, "label", "Lifecycle stages")
    else:
        axes[2].axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """UTF-8 CSV with a BOM, spreadsheet formulas neutralised like the customer export."""
    path.write_bytes(frame_to_csv(frame))
    return path


def write_report(con: duckdb.DuckDBPyConnection, out: Path) -> list[Path]:
    """Every chart and every result table of the store into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    _style()
    written = [
        breakdowns_chart(con, out / "breakdowns.png"),
        distributions_chart(con, out / "distributions.png"),
        rfm_grid_chart(con, out / "rfm_grid.png"),
        rfm_segments_chart(con, out / "rfm_segments.png"),
        cohort_chart(con, out / "cohorts.png"),
        revenue_chart(con, out / "revenue.png"),
    ]
    value = customer_value_chart(con, out / "customer_value.png")
    if value is not None:
        written.append(value)
    tables = [str(r[0]) for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE starts_with(table_name, 'result_') "
        "ORDER BY table_name"
    ).fetchall()]  # fmt: skip
    # Charts of the forecast and basket-rule jobs, when they have run.
    from rapport.analytics.charts import forecast_png_from_store, rules_png_from_store

    for series in ("revenue_month", "orders_month", "revenue_week", "orders_week"):
        if f"result_forecast_{series}" in tables:
            path = out / f"forecast_{series}.png"
            path.write_bytes(forecast_png_from_store(con, series))
            written.append(path)
    if "result_rules_rules" in tables:
        path = out / "basket_rules.png"
        # SKUs, not names: no CJK font can be assumed on a server, and product names are often Chinese.
        names = {int(r[0]): str(r[1]) for r in con.execute("SELECT product_id, sku FROM products").fetchall()}
        path.write_bytes(rules_png_from_store(con, names=names))
        written.append(path)
    per_person = {
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = 'customer_id'"
        ).fetchall()
    }
    for name in tables:
        if name in per_person:
            continue  # per-person rows stay in the store; the report holds aggregates only
        written.append(write_csv(_read(con, str(name)), out / f"{str(name).removeprefix('result_')}.csv"))
    return written
