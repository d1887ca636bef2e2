"""Read customer import files row by row: CSV, JSON Lines, .xlsx and vCard (.vcf).

`read_rows` streams a file (constant memory) and yields one `Row` per data row: the 1-based line
(CSV, JSON Lines) or row number (.xlsx) where the row starts in the source, and its cells as text
keyed by the header. Every problem with the file itself raises `ReadError` naming the file, the
line and the reason, so an import can tell its user exactly what to fix.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CSV_DELIMITERS", "ReadError", "Row", "detect_encoding", "read_rows"]

CSV_DELIMITERS = (",", ";", "\t", "|")
_CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_XLSX_SUFFIXES = {".xlsx", ".xlsm"}
_VCARD_SUFFIXES = {".vcf", ".vcard"}
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: where it starts in the source file and its cells (header -> text)."""

    line: int
    values: dict[str, str]


class ReadError(Exception):
    """The file cannot be read as an import file."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, reason: str) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


def read_rows(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield the data rows of a .csv/.tsv/.txt, .jsonl/.ndjson, .xlsx or .vcf file; blank rows are skipped.

    A vCard file yields one row per card (`rapport.ingest.vcard.read_vcards`).
    """
    file = Path(path)
    suffix = file.suffix.lower()
    reader: Callable[[Path], Iterator[Row]]
    if suffix in _CSV_SUFFIXES:
        reader = _read_csv
    elif suffix in _JSONL_SUFFIXES:
        reader = _read_jsonl
    elif suffix in _XLSX_SUFFIXES:
        reader = _read_xlsx
    elif suffix in _VCARD_SUFFIXES:
        from rapport.ingest.vcard import read_vcards  # imports this module

        reader = read_vcards
    else:
        hint = " (save it as .xlsx)" if suffix == ".xls" else ""
        raise ReadError(file, None, f"unknown file type {suffix or '(no extension)'!r}{hint}")
    try:
        if file.stat().st_size == 0:
            raise ReadError(file, None, "empty file")
    except OSError as exc:
        raise ReadError(file, None, f"cannot open the file: {exc.strerror or exc}") from exc
    return reader(file)


def detect_encoding(path: str | os.PathLike[str]) -> str:
    """UTF-16 if the file starts with its byte-order mark, else utf-8-sig if the whole file
    decodes strictly as UTF-8 (with or without a BOM), else gb18030 (a superset of GBK and GB2312).

    Reads the file in chunks, so memory stays constant whatever its size.
    """
    with open(path, "rb") as fh:
        head = fh.read(_CHUNK)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        chunk = head
        try:
            while chunk:
                decoder.decode(chunk)
                chunk = fh.read(_CHUNK)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


def _is_blank(cells: Iterable[str]) -> bool:
    return all(not cell.strip() for cell in cells)


def _header(path: Path, line: int, cells: list[str]) -> list[str]:
    """Checked header names: stripped, trailing empty columns dropped, none empty, none repeated."""
    names = [cell.strip() for cell in cells]
    while names and not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if not name:
            raise ReadError(path, line, f"missing header: column {column} has no name")
        if name in seen:
            raise ReadError(path, line, f"duplicate header {name!r} (columns {seen[name]} and {column})")
        seen[name] = column
    return names


def _values(path: Path, line: int, header: list[str], cells: list[str]) -> dict[str, str]:
    if len(cells) > len(header):
        extra = cells[len(header) :]
        if not _is_blank(extra):
            raise ReadError(
                path, line, f"the row has {len(cells)} cells but the header has only {len(header)} columns"
            )
    values = dict(zip(header, cells, strict=False))
    for name in header[len(values) :]:
        values[name] = ""
    return values


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def _sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter occurring most often in the first non-blank line (the header); ',' if none."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        for line in fh:
            if line.strip():
                counts = [(_count_outside_quotes(line, d), -i) for i, d in enumerate(CSV_DELIMITERS)]
                best, rank = max(counts)
                return CSV_DELIMITERS[-rank] if best else ","
    return ","


def _read_csv(path: Path) -> Iterator[Row]:
    encoding = detect_encoding(path)
    delimiter = _sniff_delimiter(path, encoding)
    with open(path, encoding=encoding, errors="strict", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        line = 1
        try:
            for cells in reader:
                start, line = line, reader.line_num + 1
                if _is_blank(cells):
                    continue
                if header is None:
                    header = _header(path, start, cells)
                    continue
                yield Row(start, _values(path, start, header, cells))
        except csv.Error as exc:
            raise ReadError(path, reader.line_num, f"malformed CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ReadError(path, line, f"text is neither UTF-8 nor GBK/GB18030: {exc.reason}") from exc
        if header is None:
            raise ReadError(path, None, "empty file: no header row")


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _read_jsonl(path: Path) -> Iterator[Row]:
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise ValueError(f"duplicate key {key!r}")
            obj[key] = value
        return obj

    encoding = detect_encoding(path)
    seen_content = False
    with open(path, encoding=encoding, errors="strict") as fh:
        line_no = 0
        try:
            for line_no, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                seen_content = True
                try:
                    obj = json.loads(text, object_pairs_hook=unique_keys)
                except json.JSONDecodeError as exc:
                    raise ReadError(path, line_no, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
                except ValueError as exc:
                    raise ReadError(path, line_no, f"invalid JSON object: {exc}") from exc
                if not isinstance(obj, dict):
                    raise ReadError(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
                values: dict[str, str] = {}
                for key, value in obj.items():
                    name = key.strip()
                    if not name:
                        raise ReadError(path, line_no, "missing header: an object key is empty")
                    if name in values:
                        raise ReadError(path, line_no, f"duplicate header {name!r}")
                    values[name] = _json_text(value)
                if values:
                    yield Row(line_no, values)
        except UnicodeDecodeError as exc:
            raise ReadError(path, line_no + 1, f"text is not UTF-8: {exc.reason}") from exc
    if not seen_content:
        raise ReadError(path, None, "empty file")


def _number_text(value: float) -> str:
    """Integers without a decimal point (phone numbers, ids stored as numbers), others as repr."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int | float):
        return _number_text(value)
    return str(value)


def _read_xlsx(path: Path) -> Iterator[Row]:
    import openpyxl  # only imported when an .xlsx is read

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ReadError(path, None, f"not a valid .xlsx file: {exc}") from exc
    try:
        if not workbook.worksheets:
            raise ReadError(path, None, "empty file: the workbook has no sheets")
        sheet = workbook.worksheets[0]
        header: list[str] | None = None
        for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            texts = [_cell_text(value) for value in cells]
            if _is_blank(texts):
                continue
            if header is None:
                header = _header(path, number, texts)
                continue
            yield Row(number, _values(path, number, header, texts))
        if header is None:
            raise ReadError(path, None, "empty file: the first sheet has no header row")
    finally:
        workbook.close()
