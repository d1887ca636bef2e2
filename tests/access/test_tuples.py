"""Positional reads of the data-access layer (bulk exports) against the dict reads they mirror."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.access import masks
from rapport.access.masks import Mask
from rapport.access.policy import Action, Role
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.access.specs import CONTACT_POINT, CUSTOMER
from rapport.errors import Forbidden
from rapport.pagination import CursorCodec
from tests.factories import Factory


def _recs(db: Session, user_id: int, role: Role, team_id: int | None) -> Records:
    principal = Principal(user_id=user_id, username=f"u{user_id}", role=role, team_id=team_id)
    return Records(db, principal, CursorCodec("test"))


@pytest.mark.parametrize(
    ("mask", "value", "kind"),
    [
        (Mask.phone, "13812345678", None),
        (Mask.email, "zhang.san@example.com", "phone"),
        (Mask.contact, "+8613812345678", "phone"),
        (Mask.contact, "zhang.san@example.com", "email"),
        (Mask.contact, "wxid_abc12345", "wechat"),
        (Mask.contact, "北京市朝阳区建国路88号", "address"),
        (Mask.contact, "a value", "fax"),
        (Mask.contact, "a value", None),
        (Mask.contact, None, "phone"),
    ],
)
def test_masker_masks_like_apply(mask: Mask, value: str | None, kind: str | None) -> None:
    assert masks.masker(mask)(value, kind) == masks.apply(mask, value, {"kind": kind})


def test_page_tuples_is_page_by_position(db: Session, factory: Factory) -> None:
    team, other = factory.team(), factory.team()
    lead = factory.user("team_lead", team)
    mine = [factory.customer(team_id=team, display_name=f"c{i}") for i in range(5)]
    factory.customer(team_id=other, display_name="out of scope")
    recs = _recs(db, lead, Role.team_lead, team)
    dict_pages, tuple_pages, cursor, tuple_cursor = [], [], None, None
    for _ in range(3):
        page = recs.page(CUSTOMER, sort="id", cursor=cursor, limit=2, action=Action.export)
        tuples = recs.page_tuples(CUSTOMER, sort="id", cursor=tuple_cursor, limit=2, action=Action.export)
        dict_pages.append([list(r.values()) for r in page.items])
        tuple_pages.append([list(r) for r in tuples.items])
        assert tuples.columns == list(page.items[0])
        cursor, tuple_cursor = page.next_cursor, tuples.next_cursor
        assert (cursor is None) == (tuple_cursor is None)
    assert tuple_pages == dict_pages
    assert [r[0] for page in tuple_pages for r in page] == mine
    # Each read is queued as its own export event on the unit, with the same ids.
    pending = [(e.action, e.details) for e in db.info["audit"]]
    assert pending == [
        ("export", {"ids": ids, "count": len(ids)})
        for ids in (mine[0:2], mine[0:2], mine[2:4], mine[2:4], mine[4:], mine[4:])
    ]


def test_open_column_decrypts_and_masks_by_kind(db: Session, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("service_rep", team)
    c = factory.customer(team_id=team)
    phone = factory.contact(c, "phone", "+8613812345678")
    email = factory.contact(c, "email", "zhang.san@example.com")
    t = CONTACT_POINT.table
    columns = ["id", "kind", "value", "postal_code"]
    recs = _recs(db, rep, Role.service_rep, team)
    rows = list(recs.conn.execute(select(*(t.c[n] for n in columns)).order_by(t.c.id)).all())
    assert [r[0] for r in rows] == [phone, email]
    assert recs.open_column(CONTACT_POINT, columns, rows, "value") == ["138****5678", "z***@example.com"]
    assert recs.open_column(CONTACT_POINT, columns, rows, "postal_code") == [None, None]
    assert recs.open_tuples(CONTACT_POINT, columns, rows) == [
        (phone, "phone", "138****5678", None),
        (email, "email", "z***@example.com", None),
    ]
    lead = _recs(db, factory.user("team_lead", team), Role.team_lead, team)
    assert lead.open_column(CONTACT_POINT, columns, rows, "value") == [
        "+8613812345678",
        "zhang.san@example.com",
    ]
    analyst = _recs(db, factory.user("data_analyst", team), Role.data_analyst, team)
    with pytest.raises(Forbidden):
        analyst.open_column(CONTACT_POINT, columns, rows, "value")
