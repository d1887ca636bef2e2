"""Retention: what Rapport keeps for how long, and the purge job that enforces it.

Rules (periods from settings, ``RAPPORT_RETENTION_*`` / ``RAPPORT_DSR_*``):

============================  ==========================================  ===============
rule                          what                                        action
============================  ==========================================  ===============
inactive_customers            customers with no update, interaction or    anonymise (the
                              order for N years (default 3)               erasure of
                                                                          rapport.privacy
                                                                          .erasure)
chat_transcripts              chat interactions older than 6 months       delete subject
                                                                          and body
interaction_bodies            any interaction older than 24 months        delete subject
                                                                          and body
dsr_exports                   exports produced for access/port requests,  delete
                              past their expiry (30 days)
dsr_case_texts                closed request cases older than 3 years     delete free text
auth_tokens                   tokens expired or revoked 30 days ago       delete
idempotency_keys              idempotency keys older than 24 hours        delete
============================  ==========================================  ===============

:func:`purge` runs every rule at one instant ``now`` (injectable, so tests freeze the clock), as
the system principal through the data-access layer, and writes one ``purge`` audit event listing
per rule the count and the ids it touched. ``dry_run`` computes the same lists and changes
nothing. Schedule it daily (README "Retention": cron line and systemd timer).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.orm import Session

from rapport.access.principal import SYSTEM
from rapport.config import Settings, get_settings
from rapport.http import IDEMPOTENCY_TTL
from rapport.models import (
    AuthToken,
    Customer,
    DataSubjectRequest,
    IdempotencyRecord,
    Interaction,
    Order,
)
from rapport.models.base import table_of, utcnow
from rapport.privacy.common import records
from rapport.privacy.erasure import erase_customer
from rapport.privacy.requests import add_months

# The audit event lists ids up to this many per rule (the count is always exact).
AUDIT_ID_LIMIT = 1000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    category: str
    action: str
    cutoff: dt.datetime
    description: str


@dataclass(slots=True)
class RuleResult:
    rule: str
    action: str
    cutoff: dt.datetime
    ids: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class PurgeReport:
    now: dt.datetime
    dry_run: bool
    results: list[RuleResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.results)

    def counts(self) -> dict[str, int]:
        return {r.rule: r.count for r in self.results}

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "rules": [{**asdict(r), "cutoff": r.cutoff.isoformat(), "count": r.count} for r in self.results],
        }


def rules(now: dt.datetime, settings: Settings | None = None) -> list[Rule]:
    s = settings or get_settings()
    return [
        Rule(
            "inactive_customers",
            "customer",
            "anonymise",
            add_months(now, -12 * s.retention_inactive_customer_years),
            f"customers without activity for {s.retention_inactive_customer_years} years",
        ),
        Rule(
            "chat_transcripts",
            "interaction",
            "delete subject and body",
            add_months(now, -s.retention_chat_months),
            f"chat transcripts older than {s.retention_chat_months} months",
        ),
        Rule(
            "interaction_bodies",
            "interaction",
            "delete subject and body",
            add_months(now, -s.retention_interaction_months),
            f"interaction texts older than {s.retention_interaction_months} months",
        ),
        Rule(
            "dsr_exports",
            "data_subject_request",
            "delete export",
            now,
            f"request exports past their expiry ({s.dsr_export_days} days after completion)",
        ),
        Rule(
            "dsr_case_texts",
            "data_subject_request",
            "delete free text",
            add_months(now, -12 * s.dsr_case_years),
            f"free text of request cases closed more than {s.dsr_case_years} years ago",
        ),
        Rule(
            "auth_tokens",
            "auth_token",
            "delete",
            now - dt.timedelta(days=s.retention_token_days),
            f"tokens expired or revoked more than {s.retention_token_days} days ago",
        ),
        Rule(
            "idempotency_keys",
            "idempotency_record",
            "delete",
            now - IDEMPOTENCY_TTL,
            "idempotency keys past their 24 hours",
        ),
    ]


def _ids(session: Session, stmt: Any) -> list[int]:
    return [int(r[0]) for r in session.execute(stmt)]


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _inactive_customers(session: Session, cutoff: dt.datetime) -> list[int]:
    c, i, o = table_of(Customer), table_of(Interaction), table_of(Order)
    recent_interaction = select(i.c.id).where(i.c.customer_id == c.c.id, i.c.occurred_at >= cutoff)
    recent_order = select(o.c.id).where(o.c.customer_id == c.c.id, o.c.ordered_at >= cutoff)
    return _ids(
        session,
        select(c.c.id)
        .where(
            c.c.erased_at.is_(None),
            c.c.updated_at < cutoff,
            ~recent_interaction.exists(),
            ~recent_order.exists(),
        )
        .order_by(c.c.id),
    )


def _texts(i: Any) -> ColumnElement[bool]:
    return or_(i.c.subject.is_not(None), i.c.body.is_not(None))


def _select(rule: Rule, session: Session) -> list[int]:
    cut = rule.cutoff
    i, d = table_of(Interaction), table_of(DataSubjectRequest)
    if rule.name == "inactive_customers":
        return _inactive_customers(session, cut)
    if rule.name == "chat_transcripts":
        return _ids(
            session,
            select(i.c.id).where(i.c.kind == "chat", i.c.occurred_at < cut, _texts(i)).order_by(i.c.id),
        )
    if rule.name == "interaction_bodies":
        return _ids(session, select(i.c.id).where(i.c.occurred_at < cut, _texts(i)).order_by(i.c.id))
    if rule.name == "dsr_exports":
        return _ids(
            session,
            select(d.c.id).where(d.c.export_body.is_not(None), d.c.export_expires_at <= cut).order_by(d.c.id),
        )
    if rule.name == "dsr_case_texts":
        texts = or_(d.c.details.is_not(None), d.c.extension_reason.is_not(None), d.c.resolution.is_not(None))
        closed = d.c.status.in_(("completed", "rejected"))
        return _ids(session, select(d.c.id).where(closed, d.c.completed_at < cut, texts).order_by(d.c.id))
    if rule.name == "auth_tokens":
        a = table_of(AuthToken)
        gone = or_(a.c.expires_at < cut, and_(a.c.revoked_at.is_not(None), a.c.revoked_at < cut))
        return _ids(session, select(a.c.id).where(gone).order_by(a.c.id))
    if rule.name == "idempotency_keys":
        k = table_of(IdempotencyRecord)
        return _ids(session, select(k.c.id).where(k.c.created_at < cut).order_by(k.c.id))
    raise ValueError(f"unknown retention rule {rule.name}")


def _apply(rule: Rule, session: Session, ids: Sequence[int], now: dt.datetime) -> None:
    i, d = table_of(Interaction), table_of(DataSubjectRequest)
    if rule.name == "inactive_customers":
        for cid in ids:
            erase_customer(session, cid, actor=SYSTEM, reason="retention:inactive_customers")
        return
    for chunk in _chunks(ids):
        if rule.name in ("chat_transcripts", "interaction_bodies"):
            session.execute(
                update(i)
                .where(i.c.id.in_(chunk))
                .values(subject=None, body=None, updated_at=now, version=i.c.version + 1)
            )
        elif rule.name == "dsr_exports":
            session.execute(update(d).where(d.c.id.in_(chunk)).values(export_body=None))
        elif rule.name == "dsr_case_texts":
            session.execute(
                update(d)
                .where(d.c.id.in_(chunk))
                .values(details=None, extension_reason=None, resolution=None)
            )
        elif rule.name == "auth_tokens":
            session.execute(delete(table_of(AuthToken)).where(table_of(AuthToken).c.id.in_(chunk)))
        elif rule.name == "idempotency_keys":
            k = table_of(IdempotencyRecord)
            session.execute(delete(k).where(k.c.id.in_(chunk)))


def purge(
    session: Session,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
    progress: Callable[[Rule, int], None] | None = None,
) -> PurgeReport:
    """Apply every retention rule at ``now`` in the caller's unit; audited unless ``dry_run``."""
    now = now or utcnow()
    report = PurgeReport(now, dry_run)
    for rule in rules(now, settings):
        ids = _select(rule, session)
        if ids and not dry_run:
            _apply(rule, session, ids, now)
        report.results.append(RuleResult(rule.name, rule.action, rule.cutoff, ids))
        if progress is not None:
            progress(rule, len(ids))
    if not dry_run:
        records(session, SYSTEM).audit(
            "purge",
            "retention",
            None,
            details={
                "now": now.isoformat(),
                "rules": {
                    r.rule: {
                        "count": r.count,
                        "ids": r.ids[:AUDIT_ID_LIMIT],
                        **({"ids_truncated": True} if r.count > AUDIT_ID_LIMIT else {}),
                    }
                    for r in report.results
                },
            },
        )
    return report


def touched_tables(report: PurgeReport) -> list[str]:
    """Tables the purge changed, for VACUUM on PostgreSQL."""
    from rapport.privacy.erasure import ERASED_TABLES

    by_rule = {
        "inactive_customers": ERASED_TABLES,
        "chat_transcripts": ("interaction",),
        "interaction_bodies": ("interaction",),
        "dsr_exports": ("data_subject_request",),
        "dsr_case_texts": ("data_subject_request",),
        "auth_tokens": ("auth_token",),
        "idempotency_keys": ("idempotency_record",),
    }
    out: list[str] = []
    for r in report.results:
        if r.count:
            out += [t for t in by_rule[r.rule] if t not in out]
    return out


__all__ = ["PurgeReport", "Rule", "RuleResult", "purge", "rules", "touched_tables"]
