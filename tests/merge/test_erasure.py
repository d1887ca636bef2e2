from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.access.principal import SYSTEM
from rapport.merge.service import merge_customers, resolve_customer_id
from rapport.models import ContactPoint, Customer, CustomerAlias, CustomerMerge
from rapport.models.base import table_of
from rapport.privacy.erasure import ERASED, erase_customer
from tests.factories import Factory
from tests.merge.helpers import family


def test_erasing_a_survivor_erases_merge_images_aliases_and_the_merged_records(
    factory: Factory, db: Session
) -> None:
    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1, f.m2], reason="王晓明 duplicate")
    report = erase_customer(db, f.survivor, actor=SYSTEM, reason="dsr:1")
    assert (report.counts["merges_cleared"], report.counts["merged_records"]) == (1, 2)
    merge = db.execute(select(table_of(CustomerMerge))).mappings().one()
    assert (merge["id"], merge["status"]) == (result.merge_id, "erased")
    assert (merge["before_image"], merge["after_image"], merge["reason"]) == (None, None, None)
    assert db.execute(select(table_of(CustomerAlias))).all() == []
    assert resolve_customer_id(db, f.m1) == f.m1
    c = table_of(Customer)
    rows = db.execute(select(c.c.id, c.c.display_name, c.c.erased_at.is_not(None)).order_by(c.c.id)).all()
    assert [(n, e) for _, n, e in rows] == [(ERASED, True)] * 3
    # The duplicate contact point that stayed on a merged record is gone too.
    assert db.execute(select(table_of(ContactPoint))).all() == []


def test_a_merge_whose_images_were_erased_cannot_be_undone(factory: Factory, db: Session) -> None:
    import pytest

    from rapport.errors import Conflict
    from rapport.merge.service import undo_merge

    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1])
    erase_customer(db, f.m1, actor=SYSTEM, reason="dsr:2")
    with pytest.raises(Conflict):
        undo_merge(db, f.principal, result.merge_id)
