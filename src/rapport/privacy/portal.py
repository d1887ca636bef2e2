"""The customer privacy portal: prove control of an address with a one-time code, then act.

* A code is sent only to a verified email or phone of exactly one live customer; the answer,
  the stored row and the rate limit are the same whether or not the address is known (no
  enumeration).
* Codes and session tokens are stored as digests; codes live ``portal_code_minutes``, die after
  ``portal_code_attempts`` wrong guesses or one use; sessions live ``portal_session_minutes``.
* A session shows what Rapport holds about the customer (no staff-only notes or staff-typed
  labels), lets them withdraw consent and file a data-subject request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.access.specs import CONTACT_POINT, CUSTOMER, INTERACTION, ORDER
from rapport.audit.chain import PendingEvent
from rapport.config import Settings
from rapport.db import record_audit
from rapport.errors import NotAuthenticated, RateLimited, invalid_field
from rapport.models.base import table_of, utcnow
from rapport.models.privacy import PortalChallenge, PortalSession
from rapport.privacy import consent
from rapport.privacy.outbox import Message, Notifier
from rapport.privacy.portability import CUSTOMER_FIELDS
from rapport.privacy.requests import RequestKind, open_request
from rapport.security.crypto import blind_index
from rapport.security.keyring import open_rows
from rapport.text import normalise_email, normalise_phone

CHALLENGES = table_of(PortalChallenge)
SESSIONS = table_of(PortalSession)
TOKEN_PREFIX = "rps_"
SAME_ANSWER = "If this address belongs to a customer and is verified, a code was sent to it."
BAD_CODE = "the code is wrong, expired or used up; ask for a new one"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _keyed(settings: Settings, purpose: str, value: str) -> str:
    key = hashlib.sha256(("portal:" + settings.resolved_secret_key()).encode()).digest()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def subject_principal(customer_id: int, ip: str | None, request_id: str | None) -> Principal:
    """The customer acting on their own data. The role is the least privileged one and unused:
    portal code reads only this customer's rows and never goes through staff grants."""
    return Principal(
        user_id=None,
        username=f"customer:{customer_id}",
        role=Role.data_analyst,
        team_id=None,
        kind="data_subject",
        ip=ip,
        request_id=request_id,
        extra={"customer_id": str(customer_id)},
    )


def _audit(
    session: Session,
    action: str,
    customer_id: int | None,
    ip: str | None,
    rid: str | None,
    outcome: str = "ok",
    **details: Any,
) -> None:
    record_audit(
        session,
        PendingEvent(
            action=action,
            resource="privacy_portal",
            record_id=None if customer_id is None else str(customer_id),
            actor_kind="data_subject",
            outcome=outcome,
            ip=ip,
            request_id=rid,
            details=details,
        ),
    )


def normalise_address(address: str, settings: Settings) -> tuple[str, str]:
    text = address.strip()
    try:
        if "@" in text:
            return "email", normalise_email(text)
        return "phone", normalise_phone(text, settings.default_phone_region)
    except ValueError as exc:
        raise invalid_field("address", str(exc)) from None


def _owner_of(session: Session, kind: str, value: str) -> int | None:
    cp, c = CONTACT_POINT.table, CUSTOMER.table
    ids = set(
        session.execute(
            select(cp.c.customer_id)
            .join(c, c.c.id == cp.c.customer_id)
            .where(
                cp.c.kind == kind,
                # Contact values are stored sealed: exact lookup goes through the keyed blind index.
                cp.c.value_bidx == blind_index(kind, value),
                cp.c.is_verified.is_(True),
                c.c.deleted_at.is_(None),
            )
        ).scalars()
    )
    # An address shared by several customers proves nothing about which one is asking.
    return ids.pop() if len(ids) == 1 else None


def start(
    session: Session,
    settings: Settings,
    notifier: Notifier,
    address: str,
    *,
    ip: str | None,
    request_id: str | None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Create a challenge (always) and send its code (only to a known, verified address)."""
    now = now or utcnow()
    kind, value = normalise_address(address, settings)
    address_hash = _keyed(settings, "address", f"{kind}:{value}")
    since = now - dt.timedelta(seconds=settings.portal_rate_window_seconds)
    t = CHALLENGES
    by_address = session.execute(
        select(func.count()).where(t.c.address_hash == address_hash, t.c.created_at >= since)
    ).scalar_one()
    by_ip = (
        session.execute(select(func.count()).where(t.c.ip == ip, t.c.created_at >= since)).scalar_one()
        if ip
        else 0
    )
    if by_address >= settings.portal_codes_per_address or by_ip >= settings.portal_codes_per_ip:
        _audit(session, "challenge", None, ip, request_id, outcome="denied", why="rate_limited")
        raise RateLimited(
            "too many codes requested; try again later",
            headers={"Retry-After": str(settings.portal_rate_window_seconds)},
        )
    customer_id = _owner_of(session, kind, value)
    handle = secrets.token_urlsafe(24)
    code = f"{secrets.randbelow(10**6):06d}"
    session.execute(
        t.insert().values(
            handle_hash=_digest(handle),
            address_hash=address_hash,
            customer_id=customer_id,
            code_hash=_keyed(settings, "code", f"{handle}:{code}"),
            attempts=0,
            created_at=now,
            expires_at=now + dt.timedelta(minutes=settings.portal_code_minutes),
            ip=ip,
        )
    )
    if customer_id is not None:
        minutes = settings.portal_code_minutes
        notifier.send(
            Message(
                channel=kind,
                to=value,
                subject="Rapport privacy code / 隐私验证码",
                body=f"{code} — valid {minutes} min / {minutes} 分钟内有效",
            )
        )
        _audit(session, "challenge", customer_id, ip, request_id, channel=kind)
    return {"challenge": handle, "expires_in": settings.portal_code_minutes * 60, "message": SAME_ANSWER}


def verify(
    session: Session,
    settings: Settings,
    handle: str,
    code: str,
    *,
    ip: str | None,
    request_id: str | None,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """A session token for a right, fresh code; None otherwise (the wrong guess is counted)."""
    now = now or utcnow()
    t = CHALLENGES
    row = session.execute(select(t).where(t.c.handle_hash == _digest(handle))).mappings().first()
    if row is None:
        return None
    usable = (
        row["consumed_at"] is None
        and row["expires_at"] > now
        and row["attempts"] < settings.portal_code_attempts
    )
    expected = row["code_hash"]
    right = hmac.compare_digest(expected, _keyed(settings, "code", f"{handle}:{code.strip()}"))
    if not usable or not right or row["customer_id"] is None:
        if usable:
            session.execute(update(t).where(t.c.id == row["id"]).values(attempts=t.c.attempts + 1))
        _audit(session, "verify", row["customer_id"], ip, request_id, outcome="denied")
        return None
    session.execute(update(t).where(t.c.id == row["id"]).values(consumed_at=now))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.execute(
        SESSIONS.insert().values(
            token_hash=_digest(token),
            customer_id=row["customer_id"],
            created_at=now,
            expires_at=now + dt.timedelta(minutes=settings.portal_session_minutes),
            ip=ip,
        )
    )
    _audit(session, "session_start", row["customer_id"], ip, request_id)
    return {"token": token, "token_type": "bearer", "expires_in": settings.portal_session_minutes * 60}


@dataclass(frozen=True, slots=True)
class Subject:
    customer_id: int
    session_id: int
    principal: Principal


def resolve(
    session: Session,
    token: str | None,
    *,
    ip: str | None,
    request_id: str | None,
    now: dt.datetime | None = None,
) -> Subject:
    if not token or not token.startswith(TOKEN_PREFIX):
        raise NotAuthenticated("send 'Authorization: Bearer <privacy session token>'")
    now = now or utcnow()
    row = session.execute(select(SESSIONS).where(SESSIONS.c.token_hash == _digest(token))).mappings().first()
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
        raise NotAuthenticated("privacy session unknown or expired; ask for a new code")
    cid = int(row["customer_id"])
    return Subject(cid, int(row["id"]), subject_principal(cid, ip, request_id))


def end(session: Session, subject: Subject) -> None:
    session.execute(update(SESSIONS).where(SESSIONS.c.id == subject.session_id).values(revoked_at=utcnow()))
    _audit(session, "session_end", subject.customer_id, subject.principal.ip, subject.principal.request_id)


# -- what the customer sees ----------------------------------------------------------------------

# What the person sees of their profile: the same fields their portability export carries.
_PROFILE = ("id", *CUSTOMER_FIELDS, "updated_at")
# Staff-typed labels ("wife's mobile") are staff notes, not data the customer gave.
_CONTACT = (
    "kind",
    "value",
    "country",
    "region",
    "city",
    "district",
    "postal_code",
    "is_primary",
    "is_verified",
)


def my_data(session: Session, subject: Subject) -> dict[str, Any]:
    cid = subject.customer_id
    c = CUSTOMER.table
    customer = session.execute(select(*(c.c[n] for n in _PROFILE)).where(c.c.id == cid)).mappings().one()
    cp = CONTACT_POINT.table
    contacts = [
        dict(r)
        for r in session.execute(
            select(cp.c.id, *(cp.c[n] for n in _CONTACT)).where(cp.c.customer_id == cid).order_by(cp.c.id)
        ).mappings()
    ]
    open_rows(session, cp, contacts)
    for row in contacts:
        del row["id"]
    o = ORDER.table
    agg = session.execute(
        select(
            func.count(o.c.id),
            func.coalesce(func.sum(o.c.total_amount), 0),
            func.min(o.c.ordered_at),
            func.max(o.c.ordered_at),
        ).where(o.c.customer_id == cid)
    ).one()
    recent = [
        dict(r)
        for r in session.execute(
            select(o.c.order_number, o.c.ordered_at, o.c.status, o.c.total_amount, o.c.currency)
            .where(o.c.customer_id == cid)
            .order_by(o.c.ordered_at.desc(), o.c.id.desc())
            .limit(50)
        ).mappings()
    ]
    i = INTERACTION.table
    # Internal notes are staff working notes about the customer, not exchanges with them.
    interactions = [
        dict(r)
        for r in session.execute(
            select(i.c.kind, i.c.direction, i.c.channel, i.c.occurred_at, i.c.subject)
            .where(i.c.customer_id == cid, i.c.kind != "note", i.c.direction != "internal")
            .order_by(i.c.occurred_at.desc(), i.c.id.desc())
            .limit(200)
        ).mappings()
    ]
    history = [
        {k: e[k] for k in ("purpose", "partner_id", "granted", "source", "at")}
        for e in consent.history(session, cid)
    ]
    summary = consent.summary(session, cid, frozenset({"reason"}))
    p = subject.principal
    _audit(session, "read", cid, p.ip, p.request_id, sections=["profile", "contacts", "consents", "orders"])
    return {
        "customer": dict(customer),
        "contact_points": contacts,
        "consents": summary,
        "consent_history": history,
        "orders": {
            "order_count": int(agg[0]),
            "total_amount": agg[1],
            "first_order_at": agg[2],
            "last_order_at": agg[3],
            "recent": recent,
        },
        "interactions": interactions,
    }


def withdraw(
    session: Session, subject: Subject, purpose: consent.Purpose, partner_id: int | None
) -> dict[str, Any]:
    event = consent.withdraw(
        session,
        subject.customer_id,
        purpose,
        source="privacy_portal",
        evidence=f"privacy portal session {subject.session_id}",
        actor=subject.principal,
        partner_id=partner_id,
    )
    return {
        "purpose": event.purpose,
        "partner_id": event.partner_id,
        "granted": event.granted,
        "at": event.at,
    }


def file_request(session: Session, subject: Subject, kind: str, details: str | None) -> dict[str, Any]:
    """Open a data-subject request (access, correct, delete, port, restrict) for this customer."""
    case = open_request(
        session,
        subject.customer_id,
        RequestKind(kind),
        channel="privacy_portal",
        details=details,
        actor=None,  # the person asked directly; the case records the portal as its channel
    )
    return {"kind": kind, "status": "received", "reference": str(case.id)}
