"""CSV of analytics tables: UTF-8 with a BOM, spreadsheet formulas neutralised.

Text cells starting with a formula character get a leading apostrophe, as in the customer export;
numbers are written as numbers (a negative margin is not a formula).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import numbers
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Number):
        if isinstance(value, float) and math.isnan(value):
            return ""
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, pd.Timestamp)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def frame_to_csv(frame: pd.DataFrame) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(str(c)) for c in frame.columns])
    for row in frame.itertuples(index=False):
        writer.writerow([csv_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
