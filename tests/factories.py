"""Factories that insert rows directly (fast) and hand back ids and bearer headers."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, insert, select

from rapport.models import (
    ApiKey,
    AuthToken,
    ConsentEvent,
    ConsentState,
    ContactPoint,
    Customer,
    Interaction,
    Order,
    OrderLine,
    Organisation,
    PortalSession,
    PrivacyComplaint,
    Product,
    SharingAgreement,
    SharingPartner,
    Task,
    Team,
    User,
)
from rapport.models.base import table_of, utcnow
from rapport.security.crypto import blind_index
from rapport.security.keyring import allocate_id, open_rows, seal_values
from rapport.security.passwords import hash_password
from rapport.security.tokens import ACCESS_PREFIX, API_KEY_PREFIX, digest, new_secret

PASSWORD = "Blue-Lantern-Orbit-77"
_seq = itertools.count(1)


@lru_cache(maxsize=1)
def password_hash() -> str:
    return hash_password(PASSWORD)


def _stamp() -> dict[str, Any]:
    now = utcnow()
    return {"created_at": now, "updated_at": now, "version": 1}


class Factory:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _insert(self, model: Any, **values: Any) -> int:
        return int(self.conn.execute(insert(model).values(**values).returning(model.id)).scalar_one())

    def team(self, name: str | None = None) -> int:
        return self._insert(Team, name=name or f"team-{next(_seq)}", **_stamp())

    def user(
        self,
        role: str = "sales_rep",
        team_id: int | None = None,
        username: str | None = None,
        active: bool = True,
    ) -> int:
        n = next(_seq)
        return self._insert(
            User,
            username=username or f"{role}-{n}",
            display_name=f"User {n}",
            role=role,
            team_id=team_id,
            password_hash=password_hash(),
            is_active=active,
            preferred_language="zh-CN",
            **_stamp(),
        )

    def token(self, user_id: int, ttl: dt.timedelta = dt.timedelta(minutes=15)) -> str:
        secret = new_secret(ACCESS_PREFIX)
        now = utcnow()
        self.conn.execute(
            insert(AuthToken).values(
                token_hash=digest(secret),
                kind="access",
                user_id=user_id,
                family=f"f{next(_seq)}",
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return secret

    def auth(self, user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def api_key(self, user_id: int, scopes: list[str], name: str = "key") -> tuple[int, str]:
        """An API key of ``user_id``: its id and its secret (the bearer token)."""
        secret = new_secret(API_KEY_PREFIX)
        key_id = self._insert(
            ApiKey,
            name=name,
            prefix=secret[:12],
            key_hash=digest(secret),
            user_id=user_id,
            scopes=scopes,
            **_stamp(),
        )
        return key_id, secret

    def customer(self, owner_id: int | None = None, team_id: int | None = None, **kw: Any) -> int:
        values = {
            "display_name": f"客户{next(_seq)}",
            "lifecycle_stage": "customer",
            "attributes": {},
            **kw,
        }
        # created_at / updated_at may be given, e.g. to arrange retention cases.
        return self._insert(Customer, owner_id=owner_id, team_id=team_id, **{**_stamp(), **values})

    def organisation(self, owner_id: int | None = None, team_id: int | None = None, **kw: Any) -> int:
        values = {
            "name": f"公司{next(_seq)}",
            "lifecycle_stage": "customer",
            "attributes": {},
            **kw,
        }
        return self._insert(Organisation, owner_id=owner_id, team_id=team_id, **values, **_stamp())

    def contact(self, customer_id: int, kind: str = "phone", value: str = "+8613800138000", **kw: Any) -> int:
        """Sealed like the API stores it: ciphertext bound to the row id, plus the blind index."""
        table = table_of(ContactPoint)
        normalized = kw.pop("value_normalized", value.lower())
        values: dict[str, Any] = {
            "customer_id": customer_id,
            "kind": kind,
            "value": value,
            "value_normalized": normalized,
            "value_bidx": blind_index(kind, normalized),
            **kw,
            **_stamp(),
        }
        values["id"] = allocate_id(self.conn, table)
        seal_values(self.conn, table, values["id"], values)
        return self._insert(ContactPoint, **values)

    def contact_plain(self, contact_id: int) -> dict[str, Any]:
        """The decrypted row of a contact point, as the data-access layer reads it."""
        row = dict(
            self.conn.execute(select(ContactPoint.__table__).where(ContactPoint.id == contact_id))
            .mappings()
            .one()
        )
        open_rows(self.conn, table_of(ContactPoint), [row])
        return row

    def product(self, **kw: Any) -> int:
        n = next(_seq)
        values = {
            "sku": f"SKU-{n}",
            "name": f"产品{n}",
            "list_price": Decimal("99.00"),
            "unit_cost": Decimal("40.00"),
            "currency": "CNY",
            "is_active": True,
            **kw,
        }
        return self._insert(Product, **values, **_stamp())

    def order(self, customer_id: int, total: Decimal = Decimal("100.00"), **kw: Any) -> int:
        n = next(_seq)
        values = {
            "order_number": f"SO-{n}",
            "status": "completed",
            "channel": "online",
            "currency": "CNY",
            "total_amount": total,
            "cost_amount": total * Decimal("0.6"),
            "margin_amount": total * Decimal("0.4"),
            "ordered_at": utcnow(),
            **kw,
        }
        return self._insert(Order, customer_id=customer_id, **values, **_stamp())

    def order_line(
        self,
        order_id: int,
        product_id: int,
        quantity: int = 1,
        unit_price: Decimal = Decimal("100.00"),
    ) -> int:
        return self._insert(
            OrderLine,
            order_id=order_id,
            product_id=product_id,
            quantity=quantity,
            unit_price=unit_price,
            unit_cost=unit_price * Decimal("0.6"),
            discount_amount=Decimal("0"),
            line_total=unit_price * quantity,
        )

    def interaction(self, customer_id: int, author_id: int | None = None, **kw: Any) -> int:
        values = {
            "kind": "note",
            "direction": "internal",
            "occurred_at": utcnow(),
            "subject": "备注",
            "body": "客户询问发票",
            **kw,
        }
        return self._insert(Interaction, customer_id=customer_id, author_id=author_id, **values, **_stamp())

    def task(self, customer_id: int, assignee_id: int | None = None, **kw: Any) -> int:
        values = {
            "title": "回访",
            "status": "open",
            "priority": "normal",
            "due_at": utcnow() + dt.timedelta(days=1),
            **kw,
        }
        return self._insert(Task, customer_id=customer_id, assignee_id=assignee_id, **values, **_stamp())

    def consent(self, customer_id: int, purpose: str = "profiling", *, granted: bool = True) -> int:
        """One ledger entry and the current state it yields (no partner purposes)."""
        at = utcnow()
        event = self._insert(
            ConsentEvent,
            customer_id=customer_id,
            purpose=purpose,
            granted=granted,
            source="web_form",
            at=at,
            actor_kind="staff",
        )
        self.conn.execute(
            insert(ConsentState).values(
                customer_id=customer_id,
                purpose=purpose,
                partner_key=0,
                granted=granted,
                event_id=event,
                at=at,
            )
        )
        return event

    def partner(self, name: str | None = None, country: str = "CN") -> int:
        return self._insert(SharingPartner, name=name or f"伙伴{next(_seq)}", country=country, **_stamp())

    def agreement(self, partner_id: int, **kw: Any) -> int:
        now = utcnow()
        values = {
            "title": f"Agreement {next(_seq)}",
            "purposes": ["marketing", "service"],
            "data_categories": ["identity", "contact", "demographic", "reference"],
            "legal_basis": "consent",
            "valid_from": now - dt.timedelta(days=30),
            "valid_until": now + dt.timedelta(days=335),
            "cross_border": False,
            "impact_assessment_ref": "PIA-2026-001",
            **kw,
        }
        return self._insert(SharingAgreement, partner_id=partner_id, **values, **_stamp())

    def complaint(self, customer_id: int | None = None, **kw: Any) -> int:
        now = utcnow()
        values = {
            "channel": "email",
            "summary": "收到未经同意的营销短信",
            "status": "received",
            "received_at": now,
            "acknowledge_due_at": now + dt.timedelta(days=3),
            "resolve_due_at": now + dt.timedelta(days=15),
            **kw,
        }
        return self._insert(PrivacyComplaint, customer_id=customer_id, **values, **_stamp())

    def portal_token(self, customer_id: int, ttl: dt.timedelta = dt.timedelta(minutes=15)) -> str:
        """A privacy-portal session token, as if the customer had proved their address."""
        token = "rps_" + new_secret("")
        now = utcnow()
        self.conn.execute(
            insert(PortalSession).values(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                customer_id=customer_id,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return token

    def scalar(self, stmt: Any) -> Any:
        return self.conn.execute(stmt).scalar()

    def row(self, model: Any, record_id: int) -> Any:
        return self.conn.execute(select(model).where(model.id == record_id)).mappings().one()
