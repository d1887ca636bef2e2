"""Shared arrangements for the privacy tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from rapport.models import AuditEvent
from tests.factories import Factory


@dataclass
class Planted:
    """A person whose every stored value carries a unique token, to search for afterwards."""

    customer_id: int
    tokens: list[str]
    contact_ids: list[int] = field(default_factory=list)
    interaction_id: int = 0
    task_id: int = 0
    order_id: int = 0


def plant_person(factory: Factory, owner: int | None, team: int | None, mark: str = "Q7X") -> Planted:
    name, latin = f"龙{mark}雪", f"Zeta{mark}Quill"
    phone, email = "+8613912345678", f"zeta.{mark.lower()}@example.org"
    note, task = f"Body{mark}SecretNote", f"Task{mark}Detail"
    cid = factory.customer(
        owner,
        team,
        display_name=name,
        name_latin=latin,
        family_name="龙",
        occupation=f"Occ{mark}",
        birth_date=dt.date(1990, 4, 5),
        attributes={"nickname": f"Nick{mark}"},
    )
    p = Planted(cid, [name, latin, phone, email, note, task, f"Occ{mark}", f"Nick{mark}"])
    p.contact_ids = [factory.contact(cid, "phone", phone), factory.contact(cid, "email", email)]
    p.interaction_id = factory.interaction(cid, owner, subject=f"Subj{mark}", body=note)
    p.task_id = factory.task(cid, owner, title=f"Call{mark}", description=task)
    p.order_id = factory.order(cid)
    p.tokens += [f"Subj{mark}", f"Call{mark}"]
    return p


def audit_rows(conn: Connection, action: str | None = None) -> list[dict[str, Any]]:
    stmt = select(AuditEvent).order_by(AuditEvent.seq)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return [dict(r) for r in conn.execute(stmt).mappings()]
