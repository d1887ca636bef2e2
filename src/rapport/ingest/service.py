"""The import pipeline for one batch of rows: normalise, validate, match, plan, write.

A batch is planned completely before anything is written: every row ends up created, updated,
unchanged or rejected (with line, column and reason), then each table gets one bulk statement.
Writes follow the data-access layer's rules without going through it row by row: the caller's
grants are checked once per batch, created records get the caller as owner and team (as
``Records.create`` does), contact values are sealed with ``seal`` of the unit's keyring and
indexed with ``blind_index``, search terms are exactly what the customer service indexes
(``rapport.ingest.terms.search_terms``: ``rapport.demo.chunks.search_terms``, computed faster),
and every batch queues one audit event per action listing the record ids it touched (not one
event per record).

Dedup hook: ``matcher`` (see :class:`Matcher`) is asked about rows no match key found; a
candidate with ``probability >= MATCHER_THRESHOLD`` makes the row an update of that customer
(modes update/upsert). It is None by default; ``rapport.dedup.service.match_incoming`` fits it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, Protocol, cast
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rapport.access.policy import Action
from rapport.access.records import Records
from rapport.access.specs import CONTACT_POINT, CUSTOMER, INTERACTION, ORDER, ORGANISATION, PRODUCT
from rapport.config import get_settings
from rapport.errors import InvalidInput, RapportError
from rapport.ingest import normalise as norm
from rapport.ingest import repository as repo
from rapport.ingest.mapping import explain_mapping, normalise_header
from rapport.ingest.readers import Row
from rapport.ingest.schemas import (
    FIELDS_BY_KIND,
    CustomerImportRow,
    InteractionImportRow,
    OrderLineImportRow,
)
from rapport.ingest.terms import search_terms
from rapport.models import CustomerSearchTerm, WebhookSubscription
from rapport.models.base import table_of, utcnow
from rapport.models.customers import PROFILE_COLUMNS
from rapport.orders import repository as order_repo
from rapport.orders.schemas import OrderCreate, OrderLineIn
from rapport.orders.service import price_lines
from rapport.organisations.schemas import OrganisationCreate
from rapport.security.crypto import blind_index
from rapport.security.keyring import keyring_for
from rapport.webhooks import service as webhooks

TERMS = table_of(CustomerSearchTerm)
MATCHER_THRESHOLD = 0.95
_SPLIT = re.compile(r"[;；,，、|\n]+")
_NAME_COLUMNS = ("display_name", "family_name", "given_name", "name_latin")
# Customer columns an import writes (organisation_id comes from the organisation's name).
CUSTOMER_COLUMNS = (
    *PROFILE_COLUMNS,
    "organisation_id",
)


# -- mapping ----------------------------------------------------------------------------------------

# Besides rapport.ingest.mapping's customer synonyms: the organisation, and the order file's columns.
_EXTRA_CUSTOMER = {
    "organisation": (
        "organisation",
        "organization",
        "company",
        "employer",
        "公司",
        "公司名称",
        "单位",
        "工作单位",
    ),
    "lifecycle_stage": ("lifecycle stage", "stage", "客户阶段", "阶段"),
    "preferred_language": ("language", "preferred language", "语言"),
    "preferred_channel": ("preferred channel", "首选渠道"),
}
_ORDER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_number": ("order number", "order no", "order id", "订单号", "订单编号", "单号"),
    "customer_external_id": ("customer id", "external id", "客户编号", "客户id", "客户号", "会员号"),
    "customer_email": ("email", "customer email", "邮箱", "电子邮件"),
    "customer_phone": ("phone", "mobile", "customer phone", "手机", "手机号", "电话", "联系电话"),
    "ordered_at": ("ordered at", "order date", "date", "下单时间", "订单日期", "下单日期", "日期", "时间"),
    "status": ("status", "order status", "订单状态", "状态"),
    "channel": ("channel", "sales channel", "渠道", "销售渠道"),
    "currency": ("currency", "币种", "货币"),
    "sku": ("sku", "product code", "item code", "商品编码", "商品编号", "货号", "产品编码"),
    "quantity": ("quantity", "qty", "数量", "件数"),
    "unit_price": ("unit price", "price", "单价", "价格"),
    "discount_amount": ("discount", "discount amount", "折扣", "优惠", "优惠金额"),
}


_ORG_SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": (
        "name",
        "organisation",
        "organization",
        "company",
        "公司",
        "公司名称",
        "单位",
        "企业名称",
        "名称",
    ),
    "name_latin": ("english name", "latin name", "英文名", "英文名称"),
    "industry": ("industry", "行业", "所属行业"),
    "size_band": ("size", "size band", "employees", "规模", "人数"),
    "website": ("website", "web", "url", "网站", "官网"),
    "region": ("region", "province", "省份", "省", "地区"),
    "city": ("city", "城市", "市"),
    "lifecycle_stage": ("stage", "lifecycle stage", "阶段"),
}
_INTERACTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "customer_external_id": ("customer id", "external id", "客户编号", "客户id", "客户号", "会员号"),
    "customer_email": ("email", "邮箱", "电子邮件"),
    "customer_phone": ("phone", "mobile", "手机", "手机号", "电话"),
    "kind": ("kind", "type", "类型", "方式"),
    "direction": ("direction", "方向"),
    "channel": ("channel", "渠道"),
    "occurred_at": ("date", "time", "occurred at", "日期", "时间", "跟进时间", "联系时间"),
    "subject": ("subject", "title", "主题", "标题"),
    "body": ("body", "content", "notes", "note", "内容", "记录", "备注"),
}


@dataclass(frozen=True, slots=True)
class Proposal:
    column: str
    field: str | None
    confidence: float
    reason: str


def propose(kind: str, headers: Sequence[str]) -> list[Proposal]:
    """A field (or None) for every header, with confidence and reason."""
    if kind != "customers":
        synonyms = {
            "orders": _ORDER_SYNONYMS,
            "organisations": _ORG_SYNONYMS,
            "interactions": _INTERACTION_SYNONYMS,
        }
        exact = {normalise_header(w): f for f, words in synonyms[kind].items() for w in words}
        taken: set[str] = set()
        out = []
        for h in headers:
            f = exact.get(normalise_header(h))
            if f is None or f in taken:
                why = f"no known {kind[:-1]} field" if f is None else f"{f} already used"
                out.append(Proposal(h, None, 0.0, why))
            else:
                taken.add(f)
                out.append(Proposal(h, f, 1.0, f"header is a synonym of {f}"))
        return out
    explained = explain_mapping(headers)
    used: set[str] = {p.field for p in explained.values() if p.field}
    extra = {normalise_header(w): f for f, words in _EXTRA_CUSTOMER.items() for w in words}
    out = []
    for h in headers:
        p = explained[h]
        if p.field is None and (f := extra.get(normalise_header(h))) and f not in used:
            used.add(f)
            out.append(Proposal(h, f, 1.0, f"header is a synonym of {f}"))
        else:
            out.append(Proposal(h, p.field, p.confidence, p.reason))
    return out


def proposed_mapping(kind: str, headers: Sequence[str]) -> dict[str, str | None]:
    return {p.column: p.field for p in propose(kind, headers)}


def check_mapping(kind: str, mapping: dict[str, str | None]) -> dict[str, str | None]:
    """Refuse unknown fields and one-value fields mapped twice, naming the column."""
    allowed = FIELDS_BY_KIND[kind]
    multi = {"phone", "email", "tags"} if kind == "customers" else set()
    seen: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    for column, target in mapping.items():
        if target is None:
            continue
        if target not in allowed:
            errors.append(
                {
                    "field": f"mapping.{column}",
                    "message": f"unknown field {target!r}; one of {', '.join(allowed)}",
                }
            )
        elif target in seen and target not in multi:
            errors.append(
                {"field": f"mapping.{column}", "message": f"{target} is already mapped from {seen[target]!r}"}
            )
        else:
            seen[target] = column
    if not errors:
        needed = {
            "customers": ("display_name", "family_name"),
            "orders": ("order_number",),
            "organisations": ("name",),
            "interactions": ("kind",),
        }[kind]
        if not any(n in seen for n in needed):
            errors.append({"field": "mapping", "message": f"map a column to {needed[0]}"})
    if errors:
        for e in errors:
            e.update(loc=["body", *e["field"].split(".", 1)], type="mapping")
        raise InvalidInput(f"{errors[0]['field']}: {errors[0]['message']}", errors=errors)
    return mapping


# -- rejections and results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    column: str | None
    field: str | None
    reason: str


@dataclass(slots=True)
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({r.line for r in self.rejections})


class IncomingMatch(Protocol):
    """What a matcher answers for one row: ``index`` into the rows it was given."""

    @property
    def index(self) -> int: ...
    @property
    def customer_id(self) -> int: ...
    @property
    def probability(self) -> float: ...


# matcher(session, rows) -> candidates; rows are the normalised customers (model_dump()).
Matcher = Callable[[Session, list[dict[str, Any]]], Sequence[IncomingMatch]]


# -- customers: normalise and validate --------------------------------------------------------------

# Fast paths for the common cells of a large file; anything unusual goes to rapport.ingest.normalise,
# and both give the same answer for what the fast path accepts.
_PLAIN_EMAIL = re.compile(
    r"^(?=.{6,254}$)(?=[^@]{1,64}@)[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_SPECIAL_TLDS = frozenset(
    {"arpa", "invalid", "local", "localhost", "onion", "test", "internal", "home", "lan"}
)
# ASCII only: without re.ASCII, \d and \s also match full-width digits and spaces, which the full path
# folds first (NFKC); such cells take the full path.
_CN_MOBILE = re.compile(r"^(?:\+?86|0086)?[\s-]*(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})$", re.ASCII)
# A number matching the region's mobile pattern is valid (phonenumbers' own metadata, read once).
_CN_META: Any = phonenumbers.PhoneMetadata.metadata_for_region("CN")
_CN_MOBILE_VALID = re.compile(str(_CN_META.mobile.national_number_pattern), re.ASCII)


def fast_email(text: str) -> str:
    raw = text.strip().lower()
    # "--" anywhere: email-validator refuses "ab--" labels that are not Punycode; the full path decides.
    if (
        raw.isascii()
        and "--" not in raw
        and _PLAIN_EMAIL.match(raw)
        and raw.rsplit(".", 1)[1] not in _SPECIAL_TLDS
    ):
        return raw
    return norm.email(text)


def fast_phone(text: str, region: str) -> str:
    """E.164 of a Chinese mobile number written plainly, checked against the mobile pattern."""
    if region == "CN" and (m := _CN_MOBILE.match(text.strip())):
        digits = m[1] + m[2] + m[3]
        if _CN_MOBILE_VALID.fullmatch(digits):
            return "+86" + digits
    return norm.phone(text, region)


# Names, organisations, genders, birth dates and addresses repeat heavily in a large file: the
# normalisers are pure functions of the cell's text, so their answers are cached per distinct text
# (bounded; a cell that fails is not cached and raises again). The address's parts are only read.
_name = lru_cache(maxsize=65_536)(norm.name)
_gender = lru_cache(maxsize=1024)(norm.gender)
_date = lru_cache(maxsize=65_536)(norm.date)
_address = lru_cache(maxsize=65_536)(norm.address)


_NAME_TARGETS = (
    "display_name",
    "family_name",
    "given_name",
    "name_latin",
    "occupation",
    "region",
    "city",
    "organisation",
)
_PLAIN_TARGETS = (
    "preferred_language",
    "preferred_channel",
    "acquisition_source",
    "lifecycle_stage",
    "wechat",
    "note",
)


class CustomerPreparer:
    """Turns a file row into a CustomerImportRow, or the list of its rejections."""

    def __init__(
        self, mapping: dict[str, str | None], *, day_first: bool = True, region: str | None = None
    ) -> None:
        self.columns: dict[str, list[str]] = {}
        for column, target in mapping.items():
            if target:
                self.columns.setdefault(target, []).append(column)
        self.day_first = day_first
        self.region = region or get_settings().default_phone_region
        self._steps = self._plan_steps()

    def column_of(self, target: str) -> str | None:
        cols = self.columns.get(target)
        return cols[0] if cols else None

    def _plan_steps(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(how, target, columns) for the mapped targets only, in the order ``prepare`` reports."""
        order = [
            *(("name", t) for t in _NAME_TARGETS),
            *(("plain", t) for t in _PLAIN_TARGETS),
            ("plain", "external_id"),
            ("gender", "gender"),
            ("date", "birth_date"),
            ("phone", "phone"),
            ("email", "email"),
            ("address", "address"),
            ("tags", "tags"),
        ]
        return [(how, t, tuple(self.columns[t])) for how, t in order if self.columns.get(t)]

    def prepare(self, row: Row) -> CustomerImportRow | list[Rejection]:
        values, line = row.values, row.line
        errors: list[Rejection] = []
        data: dict[str, Any] = {}
        phones: list[str] = []
        emails: list[str] = []
        tags: list[str] = []
        # One pass over the mapped targets (a file maps a handful of the ~25), no closures per row.
        for how, target, columns in self._steps:
            for column in columns:
                text = values.get(column, "")
                if not text or not text.strip():
                    continue
                try:
                    if how == "name":
                        data[target] = _name(text)
                    elif how == "plain":
                        data[target] = text.strip()
                    elif how == "phone":
                        for part in _SPLIT.split(text):
                            if part.strip():
                                try:
                                    phones.append(fast_phone(part, self.region))
                                except norm.NormaliseError as exc:
                                    errors.append(Rejection(line, column, target, exc.reason))
                    elif how == "email":
                        for part in _SPLIT.split(text):
                            if part.strip():
                                try:
                                    emails.append(fast_email(part))
                                except norm.NormaliseError as exc:
                                    errors.append(Rejection(line, column, target, exc.reason))
                    elif how == "gender":
                        data[target] = _gender(text)
                    elif how == "date":
                        data[target] = _date(text, self.day_first)
                    elif how == "address":
                        parts = _address(text)
                        data["address"] = {
                            "value": " ".join(text.split()),
                            "region": parts["province"],
                            "city": parts["city"],
                            "district": parts["district"],
                        }
                    else:  # tags
                        tags.extend(t.strip() for t in _SPLIT.split(text) if t.strip())
                except norm.NormaliseError as exc:
                    errors.append(Rejection(line, column, target, exc.reason))
        data["phones"] = list(dict.fromkeys(phones))
        data["emails"] = list(dict.fromkeys(emails))
        data["tags"] = list(dict.fromkeys(tags))
        if "display_name" not in data and ("family_name" in data or "given_name" in data):
            family, given = data.get("family_name", ""), data.get("given_name", "")
            cjk = any(ord(ch) > 0x2E7F for ch in family + given)
            data["display_name"] = (family + given) if cjk else " ".join(p for p in (given, family) if p)
        if "display_name" not in data and not any(e.field in _NAME_COLUMNS for e in errors):
            errors.append(
                Rejection(line, self.column_of("display_name"), "display_name", "a name is required")
            )
        if errors:
            return errors
        try:
            return CustomerImportRow.model_validate(data)
        except ValidationError as exc:
            return [self._rejection(line, e) for e in exc.errors(include_url=False)]

    def _rejection(self, line: int, error: Any) -> Rejection:
        loc = [str(p) for p in error["loc"]]
        target = loc[0] if loc else ""
        source = {"phones": "phone", "emails": "email"}.get(target, target)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "literal_error":
            message = "not one of the allowed values: " + message.split("Input should be ", 1)[-1]
        return Rejection(line, self.column_of(source), source, message)


# -- customers: a prepared batch, as the writer reads it -------------------------------------------


class _Address(NamedTuple):
    value: str
    region: str | None
    city: str | None
    district: str | None


@dataclass(slots=True)
class Incoming:
    """A validated CustomerImportRow's values, in a plain object the writer reads cheaply.

    Rows prepared in another process arrive as tuples of plain values (``packed``/``unpack``):
    rebuilding Pydantic models there costs more than preparing them took. The fields are
    CustomerImportRow's, in its order (a test keeps them in step)."""

    family_name: str | None
    given_name: str | None
    name_latin: str | None
    gender: str | None
    birth_date: dt.date | None
    occupation: str | None
    region: str | None
    city: str | None
    preferred_language: str | None
    preferred_channel: str | None
    acquisition_source: str | None
    organisation_id: int | None
    attributes: dict[str, Any]
    display_name: str
    lifecycle_stage: str | None
    tags: list[str]
    external_id: str | None
    organisation: str | None
    phones: list[str]
    emails: list[str]
    wechat: str | None
    address: _Address | None
    note: str | None

    @classmethod
    def of(cls, row: CustomerImportRow) -> Incoming:
        a = row.address
        values = list(_ROW_VALUES(row.__dict__))
        values[_ADDRESS_AT] = _Address(a.value, a.region, a.city, a.district) if a is not None else None
        return cls(*values)

    def packed(self) -> tuple[Any, ...]:
        """Plain values only (marshal): the birth date as its ordinal, the address as a tuple."""
        values = list(_INCOMING_VALUES(self))
        if self.birth_date is not None:
            values[_BIRTH_AT] = self.birth_date.toordinal()
        if self.address is not None:
            values[_ADDRESS_AT] = tuple(self.address)
        return tuple(values)

    @classmethod
    def unpack(cls, values: Sequence[Any]) -> Incoming:
        row = cls(*values)
        if row.birth_date is not None:
            row.birth_date = dt.date.fromordinal(cast(int, row.birth_date))
        if row.address is not None:
            row.address = _Address(*row.address)
        return row

    def model_dump(self, *, mode: str = "python", exclude_defaults: bool = False) -> dict[str, Any]:
        """What CustomerImportRow.model_dump gives for the same row (the matcher and previews read it)."""
        out: dict[str, Any] = {}
        for f in _INCOMING_FIELDS:
            value = getattr(self, f)
            if exclude_defaults and value == _INCOMING_DEFAULTS[f]:
                continue
            if f == "address" and value is not None:
                value = value._asdict()
            elif f == "birth_date" and value is not None and mode == "json":
                value = value.isoformat()
            out[f] = value
        return out


_INCOMING_FIELDS = tuple(Incoming.__dataclass_fields__)
_BIRTH_AT, _ADDRESS_AT = _INCOMING_FIELDS.index("birth_date"), _INCOMING_FIELDS.index("address")
_ROW_VALUES, _INCOMING_VALUES = itemgetter(*_INCOMING_FIELDS), attrgetter(*_INCOMING_FIELDS)
_INCOMING_DEFAULTS: dict[str, Any] = {
    name: ([] if f.default_factory is list else {} if f.default_factory is dict else f.default)
    for name, f in CustomerImportRow.model_fields.items()
}


@dataclass(slots=True)
class PreparedCustomers:
    """One batch of customer rows prepared without the database: rejections, the valid rows, the
    blind index of every contact value they carry, and their search terms as (term, item index)
    in index order (so the writer inserts them in key order without sorting them itself)."""

    rejections: list[Rejection]
    items: list[tuple[int, Incoming]]
    digests: dict[tuple[str, str], str]
    term_order: list[tuple[str, int]]

    def packed(self) -> tuple[Any, ...]:
        return (
            [(r.line, r.column, r.field, r.reason) for r in self.rejections],
            [(line, row.packed()) for line, row in self.items],
            [(kind, value, digest) for (kind, value), digest in self.digests.items()],
            self.term_order,
        )

    @classmethod
    def unpack(cls, data: Sequence[Any]) -> PreparedCustomers:
        rejections, items, digests, term_order = data
        return cls(
            [Rejection(*r) for r in rejections],
            [(line, Incoming.unpack(row)) for line, row in items],
            {(kind, value): digest for kind, value, digest in digests},
            [tuple(t) for t in term_order],
        )


def prepare_customers(
    preparer: CustomerPreparer, rows: Sequence[Row], bidx: Callable[[str, str], str]
) -> PreparedCustomers:
    """Everything of a batch that needs no database: runs in the writer's process or in another."""
    out = PreparedCustomers([], [], {}, [])
    digests = out.digests
    for row in rows:
        prepared = preparer.prepare(row)
        if isinstance(prepared, list):
            out.rejections.extend(prepared)
            continue
        incoming = Incoming.of(prepared)
        for kind, _value, normalised, _extra in _contacts_of(incoming):
            if (kind, normalised) not in digests:
                digests[(kind, normalised)] = bidx(kind, normalised)
        names = (incoming.display_name, incoming.family_name, incoming.given_name, incoming.name_latin)
        index = len(out.items)
        out.term_order.extend((term, index) for term in search_terms(*names))
        out.items.append((row.line, incoming))
    # By term only: the sort is stable and the pairs were added in index order (and comparing
    # tuples costs twice as much).
    out.term_order.sort(key=itemgetter(0))
    return out


# -- customers: match, plan, write --------------------------------------------------------------------


@dataclass(slots=True)
class _Planned:
    line: int
    row: Incoming
    index: int  # in the prepared batch
    customer_id: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    new_contacts: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    new_tags: list[str] = field(default_factory=list)
    new_external: str | None = None


# A created customer's columns, as _insert builds its tuples (the _NAME_COLUMNS lead PROFILE_COLUMNS).
_CREATE_COLUMNS = (
    *PROFILE_COLUMNS,
    "organisation_id",
    "id",
    "owner_id",
    "team_id",
    "attributes",
    "created_at",
    "updated_at",
    "version",
)
_DISPLAY, _BIRTH, _REGION, _CITY, _STAGE = (
    PROFILE_COLUMNS.index(c) for c in ("display_name", "birth_date", "region", "city", "lifecycle_stage")
)
assert PROFILE_COLUMNS[:4] == _NAME_COLUMNS

_CONTACT_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "label",
    "value",
    "value_normalized",
    "value_bidx",
    "country",
    "region",
    "city",
    "district",
    "postal_code",
    "is_primary",
    "is_verified",
    "created_at",
    "updated_at",
    "version",
)


def _contacts_of(row: Incoming) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, value, normalised, extra columns) of the contact points a row carries."""
    out: list[tuple[str, str, str, dict[str, Any]]] = []
    out += [("phone", p, p, {}) for p in row.phones]
    out += [("email", e, e, {}) for e in row.emails]
    if row.wechat:
        out.append(("wechat", row.wechat, row.wechat.lower(), {}))
    if row.address:
        a = row.address
        extra = {
            "region": a.region,
            "city": a.city,
            "district": a.district,
            "country": "CN" if a.region else None,
        }
        out.append(("address", a.value, " ".join(a.value.lower().split()), extra))
    return out


def _columns_of(row: Incoming, mapped: set[str]) -> dict[str, Any]:
    """Customer column values the row sets (blank cells never clear a stored value)."""
    values = {c: getattr(row, c) for c in CUSTOMER_COLUMNS if c != "organisation_id" and c in mapped}
    return {k: v for k, v in values.items() if v is not None}


class CustomerImporter:
    """Applies batches of one import job (or a preview) in the caller's unit of work."""

    def __init__(
        self,
        recs: Records,
        *,
        job_id: int | None,
        mapping: dict[str, str | None],
        mode: str,
        match_keys: Sequence[str],
        day_first: bool = True,
        matcher: Matcher | None = None,
    ) -> None:
        self.recs = recs
        self.job_id = job_id
        self.mode = mode
        self.match_keys = list(match_keys)
        self.preparer = CustomerPreparer(mapping, day_first=day_first)
        self.mapped = set(self.preparer.columns)
        if "family_name" in self.mapped or "given_name" in self.mapped:
            self.mapped.add("display_name")
        self.matcher = matcher
        p = recs.principal
        if mode in ("create", "upsert"):
            recs.require(CUSTOMER, Action.create)
        if mode in ("update", "upsert"):
            recs.require(CUSTOMER, Action.update)
        self.may_add_contacts = p.can("contact_point", Action.create)
        # Blind indexes of the batch's emails and phones, computed for matching and reused on write.
        self._digests: dict[tuple[str, str], str] = {}

    def _bidx(self, kind: str, normalised: str) -> str:
        digest = self._digests.get((kind, normalised))
        if digest is None:
            digest = self._digests[(kind, normalised)] = blind_index(kind, normalised)
        return digest

    # -- planning ------------------------------------------------------------------------------

    def _keys(self, row: Incoming) -> dict[str, list[str]]:
        keys: dict[str, list[str]] = {}
        if "external_id" in self.match_keys and row.external_id:
            keys["external_id"] = [row.external_id]
        if "email" in self.match_keys and row.emails:
            keys["email"] = [self._bidx("email", e) for e in row.emails]
        if "phone" in self.match_keys and row.phones:
            keys["phone"] = [self._bidx("phone", p) for p in row.phones]
        return keys

    def apply(self, rows: Sequence[Row], *, dry_run: bool = False) -> BatchResult:
        return self.apply_prepared(prepare_customers(self.preparer, rows, self._bidx), dry_run=dry_run)

    def apply_prepared(self, batch: PreparedCustomers, *, dry_run: bool = False) -> BatchResult:
        result = BatchResult()
        conn = self.recs.conn
        self._digests.update(batch.digests)
        result.rejections.extend(batch.rejections)
        if dry_run:
            by_line: dict[int, list[Rejection]] = {}
            for r in batch.rejections:
                by_line.setdefault(r.line, []).append(r)
            for line, errors in by_line.items():
                result.preview.append(_preview(line, "reject", errors=errors))
        prepared = [(line, row, self._keys(row)) for line, row in batch.items]

        # Existing customers by each key, one query per key kind.
        found: dict[str, dict[str, set[int]]] = {}
        if "external_id" in self.match_keys:
            ext = repo.live_customers_by_external_id(
                conn, [k for _, _, ks in prepared for k in ks.get("external_id", ())]
            )
            found["external_id"] = {k: {v} for k, v in ext.items()}
        for kind in ("email", "phone"):
            if kind in self.match_keys:
                found[kind] = repo.live_customers_by_contact(
                    conn, kind, [k for _, _, ks in prepared for k in ks.get(kind, ())]
                )

        planned: list[_Planned] = []
        seen_in_batch: dict[tuple[str, str], int] = {}
        seen_external: dict[str, int] = {}
        unmatched: list[int] = []
        for index, (line, item, keys) in enumerate(prepared):
            match: int | None = None
            problem: Rejection | None = None
            for key in self.match_keys:
                ids: set[int] = set()
                hits = found.get(key)
                if hits:
                    for k in keys.get(key, ()):
                        if got := hits.get(k):
                            ids |= got
                if len(ids) > 1:
                    problem = Rejection(
                        line,
                        self._key_column(key),
                        key,
                        f"matches {len(ids)} customers by {key}; merge them first",
                    )
                    break
                if ids:
                    (cid,) = ids
                    if match is None:
                        match = cid
                    elif cid != match:
                        problem = Rejection(
                            line,
                            self._key_column(key),
                            key,
                            f"{key} matches another customer than {self.match_keys[0]} does",
                        )
                        break
            if problem is None:
                for key, digests in keys.items():
                    for d in digests:
                        earlier = seen_in_batch.get((key, d))
                        if earlier is not None:
                            problem = Rejection(
                                line, self._key_column(key), key, f"same {key} as line {earlier} of this file"
                            )
                            break
                    if problem:
                        break
            if problem is None and item.external_id:
                earlier = seen_external.get(item.external_id)
                if earlier is not None:
                    problem = Rejection(
                        line,
                        self._key_column("external_id"),
                        "external_id",
                        f"same external_id as line {earlier}",
                    )
            if problem is not None:
                result.rejections.append(problem)
                continue
            if item.external_id:
                seen_external[item.external_id] = line
            for key, digests in keys.items():
                for d in digests:
                    seen_in_batch[(key, d)] = line
            planned.append(_Planned(line, item, index, match))
            if match is None:
                unmatched.append(len(planned) - 1)

        if self.matcher is not None and unmatched and self.mode != "create":
            candidates = self.matcher(self.recs.session, [planned[i].row.model_dump() for i in unmatched])
            best: dict[int, IncomingMatch] = {}
            for m in candidates:
                if m.probability >= MATCHER_THRESHOLD and (
                    m.index not in best or m.probability > best[m.index].probability
                ):
                    best[m.index] = m
            for index, m in best.items():
                planned[unmatched[index]].customer_id = int(m.customer_id)

        matched = [p.customer_id for p in planned if p.customer_id is not None]
        visible: set[int] = set()
        touched: set[int] = set()
        if matched:
            c = CUSTOMER.table
            visible.update(
                int(r[0])
                for r in conn.execute(
                    select(c.c.id).where(repo.among(conn, c.c.id, matched), self.recs.visible(CUSTOMER))
                )
            )
            if self.job_id is not None:
                touched = repo.customers_touched_by_job(conn, self.job_id, matched)
        current = repo.rows_by_id(conn, CUSTOMER.table, (*CUSTOMER_COLUMNS, "version"), matched)
        tags = repo.tags_of(conn, matched)
        contacts = repo.contact_digests_of(conn, matched)
        externals = repo.external_ids_of(conn, matched)
        org_names = {p.row.organisation for p in planned if p.row.organisation}
        orgs = repo.organisations_by_name(conn, sorted(org_names)) if org_names else {}
        new_orgs = sorted(n for n in org_names if n not in orgs)

        # External ids are unique: one held by another customer (a deleted one too) refuses the row.
        owners = repo.external_id_owners(conn, [p.row.external_id for p in planned if p.row.external_id])
        creates: list[_Planned] = []
        updates: list[_Planned] = []
        unchanged: list[int] = []
        for p in planned:
            owner = owners.get(p.row.external_id) if p.row.external_id else None
            if owner is not None and owner != p.customer_id:
                result.rejections.append(
                    Rejection(
                        p.line,
                        self._key_column("external_id"),
                        "external_id",
                        f"external_id already belongs to customer {owner}",
                    )
                )
                continue
            if p.customer_id is None:
                if self.mode == "update":
                    column = next((self._key_column(k) for k in self.match_keys if self._key_column(k)), None)
                    result.rejections.append(
                        Rejection(
                            p.line,
                            column,
                            None,
                            f"no customer matches by {', '.join(self.match_keys)} (mode update)",
                        )
                    )
                    continue
                creates.append(p)
                continue
            cid = p.customer_id
            if cid not in visible:
                result.rejections.append(
                    Rejection(p.line, None, None, "matches a customer outside your record scope")
                )
                continue
            if cid in touched:
                result.rejections.append(
                    Rejection(
                        p.line,
                        None,
                        None,
                        f"matches customer {cid}, which this import already wrote (duplicate row)",
                    )
                )
                continue
            self._diff(
                p,
                current[cid],
                tags.get(cid, set()),
                contacts.get(cid, set()),
                externals.get(cid, set()),
                orgs,
                new_orgs,
            )
            if not (p.changes or p.new_contacts or p.new_tags or p.new_external):
                result.unchanged += 1
                unchanged.append(cid)
                if dry_run:
                    result.preview.append(_preview(p.line, "unchanged", cid, p.row))
                continue
            if self.mode == "create":
                result.rejections.append(
                    Rejection(
                        p.line,
                        None,
                        None,
                        f"customer {cid} exists with other values (mode create never updates)",
                    )
                )
                continue
            updates.append(p)

        if dry_run:
            for p in creates:
                result.preview.append(_preview(p.line, "create", None, p.row))
            for p in updates:
                changed = (
                    sorted(p.changes)
                    + (["contact_points"] if p.new_contacts else [])
                    + (["tags"] if p.new_tags else [])
                )
                result.preview.append(_preview(p.line, "update", p.customer_id, p.row, changed))
            result.created, result.updated = len(creates), len(updates)
            result.preview.sort(key=lambda r: r["line"])
            return result

        org_ids = dict(orgs)
        if new_orgs:
            org_ids.update(self._create_organisations(new_orgs))
        if creates:
            self._insert(creates, org_ids, batch.term_order)
        if updates:
            self._update(updates, org_ids, current, tags)
        # Matched but equal: remembered (no before-image) so a later duplicate row of the same file
        # is refused on every run alike, which keeps a re-run from changing anything.
        self._changes("customer", "matched", [(cid, None, None) for cid in unchanged])
        result.created, result.updated = len(creates), len(updates)
        return result

    def _key_column(self, key: str) -> str | None:
        return self.preparer.column_of(key)

    def _diff(
        self,
        p: _Planned,
        cur: dict[str, Any],
        tags: set[str],
        contacts: set[tuple[str, str]],
        externals: set[str],
        orgs: dict[str, int],
        new_orgs: list[str],
    ) -> None:
        for column, value in _columns_of(p.row, self.mapped).items():
            if cur.get(column) != value:
                p.changes[column] = value
        if p.row.organisation:
            org = orgs.get(p.row.organisation)
            if org is None or cur.get("organisation_id") != org:
                p.changes["organisation_id"] = org if org is not None else ("new", p.row.organisation)
        if self.may_add_contacts:
            for kind, value, normalised, extra in _contacts_of(p.row):
                digest = self._bidx(kind, normalised)
                if (kind, digest) not in contacts:
                    contacts.add((kind, digest))
                    p.new_contacts.append((kind, value, normalised, extra))
        p.new_tags = [t for t in p.row.tags if t not in tags]
        if p.row.external_id and p.row.external_id not in externals:
            p.new_external = p.row.external_id

    # -- writing -------------------------------------------------------------------------------

    def _create_organisations(self, names: list[str]) -> dict[str, int]:
        recs, conn = self.recs, self.recs.conn
        recs.require(ORGANISATION, Action.create)
        now, p = utcnow(), recs.principal
        ids = repo.allocate_ids(conn, ORGANISATION.table, len(names))
        rows: list[dict[str, Any]] = [
            {
                "id": ids[i],
                "name": n,
                "lifecycle_stage": "customer",
                "attributes": {},
                "owner_id": p.user_id,
                "team_id": p.team_id,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            for i, n in enumerate(names)
        ]
        repo.insert_many(conn, ORGANISATION.table, rows)
        self._changes("organisation", "created", [(r["id"], None, 1) for r in rows])
        recs.audit(
            "import_create",
            "organisation",
            None,
            details={"job": self.job_id, "ids": [r["id"] for r in rows]},
        )
        return {r["name"]: r["id"] for r in rows}

    def _insert(
        self, creates: list[_Planned], org_ids: dict[str, int], term_order: list[tuple[str, int]]
    ) -> None:
        recs, conn = self.recs, self.recs.conn
        now, p = utcnow(), recs.principal
        new_ids = repo.allocate_ids(conn, CUSTOMER.table, len(creates))
        # Rows as tuples in _CREATE_COLUMNS order, values as the driver binds them (no dict per row,
        # no per-row type conversion): the batch's constants are converted once.
        stamp, attributes = repo.bind_value(conn, now), repo.bind_value(conn, {})
        owner, team = p.user_id, p.team_id
        mapped = [c in self.mapped for c in PROFILE_COLUMNS]
        customers: list[tuple[Any, ...]] = []
        tag_rows: list[tuple[int, str]] = []
        ext_rows: list[tuple[str, int]] = []
        contact_plain: list[tuple[int, str, str, str, dict[str, Any], bool]] = []
        for cid, plan in zip(new_ids, creates, strict=True):
            plan.customer_id = cid
            row = plan.row
            v = [getattr(row, c) if m else None for c, m in zip(PROFILE_COLUMNS, mapped, strict=True)]
            v[_DISPLAY] = row.display_name
            if row.address:
                if not v[_REGION]:
                    v[_REGION] = row.address.region
                if not v[_CITY]:
                    v[_CITY] = row.address.city
            v[_STAGE] = v[_STAGE] or "lead"
            if v[_BIRTH] is not None:
                v[_BIRTH] = repo.bind_value(conn, v[_BIRTH])
            org = org_ids.get(row.organisation) if row.organisation else None
            customers.append((*v, org, cid, owner, team, attributes, stamp, stamp, 1))
            tag_rows.extend((cid, t) for t in row.tags)
            if row.external_id:
                ext_rows.append((row.external_id, cid))
            if self.may_add_contacts:
                primaries: set[str] = set()
                for kind, value, normalised, extra in _contacts_of(row):
                    contact_plain.append((cid, kind, value, normalised, extra, kind not in primaries))
                    primaries.add(kind)
        repo.insert_tuples(conn, CUSTOMER.table, _CREATE_COLUMNS, customers)
        # In key order: consecutive inserts land on the same index pages instead of ~8 random ones
        # per customer (the primary key is (term, customer_id)). The batch's terms come sorted by
        # (term, item index), and ids grow with the index, so this keeps that order.
        cid_at = {plan.index: cid for cid, plan in zip(new_ids, creates, strict=True)}
        terms = [(t, c) for t, i in term_order if (c := cid_at.get(i)) is not None]
        repo.insert_tuples(conn, TERMS, ("term", "customer_id"), terms)
        repo.insert_tuples(conn, repo.TAGS, ("customer_id", "tag"), tag_rows)
        repo.insert_tuples(conn, repo.EXTERNAL, ("external_id", "customer_id"), ext_rows)
        self._insert_contacts(contact_plain, now)
        note_rows = [
            {
                "customer_id": plan.customer_id,
                "kind": "note",
                "direction": "internal",
                "channel": None,
                "author_id": p.user_id,
                "occurred_at": now,
                "subject": "imported note",
                "body": plan.row.note,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            for plan in creates
            if plan.row.note
        ]
        if note_rows:
            repo.insert_many(conn, INTERACTION.table, note_rows)
        ids = list(new_ids)
        self._changes("customer", "created", [(cid, None, 1) for cid in ids])
        recs.audit(
            "import_create",
            "customer",
            None,
            fields=sorted(self.mapped),
            details={"job": self.job_id, "ids": ids},
        )
        _emit_many(recs.session, "customer.created", ids)

    def _insert_contacts(
        self, plain: list[tuple[int, str, str, str, dict[str, Any], bool]], now: dt.datetime
    ) -> list[int]:
        if not plain:
            return []
        recs, conn = self.recs, self.recs.conn
        recs.require(CONTACT_POINT, Action.create)
        ring = keyring_for(recs.session, for_write=True)
        new_ids = repo.allocate_ids(conn, CONTACT_POINT.table, len(plain))
        # One seal call per column for the whole batch (one random draw for its nonces).
        pairs = list(zip(new_ids, plain, strict=True))
        values = ring.seal_many("contact_point", "value", [(i, p[2]) for i, p in pairs])
        normalised = ring.seal_many("contact_point", "value_normalized", [(i, p[3]) for i, p in pairs])
        districts = ring.seal_many("contact_point", "district", [(i, p[4].get("district")) for i, p in pairs])
        stamp = repo.bind_value(conn, now)
        rows = [
            (
                rid,
                cid,
                kind,
                None,
                values[n],
                normalised[n],
                self._bidx(kind, norm_value),
                extra.get("country"),
                extra.get("region"),
                extra.get("city"),
                districts[n],
                None,
                primary,
                False,
                stamp,
                stamp,
                1,
            )
            for n, (rid, (cid, kind, _value, norm_value, extra, primary)) in enumerate(pairs)
        ]
        repo.insert_tuples(conn, CONTACT_POINT.table, _CONTACT_COLUMNS, rows)
        return new_ids

    def _update(
        self,
        updates: list[_Planned],
        org_ids: dict[str, int],
        current: dict[int, dict[str, Any]],
        tags: dict[int, set[str]],
    ) -> None:
        recs, conn = self.recs, self.recs.conn
        now = utcnow()
        if any(u.new_contacts for u in updates):
            recs.require(CONTACT_POINT, Action.create)
        rows: list[dict[str, Any]] = []
        changes: list[list[Any]] = []
        term_rows: list[dict[str, Any]] = []
        renamed: list[int] = []
        contact_plain: list[tuple[int, str, str, str, dict[str, Any], bool]] = []
        owners: list[int] = []
        tag_rows: list[dict[str, Any]] = []
        ext_rows: list[dict[str, Any]] = []
        for u in updates:
            cid = u.customer_id
            assert cid is not None
            cur = current[cid]
            if isinstance(u.changes.get("organisation_id"), tuple):
                u.changes["organisation_id"] = org_ids[u.changes["organisation_id"][1]]
                if u.changes["organisation_id"] == cur.get("organisation_id"):
                    del u.changes["organisation_id"]
            new = {c: u.changes.get(c, cur.get(c)) for c in CUSTOMER_COLUMNS}
            rows.append(
                {
                    "b_id": cid,
                    "b_version": cur["version"],
                    **{f"v_{c}": new[c] for c in CUSTOMER_COLUMNS},
                    "v_updated_at": now,
                    "v_version": cur["version"] + 1,
                }
            )
            before: dict[str, Any] = {"columns": {c: _jsonable(cur.get(c)) for c in u.changes}}
            if u.new_tags:
                before["tags_added"] = u.new_tags
                tag_rows.extend({"customer_id": cid, "tag": t} for t in u.new_tags)
            if u.new_external:
                before["external_ids_added"] = [u.new_external]
                ext_rows.append({"external_id": u.new_external, "customer_id": cid})
            for kind, value, normalised, extra in u.new_contacts:
                contact_plain.append((cid, kind, value, normalised, extra, False))
                owners.append(len(changes))
            changes.append([cid, before, cur["version"] + 1])
            if any(n in u.changes for n in _NAME_COLUMNS):
                renamed.append(cid)
                term_rows.extend(
                    {"term": t, "customer_id": cid} for t in search_terms(*(new[n] for n in _NAME_COLUMNS))
                )
        done = repo.update_rows(conn, CUSTOMER.table, rows, (*CUSTOMER_COLUMNS, "updated_at", "version"))
        if done != len(rows):
            raise RapportError("a customer changed while the import batch ran; the batch is retried")
        contact_ids = self._insert_contacts(contact_plain, now)
        for owner, contact_id in zip(owners, contact_ids, strict=True):
            changes[owner][1].setdefault("contacts_added", []).append(contact_id)
        repo.insert_many(conn, repo.TAGS, tag_rows)
        repo.insert_many(conn, repo.EXTERNAL, ext_rows)
        for part in repo.chunks(renamed):
            conn.execute(delete(TERMS).where(TERMS.c.customer_id.in_(part)))
        repo.insert_many(conn, TERMS, term_rows)
        self._changes("customer", "updated", [(c[0], c[1], c[2]) for c in changes])
        ids = [c[0] for c in changes]
        fields = sorted({f for u in updates for f in u.changes} | ({"tags"} if tag_rows else set()))
        recs.audit("import_update", "customer", None, fields=fields, details={"job": self.job_id, "ids": ids})
        _emit_many(recs.session, "customer.updated", ids)

    def _changes(self, entity: str, action: str, items: Sequence[tuple[int, Any, int | None]]) -> None:
        if self.job_id is None:
            return
        repo.insert_many(
            self.recs.conn,
            repo.CHANGES,
            [
                {
                    "job_id": self.job_id,
                    "entity": entity,
                    "record_id": rid,
                    "action": action,
                    "before": before,
                    "after_version": version,
                }
                for rid, before, version in items
            ],
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _preview(
    line: int,
    outcome: str,
    customer_id: int | None = None,
    row: Incoming | None = None,
    changes: list[str] | None = None,
    errors: list[Rejection] | None = None,
) -> dict[str, Any]:
    return {
        "line": line,
        "outcome": outcome,
        "customer_id": customer_id,
        "values": row.model_dump(mode="json", exclude_defaults=True) if row is not None else {},
        "changes": changes or [],
        "errors": [{"column": e.column, "field": e.field, "reason": e.reason} for e in errors or []],
    }


def _emit_many(session: Session, event: str, ids: list[int]) -> None:
    """Webhook deliveries for many records with one subscriptions query (none: no rows)."""
    if not ids:
        return
    subs = session.execute(
        select(WebhookSubscription.events).where(WebhookSubscription.active.is_(True))
    ).scalars()
    if any(event in events for events in subs):
        for rid in ids:
            webhooks.emit(session, event, rid)


# -- orders -------------------------------------------------------------------------------------------

_SHANGHAI = ZoneInfo("Asia/Shanghai")


def _instant(text: str, day_first: bool) -> dt.datetime:
    raw = text.strip().replace("/", "-") if re.match(r"^\d{4}/", text.strip()) else text.strip()
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        value = dt.datetime.combine(norm.date(text, day_first), dt.time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_SHANGHAI)  # local time of the shop where no zone is written
    return value.astimezone(dt.UTC)


def _mapped_cells(
    row: Row, columns: dict[str, str], convert: dict[str, Callable[[str], Any]]
) -> tuple[dict[str, Any], list[Rejection]]:
    """The row's non-empty mapped cells by target, through ``convert`` where a target has a
    normaliser; every cell that fails to normalise is one rejection."""
    data: dict[str, Any] = {}
    errors: list[Rejection] = []
    for target, column in columns.items():
        text = row.values.get(column, "").strip()
        if not text:
            continue
        try:
            fn = convert.get(target)
            data[target] = fn(text) if fn else text
        except norm.NormaliseError as exc:
            errors.append(Rejection(row.line, column, target, exc.reason))
    return data, errors


def _validated(row: Row, columns: dict[str, str], model: Any, data: dict[str, Any]) -> Any:
    """``model`` validated from ``data``, or one rejection per field Pydantic refused."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        out = []
        for e in exc.errors(include_url=False):
            target = str(e["loc"][0]) if e["loc"] else ""
            msg = "required" if e["type"] == "missing" else str(e["msg"]).removeprefix("Value error, ")
            out.append(Rejection(row.line, columns.get(target), target, msg))
        return out


class OrderImporter:
    """Orders with their lines: one order per order number, its lines on consecutive rows."""

    def __init__(
        self,
        recs: Records,
        *,
        job_id: int | None,
        mapping: dict[str, str | None],
        mode: str,
        match_keys: Sequence[str],
        day_first: bool = True,
    ) -> None:
        self.recs = recs
        self.job_id = job_id
        self.mode = mode
        self.match_keys = list(match_keys)
        self.columns: dict[str, str] = {t: c for c, t in mapping.items() if t}
        self.day_first = day_first
        self.region = get_settings().default_phone_region
        self.convert: dict[str, Callable[[str], Any]] = {
            "ordered_at": lambda text: _instant(text, self.day_first),
            "customer_phone": lambda text: norm.phone(text, self.region),
            "customer_email": norm.email,
        }
        if mode in ("create", "upsert"):
            recs.require(ORDER, Action.create)
        if mode in ("update", "upsert"):
            recs.require(ORDER, Action.update)

    def order_key(self, row: Row) -> str:
        column = self.columns.get("order_number")
        return row.values.get(column, "").strip() if column else str(row.line)

    def _line(self, row: Row) -> OrderLineImportRow | list[Rejection]:
        data, errors = _mapped_cells(row, self.columns, self.convert)
        if errors:
            return errors
        line: OrderLineImportRow | list[Rejection] = _validated(row, self.columns, OrderLineImportRow, data)
        return line

    def apply(self, rows: Sequence[Row], *, dry_run: bool = False) -> BatchResult:
        result = BatchResult()
        recs, conn = self.recs, self.recs.conn
        groups: dict[str, list[Row]] = {}
        for row in rows:
            groups.setdefault(self.order_key(row), []).append(row)
        parsed: list[tuple[str, list[Row], list[OrderLineImportRow]]] = []
        for number, group in groups.items():
            lines, bad = [], []
            for row in group:
                out = self._line(row)
                if isinstance(out, list):
                    bad.extend(out)
                else:
                    lines.append(out)
            if bad:
                result.rejections.extend(bad)
                bad_lines = {b.line for b in bad}
                result.rejections.extend(
                    Rejection(r.line, None, None, f"order {number} has an invalid line ({min(bad_lines)})")
                    for r in group
                    if r.line not in bad_lines
                )
                continue
            parsed.append((number, group, lines))
        skus = sorted({ln.sku for _, _, ls in parsed for ln in ls})
        products = {}
        pt = PRODUCT.table
        for part in repo.chunks(skus):
            products.update(
                {r.sku: r.id for r in conn.execute(select(pt.c.sku, pt.c.id).where(pt.c.sku.in_(part)))}
            )
        ot = ORDER.table
        existing = {}
        for part in repo.chunks(sorted(groups)):
            existing.update(
                {
                    r.order_number: r
                    for r in conn.execute(
                        select(ot.c.id, ot.c.order_number, ot.c.status, ot.c.version, ot.c.customer_id).where(
                            ot.c.order_number.in_(part)
                        )
                    )
                }
            )
        ext = repo.live_customers_by_external_id(
            conn, [ls[0].customer_external_id for _, _, ls in parsed if ls[0].customer_external_id]
        )
        emails = repo.live_customers_by_contact(
            conn,
            "email",
            [blind_index("email", ls[0].customer_email) for _, _, ls in parsed if ls[0].customer_email],
        )
        phones = repo.live_customers_by_contact(
            conn,
            "phone",
            [blind_index("phone", ls[0].customer_phone) for _, _, ls in parsed if ls[0].customer_phone],
        )
        now = utcnow()
        created_ids: list[int] = []
        updated: list[tuple[int, Any, int]] = []

        def reject_all(group: list[Row], column: str | None, target: str | None, reason: str) -> None:
            result.rejections.extend(Rejection(r.line, column, target, reason) for r in group)

        for number, group, lines in parsed:
            head = lines[0]
            if any(
                (
                    ln.customer_external_id,
                    ln.customer_email,
                    ln.customer_phone,
                    ln.ordered_at,
                    ln.status,
                    ln.channel,
                    ln.currency,
                )
                != (
                    head.customer_external_id,
                    head.customer_email,
                    head.customer_phone,
                    head.ordered_at,
                    head.status,
                    head.channel,
                    head.currency,
                )
                for ln in lines
            ):
                reject_all(
                    group,
                    self.columns.get("order_number"),
                    "order_number",
                    f"the lines of order {number} disagree on the customer, time, status, "
                    "channel or currency",
                )
                continue
            old = existing.get(number)
            if old is not None:
                if old.status == head.status:
                    result.unchanged += 1
                elif self.mode == "create":
                    reject_all(
                        group,
                        self.columns.get("status"),
                        "status",
                        f"order {number} exists with another status (mode create never updates)",
                    )
                else:
                    if not dry_run:
                        conn.execute(
                            ORDER.table.update()
                            .where(ot.c.id == old.id, ot.c.version == old.version)
                            .values(status=head.status, updated_at=now, version=old.version + 1)
                        )
                    updated.append((old.id, {"columns": {"status": old.status}}, old.version + 1))
                    result.updated += 1
                continue
            if self.mode == "update":
                reject_all(
                    group,
                    self.columns.get("order_number"),
                    "order_number",
                    f"no order {number} (mode update)",
                )
                continue
            cid = self._customer(head, ext, emails, phones)
            if isinstance(cid, Rejection):
                reject_all(group, cid.column, cid.field, cid.reason)
                continue
            missing = [(r, ln) for r, ln in zip(group, lines, strict=True) if ln.sku not in products]
            if missing:
                for r, _ln in missing:
                    result.rejections.append(
                        Rejection(r.line, self.columns.get("sku"), "sku", "no product with this SKU")
                    )
                missing_lines = {m[0].line for m in missing}
                others = [r for r in group if r.line not in missing_lines]
                reject_all(others, None, None, f"order {number} has a line with an unknown SKU")
                continue
            try:
                body = OrderCreate(
                    order_number=number,
                    status=head.status,
                    channel=head.channel,
                    currency=head.currency,
                    ordered_at=head.ordered_at,
                    lines=[
                        OrderLineIn(
                            product_id=products[ln.sku],
                            quantity=ln.quantity,
                            unit_price=ln.unit_price,
                            discount_amount=ln.discount_amount,
                        )
                        for ln in lines
                    ],
                )
                priced, totals = price_lines(recs, body)
            except ValidationError as exc:
                e = exc.errors(include_url=False)[0]
                target = str(e["loc"][0])
                reject_all(
                    group, self.columns.get(target), target, str(e["msg"]).removeprefix("Value error, ")
                )
                continue
            except InvalidInput as exc:
                for err in exc.errors or []:
                    index = next((p for p in err["loc"] if isinstance(p, int)), 0)
                    target = "sku" if err["loc"][-1] == "product_id" else str(err["loc"][-1])
                    result.rejections.append(
                        Rejection(group[index].line, self.columns.get(target), target, err["message"])
                    )
                continue
            if dry_run:
                result.created += 1
                continue
            paid = head.status in ("paid", "shipped", "completed", "refunded")
            done = head.status in ("completed", "refunded")
            (order_id,) = repo.allocate_ids(conn, ORDER.table, 1)
            conn.execute(
                ORDER.table.insert().values(
                    id=order_id,
                    customer_id=cid,
                    order_number=number,
                    status=head.status,
                    channel=head.channel,
                    currency=head.currency,
                    ordered_at=head.ordered_at,
                    paid_at=head.ordered_at if paid else None,
                    completed_at=head.ordered_at if done else None,
                    created_at=now,
                    updated_at=now,
                    version=1,
                    **totals,
                )
            )
            order_repo.insert_lines(conn, order_id, priced)
            created_ids.append(order_id)
            result.created += 1
        if not dry_run:
            if self.job_id is not None:
                repo.insert_many(
                    conn,
                    repo.CHANGES,
                    [
                        {
                            "job_id": self.job_id,
                            "entity": "order",
                            "record_id": i,
                            "action": "created",
                            "before": None,
                            "after_version": 1,
                        }
                        for i in created_ids
                    ]
                    + [
                        {
                            "job_id": self.job_id,
                            "entity": "order",
                            "record_id": i,
                            "action": "updated",
                            "before": b,
                            "after_version": v,
                        }
                        for i, b, v in updated
                    ],
                )
            if created_ids:
                recs.audit("import_create", "order", None, details={"job": self.job_id, "ids": created_ids})
            if updated:
                recs.audit(
                    "import_update",
                    "order",
                    None,
                    fields=["status"],
                    details={"job": self.job_id, "ids": [u[0] for u in updated]},
                )
        return result

    def _customer(
        self,
        head: OrderLineImportRow,
        ext: dict[str, int],
        emails: dict[str, set[int]],
        phones: dict[str, set[int]],
    ) -> int | Rejection:
        found: int | None = None
        for key in self.match_keys:
            ids: set[int] = set()
            if key == "external_id" and head.customer_external_id and head.customer_external_id in ext:
                ids = {ext[head.customer_external_id]}
            elif key == "email" and head.customer_email:
                ids = emails.get(blind_index("email", head.customer_email), set())
            elif key == "phone" and head.customer_phone:
                ids = phones.get(blind_index("phone", head.customer_phone), set())
            target = {
                "external_id": "customer_external_id",
                "email": "customer_email",
                "phone": "customer_phone",
            }[key]
            if len(ids) > 1:
                return Rejection(
                    0, self.columns.get(target), target, f"matches {len(ids)} customers by {key}"
                )
            if ids:
                found = next(iter(ids))
                break
        if found is None:
            column = next(
                (
                    self.columns[t]
                    for t in ("customer_external_id", "customer_email", "customer_phone")
                    if t in self.columns
                ),
                None,
            )
            return Rejection(0, column, "customer", "no customer matches this order's customer columns")
        c = CUSTOMER.table
        visible = self.recs.conn.execute(
            select(func.count()).where(c.c.id == found, self.recs.visible(CUSTOMER))
        ).scalar_one()
        if not visible:
            return Rejection(0, None, "customer", "the customer is outside your record scope")
        return found


# -- organisations and interactions: row by row through the data-access layer -----------------------

INTERACTION_CUSTOMER_FIELDS = ("customer_external_id", "customer_email", "customer_phone")


class RecordImporter:
    """Organisations (matched by exact name) and interactions (customer found by the match keys).

    These files are small next to customer files, so each row goes through ``Records`` (scope,
    one audit event per record) rather than the bulk path. An interaction equal in customer,
    time, kind and subject to a stored one is unchanged; interactions are never updated.
    """

    def __init__(
        self,
        recs: Records,
        *,
        job_id: int | None,
        kind: str,
        mapping: dict[str, str | None],
        mode: str,
        match_keys: Sequence[str],
        day_first: bool = True,
    ) -> None:
        self.recs, self.job_id, self.kind, self.mode = recs, job_id, kind, mode
        self.match_keys = list(match_keys)
        self.columns: dict[str, str] = {t: c for c, t in mapping.items() if t}
        self.day_first = day_first
        self.region = get_settings().default_phone_region
        self.convert: dict[str, Callable[[str], Any]] = {
            "occurred_at": lambda text: _instant(text, self.day_first),
            "customer_phone": lambda text: fast_phone(text, self.region),
            "customer_email": fast_email,
            "name": norm.name,
        }

    def _data(self, row: Row) -> tuple[dict[str, Any], list[Rejection]]:
        return _mapped_cells(row, self.columns, self.convert)

    def _validate(self, row: Row, model: Any, data: dict[str, Any]) -> Any:
        return _validated(row, self.columns, model, data)

    def apply(self, rows: Sequence[Row], *, dry_run: bool = False) -> BatchResult:
        result = BatchResult()
        for row in rows:
            data, errors = self._data(row)
            if errors:
                result.rejections.extend(errors)
                continue
            if self.kind == "organisations":
                outcome = self._organisation(row, data, dry_run)
            else:
                outcome = self._interaction(row, data, dry_run)
            if isinstance(outcome, Rejection):
                result.rejections.append(outcome)
            elif isinstance(outcome, list):
                result.rejections.extend(outcome)
            elif outcome == "created":
                result.created += 1
            elif outcome == "updated":
                result.updated += 1
            else:
                result.unchanged += 1
        return result

    def _change(self, entity: str, action: str, record_id: int, before: Any, version: int) -> None:
        if self.job_id is None:
            return
        change = {
            "job_id": self.job_id,
            "entity": entity,
            "record_id": record_id,
            "action": action,
            "before": before,
            "after_version": version,
        }
        repo.insert_many(self.recs.conn, repo.CHANGES, [change])

    def _organisation(
        self, row: Row, data: dict[str, Any], dry_run: bool
    ) -> str | Rejection | list[Rejection]:
        body = self._validate(row, OrganisationCreate, data)
        if isinstance(body, list):
            return body
        values = body.model_dump(exclude_unset=True)
        existing = repo.organisations_by_name(self.recs.conn, [body.name]).get(body.name)
        if existing is None:
            if self.mode == "update":
                return Rejection(
                    row.line, self.columns.get("name"), "name", "no organisation with this name (mode update)"
                )
            if not dry_run:
                created = self.recs.create(ORGANISATION, {"attributes": {}, **values})
                self._change("organisation", "created", created["id"], None, 1)
            return "created"
        t = ORGANISATION.table
        cur = self.recs.conn.execute(select(t).where(t.c.id == existing)).mappings().one()
        changes = {k: v for k, v in values.items() if k != "name" and cur[k] != v}
        if not changes:
            return "unchanged"
        if self.mode == "create":
            return Rejection(
                row.line, None, None, f"organisation {existing} exists with other values (mode create)"
            )
        if not dry_run:
            after = self.recs.update(ORGANISATION, existing, changes, cur["version"])
            before = {"columns": {k: _jsonable(cur[k]) for k in changes}}
            self._change("organisation", "updated", existing, before, after["version"])
        return "updated"

    def _interaction(
        self, row: Row, data: dict[str, Any], dry_run: bool
    ) -> str | Rejection | list[Rejection]:
        body = self._validate(row, InteractionImportRow, data)
        if isinstance(body, list):
            return body
        conn = self.recs.conn
        cid: int | None = None
        for key in self.match_keys:
            ids: set[int] = set()
            if key == "external_id" and body.customer_external_id:
                ids = set(repo.live_customers_by_external_id(conn, [body.customer_external_id]).values())
            elif key in ("email", "phone") and getattr(body, f"customer_{key}"):
                digest = blind_index(key, getattr(body, f"customer_{key}"))
                ids = repo.live_customers_by_contact(conn, key, [digest]).get(digest, set())
            if len(ids) > 1:
                column = self.columns.get(f"customer_{key}")
                return Rejection(row.line, column, "customer", f"matches {len(ids)} customers by {key}")
            if ids:
                cid = next(iter(ids))
                break
        if cid is None:
            column = next((self.columns[t] for t in INTERACTION_CUSTOMER_FIELDS if t in self.columns), None)
            return Rejection(row.line, column, "customer", "no customer matches this row's customer columns")
        c = CUSTOMER.table
        if conn.execute(select(c.c.id).where(c.c.id == cid, self.recs.visible(CUSTOMER))).first() is None:
            return Rejection(row.line, None, "customer", "the customer is outside your record scope")
        i = INTERACTION.table
        subject = i.c.subject.is_(None) if body.subject is None else i.c.subject == body.subject
        same = conn.execute(
            select(i.c.id).where(
                i.c.customer_id == cid, i.c.occurred_at == body.occurred_at, i.c.kind == body.kind, subject
            )
        ).first()
        if same is not None:
            return "unchanged"
        if self.mode == "update":
            return Rejection(row.line, None, None, "interactions are only ever created (mode update)")
        if not dry_run:
            values = body.model_dump(exclude=set(INTERACTION_CUSTOMER_FIELDS))
            created = self.recs.create(
                INTERACTION, {**values, "customer_id": cid, "author_id": self.recs.principal.user_id}
            )
            self._change("interaction", "created", created["id"], None, 1)
        return "created"
