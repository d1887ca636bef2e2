"""Churn risk: a general tabular pipeline (any table with a binary target) and the store's features.

Pipeline. Columns are typed from the data (``prepare_table``): text columns whose non-blank values
are at least 95% numbers become numeric (e.g. a TotalCharges column with blanks); booleans become
0/1; columns that are empty, constant, identifiers (an id-like name, or unique per row and not
numeric) or free text (more than 100 levels and over half the rows distinct) are dropped with the
reason reported. Numeric columns are median-imputed (with missing-value indicators) and
standardised; categorical ones imputed with a "(missing)" level and one-hot encoded (levels rarer
than 1% grouped as infrequent; unknown levels at prediction map to the infrequent group or to all
zeros). Two candidates, a histogram gradient-boosting classifier and an L2 logistic regression, are
compared by stratified k-fold cross-validated ROC AUC; the better one is calibrated
(``CalibratedClassifierCV``; isotonic with at least 1,000 training rows, else sigmoid) and reported
on a stratified holdout: ROC AUC, PR AUC (average precision), Brier score and a calibration table
(deciles of predicted risk: rows, mean predicted, observed rate).

Reasons (``explain``): occlusion, a local and model-agnostic contribution. For a customer and a
column f, contribution(f) = p(x) − p(x with f set to its baseline), the baseline being the training
median (numeric) or most frequent level (categorical). The top reasons are the columns with the
largest positive contributions: what raises this customer's risk above a typical customer's. The
contributions are not additive (unlike SHAP values) but each one is exact for what it says.

Store features (``churn_features``) as of a cutoff, for customers with ``profiling_allowed`` and at
least one purchase before it: behaviour (recency, frequency, monetary, average order value, margin,
tenure, orders in the last 90 days and in the 90 before that, their difference as trend, mean and
last inter-purchase gap and recency / mean gap), service and engagement (interactions in total, in
the last 90 days, inbound, by kind and by channel, days since the last interaction; open and overdue
tasks at the cutoff) and profile (region, preferred channel, acquisition source). Label (time split):
1 when the customer makes no purchase in [cutoff, cutoff + window). ``ChurnJob`` trains on features
at ``as_of − window`` with labels from the following window, then scores features at ``as_of``.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import duckdb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from rapport.analytics.jobs import JobContext, JobResult, ScoreRow
from rapport.analytics.store import PURCHASE_STATUSES
from rapport.analytics.storeio import naive_utc, report

POSITIVE = {"1", "1.0", "yes", "y", "true", "t", "churn", "churned", "lost", "left", "exited", "attrited"}
NEGATIVE = {"0", "0.0", "no", "n", "false", "f", "retained", "active", "stayed", "existing", "not churned"}
CANDIDATES = ("hist_gradient_boosting", "logistic_regression")
_ID_NAME = re.compile(
    r"(^|[_\s.-])(id|uuid|guid|key|code|number|no)$|^id[_\s.-]|^id$|identifier", re.IGNORECASE
)
_MISSING = "(missing)"
P = ParamSpec("P")
R = TypeVar("R")


def single_threaded(fn: Callable[P, R]) -> Callable[P, R]:
    """Run with one OpenMP / BLAS thread: on tables of this size the thread pools' spinning costs
    far more than it saves (20x slower gradient boosting on a busy two-core machine)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(1):
            return fn(*args, **kwargs)

    return wrapper


class ChurnDataError(ValueError):
    """The table cannot be used for churn modelling (message says why)."""


@dataclass
class PreparedTable:
    X: pd.DataFrame
    y: np.ndarray
    numeric: list[str]
    categorical: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    target_mapping: dict[str, int] = field(default_factory=dict)
    rows_without_target: int = 0
    target_column: str = ""


# --------------------------------------------------------------------------------------------------
# Preparing any table


def parse_target(values: pd.Series, name: str = "target") -> tuple[np.ndarray, dict[str, int], np.ndarray]:
    """(0/1 labels, mapping of raw values, mask of rows with a target). Raises ChurnDataError."""
    present = values.notna() & (values.astype(str).str.strip() != "")
    raw = values[present]
    if raw.empty:
        raise ChurnDataError(f"target column '{name}' has no values")
    if pd.api.types.is_bool_dtype(raw):
        keys = raw.map(lambda v: "true" if v else "false")
    elif pd.api.types.is_numeric_dtype(raw):
        keys = raw.map(lambda v: format(float(v), "g"))
    else:
        keys = raw.astype(str).str.strip().str.lower().str.strip(" .!\"'")  # "True." in some exports
    distinct = sorted(set(keys))
    mapping: dict[str, int] = {}
    for key in distinct:
        if key in POSITIVE:
            mapping[key] = 1
        elif key in NEGATIVE:
            mapping[key] = 0
    if len(distinct) == 2 and len(mapping) < 2:
        # Two labels in words, e.g. "Attrited Customer" / "Existing Customer": decide by their stems.
        guessed = {k: _word_label(k) for k in distinct}
        if sorted(v for v in guessed.values() if v is not None) == [0, 1]:
            mapping = {k: v for k, v in guessed.items() if v is not None}
    unknown = [k for k in distinct if k not in mapping]
    if len(distinct) > 2 or unknown:
        shown = ", ".join(repr(v) for v in distinct[:10]) + (" ..." if len(distinct) > 10 else "")
        raise ChurnDataError(
            f"target column '{name}' must be binary (0/1, yes/no, true/false, churned/retained); "
            f"found {len(distinct)} distinct values: {shown}"
        )
    y = keys.map(mapping).to_numpy(dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise ChurnDataError(f"target column '{name}' has only one class ({distinct[0]!r}); need both")
    return y, mapping, present.to_numpy()


def _word_label(text: str) -> int | None:
    words = re.findall(r"[a-z]+", text)
    if any(w in ("not", "no", "non", "never") for w in words):
        return 0
    if any(
        w.startswith(("churn", "attrit", "left", "leav", "exit", "cancel", "lost", "quit", "defect"))
        for w in words
    ):
        return 1
    if any(
        w.startswith(("exist", "retain", "stay", "active", "current", "loyal", "remain", "kept"))
        for w in words
    ):
        return 0
    return None


def _as_number(column: pd.Series) -> pd.Series | None:
    """The column as float when at least 95% of its non-blank values are numbers, else None."""
    # pandas-stubs has no overload for replacing with pd.NA, which pandas documents and supports.
    text = column.astype("string").str.strip().replace("", pd.NA)  # type: ignore[call-overload]
    filled = text.dropna()
    if filled.empty:
        return None
    parsed = pd.to_numeric(filled.str.replace(",", "", regex=False), errors="coerce")
    if parsed.notna().mean() < 0.95:
        return None
    out: pd.Series = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    numbers = out.astype(np.float64)
    # "inf" parses as a number, but no model takes it: treat it as missing like a blank cell.
    return numbers.where(np.isfinite(numbers))


def prepare_table(frame: pd.DataFrame, target: str) -> PreparedTable:
    """Split a raw table into typed features and a 0/1 target (see the module docstring)."""
    if target not in frame.columns:
        same = [c for c in frame.columns if str(c).strip().lower() == target.strip().lower()]
        if len(same) == 1:
            target = str(same[0])
    if target not in frame.columns:
        listed = ", ".join(map(str, frame.columns[:30])) or "none"
        raise ChurnDataError(f"target column '{target}' is not in the table (columns: {listed})")
    y, mapping, keep = parse_target(frame[target], target)
    data = frame.loc[keep].drop(columns=[target]).reset_index(drop=True)
    n = len(data)
    numeric: list[str] = []
    categorical: list[str] = []
    dropped: dict[str, str] = {}
    columns: dict[str, pd.Series] = {}
    for name in data.columns:
        col = data[name]
        label = str(name)
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            col = col.astype("string").str.strip().replace("", pd.NA)  # type: ignore[call-overload]
        if col.isna().all():
            dropped[label] = "empty"
            continue
        distinct = int(col.nunique(dropna=True))
        if distinct <= 1:
            dropped[label] = "constant"
            continue
        if pd.api.types.is_bool_dtype(col):
            columns[label] = col.astype(np.float64)
            numeric.append(label)
            continue
        as_number = col.astype(np.float64) if pd.api.types.is_numeric_dtype(col) else _as_number(col)
        unique_per_row = distinct >= 0.95 * col.notna().sum() and n >= 20
        if _ID_NAME.search(label) and (unique_per_row or (as_number is None and distinct > 0.5 * n)):
            dropped[label] = "identifier"
            continue
        if as_number is not None:
            if unique_per_row and _looks_like_row_number(as_number):
                dropped[label] = "identifier (row number)"
                continue
            columns[label] = as_number
            numeric.append(label)
            continue
        if unique_per_row:
            dropped[label] = "identifier (unique per row)"
            continue
        if distinct > 100 and distinct > 0.5 * n:
            dropped[label] = "free text (too many distinct values)"
            continue
        columns[label] = col.astype(object).where(col.notna(), None)
        categorical.append(label)
    if not columns:
        raise ChurnDataError("no usable feature columns (all were empty, constant or identifiers)")
    X = pd.DataFrame(columns)
    return PreparedTable(X, y, numeric, categorical, dropped, mapping, int((~keep).sum()), target)


def _looks_like_row_number(values: pd.Series) -> bool:
    v = values.dropna().to_numpy()
    if len(v) < 2 or not np.all(v == np.floor(v)):
        return False
    d = np.diff(v)
    return bool(np.all(d > 0) or np.all(d < 0))


# --------------------------------------------------------------------------------------------------
# Models


def build_pipeline(numeric: list[str], categorical: list[str], model: str, seed: int = 0) -> Pipeline:
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            ("num", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                              ("scale", StandardScaler())]), numeric)
        )  # fmt: skip
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline([
                    ("impute", SimpleImputer(strategy="constant", fill_value=_MISSING)),
                    ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.01,
                                             sparse_output=False)),
                ]),
                categorical,
            )
        )  # fmt: skip
    pre = ColumnTransformer(transformers, remainder="drop")
    estimator: Any
    if model == "hist_gradient_boosting":
        estimator = HistGradientBoostingClassifier(
            learning_rate=0.06, max_iter=150, max_leaf_nodes=15, min_samples_leaf=30,
            l2_regularization=1.0, early_stopping=False, random_state=seed,
        )  # fmt: skip
    elif model == "logistic_regression":
        estimator = LogisticRegression(C=1.0, max_iter=2000)
    else:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(CANDIDATES)}")
    return Pipeline([("prepare", pre), ("model", estimator)])


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Deciles of predicted probability (ties kept together): rows, mean predicted, observed rate."""
    order = np.argsort(p, kind="stable")
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    table = []
    for b in range(max(len(edges) - 1, 1)):
        mask = which == b
        if not mask.any():
            continue
        table.append(
            {"bin": float(b + 1), "rows": float(mask.sum()), "mean_predicted": float(p[mask].mean()),
             "observed_rate": float(y[mask].mean())}
        )  # fmt: skip
    del order
    return table


@single_threaded
def cross_validate(
    prepared: PreparedTable, model: str, folds: int, seed: int = 0
) -> tuple[dict[str, float], np.ndarray]:
    """Out-of-fold metrics (mean and std over folds) and the out-of-fold predictions."""
    X, y = prepared.X, prepared.y
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros(len(y))
    per_fold: list[dict[str, float]] = []
    for train, test in skf.split(X, y):
        pipe = build_pipeline(prepared.numeric, prepared.categorical, model, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X.iloc[train], y[train])
        oof[test] = pipe.predict_proba(X.iloc[test])[:, 1]
        per_fold.append(_metrics(y[test], oof[test]))
    out: dict[str, float] = {}
    for key in ("roc_auc", "pr_auc", "brier"):
        vals = np.array([f[key] for f in per_fold])
        out[key] = float(vals.mean())
        out[f"{key}_std"] = float(vals.std())
    return out, oof


@dataclass
class ChurnModel:
    """A calibrated pipeline with what ``explain`` needs."""

    model: CalibratedClassifierCV
    name: str
    numeric: list[str]
    categorical: list[str]
    baseline: dict[str, Any]

    @single_threaded
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            self.model.predict_proba(X[self.numeric + self.categorical])[:, 1], dtype=np.float64
        )


@single_threaded
def fit_calibrated(prepared: PreparedTable, model: str, seed: int = 0) -> ChurnModel:
    X, y = prepared.X, prepared.y
    minority = int(min(np.bincount(y, minlength=2)))
    cv = max(2, min(3, minority))
    method = "isotonic" if len(y) >= 1000 else "sigmoid"
    calibrated = CalibratedClassifierCV(
        build_pipeline(prepared.numeric, prepared.categorical, model, seed), method=method, cv=cv
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibrated.fit(X, y)
    baseline: dict[str, Any] = {
        c: float(np.nanmedian(X[c].to_numpy(dtype=np.float64))) for c in prepared.numeric
    }
    for c in prepared.categorical:
        mode = X[c].dropna().mode()
        baseline[c] = mode.iloc[0] if len(mode) else None
    return ChurnModel(calibrated, model, prepared.numeric, prepared.categorical, baseline)


@single_threaded
def explain(model: ChurnModel, X: pd.DataFrame, top: int = 3) -> list[list[dict[str, Any]]]:
    """Top reasons per row by occlusion (see the module docstring), largest contribution first."""
    base = model.predict(X)
    columns = model.numeric + model.categorical
    contrib = np.zeros((len(X), len(columns)))
    for j, col in enumerate(columns):
        swapped = X.copy()
        swapped[col] = model.baseline[col] if col in model.categorical else float(model.baseline[col])
        if col in model.categorical:
            swapped[col] = swapped[col].astype(object)
        contrib[:, j] = base - model.predict(swapped)
    reasons: list[list[dict[str, Any]]] = []
    for i in range(len(X)):
        order = np.argsort(-contrib[i], kind="stable")[:top]
        row = []
        for j in order:
            if contrib[i, j] < 0.0005:  # nothing that would show as a reason at 3 decimals
                break
            value = X.iloc[i][columns[j]]
            if isinstance(value, float | np.floating):
                value = None if math.isnan(value) else round(float(value), 4)
            elif isinstance(value, np.integer):
                value = int(value)
            row.append(
                {"feature": columns[j], "value": value, "contribution": round(float(contrib[i, j]), 4)}
            )
        reasons.append(row)
    return reasons


@single_threaded
def evaluate(
    prepared: PreparedTable,
    folds: int = 5,
    seed: int = 0,
    holdout: float = 0.25,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Cross-validate both candidates, pick by ROC AUC, calibrate it and score a holdout."""
    y = prepared.y
    counts = np.bincount(y, minlength=2)
    if int(counts.min()) < folds:
        raise ChurnDataError(
            f"need at least {folds} rows of each class for {folds}-fold cross-validation; "
            f"have {int(counts[0])} negatives and {int(counts[1])} positives"
        )
    say = progress or (lambda _m: None)
    cv: dict[str, dict[str, float]] = {}
    for model in CANDIDATES:
        say(f"cross-validating {model}")
        cv[model] = cross_validate(prepared, model, folds, seed)[0]
    selected = max(CANDIDATES, key=lambda m: cv[m]["roc_auc"])
    say(f"calibrating {selected} on a holdout")
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=holdout, stratify=y, random_state=seed)
    part = PreparedTable(
        prepared.X.iloc[train].reset_index(drop=True), y[train], prepared.numeric, prepared.categorical
    )
    fitted = fit_calibrated(part, selected, seed)
    p = fitted.predict(prepared.X.iloc[test].reset_index(drop=True))
    hold = _metrics(y[test], p)
    return {
        "rows": len(y),
        "positives": int(counts[1]),
        "positive_rate": float(counts[1] / len(y)),
        "folds": folds,
        "cv": cv,
        "selected_model": selected,
        "roc_auc": cv[selected]["roc_auc"],
        "pr_auc": cv[selected]["pr_auc"],
        "brier": cv[selected]["brier"],
        "holdout": {**hold, "rows": len(test), "calibration": calibration_table(y[test], p)},
    }


# --------------------------------------------------------------------------------------------------
# Features from the analytics store


def churn_features(
    con: duckdb.DuckDBPyConnection, cutoff: dt.datetime, window_days: int | None = None
) -> pd.DataFrame:
    """Features at ``cutoff`` per profiled customer with a purchase before it (one row each, by id).

    With ``window_days`` a ``churned`` column is added: 1 when no purchase in [cutoff, cutoff + window).
    """
    at = naive_utc(cutoff)
    statuses = list(PURCHASE_STATUSES)
    ph = ", ".join("?" for _ in statuses)
    base = con.execute(
        f"""
        WITH p AS (
            SELECT o.customer_id, o.ordered_at, coalesce(o.total_amount, 0) AS total,
                   coalesce(o.margin_amount, 0) AS margin,
                   date_diff('day', lag(o.ordered_at) OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at),
                             o.ordered_at) AS gap
            FROM orders o JOIN customers c USING (customer_id)
            WHERE c.profiling_allowed AND o.status IN ({ph}) AND o.ordered_at < ?
        )
        SELECT p.customer_id,
               date_diff('day', max(ordered_at), ?::TIMESTAMP) AS recency_days,
               count(*) AS frequency,
               sum(total) AS monetary,
               avg(total) AS avg_order_value,
               sum(margin) AS margin,
               date_diff('day', min(ordered_at), ?::TIMESTAMP) AS tenure_days,
               count(*) FILTER (WHERE ordered_at >= ?::TIMESTAMP - INTERVAL 90 DAY) AS orders_90d,
               count(*) FILTER (WHERE ordered_at < ?::TIMESTAMP - INTERVAL 90 DAY
                                  AND ordered_at >= ?::TIMESTAMP - INTERVAL 180 DAY) AS orders_prev_90d,
               avg(gap) AS mean_gap_days,
               arg_max(gap, ordered_at) AS last_gap_days,
               any_value(c.region) AS region,
               any_value(c.preferred_channel) AS preferred_channel,
               any_value(c.acquisition_source) AS acquisition_source
        FROM p JOIN customers c USING (customer_id)
        GROUP BY p.customer_id
        ORDER BY p.customer_id
        """,  # noqa: S608 - only placeholders are interpolated
        [*statuses, at, at, at, at, at, at],
    ).df()
    base["trend_90d"] = base["orders_90d"] - base["orders_prev_90d"]
    # Two purchases on one day make the mean gap 0; the ratio is then unknown, not infinite.
    gap = base["mean_gap_days"]
    base["recency_over_gap"] = base["recency_days"] / gap.where(gap > 0)
    inter = con.execute(
        """
        SELECT customer_id, count(*) AS interactions,
               count(*) FILTER (WHERE occurred_at >= ?::TIMESTAMP - INTERVAL 90 DAY) AS interactions_90d,
               count(*) FILTER (WHERE direction = 'inbound') AS interactions_inbound,
               date_diff('day', max(occurred_at), ?::TIMESTAMP) AS days_since_interaction
        FROM interactions WHERE occurred_at < ? GROUP BY customer_id
        """,
        [at, at, at],
    ).df()
    by = con.execute(
        """
        SELECT customer_id, 'kind_' || coalesce(kind, 'unknown') AS k, count(*) AS n
        FROM interactions WHERE occurred_at < ? GROUP BY ALL
        UNION ALL
        SELECT customer_id, 'channel_' || coalesce(channel, 'unknown'), count(*)
        FROM interactions WHERE occurred_at < ? GROUP BY ALL
        """,
        [at, at],
    ).df()
    tasks = con.execute(
        """
        SELECT customer_id,
               count(*) AS open_tasks,
               count(*) FILTER (WHERE due_at < ?) AS overdue_tasks
        FROM tasks
        WHERE created_at < ? AND (completed_at IS NULL OR completed_at >= ?)
              AND coalesce(status, '') NOT IN ('cancelled', 'canceled')
        GROUP BY customer_id
        """,
        [at, at, at],
    ).df()
    frame = base.merge(inter, on="customer_id", how="left").merge(tasks, on="customer_id", how="left")
    if not by.empty:
        wide = by.pivot_table(index="customer_id", columns="k", values="n", aggfunc="sum", fill_value=0)
        wide.columns = [f"interactions_{re.sub(r'[^0-9a-zA-Z]+', '_', str(c)).lower()}" for c in wide.columns]
        frame = frame.merge(wide.reset_index(), on="customer_id", how="left")
    counts = [c for c in frame.columns if c.startswith(("interactions", "open_tasks", "overdue_tasks"))]
    frame[counts] = frame[counts].fillna(0)
    if window_days is not None:
        end = at + dt.timedelta(days=window_days)
        later = con.execute(
            f"SELECT DISTINCT customer_id FROM orders WHERE status IN ({ph}) "  # noqa: S608
            "AND ordered_at >= ? AND ordered_at < ?",
            [*statuses, at, end],
        ).df()
        frame["churned"] = (~frame["customer_id"].isin(later["customer_id"])).astype(np.int64)
    return frame.reset_index(drop=True)


FEATURE_CATEGORICAL = ("region", "preferred_channel", "acquisition_source")


def store_table(frame: pd.DataFrame) -> PreparedTable:
    """The store features as a PreparedTable (no inference: the store's types are known)."""
    numeric = [c for c in frame.columns if c not in ("customer_id", "churned", *FEATURE_CATEGORICAL)]
    # Always present (as object columns, possibly all missing) so training and scoring frames match.
    categorical = [c for c in FEATURE_CATEGORICAL if c in frame.columns]
    X = frame[numeric + categorical].copy()
    X[numeric] = X[numeric].astype(np.float64)
    for c in categorical:
        X[c] = X[c].astype(object).where(X[c].notna(), None)
    y = frame["churned"].to_numpy(dtype=np.int64) if "churned" in frame else np.zeros(len(frame), np.int64)
    return PreparedTable(X, y, numeric, categorical)


class ChurnJob:
    """Calibrated churn risk per profiled customer with reasons, trained on a time split."""

    name = "churn"
    model_version = "churn-1"

    @single_threaded
    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        window = int(ctx.params.get("window_days", 180))
        folds = int(ctx.params.get("folds", 5))
        seed = int(ctx.params.get("seed", 0))
        top = int(ctx.params.get("reasons", 3))
        as_of = naive_utc(ctx.as_of)
        report(ctx, 0, 4, "building training features")
        train_frame = churn_features(con, as_of - dt.timedelta(days=window), window)
        result = JobResult(metrics={"trained": 0.0, "training_rows": float(len(train_frame))})
        if train_frame.empty:
            return result
        train = store_table(train_frame)
        counts = np.bincount(train.y, minlength=2)
        result.metrics["training_churn_rate"] = float(counts[1] / max(len(train.y), 1))
        if int(counts.min()) < max(folds, 10):
            return result  # too few churners or stayers to learn and evaluate anything
        report(ctx, 1, 4, "evaluating candidates")
        evaluation = evaluate(train, folds=folds, seed=seed)
        report(ctx, 2, 4, "fitting the calibrated model")
        model = fit_calibrated(train, evaluation["selected_model"], seed)
        report(ctx, 3, 4, "scoring")
        score_frame = churn_features(con, as_of)
        result.metrics.update(
            {
                "trained": 1.0,
                "cv_roc_auc": evaluation["roc_auc"],
                "cv_pr_auc": evaluation["pr_auc"],
                "holdout_roc_auc": evaluation["holdout"]["roc_auc"],
                "holdout_pr_auc": evaluation["holdout"]["pr_auc"],
                "holdout_brier": evaluation["holdout"]["brier"],
                "scored": float(len(score_frame)),
            }
        )
        result.tables["calibration"] = pd.DataFrame(evaluation["holdout"]["calibration"])
        result.tables["model"] = pd.DataFrame(
            [{"model": evaluation["selected_model"], "window_days": window, "training_rows": len(train.y),
              "model_version": self.model_version}]
        )  # fmt: skip
        if score_frame.empty:
            return result
        current = store_table(score_frame)
        # Columns seen in training only (e.g. an interaction kind nobody had since) are zero now.
        X = current.X.reindex(columns=train.X.columns)
        for c in train.categorical:
            X[c] = X[c].astype(object).where(X[c].notna(), None)
        for c in train.numeric:
            if c not in current.X:
                X[c] = 0.0
        risk = model.predict(X)
        reasons = explain(model, X, top)
        for cid, p, why in zip(score_frame["customer_id"].tolist(), risk.tolist(), reasons, strict=True):
            label = "high" if p >= 0.6 else "medium" if p >= 0.3 else "low"
            result.scores.append(ScoreRow(int(cid), "churn_risk", round(p, 6), label, {"reasons": why}))
        report(ctx, 4, 4, "done")
        return result
