"""Keyset pages walk back as well as forward: every previous page is exactly the page seen before."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.access.records import Page, Records
from rapport.access.specs import CUSTOMER, TASK, ResourceSpec
from rapport.pagination import CursorCodec
from tests.factories import Factory

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def _walk(recs: Records, spec: ResourceSpec, sort: str, where: list[ColumnElement[bool]]) -> None:
    forward: list[Page] = [recs.page(spec, sort=sort, cursor=None, limit=3, where=where)]
    assert forward[0].prev_cursor is None
    while forward[-1].next_cursor:
        forward.append(recs.page(spec, sort=sort, cursor=forward[-1].next_cursor, limit=3, where=where))
    assert len(forward) == 3
    page = forward[-1]
    for expected in reversed(forward[:-1]):
        assert page.prev_cursor is not None
        page = recs.page(spec, sort=sort, cursor=page.prev_cursor, limit=3, where=where)
        assert [r["id"] for r in page.items] == [r["id"] for r in expected.items]
        assert page.next_cursor is not None
    assert page.prev_cursor is None
    # Forward again from a page reached backwards.
    again = recs.page(spec, sort=sort, cursor=page.next_cursor, limit=3, where=where)
    assert [r["id"] for r in again.items] == [r["id"] for r in forward[1].items]


@pytest.mark.parametrize("sort", ["-id", "id", "display_name", "-display_name"])
def test_customer_pages_back_and_forth(db: Session, factory: Factory, sort: str) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    for name in ("王伟", "李娜", "王伟", "张三", "赵六", "王伟", "钱七", "孙八"):
        factory.customer(rep, team, display_name=name)
    factory.customer(None, factory.team(), display_name="别组")  # out of the rep's scope
    recs = Records(
        db, Principal(user_id=rep, username="r", role=Role.sales_rep, team_id=team), CursorCodec("t")
    )
    _walk(recs, CUSTOMER, sort, [CUSTOMER.table.c.team_id == team])


@pytest.mark.parametrize("sort", ["due_at", "-due_at"])
def test_pages_back_and_forth_over_a_nullable_sort_column(db: Session, factory: Factory, sort: str) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(rep, team)
    for due in (1, None, 2, 2, None, 3, -1, None):
        factory.task(cid, rep, due_at=None if due is None else NOW + dt.timedelta(days=due))
    recs = Records(
        db, Principal(user_id=rep, username="r", role=Role.sales_rep, team_id=team), CursorCodec("t")
    )
    _walk(recs, TASK, sort, [TASK.table.c.customer_id == cid])
