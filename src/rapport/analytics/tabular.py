"""Reading interaction logs for offline evaluation: CSV, TSV, ';' or '|' separated, or '::' (MovieLens).

The delimiter is detected from the first lines; a file without a header row is addressed by 1-based
column positions. Ids stay strings (so ``007`` and ``7`` differ); times are ISO dates/datetimes or
Unix seconds; ratings are numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray


class TableError(ValueError):
    """The file cannot be read as asked (message names the file, column or line)."""


@dataclass(frozen=True)
class InteractionData:
    users: NDArray[Any]
    items: NDArray[Any]
    times: NDArray[Any] | None
    ratings: NDArray[np.float64] | None

    def filter(self, mask: NDArray[np.bool_]) -> InteractionData:
        return InteractionData(
            self.users[mask],
            self.items[mask],
            None if self.times is None else self.times[mask],
            None if self.ratings is None else self.ratings[mask],
        )


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # MovieLens .dat files are ISO-8859-1


def _delimiter(text: str) -> str:
    first = text[: text.find("\n")] if "\n" in text else text
    if "::" in first:
        return "::"
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _frame(path: Path, columns: Sequence[str]) -> tuple[pd.DataFrame, bool]:
    """(frame, has header row): the requested columns as strings, by header name or 1-based position."""
    text = _read_text(path)
    sep = _delimiter(text)
    if sep == "::":
        text = text.replace("::", "\t")  # multi-character separators would need pandas' slow engine
        sep = "\t"
    first_line = text.split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([first_line], delimiter=sep), [])
    wanted = list(dict.fromkeys(columns))
    if all(c in header for c in wanted):
        usecols: list[Any] = wanted
        kwargs: dict[str, Any] = {"header": 0}
    elif all(c.isdigit() and 1 <= int(c) <= len(header) for c in wanted):
        usecols = [int(c) - 1 for c in wanted]
        kwargs = {"header": None}
    else:
        missing = [c for c in wanted if c not in header]
        listed = ", ".join(header) or "no header row"
        raise TableError(f"column '{missing[0]}' is not in {path.name} (columns: {listed})")
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, usecols=usecols, dtype=str, keep_default_na=False, **kwargs
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise TableError(f"{path.name} is not a valid delimited file: {exc}") from exc
    frame.columns = [str(c) if kwargs["header"] == 0 else str(int(c) + 1) for c in frame.columns]
    return frame[wanted], kwargs["header"] == 0


def _bad_line(mask: NDArray[np.bool_], header: bool) -> int:
    return int(np.flatnonzero(mask)[0]) + (2 if header else 1)


def read_interactions(
    path: Path, user_col: str, item_col: str, time_col: str | None = None, rating_col: str | None = None
) -> InteractionData:
    cols = [user_col, item_col] + [c for c in (time_col, rating_col) if c is not None]
    frame, has_header = _frame(path, cols)
    users = frame[user_col].str.strip().to_numpy(dtype=object)
    items = frame[item_col].str.strip().to_numpy(dtype=object)
    for label, col, values in (("user", user_col, users), ("item", item_col, items)):
        empty = values == ""
        if empty.any():
            raise TableError(f"line {_bad_line(empty, has_header)}: {label} column '{col}' is empty")
    times: NDArray[Any] | None = None
    if time_col is not None:
        raw = frame[time_col].str.strip()
        numeric = pd.to_numeric(raw, errors="coerce")
        if not numeric.isna().any():
            times = numeric.to_numpy(dtype=np.float64)
        else:
            parsed = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                value = raw.iloc[int(np.flatnonzero(bad)[0])]
                raise TableError(
                    f"line {_bad_line(bad, has_header)}: time column '{time_col}' value {value!r} "
                    "is neither an ISO date nor Unix seconds"
                )
            times = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    ratings: NDArray[np.float64] | None = None
    if rating_col is not None:
        numeric = pd.to_numeric(frame[rating_col].str.strip(), errors="coerce")
        values = numeric.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            value = frame[rating_col].iloc[int(np.flatnonzero(bad)[0])]
            raise TableError(
                f"line {_bad_line(bad, has_header)}: rating column '{rating_col}' value {value!r} "
                "is not a number"
            )
        ratings = values
    return InteractionData(users, items, times, ratings)


def read_dated_amounts(path: Path, date_col: str, amount_col: str | None) -> tuple[pd.Series, pd.Series]:
    """(timestamps, amounts) of a transaction file; amounts are 1 per row without an amount column."""
    frame, has_header = _frame(path, [date_col] + ([amount_col] if amount_col else []))
    raw = frame[date_col].str.strip()
    parsed = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        value = raw.iloc[int(np.flatnonzero(bad)[0])]
        raise TableError(
            f"line {_bad_line(bad, has_header)}: date column '{date_col}' value {value!r} is not ISO"
        )
    if amount_col is None:
        return parsed.dt.tz_convert(None), pd.Series(np.ones(len(frame)))
    amounts = pd.to_numeric(frame[amount_col].str.strip(), errors="coerce")
    bad = ~np.isfinite(amounts.to_numpy(dtype=np.float64))
    if bad.any():
        value = frame[amount_col].iloc[int(np.flatnonzero(bad)[0])]
        raise TableError(
            f"line {_bad_line(bad, has_header)}: amount column '{amount_col}' value {value!r} is not a number"
        )
    return parsed.dt.tz_convert(None), amounts.astype("float64")


def item_tokens_from(path: Path, id_col: str, feature_cols: Sequence[str]) -> dict[str, list[str]]:
    """Item id -> attribute tokens ``<column>:<value>``; '|' separates several values in one cell."""
    frame, _ = _frame(path, [id_col, *feature_cols])
    tokens: dict[str, list[str]] = {}
    ids = frame[id_col].str.strip().tolist()
    for col in feature_cols:
        for item, cell in zip(ids, frame[col].tolist(), strict=True):
            bucket = tokens.setdefault(item, [])
            bucket.extend(f"{col}:{v.strip()}" for v in cell.split("|") if v.strip())
    return tokens
