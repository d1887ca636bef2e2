"""Portability and access (PIPL art. 45, GDPR art. 15 and 20): one person's data, machine-readable.

Format ``rapport.customer-export/1`` (JSON, UTF-8)::

    {"format": "rapport.customer-export/1", "exported_at": "...Z",
     "customer": {"source_id": 12, "display_name": "王小明", ..., "attributes": {...}},
     "tags": ["vip"],
     "contact_points": [{"kind": "phone", "value": "+8613...", "label": null, ...}],
     "interactions": [{"kind": "note", "direction": "internal", "channel": null,
                       "occurred_at": "...", "subject": "...", "body": "..."}],
     "tasks": [{"title": "...", "description": null, "status": "open", "priority": "normal",
                "due_at": "...", "completed_at": null}],
     "orders": [{"order_number": "SO-1", "status": "completed", ..., "lines": [{...}]}]}

Amounts are decimal strings, instants RFC 3339 in UTC. The CSV form is a ZIP holding one file per
section (``customer.csv``, ``tags.csv``, ``contact_points.csv``, ``interactions.csv``,
``tasks.csv``, ``orders.csv``, ``order_lines.csv`` linked by ``order_number``, ``consents.csv``);
nested values (attributes) are JSON text and a cell starting with a spreadsheet formula character is prefixed
with an apostrophe, which the importer removes again.

:func:`import_customer` reads either form back: the customer, tags, contact points, interactions
and tasks are created through the data-access layer (the importing staff member's scope and
permissions apply). Orders travel with the export for the person's benefit but are not imported:
they are the seller's accounting records and reference its product catalogue.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from rapport.access.policy import Action
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.access.specs import CONTACT_POINT, CUSTOMER, INTERACTION, ORDER, ORDER_LINE, TASK
from rapport.activities.schemas import InteractionCreate, TaskCreate
from rapport.activities.service import interactions, tasks
from rapport.contacts.schemas import ContactPointIn
from rapport.customers import repository as customer_repo
from rapport.customers.schemas import CustomerCreate
from rapport.customers.service import customers
from rapport.errors import InvalidInput
from rapport.models.base import utcnow
from rapport.models.customers import PROFILE_COLUMNS
from rapport.privacy import consent
from rapport.privacy.common import records

FORMAT = "rapport.customer-export/1"

CUSTOMER_FIELDS = (
    *PROFILE_COLUMNS,
    "attributes",
    "created_at",
)
CONTACT_FIELDS = (
    "kind",
    "value",
    "label",
    "country",
    "region",
    "city",
    "district",
    "postal_code",
    "is_primary",
    "is_verified",
)
INTERACTION_FIELDS = ("kind", "direction", "channel", "occurred_at", "subject", "body")
TASK_FIELDS = ("title", "description", "status", "priority", "due_at", "completed_at")
ORDER_FIELDS = (
    "order_number",
    "status",
    "channel",
    "currency",
    "total_amount",
    "ordered_at",
    "paid_at",
    "completed_at",
)
LINE_FIELDS = ("product_id", "quantity", "unit_price", "discount_amount", "line_total")
CONSENT_FIELDS = ("purpose", "partner_id", "granted", "source", "evidence", "at")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _pick(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: _plain(row.get(n)) for n in names}


def export_customer(session: Session, customer_id: int, *, actor: Principal) -> dict[str, Any]:
    """Everything Rapport holds about one person that ``actor`` may export, as JSON-able data.

    Reads go through the data-access layer: out of scope answers 404, masked fields stay masked,
    and each part is audited as an export of the ids it contains.
    """
    recs = records(session, actor)
    recs.require(CUSTOMER, Action.export)
    row = recs.get(CUSTOMER, customer_id, audit_action="export")
    tags = customer_repo.tags_by_customer(session, [customer_id]).get(customer_id, [])
    out: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": _plain(utcnow()),
        "customer": {"source_id": customer_id, **_pick(row, CUSTOMER_FIELDS)},
        "tags": sorted(tags),
    }
    out["contact_points"] = [_pick(r, CONTACT_FIELDS) for r in _children(recs, CONTACT_POINT, customer_id)]
    out["interactions"] = [
        _pick(r, INTERACTION_FIELDS) for r in _children(recs, INTERACTION, customer_id, "occurred_at")
    ]
    out["tasks"] = [_pick(r, TASK_FIELDS) for r in _children(recs, TASK, customer_id)]
    orders = []
    order_rows = _children(recs, ORDER, customer_id, "ordered_at")
    lines_by_order: dict[int, list[dict[str, Any]]] = {}
    if order_rows and recs.principal.can(ORDER_LINE.name, Action.read):
        ol = ORDER_LINE.table
        stmt = (
            recs.select(ORDER_LINE).where(ol.c.order_id.in_([o["id"] for o in order_rows])).order_by(ol.c.id)
        )
        for line in session.execute(stmt).mappings():
            lines_by_order.setdefault(line["order_id"], []).append(_pick(line, LINE_FIELDS))
    for o in order_rows:
        orders.append({**_pick(o, ORDER_FIELDS), "lines": lines_by_order.get(o["id"], [])})
    out["orders"] = orders
    # Consents were given to this controller: they travel as a record of the person's choices and
    # are not re-granted by an import.
    out["consents"] = [_pick(r, CONSENT_FIELDS) for r in consent.history(session, customer_id)]
    return out


def _children(recs: Records, spec: Any, customer_id: int, order_by: str = "id") -> list[dict[str, Any]]:
    if not recs.principal.can(spec.name, Action.read):
        return []
    t = spec.table
    stmt = recs.select(spec).where(t.c.customer_id == customer_id).order_by(t.c[order_by], t.c.id)
    rows = recs.open(spec, [dict(r) for r in recs.session.execute(stmt).mappings()])
    if rows:
        recs.audit("export", spec.name, None, details={"ids": [r["id"] for r in rows], "count": len(rows)})
    return rows


# -- CSV ------------------------------------------------------------------------------------------

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SECTIONS = ("customer", "tags", "contact_points", "interactions", "tasks", "orders", "order_lines")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(("'", *_FORMULA_STARTS)) else text


def _uncell(text: str) -> str | None:
    if text == "":
        return None
    return text[1:] if text.startswith("'") else text


def _csv(header: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(r.get(h)) for h in header])
    return buf.getvalue()


def to_csv_zip(export: dict[str, Any]) -> bytes:
    """The CSV form of an export: a ZIP with one UTF-8 CSV per section."""
    lines = [{"order_number": o["order_number"], **ln} for o in export["orders"] for ln in o["lines"]]
    files = {
        "customer": _csv(
            ("format", "source_id", *CUSTOMER_FIELDS), [{"format": export["format"], **export["customer"]}]
        ),
        "tags": _csv(("tag",), [{"tag": t} for t in export["tags"]]),
        "contact_points": _csv(CONTACT_FIELDS, export["contact_points"]),
        "interactions": _csv(INTERACTION_FIELDS, export["interactions"]),
        "tasks": _csv(TASK_FIELDS, export["tasks"]),
        "orders": _csv(ORDER_FIELDS, export["orders"]),
        "order_lines": _csv(("order_number", *LINE_FIELDS), lines),
        "consents": _csv(CONSENT_FIELDS, export.get("consents", [])),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in _SECTIONS:
            info = zipfile.ZipInfo(f"{name}.csv", date_time=(2000, 1, 1, 0, 0, 0))
            zf.writestr(info, files[name].encode("utf-8"), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


_BOOLS = {"is_primary", "is_verified", "granted"}


def _read(zf: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    try:
        text = zf.read(f"{name}.csv").decode("utf-8")
    except KeyError:
        raise InvalidInput(f"{name}.csv missing from the export archive") from None
    out = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {k: _uncell(v) for k, v in raw.items()}
        for k in _BOOLS & row.keys():
            row[k] = row[k] == "true"
        if "attributes" in row:
            row["attributes"] = json.loads(row["attributes"]) if row["attributes"] else {}
        out.append(row)
    return out


def from_csv_zip(data: bytes) -> dict[str, Any]:
    """Read :func:`to_csv_zip` output back into the JSON form."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("not a ZIP archive of CSV files") from None
    with zf:
        found = _read(zf, "customer")
        if len(found) != 1:
            raise InvalidInput("customer.csv must hold exactly one row")
        customer = found[0]
        fmt = customer.pop("format")
        source = customer.pop("source_id")
        lines = _read(zf, "order_lines")
        orders = _read(zf, "orders")
        for o in orders:
            o["lines"] = [
                {k: v for k, v in ln.items() if k != "order_number"}
                for ln in lines
                if ln["order_number"] == o["order_number"]
            ]
        return {
            "format": fmt,
            "customer": {"source_id": int(source) if source else None, **customer},
            "tags": [r["tag"] for r in _read(zf, "tags")],
            "contact_points": _read(zf, "contact_points"),
            "interactions": _read(zf, "interactions"),
            "tasks": _read(zf, "tasks"),
            "orders": orders,
            # Archives written before consents travelled have no consents.csv.
            "consents": [
                {**r, "partner_id": int(r["partner_id"]) if r["partner_id"] else None}
                for r in (_read(zf, "consents") if "consents.csv" in zf.namelist() else [])
            ],
        }


# -- import ---------------------------------------------------------------------------------------

_NOT_INPUT = {"lifecycle_stage", "created_at", "source_id", "tags", "contact_points"}
_TASK_STATES = {"open", "done", "cancelled"}


def import_customer(recs: Records, export: dict[str, Any]) -> int:
    """Create the person of an export (JSON form) in this workspace; returns the new customer id."""
    if export.get("format") != FORMAT:
        raise InvalidInput(f"format: expected {FORMAT!r}")
    try:
        person = {k: v for k, v in export["customer"].items() if k not in _NOT_INPUT and v is not None}
        body = CustomerCreate(
            **person,
            lifecycle_stage=export["customer"].get("lifecycle_stage") or "lead",
            tags=list(export.get("tags", [])),
            contact_points=[
                ContactPointIn(**{k: v for k, v in cp.items() if v is not None})
                for cp in export.get("contact_points", [])
            ],
        )
        new_id = int(customers.do_create(recs, body)["id"])
        for it in export.get("interactions", []):
            interactions.do_create(
                recs, InteractionCreate(**{k: v for k, v in it.items() if v is not None}), new_id
            )
        for task in export.get("tasks", []):
            fields = {k: task.get(k) for k in ("title", "description", "priority", "due_at") if task.get(k)}
            created = tasks.do_create(recs, TaskCreate(**fields), new_id)
            if task.get("status") not in (None, *_TASK_STATES):
                raise ValueError(f"task status must be one of {sorted(_TASK_STATES)}")
            if task.get("status") and task["status"] != "open":
                done = {"status": task["status"], "completed_at": _instant(task.get("completed_at"))}
                recs.update(TASK, created["id"], done, None)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # ValidationError included
        lines = str(exc).splitlines() or [type(exc).__name__]
        raise InvalidInput(f"the export does not validate: {' '.join(lines[:2])}") from None
    return new_id


def _instant(value: Any) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("completed_at needs a time zone")
    return parsed
