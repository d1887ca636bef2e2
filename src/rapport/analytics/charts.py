"""PNG charts for analysts: a forecast with its interval, association rules as bubbles plus a table.

Matplotlib with the Agg backend (no display needed); each function returns the PNG bytes and draws
on its own figure, which it closes, so charts can be made from worker threads one after another.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import duckdb
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen before pyplot loads
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

_HISTORY = "#1f4e79"
_FORECAST = "#c55a11"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _thousands(value: float, _pos: object) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 1_000:
        return f"{value / 1_000:.0f}k"
    return f"{value:.0f}"


def forecast_chart(table: pd.DataFrame, *, title: str, ylabel: str, level: float | None = None) -> bytes:
    """History line, forecast line and shaded interval from a ForecastJob table (period_start, kind,
    value, lower, upper, model)."""
    history = table[table["kind"] == "history"]
    future = table[table["kind"] == "forecast"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.plot(history["period_start"], history["value"], color=_HISTORY, linewidth=1.6, label="actual")
    if len(future):
        # Join the forecast to the last actual so the line does not start in mid-air.
        joined_x = pd.concat([history["period_start"].tail(1), future["period_start"]])
        joined_y = np.r_[history["value"].tail(1).to_numpy(), future["value"].to_numpy()]
        model = str(future["model"].iloc[0])
        ax.plot(
            joined_x, joined_y, color=_FORECAST, linewidth=1.6, linestyle="--", label=f"forecast ({model})"
        )
        band = f"{level:.0%} interval" if level is not None else "prediction interval"
        ax.fill_between(
            future["period_start"], future["lower"], future["upper"], color=_FORECAST, alpha=0.18, label=band
        )
        ax.axvline(history["period_start"].iloc[-1], color="#888888", linewidth=0.8, linestyle=":")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_ylim(bottom=min(0.0, float(np.nanmin(table[["value", "lower"]].to_numpy(dtype=float)))))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    fig.autofmt_xdate()
    return _png(fig)


def _rule_label(antecedents: object, consequents: object, names: Mapping[int, str] | None) -> str:
    def side(ids: object) -> str:
        values = ids if isinstance(ids, tuple | list) else [int(x) for x in str(ids).split(",") if x]
        return " + ".join(names.get(int(i), str(i)) if names else str(i) for i in values)

    return f"{side(antecedents)} → {side(consequents)}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rules_chart(
    rules: pd.DataFrame,
    *,
    top: int = 12,
    names: Mapping[int, str] | None = None,
    title: str = "Association rules",
) -> bytes:
    """Bubble chart (support x confidence, size and colour = lift) and a table of the top rules by lift."""
    fig, (ax, tab) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.1, 1.0]})
    if len(rules) == 0:
        ax.text(0.5, 0.5, "no rules at these thresholds", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        tab.set_axis_off()
        return _png(fig)
    best = rules.sort_values(["lift", "confidence"], ascending=False).head(top).reset_index(drop=True)
    lift = rules["lift"].to_numpy(dtype=float)
    sizes = 40 + 260 * (lift - lift.min()) / (np.ptp(lift) or 1.0)
    points = ax.scatter(
        rules["support"], rules["confidence"], s=sizes, c=lift, cmap="viridis", alpha=0.7, edgecolors="white"
    )
    # The tabled rules get a dark outline (numbers on the bubbles would pile up where rules share
    # their support, as the rules of one frequent itemset do).
    ax.scatter(
        best["support"], best["confidence"], s=40 + 260 * (best["lift"].to_numpy(dtype=float) - lift.min())
        / (np.ptp(lift) or 1.0), facecolors="none", edgecolors="black", linewidths=1.2, label="in the table",
    )  # fmt: skip
    ax.legend(loc="lower right", frameon=False, fontsize=8, markerscale=0.5)
    fig.colorbar(points, ax=ax, label="lift")
    ax.set_xlabel("support (share of baskets)")
    ax.xaxis.set_major_locator(MaxNLocator(5))  # small supports make long tick labels
    ax.set_ylabel("confidence")
    ax.set_title(title)
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    tab.set_axis_off()
    cells = [
        [
            str(i + 1),
            _shorten(_rule_label(r["antecedents"], r["consequents"], names), 46),
            f"{r['support']:.3f}",
            f"{r['confidence']:.2f}",
            f"{r['lift']:.2f}",
        ]
        for i, r in enumerate(best.to_dict("records"))
    ]
    table = tab.table(
        cellText=cells,
        colLabels=["#", "rule", "support", "conf.", "lift"],
        colWidths=[0.05, 0.6, 0.13, 0.1, 0.09],
        loc="upper center",
        cellLoc="center",
    )
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(fontweight="bold")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.3)
    tab.set_title(f"Top {len(best)} rules by lift")
    return _png(fig)


_SERIES = {
    "revenue_month": ("Revenue per month", "revenue"),
    "orders_month": ("Orders per month", "orders"),
    "revenue_week": ("Revenue per week", "revenue"),
    "orders_week": ("Orders per week", "orders"),
}


def forecast_png_from_store(
    con: duckdb.DuckDBPyConnection, series: str, *, level: float | None = None
) -> bytes:
    """Service function: the chart of a stored ForecastJob table ``result_forecast_<series>``."""
    if series not in _SERIES:
        raise ValueError(f"unknown series {series!r}; one of {', '.join(_SERIES)}")
    title, ylabel = _SERIES[series]
    table = con.execute(f"SELECT * FROM result_forecast_{series} ORDER BY period_start").df()  # noqa: S608
    return forecast_chart(table, title=title, ylabel=ylabel, level=level)


def rules_png_from_store(
    con: duckdb.DuckDBPyConnection, *, top: int = 12, names: Mapping[int, str] | None = None
) -> bytes:
    """Service function: the chart of the stored RulesJob table ``result_rules_rules``."""
    return rules_chart(con.execute("SELECT * FROM result_rules_rules").df(), top=top, names=names)
