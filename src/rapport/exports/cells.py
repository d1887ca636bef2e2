"""Spreadsheet-safe cell text, shared by every CSV and XLSX export of records.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return may be run as a formula
by a spreadsheet program (CSV injection); such text gets a leading apostrophe, which spreadsheets
show as text. Numbers and dates are not text and stay as they are (a negative amount is no formula).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any) -> str:
    """Any value as spreadsheet-safe text: lists joined with ``;``, objects as JSON, dates ISO."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    elif isinstance(value, (dt.datetime, dt.date)):
        value = value.isoformat()
    return safe_text(str(value))
