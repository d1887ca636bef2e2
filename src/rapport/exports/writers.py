"""Streaming file writers: batches of export rows in, chunks of bytes out.

Every writer consumes an iterator of row batches and yields bytes as it goes, so memory depends on
the batch size, never on the number of rows. XLSX is a ZIP whose directory comes last: it is built
part by part into a temporary ZIP file (worksheet rows written as they come), which is then
streamed and deleted.

Rows are lists in the order of the export's columns: the customer columns, ``tags`` and the contact
columns (lists of values, the primary one first); vCard rows go on with :data:`EXTRAS`.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gc
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Literal

import orjson
from sqlalchemy import Table
from sqlalchemy.sql import sqltypes

from rapport.exports.cells import FORMULA_STARTS, csv_cell
from rapport.ingest.vcard import Card, write_card

Format = Literal["csv", "xlsx", "jsonl", "vcard"]
Row = list[Any]
# What a vCard row holds after its columns: the primary flag of each contact kind's first value,
# the addresses as CardAddress, the organisation's name.
EXTRAS = ("_primary", "_addresses", "_organisation")

MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson",
    "vcard": "text/vcard; charset=utf-8",
}
EXTENSIONS: dict[str, str] = {"csv": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "vcard": "vcf"}
LIST_COLUMNS = frozenset({"tags", "phone", "email", "wechat", "address"})
XLSX_MAX_ROWS = 1_048_576  # rows per worksheet, header included
_FILE_CHUNK = 1 << 16
_FORMULA = frozenset(FORMULA_STARTS)
assert max(_FORMULA) < "A"  # the compiled cell check relies on it (see Cells)
_STORED = frozenset({"_iso_stored", "_json_stored", "_date_stored"})


def _text(value: Any) -> Any:
    if value is None or value[:1] not in _FORMULA:
        return value
    return "'" + value


def _joined(value: Any) -> Any:
    if not value:
        return ""
    return _text(";".join(value))


def _iso(value: Any) -> Any:
    return None if value is None else value.isoformat()


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    return _text(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


def _iso_stored(value: Any) -> Any:
    """The ISO text of a UTC timestamp as the driver returns it, untyped (``as_stored``).

    SQLite holds ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC, no zone), which becomes exactly what
    ``isoformat()`` of the aware datetime gives (no fraction when it is zero) without building
    a datetime; anything else (PostgreSQL's datetimes, other text) takes the general route.
    """
    if value is None:
        return None
    if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
        if value[20:] == "000000":
            return value[:10] + "T" + value[11:19] + "+00:00"
        return value[:10] + "T" + value[11:] + "+00:00"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def _json_stored(value: Any) -> Any:
    """JSON as the driver returns it, untyped: text (SQLite) is parsed, objects are written."""
    if isinstance(value, (str, bytes)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:  # what orjson refuses and json reads (NaN, huge integers)
            value = json.loads(value)
    return _json_text(value)


def _date_stored(value: Any) -> Any:
    """A date as the driver returns it: SQLite's stored text is already ISO."""
    return value if value is None or type(value) is str else value.isoformat()


def stored_columns(table: Table, columns: list[str]) -> frozenset[str]:
    """The columns a CSV or JSON Lines export reads as stored (see ``Records.page(as_stored=...)``)."""
    return frozenset(c for c in columns if c in table.c and _converter(table, c, stored=True) in _STORED)


def _converter(table: Table, column: str, *, stored: bool = False) -> str | None:
    """Name of the function turning one column into a cell; None: written as it is (numbers, dates)."""
    if column in LIST_COLUMNS:
        return "_joined"
    if column not in table.c:
        return "csv_cell"
    col_type = table.c[column].type
    base = getattr(col_type, "impl", col_type)  # a TypeDecorator (UTCDateTime): what it decorates
    if isinstance(base, sqltypes.JSON):
        return "_json_stored" if stored else "_json_text"
    if isinstance(base, sqltypes.DateTime):
        return "_iso_stored" if stored else "_iso"
    if stored and isinstance(base, sqltypes.Date):
        return "_date_stored"
    if isinstance(base, (sqltypes.Integer, sqltypes.Boolean, sqltypes.Date, sqltypes.Numeric)):
        return None
    if isinstance(base, sqltypes.String):
        return "_text"
    return "csv_cell"


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while one batch is read or written.

    A batch allocates hundreds of thousands of acyclic objects (row dicts, cell lists, strings),
    each allocation counting towards a collection that then walks the whole heap of imported
    modules: about a third of an export's CPU time. Reference counting frees all of them anyway.
    Never held across a ``yield`` (a slow client must not keep it off), and restored only if it
    was on: another thread's batch may overlap, and the collector is process-wide.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class Cells:
    """Turns rows into lists of spreadsheet-safe cells, converting only the columns that need it.

    The per-row function is compiled once per export from the column list (names come from the
    table metadata, embedded with ``repr``): one call per row instead of one per cell, and text
    cells are checked inline. This is the hot loop of a million-row export.
    """

    def __init__(self, table: Table, columns: list[str], as_stored: frozenset[str] = frozenset()) -> None:
        self.columns = columns
        parts = []
        for i, c in enumerate(columns):
            conv = _converter(table, c, stored=c in as_stored)
            get = f"r[{i}]"
            if conv is None:
                parts.append(get)
            elif conv == "_text":
                # Every formula start sorts before "A": one comparison, no slice, clears letters
                # and CJK text; only text starting with a digit, a symbol or a space looks closer.
                parts.append(f'(v if (v := {get}) is None or v >= "A" or v[:1] not in F else "\'" + v)')
            elif conv == "_joined":  # inline: ";".join, then the formula check
                joined = '(j if (j := ";".join(v)) >= "A" or j[:1] not in F else "\'" + j)'
                parts.append(f'({joined} if (v := {get}) else "")')
            elif conv == "_iso_stored":  # inline for SQLite's stored text, see _iso_stored
                parts.append(
                    f"(None if (v := {get}) is None else "
                    f'(v[:10] + "T" + v[11:19] + "+00:00" if v[20:] == "000000" '
                    f'else v[:10] + "T" + v[11:] + "+00:00") '
                    f'if type(v) is str and len(v) == 26 and v[10] == " " and v[19] == "." '
                    f"else _iso_stored(v))"
                )
            elif conv == "_json_stored":  # most custom attributes are empty
                parts.append(f'("{{}}" if (v := {get}) == "{{}}" else _json_stored(v))')
            elif conv == "_date_stored":
                parts.append(f"(v if (v := {get}) is None or type(v) is str else v.isoformat())")
            else:
                parts.append(f"{conv}({get})")
        env = {
            "F": _FORMULA,
            "_joined": _joined,
            "_json_text": _json_text,
            "_iso": _iso,
            "_iso_stored": _iso_stored,
            "_json_stored": _json_stored,
            "_date_stored": _date_stored,
            "csv_cell": csv_cell,
        }
        self.row: Callable[[Row], list[Any]] = eval(f"lambda r: [{', '.join(parts)}]", env)  # noqa: S307

    def __call__(self, row: Row) -> list[Any]:
        return self.row(row)


def csv_chunks(
    table: Table,
    columns: list[str],
    batches: Iterable[list[Row]],
    *,
    bom: bool,
    as_stored: frozenset[str] = frozenset(),
) -> Iterator[bytes]:
    cells = Cells(table, columns, as_stored)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_text(c) for c in columns])
    head = buffer.getvalue().encode("utf-8")
    yield (codecs.BOM_UTF8 + head) if bom else head
    for batch in batches:
        with no_cycle_collection():
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(map(cells.row, batch))
            chunk = buffer.getvalue().encode("utf-8")
        yield chunk


def _json_value(value: Any) -> Any:
    """A JSON column as stored, as the object it holds (PostgreSQL's driver has parsed it)."""
    if isinstance(value, (str, bytes)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # what orjson refuses and json reads (NaN, huge integers)
            return json.loads(value)
    return value


def _json_row(table: Table, columns: list[str], as_stored: frozenset[str]) -> Callable[[Row], Any] | None:
    """The function turning a row with columns read as stored into the dict the typed row would
    give orjson, byte for byte: timestamps as their ISO text (what orjson writes for an aware UTC
    datetime), dates as stored (ISO), JSON parsed. None when no column is read as stored."""
    parts, any_stored = [], False
    for i, c in enumerate(columns):
        conv = _converter(table, c, stored=True) if c in as_stored else None
        any_stored = any_stored or conv is not None
        get = f"r[{i}]"
        if conv == "_iso_stored":
            parts.append(f"{c!r}: _iso_stored({get})")
        elif conv == "_date_stored":
            parts.append(f"{c!r}: _date_stored({get})")
        elif conv == "_json_stored":
            parts.append(f'{c!r}: ({{}} if (v := {get}) == "{{}}" else _json_value(v))')
        else:
            parts.append(f"{c!r}: {get}")
    if not any_stored:
        return None
    env = {"_iso_stored": _iso_stored, "_date_stored": _date_stored, "_json_value": _json_value}
    return eval(f"lambda r: {{{', '.join(parts)}}}", env)  # type: ignore[no-any-return]  # noqa: S307


def jsonl_chunks(
    table: Table,
    columns: list[str],
    batches: Iterable[list[Row]],
    *,
    bom: bool,
    as_stored: frozenset[str] = frozenset(),
) -> Iterator[bytes]:
    if bom:
        yield codecs.BOM_UTF8
    dumps = orjson.dumps
    as_dict = _json_row(table, columns, as_stored)
    for batch in batches:
        with no_cycle_collection():
            if as_dict is None:
                chunk = b"".join(dumps(dict(zip(columns, row, strict=True))) + b"\n" for row in batch)
            else:
                chunk = b"".join(dumps(as_dict(row)) + b"\n" for row in batch)
        yield chunk


def vcard_chunks(columns: list[str], batches: Iterable[list[Row]], *, bom: bool) -> Iterator[bytes]:
    if bom:
        yield codecs.BOM_UTF8
    names = [*columns, *EXTRAS]
    for batch in batches:
        with no_cycle_collection():
            cards = (write_card(customer_card(dict(zip(names, row, strict=True)))) for row in batch)
            chunk = "".join(cards).encode("utf-8")
        yield chunk


def customer_card(row: dict[str, Any]) -> Card:
    """The vCard of one export row; fields the caller may not read are simply absent."""
    phones = row.get("phone") or []
    emails = row.get("email") or []
    primary = row.get("_primary") or {}
    return Card(
        uid=f"urn:rapport:customer:{row['id']}",
        fn=row.get("display_name") or "",
        family_name=row.get("family_name"),
        given_name=row.get("given_name"),
        gender=row.get("gender"),
        birthday=row.get("birth_date"),
        phones=[(v, i == 0 and primary.get("phone", False)) for i, v in enumerate(phones)],
        emails=[(v, i == 0 and primary.get("email", False)) for i, v in enumerate(emails)],
        addresses=list(row.get("_addresses") or ()),
        wechat=list(row.get("wechat") or ()),
        organisation=row.get("_organisation"),
        title=row.get("occupation"),
        categories=list(row.get("tags") or ()),
    )


_XLSX_EPOCH = dt.date(1899, 12, 30)  # day 0 of spreadsheet date serials (1900 system)
# What text may not hold as it is: XML's markup characters and the control characters XML 1.0
# forbids (removed, as openpyxl does).
_XML_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f]")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        "{sheets}</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
        "</Relationships>"
    ),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        "<sheets>{sheets}</sheets></workbook>"
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rIdStyles" Target="styles.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"/>'
        "{sheets}</Relationships>"
    ),
}
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"


def _xml_text(text: str) -> str:
    text = _XML_ILLEGAL.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xlsx_row(values: Iterable[Any]) -> str:
    """One worksheet row: cells in order (an empty ``<c/>`` keeps the place of a None), text as
    inline strings, numbers as numbers, dates as date serials with the date style."""
    parts = ["<row>"]
    append = parts.append
    for v in values:
        t = type(v)
        if t is str:
            if not v:  # an empty cell, as openpyxl writes it
                append("<c/>")
                continue
            if _XML_SPECIAL.search(v):
                v = _xml_text(v)
            append(f'<c t="inlineStr"><is><t xml:space="preserve">{v}</t></is></c>')
        elif v is None:
            append("<c/>")
        elif t is int or t is float:
            append(f"<c><v>{v}</v></c>")
        elif t is bool:
            append(f'<c t="b"><v>{int(v)}</v></c>')
        elif t is dt.date:
            append(f'<c s="1"><v>{(v - _XLSX_EPOCH).days}</v></c>')
        elif isinstance(v, (int, float, Decimal)):
            append(f"<c><v>{v}</v></c>")
        else:  # anything else is written as its text (Cells turns timestamps into ISO text)
            append(f'<c t="inlineStr"><is><t xml:space="preserve">{_xml_text(str(v))}</t></is></c>')
    append("</row>")
    return "".join(parts)


def xlsx_chunks(
    table: Table, columns: list[str], batches: Iterable[list[Row]], *, sheet: str = "customers"
) -> Iterator[bytes]:
    """The workbook, written part by part into a temporary ZIP file, then streamed.

    The worksheets are written directly (inline strings, one date style), not through openpyxl:
    its write-only mode serialises every cell through an element tree, some 30 times the cost of
    the rest of an export. Worksheets hold at most XLSX_MAX_ROWS rows each, header included.
    """
    cells = Cells(table, columns).row
    header = _xlsx_row(_text(c) for c in columns)
    fd, path = tempfile.mkstemp(prefix="rapport-export-", suffix=".xlsx")
    os.close(fd)
    try:
        names = [sheet]
        # Level 1: the XML compresses almost as well and several times faster than the default.
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as book:
            part = book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
            part.write((_SHEET_HEAD + header).encode())
            used = 1
            for batch in batches:
                with no_cycle_collection():
                    rows: list[str] = []
                    for row in batch:
                        if used == XLSX_MAX_ROWS:  # a worksheet is full: go on in the next one
                            part.write(("".join(rows) + _SHEET_TAIL).encode())
                            part.close()
                            rows = []
                            names.append(f"{sheet} {len(names) + 1}")
                            part = book.open(f"xl/worksheets/sheet{len(names)}.xml", "w", force_zip64=True)
                            part.write((_SHEET_HEAD + header).encode())
                            used = 1
                        rows.append(_xlsx_row(cells(row)))
                        used += 1
                    part.write("".join(rows).encode())
            part.write(_SHEET_TAIL.encode())
            part.close()
            numbers = range(1, len(names) + 1)
            sheets = {
                "[Content_Types].xml": "".join(
                    f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType='
                    '"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                    for n in numbers
                ),
                "xl/workbook.xml": "".join(
                    f'<sheet name="{_xml_text(name)}" sheetId="{n}" r:id="rId{n}"/>'
                    for n, name in zip(numbers, names, strict=True)
                ),
                "xl/_rels/workbook.xml.rels": "".join(
                    f'<Relationship Id="rId{n}" Target="worksheets/sheet{n}.xml" '
                    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
                    for n in numbers
                ),
            }
            for name, text in _XLSX_PARTS.items():
                book.writestr(name, text.replace("{sheets}", sheets.get(name, "")))
        with open(path, "rb") as fh:
            while chunk := fh.read(_FILE_CHUNK):
                yield chunk
    finally:
        os.unlink(path)


def render(
    fmt: Format,
    table: Table,
    columns: list[str],
    batches: Iterable[list[Row]],
    *,
    bom: bool,
    as_stored: frozenset[str] = frozenset(),
) -> Iterator[bytes]:
    """The export file as chunks of bytes (``as_stored``: columns the rows hold untyped; CSV and
    JSON Lines)."""
    if fmt == "csv":
        return csv_chunks(table, columns, batches, bom=bom, as_stored=as_stored)
    if fmt == "jsonl":
        return jsonl_chunks(table, columns, batches, bom=bom, as_stored=as_stored)
    if fmt == "vcard":
        return vcard_chunks(columns, batches, bom=bom)
    return xlsx_chunks(table, columns, batches)
