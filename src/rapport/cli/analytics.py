"""``rapport analytics``: the analytics store, its jobs and reports; CLV fitting on exported data."""

from __future__ import annotations

import csv
import datetime as dt
import enum
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rapport.analytics.clv import FitError, fit_bgnbd, fit_gamma_gamma, group_rows, summarise
from rapport.analytics.jobs import registry, run_jobs
from rapport.analytics.store import AnalyticsStore, SyncReport
from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database, settings

app = typer.Typer(
    help="Customer analytics: store sync, jobs (RFM, CLV, lifecycle, churn...), reports, models on files.",
    no_args_is_help=True,
)


class Period(enum.StrEnum):
    month = "month"
    week = "week"


class TimeUnit(enum.StrEnum):
    day = "day"
    week = "week"


def _parse_date(text: str) -> dt.date:
    """An ISO date or datetime; aware datetimes count on their UTC date so time zones cannot split a day."""
    value = text.strip()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        parsed = dt.datetime.fromisoformat(value)  # a ValueError here is the caller's message
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC)
    return parsed.date()


def _read(
    path: Path, customer_col: str, date_col: str, amount_col: str | None
) -> tuple[list[str], list[dt.date], list[float] | None]:
    ids: list[str] = []
    dates: list[dt.date] = []
    amounts: list[float] | None = [] if amount_col else None
    # Dates repeat heavily in transaction logs; parsing each distinct string once is much faster.
    seen: dict[str, dt.date] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for label, col in (("customer", customer_col), ("date", date_col), ("amount", amount_col)):
                if col is not None and col not in header:
                    listed = ", ".join(header) or "no header row"
                    fail(f"{label} column '{col}' is not in {path.name} (columns: {listed})")
            for row in reader:
                line = reader.line_num
                cid, raw_date = row[customer_col], row[date_col]
                if cid is None or raw_date is None:
                    fail(f"line {line}: row has fewer fields than the header")
                if not cid.strip():
                    fail(f"line {line}: customer column '{customer_col}' is empty")
                date = seen.get(raw_date)
                if date is None:
                    try:
                        date = seen[raw_date] = _parse_date(raw_date)
                    except ValueError:
                        fail(f"line {line}: date column '{date_col}' value {raw_date!r} is not an ISO date")
                ids.append(cid.strip())
                dates.append(date)
                if amounts is not None and amount_col is not None:
                    raw_amount = row[amount_col]
                    try:
                        amount = float(raw_amount or "")
                    except ValueError:
                        amount = math.nan
                    if not math.isfinite(amount):
                        fail(
                            f"line {line}: amount column '{amount_col}' value {raw_amount!r} is not a number"
                        )
                    amounts.append(amount)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")
    except csv.Error as exc:
        fail(f"{path} is not valid CSV: {exc}")
    if not ids:
        fail(f"{path.name} has no transactions")
    return ids, dates, amounts


@app.command("fit-clv")
def fit_clv(
    file: Path = typer.Argument(..., help="CSV of transactions with a header row."),
    customer_column: str = typer.Option(..., "--customer-column", help="Column identifying the customer."),
    date_column: str = typer.Option(..., "--date-column", help="Column with ISO dates or datetimes."),
    amount_column: str | None = typer.Option(
        None, "--amount-column", help="Column with transaction values; enables the Gamma-Gamma spend model."
    ),
    end: str | None = typer.Option(
        None, "--end", help="End of observation (ISO date); defaults to the latest transaction date."
    ),
    time_unit: TimeUnit = typer.Option(TimeUnit.day, "--time-unit", help="Period that purchases count in."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Fit BG/NBD (and Gamma-Gamma with --amount-column) to a transaction CSV and print the parameters."""
    end_date: dt.date | None = None
    if end is not None:
        try:
            end_date = dt.date.fromisoformat(end)
        except ValueError:
            fail(f"--end {end!r} is not an ISO date (YYYY-MM-DD)", 2)

    timings: dict[str, float] = {}
    started = time.perf_counter()
    ids, dates, amounts = _read(file, customer_column, date_column, amount_column)
    timings["read_seconds"] = time.perf_counter() - started
    try:
        started = time.perf_counter()
        summary = summarise(
            np.asarray(ids), np.asarray(dates, dtype="datetime64[D]"), amounts, end_date, time_unit.value
        )
        timings["summarise_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        bgnbd = fit_bgnbd(summary)
        timings["fit_bgnbd_seconds"] = time.perf_counter() - started
        gg = None
        if amounts is not None:
            started = time.perf_counter()
            gg = fit_gamma_gamma(summary)
            timings["fit_gamma_gamma_seconds"] = time.perf_counter() - started
    except (ValueError, FitError) as exc:
        fail(str(exc))

    repeat = summary.frequency > 0
    result: dict[str, Any] = {
        "r": bgnbd.r,
        "alpha": bgnbd.alpha,
        "a": bgnbd.a,
        "b": bgnbd.b,
        "p": gg.p if gg else None,
        "q": gg.q if gg else None,
        "gamma": gg.gamma if gg else None,
        "loglik_bgnbd": bgnbd.loglik,
        "loglik_gamma_gamma": gg.loglik if gg else None,
        "time_unit": time_unit.value,
        "end": summary.end.isoformat() if summary.end else None,
        "timings": timings,
        "counts": {
            "transactions": len(ids),
            "customers": len(summary),
            "repeat_customers": int(np.count_nonzero(repeat)),
            "bgnbd_groups": len(group_rows(summary.frequency, summary.recency, summary.T)[1]),
            "gamma_gamma_customers": int(np.count_nonzero(repeat & (summary.monetary > 0))) if gg else 0,
        },
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key in ("r", "alpha", "a", "b", "p", "q", "gamma", "loglik_bgnbd", "loglik_gamma_gamma"):
        if result[key] is not None:
            typer.echo(f"{key:>20}  {result[key]:.6g}")
    for key, count in result["counts"].items():
        typer.echo(f"{key:>20}  {count}")
    for key, seconds in timings.items():
        typer.echo(f"{key:>20}  {seconds:.3f}")


# -- the analytics store and jobs ---------------------------------------------------------------


def _store_path(store: Path | None) -> Path:
    return store or settings().resolved_analytics_path


def _as_of(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        fail(f"--as-of {text!r} is not an ISO date (YYYY-MM-DD)", 2)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _print_sync(report: SyncReport) -> None:
    table = Table("table", "copied", "removed", "mode", title="Analytics store sync")
    for name, count in report.upserted.items():
        mode = "full" if report.full.get(name) else "incremental"
        table.add_row(name, f"{count:,}", f"{report.removed.get(name, 0):,}", mode)
    console.print(table)
    typer.echo(f"profiling allowed for {report.profiling_allowed:,} customers; {report.seconds:.2f} s")


@app.command("sync")
def sync_store(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    store: Path | None = typer.Option(None, "--store", help="DuckDB file (default: RAPPORT_ANALYTICS_PATH)."),
    full: bool = typer.Option(False, "--full", help="Copy everything again instead of what changed."),
) -> None:
    """Copy what changed in the records into the analytics store (pseudonymised)."""
    path = _store_path(store)
    with (
        open_database(url) as database,
        cli_errors(),
        AnalyticsStore.open(path) as st,
        database.unit(write=False) as session,
    ):
        report = st.sync(session, full=full)
    _print_sync(report)
    typer.echo(f"store: {path}")


@app.command("run")
def run(
    only: list[str] | None = typer.Option(None, "--only", help="Run only this job (repeatable)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Evaluate as of this date (default: today)."),
    bins: int = typer.Option(5, "--bins", min=2, max=9, help="RFM score levels (5: quintiles)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    store: Path | None = typer.Option(None, "--store", help="DuckDB file (default: RAPPORT_ANALYTICS_PATH)."),
    no_sync: bool = typer.Option(False, "--no-sync", help="Use the store as it is."),
) -> None:
    """Sync the store, run analytics jobs, store their tables and write scores back."""
    when = _as_of(as_of)
    available = registry()
    names = list(only or available)
    unknown = [n for n in names if n not in available]
    if unknown:
        fail(f"unknown job {', '.join(unknown)}; choose from {', '.join(available)}", 2)
    path = _store_path(store)
    with (
        open_database(url) as database,
        cli_errors(),
        AnalyticsStore.open(path) as st,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as bar,
    ):
        tasks = {
            name: bar.add_task(name, total=1.0, note="") for name in ([] if no_sync else ["sync"]) + names
        }

        def hook(job: str, done: float, note: str) -> None:
            if job in tasks:
                bar.update(tasks[job], completed=done, note=note)

        report = run_jobs(
            database,
            st,
            as_of=when,
            only=names,
            params={"rfm": {"bins": bins}},
            sync=not no_sync,
            jobs=available,
            progress=hook,
        )
    if report.sync:
        _print_sync(report.sync)
    table = Table(
        "job", "model", "seconds", "scores", "withheld", "tables", title=f"Jobs as of {when.date()}"
    )
    for o in report.jobs:
        table.add_row(
            o.job,
            o.model_version,
            f"{o.seconds:.2f}",
            f"{o.scores_written:,}",
            f"{o.scores_withheld:,}",
            str(len(o.tables)),
        )
    console.print(table)
    typer.echo(f"store: {path}")


@app.command("report")
def report(
    out: Path = typer.Option(..., "--out", help="Directory for the PNG charts and CSV tables."),
    store: Path | None = typer.Option(None, "--store", help="DuckDB file (default: RAPPORT_ANALYTICS_PATH)."),
) -> None:
    """Write charts (PNG) and tables (CSV) from the last `rapport analytics run`."""
    path = _store_path(store)
    if not path.exists():
        fail(f"no analytics store at {path}; run `rapport analytics run` first")
    from rapport.analytics.report import write_report

    with AnalyticsStore.open(path) as st:
        try:
            written = write_report(st.con, out)
        except LookupError as exc:
            fail(str(exc))
    for item in written:
        typer.echo(str(item))
    typer.echo(f"{len(written)} files in {out}")


def _delimiter(path: Path) -> str:
    """Comma unless the header line clearly uses semicolons or tabs (common in European exports)."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline()
    except OSError:
        return ","  # read_csv reports the error
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep]) if max(counts.values()) > 0 else ","


MISSING_MARKERS = ["", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?"]


@app.command("churn-eval")
def churn_eval(
    file: Path = typer.Argument(..., help="CSV table with a header row, one row per customer."),
    target: str = typer.Option(..., "--target", help="Binary column: 0/1, yes/no, true/false, churned/..."),
    folds: int = typer.Option(5, "--folds", min=2, max=20, help="Cross-validation folds."),
    seed: int = typer.Option(0, "--seed", help="Seed for folds, holdout split and models."),
    holdout: float = typer.Option(0.25, "--holdout", min=0.05, max=0.5, help="Share of rows held out."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a summary."),
) -> None:
    """Cross-validate the churn pipeline on any table with a binary target and print ROC AUC, PR AUC, more.

    Columns are typed from the data; identifiers, empty and constant columns are dropped (listed in
    the output). Both candidates (gradient boosting, logistic regression) are cross-validated; the
    better one is calibrated and scored on a stratified holdout (Brier score, calibration table).
    """
    import pandas as pd
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from rapport.analytics.churn import ChurnDataError, evaluate, prepare_table

    try:
        frame = pd.read_csv(
            file, dtype=str, sep=_delimiter(file), keep_default_na=False, na_values=MISSING_MARKERS,
            encoding="utf-8-sig", skipinitialspace=True,
        )  # fmt: skip
    except FileNotFoundError:
        fail(f"cannot read {file}: no such file")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        fail(f"{file} is not valid CSV: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")
    frame.columns = [str(c).strip() for c in frame.columns]
    # Numbers stay text until prepare_table types every column from its values.
    started = time.perf_counter()
    err = Console(stderr=True)
    try:
        prepared = prepare_table(frame, target.strip())
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=err, transient=True, disable=not err.is_terminal,
        ) as progress:  # fmt: skip
            task = progress.add_task("preparing", total=None)
            result = evaluate(
                prepared, folds=folds, seed=seed, holdout=holdout,
                progress=lambda message: progress.update(task, description=message),
            )  # fmt: skip
    except ChurnDataError as exc:
        fail(str(exc))
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["target"] = {"column": prepared.target_column, "mapping": prepared.target_mapping,
                        "rows_without_target": prepared.rows_without_target}  # fmt: skip
    result["columns"] = {"numeric": prepared.numeric, "categorical": prepared.categorical,
                         "dropped": prepared.dropped}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"rows {result['rows']}, positives {result['positives']} ({result['positive_rate']:.1%}), "
        f"{len(prepared.numeric)} numeric and {len(prepared.categorical)} categorical columns"
    )
    for name, reason in prepared.dropped.items():
        typer.echo(f"  dropped {name}: {reason}")
    typer.echo(f"{'model':<24}{'ROC AUC':>10}{'PR AUC':>10}{'Brier':>10}  ({folds}-fold CV)")
    for name, m in result["cv"].items():
        mark = " *" if name == result["selected_model"] else ""
        typer.echo(f"{name:<24}{m['roc_auc']:>10.4f}{m['pr_auc']:>10.4f}{m['brier']:>10.4f}{mark}")
    h = result["holdout"]
    typer.echo(f"{'holdout (calibrated)':<24}{h['roc_auc']:>10.4f}{h['pr_auc']:>10.4f}{h['brier']:>10.4f}"
               f"  ({h['rows']} rows)")  # fmt: skip
    typer.echo(f"{'calibration bin':<16}{'rows':>6}{'predicted':>11}{'observed':>10}")
    for row in h["calibration"]:
        typer.echo(
            f"{int(row['bin']):<16}{int(row['rows']):>6}{row['mean_predicted']:>11.3f}{row['observed_rate']:>10.3f}"
        )


@app.command("recommend-eval")
def recommend_eval(
    file: Path = typer.Argument(
        ..., help="Interactions: CSV, TSV or '::'-separated (MovieLens ratings.dat); delimiter detected."
    ),
    user_column: str = typer.Option(
        ..., "--user-column", help="User column name (or 1-based position when the file has no header)."
    ),
    item_column: str = typer.Option(..., "--item-column", help="Item column name or position."),
    time_column: str | None = typer.Option(
        None,
        "--time-column",
        help="Timestamp (ISO or Unix seconds) for a time split; without: random split by user.",
    ),
    rating_column: str | None = typer.Option(
        None, "--rating-column", help="Interaction strength (rating, quantity); default 1 per row."
    ),
    min_rating: float | None = typer.Option(
        None, "--min-rating", help="Drop interactions rated below this before anything else."
    ),
    items_file: Path | None = typer.Option(
        None, "--items-file", help="Item attributes (e.g. movies.dat) for the content recommender."
    ),
    item_features: str | None = typer.Option(
        None,
        "--item-features",
        help="Comma-separated attribute columns of --items-file ('|' separates several values in a cell).",
    ),
    items_id_column: str | None = typer.Option(
        None, "--items-id-column", help="Item id column of --items-file (default: --item-column)."
    ),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.01, max=0.9),
    k: int = typer.Option(10, "--k", min=1, max=1000, help="List length for precision@k etc."),
    neighbours: int = typer.Option(100, "--neighbours", min=1, help="Item-CF neighbours per item."),
    shrink: float = typer.Option(10.0, "--shrink", min=0.0, help="Item-CF similarity shrinkage."),
    repurchase: bool = typer.Option(False, "--repurchase", help="Recommend and count already-bought items."),
    max_eval_users: int | None = typer.Option(
        None,
        "--max-eval-users",
        min=1,
        help="Evaluate a random sample of this many test users (wide catalogues).",
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Offline evaluation of the recommenders (item-CF, content, hybrid) against the popularity baseline."""
    from rapport.analytics.recommend import RecommenderConfig, evaluate_offline
    from rapport.analytics.tabular import TableError, item_tokens_from, read_interactions

    started = time.perf_counter()
    try:
        data = read_interactions(file, user_column, item_column, time_column, rating_column)
        tokens = None
        if items_file is not None:
            if not item_features:
                fail("--items-file needs --item-features", 2)
            tokens = item_tokens_from(
                items_file, items_id_column or item_column, [c.strip() for c in item_features.split(",")]
            )
    except TableError as exc:
        fail(str(exc))
    if min_rating is not None:
        if data.ratings is None:
            fail("--min-rating needs --rating-column", 2)
        data = data.filter(data.ratings >= min_rating)
    if len(data.users) == 0:
        fail(f"{file.name} has no interactions")
    read_seconds = time.perf_counter() - started
    config = RecommenderConfig(neighbours=neighbours, shrink=shrink, repurchase=repurchase)
    from rich.console import Console
    from rich.progress import Progress

    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("evaluating", total=1.0)

        def progress(message: str, fraction: float) -> None:
            bar.update(task, description=message, completed=fraction)

        report = evaluate_offline(
            data.users,
            data.items,
            times=data.times,
            weights=data.ratings,
            item_tokens=tokens,
            test_fraction=test_fraction,
            k=k,
            seed=seed,
            config=config,
            max_eval_users=max_eval_users,
            progress=progress,
        )
    result = report.as_dict()
    result["timings"] = {"read_seconds": read_seconds, **result["timings"]}
    if "cutoff" in result["split"]:
        result["split"]["cutoff"] = str(result["split"]["cutoff"])
    result["k"] = k
    if as_json:
        typer.echo(json.dumps(result))
        return
    columns = [f"precision@{k}", f"recall@{k}", f"map@{k}", f"ndcg@{k}", "coverage"]
    typer.echo(f"{'recommender':<12}" + "".join(f"{c:>14}" for c in columns))
    for name, values in result["metrics"].items():
        typer.echo(f"{name:<12}" + "".join(f"{values[c]:>14.4f}" for c in columns))
    weights = ", ".join(f"{c}={w:g}" for c, w in result["hybrid_weights"].items())
    typer.echo(f"hybrid weights: {weights}")
    for key, count in result["counts"].items():
        typer.echo(f"{key:>20}  {count}")


@app.command("forecast")
def forecast(
    file: Path = typer.Argument(..., help="Transactions (CSV/TSV; delimiter detected), one row per order."),
    date_column: str = typer.Option(..., "--date-column", help="Column with ISO dates or datetimes."),
    amount_column: str | None = typer.Option(
        None, "--amount-column", help="Column with order values; without it, orders are counted."
    ),
    period: Period = typer.Option(Period.month, "--period", help="Forecast per month or per ISO week."),
    horizon: int = typer.Option(6, "--horizon", min=1, max=520, help="Periods to forecast."),
    level: float = typer.Option(0.9, "--level", min=0.5, max=0.995, help="Prediction interval level."),
    folds: int = typer.Option(6, "--folds", min=1, max=200, help="Rolling-origin backtest origins."),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="ISO date (inclusive) or datetime ending the history; default the last transaction's day.",
    ),
    png: Path | None = typer.Option(
        None, "--png", help="Also write a chart of history, forecast and interval."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Forecast revenue (or order counts) per month or week with intervals; backtest vs seasonal naive."""
    import pandas as pd

    from rapport.analytics.charts import forecast_chart
    from rapport.analytics.forecast import (
        SEASON,
        backtest,
        fit_forecast,
        forecast_table,
        period_series,
        seasonal_naive,
    )
    from rapport.analytics.tabular import TableError, read_dated_amounts

    try:
        when, amounts = read_dated_amounts(file, date_column, amount_column)
    except TableError as exc:
        fail(str(exc))
    if len(when) == 0:
        fail(f"{file.name} has no transactions")
    try:
        end = pd.Timestamp(as_of) if as_of else when.max().normalize()
        if as_of is None or len(as_of.strip()) == 10:  # a date: through the end of that day
            end = end.normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    except ValueError:
        fail(f"--as-of {as_of!r} is not an ISO date", 2)
    keep = when <= end
    starts, revenue, counts = period_series(when[keep], amounts[keep], period.value, end)
    y = revenue if amount_column else counts
    if len(y) < 2:
        fail("fewer than two complete periods of history")
    season = SEASON[period.value]
    fc = fit_forecast(y, horizon, season, level)
    table = forecast_table(starts, y, fc, period.value)
    result: dict[str, Any] = {
        "model": fc.model,
        "level": level,
        "series": "revenue" if amount_column else "orders",
        "period": period.value,
        "history_periods": len(y),
        "forecast": [
            {
                "period_start": pd.Timestamp(r["period_start"]).date().isoformat(),
                "mean": r["value"],
                "lower": r["lower"],
                "upper": r["upper"],
            }
            for r in table[table["kind"] == "forecast"].to_dict("records")
        ],
        "backtest": None,
    }
    if len(y) >= horizon + folds + 2:
        result["backtest"] = {
            "horizon": horizon,
            "model": backtest(y, horizon, season, folds=folds, level=level).as_dict(),
            "seasonal_naive": backtest(
                y, horizon, season, folds=folds, level=level, forecaster=seasonal_naive
            ).as_dict(),
        }
    if png is not None:
        title = f"{result['series'].capitalize()} per {period.value}"
        try:
            png.write_bytes(forecast_chart(table, title=title, ylabel=result["series"], level=level))
        except OSError as exc:
            fail(f"cannot write {png}: {exc.strerror or exc}")
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"model {fc.model}, {len(y)} {period.value}s of history, {level:.0%} interval")
    for row in result["forecast"]:
        typer.echo(f"{row['period_start']}  {row['mean']:>14.2f}  [{row['lower']:.2f}, {row['upper']:.2f}]")
    if result["backtest"]:
        for name in ("model", "seasonal_naive"):
            values = result["backtest"][name]
            typer.echo(
                f"backtest {name:<15} MASE {values['mase']:.3f}  sMAPE {values['smape']:.3f}  "
                f"MAPE {values['mape']:.3f}  coverage {values['coverage']:.2f}"
            )
