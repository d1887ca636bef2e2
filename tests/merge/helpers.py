"""A family of duplicate customers with something in every table that references customers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.customers.search import terms_for
from rapport.merge.relations import customer_references
from rapport.models import (
    Base,
    Customer,
    CustomerExternalId,
    CustomerScore,
    CustomerSearchTerm,
    CustomerTag,
    DataSubjectRequest,
    ProcessingRestriction,
)
from rapport.models.base import utcnow
from tests.factories import Factory

BOOKKEEPING = {"customer_merge", "customer_alias"}


@dataclass
class Family:
    team: int
    user: int
    survivor: int
    m1: int
    m2: int
    principal: Principal
    contacts: dict[str, int]


def principal(user_id: int, team_id: int | None, role: Role = Role.crm_specialist) -> Principal:
    return Principal(user_id=user_id, username=f"u{user_id}", role=role, team_id=team_id)


def _stamp(at: dt.datetime) -> dict[str, Any]:
    return {"created_at": at, "updated_at": at, "version": 1}


def family(factory: Factory) -> Family:
    conn = factory.conn
    team = factory.team()
    user = factory.user("crm_specialist", team)
    now = utcnow()
    old, older = now - dt.timedelta(days=30), now - dt.timedelta(days=60)
    s = factory.customer(
        user,
        team,
        display_name="王小明",
        family_name="王",
        given_name="小明",
        city="上海",
        acquisition_source="shop",
        attributes={"vip": "gold"},
        **_stamp(older),
    )
    m1 = factory.customer(
        user,
        team,
        display_name="王晓明",
        family_name="王",
        given_name="晓明",
        city="北京",
        occupation="工程师",
        acquisition_source="manual",
        attributes={"vip": "silver", "note": "首单"},
        **_stamp(old),
    )
    m2 = factory.customer(
        user,
        team,
        display_name="Wang Xiaoming",
        name_latin="Wang Xiaoming",
        city="深圳",
        acquisition_source="partner",
        **_stamp(now),
    )
    contacts = {
        "s_phone": factory.contact(s, "phone", "+8613800000001", is_primary=True),
        "m1_phone_dup": factory.contact(m1, "phone", "+8613800000001", is_primary=True),
        "m1_phone": factory.contact(m1, "phone", "+8613800000002", is_primary=True),
        "m1_email": factory.contact(m1, "email", "wang@example.com", is_primary=True),
        "m2_email": factory.contact(m2, "email", "xm@example.com", is_primary=True),
    }
    for cid, tags in ((s, ["vip"]), (m1, ["vip", "beijing"]), (m2, ["partner"])):
        conn.execute(insert(CustomerTag), [{"customer_id": cid, "tag": t} for t in tags])
    for cid in (s, m1, m2):
        factory.order(cid)
        factory.interaction(cid)
        factory.task(cid)
    factory.order(m1)
    for cid, kind in ((s, "rfm"), (m1, "rfm"), (m1, "clv")):
        conn.execute(
            insert(CustomerScore).values(
                customer_id=cid,
                kind=kind,
                value=1.0,
                label="x",
                details={},
                model_version="1",
                computed_at=now,
            )
        )
    conn.execute(
        insert(DataSubjectRequest).values(
            customer_id=m1,
            kind="access",
            status="received",
            jurisdiction="PIPL",
            channel="email",
            received_at=now,
            due_at=now + dt.timedelta(days=15),
            **_stamp(now),
        )
    )
    factory.complaint(m2)
    factory.consent(s, "marketing", granted=True)
    factory.consent(m1, "marketing", granted=False)
    factory.consent(m1, "profiling", granted=True)
    factory.consent(m2, "profiling", granted=True)
    conn.execute(
        insert(ProcessingRestriction).values(
            customer_id=m2, restricted=True, reason="asked by phone", changed_at=now, changed_by=user
        )
    )
    factory.portal_token(m1)
    # m1 came from the shop: later imports of SHOP-7 must find the survivor.
    conn.execute(insert(CustomerExternalId).values(external_id="SHOP-7", customer_id=m1))
    for cid in (s, m1, m2):  # as the API keeps them
        names = conn.execute(
            select(
                Customer.display_name, Customer.family_name, Customer.given_name, Customer.name_latin
            ).where(Customer.id == cid)
        ).one()
        conn.execute(
            insert(CustomerSearchTerm), [{"term": t, "customer_id": cid} for t in sorted(terms_for(*names))]
        )
    return Family(team, user, s, m1, m2, principal(user, team), contacts)


def _rows(conn: Connection, table: str) -> list[dict[str, Any]]:
    t = Base.metadata.tables[table]
    order = [*t.primary_key.columns] or list(t.columns)
    return [dict(r) for r in conn.execute(select(t).order_by(*order)).mappings()]


def referencing_tables() -> list[str]:
    return sorted({t for t, _ in customer_references()} - BOOKKEEPING)


def snapshot(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every table that references customers, and the customers."""
    return {name: _rows(conn, name) for name in ["customer", *referencing_tables()]}


def counts_by_customer(conn: Connection) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for table, column in customer_references():
        if table in BOOKKEEPING:
            continue
        t = Base.metadata.tables[table]
        per: dict[int, int] = {}
        for (cid,) in conn.execute(select(t.c[column])):
            if cid is not None:
                per[cid] = per.get(cid, 0) + 1
        out[table] = per
    return out
