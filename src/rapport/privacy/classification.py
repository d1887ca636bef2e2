"""What personal data Rapport holds, why, and for how long: declared on the columns themselves.

Each column of a table that holds personal data carries ``info=pii(category, purposes=...)`` or
``info=not_personal(reason)``. ``info`` is SQLAlchemy metadata only, so declaring or changing a
classification never changes the schema. The declarations feed the record of processing
(PIPL art. 51-55, GDPR art. 30: ``rapport privacy inventory``) and later the subject-rights,
retention and encryption work, which must know which columns are identifying without a second
list that drifts from the models. A test fails when a column of a personal table is undeclared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Table

INFO_KEY = "privacy"


class Category(StrEnum):
    identity = "identity"
    contact = "contact"
    demographic = "demographic"
    behavioural = "behavioural"
    financial = "financial"
    free_text = "free_text"
    sensitive = "sensitive"
    online_identifier = "online_identifier"
    credential = "credential"
    reference = "reference"
    record_metadata = "record_metadata"


CATEGORY_MEANING: Mapping[Category, str] = {
    Category.identity: "names and other direct identifiers of a person (or text derived from them)",
    Category.contact: "ways to reach a person: phone, email, messaging ids, street address parts",
    Category.demographic: "coarse traits: gender, occupation, language, region or city",
    Category.behavioural: "what a person does or prefers: channels, stages, activity, segments",
    Category.financial: "amounts a person paid or owes and what they bought",
    Category.free_text: "text typed by staff or customers; may hold anything, identifiers included",
    Category.sensitive: "sensitive personal information (PIPL art. 28); needs a subtype",
    Category.online_identifier: "network and device identifiers such as IP addresses",
    Category.credential: "digests of secrets that authenticate a person",
    Category.reference: "internal ids that point at a person; pseudonymous, not identifying alone",
    Category.record_metadata: "when a person's record was written or changed; purpose follows the row",
}


class SensitiveKind(StrEnum):
    """PIPL art. 28 sensitive personal information (GDPR art. 9/10 overlap for health, religion)."""

    national_id = "national_id"
    financial_account = "financial_account"
    health = "health"
    precise_location = "precise_location"
    minor = "minor"  # any personal information of a child under 14 (PIPL art. 28, 31)
    biometric = "biometric"
    religion = "religion"


class Purpose(StrEnum):
    service = "service"
    sales = "sales"
    marketing = "marketing"
    profiling = "profiling"
    analytics = "analytics"
    legal_obligation = "legal_obligation"
    security = "security"
    administration = "administration"


PURPOSE_MEANING: Mapping[Purpose, str] = {
    Purpose.service: "serving the customer: answering, delivering, following up",
    Purpose.sales: "selling to the customer: pipeline, orders, account ownership",
    Purpose.marketing: "contacting the customer with offers (needs consent where required)",
    Purpose.profiling: "automated evaluation or segmentation of the person (PIPL art. 24)",
    Purpose.analytics: "aggregate, pseudonymised analysis",
    Purpose.legal_obligation: "records the law requires, e.g. accounting and tax",
    Purpose.security: "authentication, abuse prevention, audit trail",
    Purpose.administration: "running the workspace: staff accounts, teams, ownership",
}


class Protection(StrEnum):
    encrypted = "encrypted"
    blind_index = "blind_index"


PROTECTION_MEANING: Mapping[Protection, str] = {
    Protection.encrypted: "AES-256-GCM under a versioned data key wrapped by a master key kept outside "
    "the database; bound to its table, column and row",
    Protection.blind_index: "keyed HMAC-SHA256 of the normalised value (truncated): answers exact-match "
    "lookups, cannot be reversed without the key",
}


class Retention(StrEnum):
    relationship = "relationship"
    statutory_accounting = "statutory_accounting"
    staff_account = "staff_account"
    token_lifetime = "token_lifetime"
    security_log = "security_log"
    idempotency_window = "idempotency_window"
    derived = "derived"
    dsr_case = "dsr_case"


# What the retention rules of rapport.privacy.retention enforce (see `rapport privacy purge`).
RETENTION_MEANING: Mapping[Retention, str] = {
    Retention.relationship: "while the customer relationship lasts; erase or anonymise on request "
    "or after a period of inactivity",
    Retention.statutory_accounting: "the statutory accounting period of the operating jurisdiction; "
    "anonymise the buyer rather than delete the order",
    Retention.staff_account: "while the staff account exists; users are disabled, not deleted, "
    "because their ids stay in the audit chain",
    Retention.token_lifetime: "until expiry or revocation; purgeable afterwards",
    Retention.security_log: "at least six months (PRC Cybersecurity Law art. 21); append-only",
    Retention.idempotency_window: "24 hours, the idempotency replay window",
    Retention.derived: "follows the record it is derived from; rebuilt, never kept on its own",
    Retention.dsr_case: "the case is kept as proof the request was answered (3 years by default); its "
    "free text goes when the person is erased, a produced export when it expires",
}


@dataclass(frozen=True, slots=True)
class Classification:
    personal: bool
    category: Category | None = None
    purposes: tuple[Purpose, ...] = ()
    retention: Retention | None = None  # None: the table's retention
    subtype: SensitiveKind | None = None
    note: str = ""  # for personal columns an explanation; for the rest the reason they are not
    # At rest: "encrypted" (AES-GCM, rapport.security.crypto), "blind_index" (keyed HMAC digest,
    # equality lookups only) or None (stored as is).
    protection: Protection | None = None


def pii(
    category: str,
    *,
    purposes: Iterable[str],
    retention: str | None = None,
    subtype: str | None = None,
    note: str = "",
    protection: str | None = None,
) -> dict[str, Any]:
    """Column ``info`` for personal data; unknown words raise at import, so typos cannot ship."""
    cls = Classification(
        personal=True,
        category=Category(category),
        purposes=tuple(Purpose(p) for p in purposes),
        retention=Retention(retention) if retention is not None else None,
        subtype=SensitiveKind(subtype) if subtype is not None else None,
        note=note,
        protection=Protection(protection) if protection is not None else None,
    )
    problems = _problems_of(cls)
    if problems:
        raise ValueError("; ".join(problems))
    return {INFO_KEY: cls}


def not_personal(reason: str) -> dict[str, Any]:
    """Column ``info`` for a column of a personal table that says nothing about the person."""
    cls = Classification(personal=False, note=reason.strip())
    problems = _problems_of(cls)
    if problems:
        raise ValueError("; ".join(problems))
    return {INFO_KEY: cls}


def _problems_of(cls: Classification) -> list[str]:
    if not cls.personal:
        extra = cls.category or cls.purposes or cls.retention or cls.subtype or cls.protection
        return [
            *(["not_personal needs a reason"] if not cls.note.strip() else []),
            *(
                ["not_personal takes no category, purposes, retention, subtype or protection"]
                if extra
                else []
            ),
        ]
    found: list[str] = []
    if not isinstance(cls.category, Category):
        found.append(f"unknown category {cls.category!r}")
    if not cls.purposes:
        found.append("personal data needs at least one purpose")
    found += [f"unknown purpose {p!r}" for p in cls.purposes if not isinstance(p, Purpose)]
    if cls.retention is not None and not isinstance(cls.retention, Retention):
        found.append(f"unknown retention {cls.retention!r}")
    if cls.category == Category.sensitive and not isinstance(cls.subtype, SensitiveKind):
        found.append(f"sensitive data needs a known subtype, not {cls.subtype!r}")
    if cls.category != Category.sensitive and cls.subtype is not None:
        found.append("only sensitive data takes a subtype")
    if cls.protection is not None and not isinstance(cls.protection, Protection):
        found.append(f"unknown protection {cls.protection!r}")
    return found


def classification_of(column: Column[Any]) -> Classification | None:
    found = column.info.get(INFO_KEY)
    return found if isinstance(found, Classification) else None


@dataclass(frozen=True, slots=True)
class TableDecl:
    personal: bool
    reason: str
    subjects: tuple[str, ...] = ()  # whose data: "customer" (data subjects served) or "staff"
    retention: Retention | None = None


_CUSTOMER = ("customer",)
_STAFF = ("staff",)

# Every table of the schema, decided once: a new table fails the tests until it is added here.
TABLES: Mapping[str, TableDecl] = {
    "customer": TableDecl(True, "the person record: names, demographics", _CUSTOMER, Retention.relationship),
    "contact_point": TableDecl(
        True, "phones, emails, messaging ids, addresses", _CUSTOMER, Retention.relationship
    ),
    "customer_tag": TableDecl(True, "segment labels attached to a person", _CUSTOMER, Retention.relationship),
    "customer_search_term": TableDecl(
        True, "name fragments and pinyin derived from a person's names", _CUSTOMER, Retention.derived
    ),
    "interaction": TableDecl(
        True, "calls, messages and notes with a person", ("customer", "staff"), Retention.relationship
    ),
    "task": TableDecl(True, "follow-ups about a person", ("customer", "staff"), Retention.relationship),
    "sales_order": TableDecl(
        True, "a person's purchases and payments", _CUSTOMER, Retention.statutory_accounting
    ),
    "order_line": TableDecl(
        True,
        "what a person bought: a purchase history through its order",
        _CUSTOMER,
        Retention.statutory_accounting,
    ),
    "customer_score": TableDecl(
        True,
        "automated evaluations of a person (RFM segment, value, churn risk) written by analytics jobs",
        _CUSTOMER,
        Retention.derived,
    ),
    "app_user": TableDecl(True, "staff accounts: names, emails, logins", _STAFF, Retention.staff_account),
    "auth_token": TableDecl(True, "staff sessions with the client IP", _STAFF, Retention.token_lifetime),
    "api_key": TableDecl(
        True, "a staff member's keys and when they were used", _STAFF, Retention.staff_account
    ),
    "audit_event": TableDecl(
        True, "who did what to whose record, from which IP", ("customer", "staff"), Retention.security_log
    ),
    "idempotency_record": TableDecl(
        True,
        "replayable responses of creates, which echo the created person's record",
        ("customer", "staff"),
        Retention.idempotency_window,
    ),
    "data_subject_request": TableDecl(
        True,
        "requests people made to see, copy, correct, delete or restrict their data",
        ("customer", "staff"),
        Retention.dsr_case,
    ),
    "consent_event": TableDecl(
        True,
        "append-only ledger of each consent given or withdrawn, per purpose",
        _CUSTOMER,
        Retention.security_log,
    ),
    "consent_state": TableDecl(
        True, "current consent per purpose, derived from the ledger", _CUSTOMER, Retention.derived
    ),
    "processing_restriction": TableDecl(
        True, "whether a person restricted the processing of their data", _CUSTOMER, Retention.relationship
    ),
    "provision_log": TableDecl(
        True,
        "append-only log of provisions of personal data to partners",
        ("customer", "staff"),
        Retention.security_log,
    ),
    "privacy_complaint": TableDecl(
        True, "complaints about how a person's data is handled", ("customer", "staff"), Retention.relationship
    ),
    "portal_challenge": TableDecl(
        True,
        "one-time codes (digests) sent to a person proving control of an address",
        _CUSTOMER,
        Retention.token_lifetime,
    ),
    "portal_session": TableDecl(
        True, "a person's short-lived privacy-portal sessions", _CUSTOMER, Retention.token_lifetime
    ),
    "user_totp": TableDecl(True, "a staff member's second-factor secret", _STAFF, Retention.staff_account),
    "mfa_recovery_code": TableDecl(
        True,
        "digests of a staff member's recovery codes and when they were used",
        _STAFF,
        Retention.staff_account,
    ),
    "oidc_identity": TableDecl(
        True, "a staff member's subject id at the single sign-on provider", _STAFF, Retention.staff_account
    ),
    "webhook_delivery": TableDecl(
        True,
        "which customer record an event delivered to a receiver was about",
        _CUSTOMER,
        Retention.security_log,
    ),
    "customer_merge": TableDecl(
        True,
        "merges of duplicate person records: sealed before-images of every merged record, moved-row ids",
        _CUSTOMER,
        Retention.relationship,
    ),
    "customer_alias": TableDecl(
        True,
        "ids of merged person records and the survivor they resolve to",
        _CUSTOMER,
        Retention.relationship,
    ),
    "dedup_pair": TableDecl(
        True,
        "pairs of customers the duplicate detection scored as probably the same person",
        _CUSTOMER,
        Retention.derived,
    ),
    "import_change": TableDecl(
        True,
        "what each import created or updated, with the previous values of updated records (revert)",
        _CUSTOMER,
        Retention.derived,
    ),
    "customer_external_id": TableDecl(
        True, "a person's ids in the systems their data was imported from", _CUSTOMER, Retention.relationship
    ),
    "role_mfa_requirement": TableDecl(False, "which roles must use a second factor; about roles, not people"),
    "webhook_subscription": TableDecl(
        False, "receiver URLs and signing secrets configured by an administrator; no person's data"
    ),
    "organisation": TableDecl(
        False,
        "a legal entity's account (name, website, industry, location); the people at it are customer "
        "rows and its owner is a staff id whose data lives in app_user. A sole trader named after its "
        "owner is the exception to record as a customer, not here",
    ),
    "product": TableDecl(False, "the catalogue: nothing about any person"),
    "team": TableDecl(False, "names of sales or service teams, not of people"),
    "custom_field": TableDecl(
        False, "definitions of custom attributes; the values live in customer.attributes"
    ),
    "sharing_partner": TableDecl(False, "organisations data may be provided to: names and countries"),
    "sharing_agreement": TableDecl(
        False, "data-sharing agreements with organisations; no person's data, only categories and dates"
    ),
    "encryption_key": TableDecl(
        False, "versions of the field-encryption data key, each wrapped by the master key"
    ),
    "segment": TableDecl(
        False,
        "definitions of customer groups (rules over fields and scores); members are computed on "
        "demand in the analytics store and never stored; owner and team are staff ids as on organisation",
    ),
    "dedup_run": TableDecl(False, "duplicate-detection scans: threshold, counts, timings, model parameters"),
    "dedup_cluster": TableDecl(
        False,
        "review-queue entries (status, size, best probability); the customer ids live in dedup_pair, "
        "the decider is a staff id",
    ),
    "import_job": TableDecl(
        False,
        "import settings, counts and checkpoint; the staff id who started it is a reference as on segment",
    ),
    "import_rejection": TableDecl(
        False, "line, column and reason of refused import rows; never the cell's value"
    ),
    "dashboard_customer_count": TableDecl(
        False, "home dashboard rollup: customer counts per team, owner id, stage and region; no person"
    ),
    "dashboard_order_day": TableDecl(
        False, "home dashboard rollup: order sums per team, owner id, day and currency; no person"
    ),
    "dashboard_task_day": TableDecl(
        False, "home dashboard rollup: open-task counts per team, owner id and due day; no person"
    ),
    "saved_view": TableDecl(
        False,
        "a staff member's named list filters (stage, region, tag, owner, team, sort); search text, "
        "which could name a person, is never saved; the user is a staff id",
    ),
}


def personal_tables() -> tuple[str, ...]:
    return tuple(name for name, decl in TABLES.items() if decl.personal)


def problems(table: Table) -> list[str]:
    """Why the declarations of ``table`` are incomplete or invalid; empty when they hold."""
    decl = TABLES.get(table.name)
    if decl is None:
        return [f"{table.name}: not declared in TABLES as personal or not"]
    if not decl.reason.strip():
        return [f"{table.name}: table declaration needs a reason"]
    if not decl.personal:
        return []
    found: list[str] = []
    if not decl.subjects or decl.retention is None:
        found.append(f"{table.name}: a personal table needs subjects and a retention")
    for column in table.columns:
        raw = column.info.get(INFO_KEY)
        if raw is None:
            found.append(f"{table.name}.{column.name}: not classified (use pii(...) or not_personal(...))")
        elif not isinstance(raw, Classification):
            found.append(f"{table.name}.{column.name}: info[{INFO_KEY!r}] is not a Classification")
        else:
            found += [f"{table.name}.{column.name}: {p}" for p in _problems_of(raw)]
    return found


# What a pseudonymised reader must never receive: changes here ripple into the access policy tests.
IDENTIFYING = frozenset({Category.identity, Category.contact, Category.free_text, Category.sensitive})


def encrypted_columns(table: Table) -> tuple[str, ...]:
    """Columns of ``table`` stored encrypted (sealed per row by rapport.security.keyring)."""
    found = []
    for column in table.columns:
        cls = classification_of(column)
        if cls is not None and cls.protection == Protection.encrypted:
            found.append(column.name)
    return tuple(found)


def identifying_columns(table: Table) -> frozenset[str]:
    """Columns of ``table`` that identify a person directly or may hold anything (free text)."""
    found: set[str] = set()
    for column in table.columns:
        cls = classification_of(column)
        if cls is not None and cls.personal and cls.category in IDENTIFYING:
            found.add(column.name)
    return frozenset(found)
