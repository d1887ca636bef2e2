from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.errors import Conflict, Forbidden, InvalidInput, NotFound
from rapport.merge.images import unseal
from rapport.merge.service import merge_customers, resolve_customer_id, undo_merge
from rapport.models import (
    ConsentEvent,
    ConsentState,
    ContactPoint,
    Customer,
    CustomerAlias,
    CustomerMerge,
    DedupCluster,
    DedupRun,
    Task,
)
from rapport.models.base import table_of, utcnow
from tests.factories import Factory
from tests.merge.helpers import counts_by_customer, family, principal, snapshot

C = table_of(Customer)


def _customer(db: Session, cid: int) -> dict[str, Any]:
    return dict(db.execute(select(C).where(C.c.id == cid)).mappings().one())


def test_merge_moves_every_related_record(factory: Factory, db: Session) -> None:
    f = family(factory)
    before = counts_by_customer(db.connection())
    result = merge_customers(db, f.principal, f.survivor, [f.m1, f.m2], reason="same person")
    after = counts_by_customer(db.connection())
    s, m1, m2 = f.survivor, f.m1, f.m2

    def moved(table: str) -> dict[int, int]:
        return {k: after[table].get(k, 0) - before[table].get(k, 0) for k in (s, m1, m2)}

    assert moved("sales_order") == {s: 3, m1: -2, m2: -1}
    assert moved("interaction") == {s: 2, m1: -1, m2: -1}
    assert moved("task") == {s: 2, m1: -1, m2: -1}
    assert moved("data_subject_request") == {s: 1, m1: -1, m2: 0}
    assert moved("privacy_complaint") == {s: 1, m1: 0, m2: -1}
    # Duplicates (same blind index, same tag, same score kind) stay on the merged record.
    assert moved("contact_point") == {s: 3, m1: -2, m2: -1}
    assert moved("customer_tag") == {s: 2, m1: -1, m2: -1}
    assert moved("customer_score") == {s: 1, m1: -1, m2: 0}
    # The ledger never moves: the survivor gets new events, the merged ones keep their history.
    assert moved("consent_event") == {s: 2, m1: 0, m2: 0}
    assert moved("portal_session") == {s: 0, m1: 0, m2: 0}
    assert moved("processing_restriction") == {s: 1, m1: 0, m2: 0}
    assert moved("customer_external_id") == {s: 1, m1: -1, m2: 0}
    assert result.moved == {
        "sales_order": 3,
        "interaction": 2,
        "task": 2,
        "data_subject_request": 1,
        "privacy_complaint": 1,
        "contact_point": 3,
        "customer_tag": 2,
        "customer_score": 1,
        "consent_event": 2,
        "customer_external_id": 1,
    }
    assert [_customer(db, i)["deleted_at"] is not None for i in (s, m1, m2)] == [False, True, True]
    assert resolve_customer_id(db, m1) == s
    assert resolve_customer_id(db, m2) == s
    assert resolve_customer_id(db, s) == s
    # One primary per kind: the survivor's own phone, the first moved email.
    cp = table_of(ContactPoint)
    primaries = db.execute(
        select(cp.c.kind, cp.c.id).where(cp.c.customer_id == s, cp.c.is_primary.is_(True)).order_by(cp.c.kind)
    ).all()
    assert primaries == [("email", f.contacts["m1_email"]), ("phone", f.contacts["s_phone"])]
    (event,) = [e for e in db.info["audit"] if e.action == "merge"]
    assert event.record_id == str(s)
    assert event.details["merged_ids"] == [m1, m2]
    assert event.details["choices"]["display_name"] == {"from": m1, "rule": "most_trusted"}
    assert "same person" not in repr(event)


def test_survivorship_per_rule(factory: Factory, db: Session) -> None:
    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1, f.m2])
    row = _customer(db, f.survivor)
    # most_trusted: m1's source "manual" ranks above "shop" (survivor) and "partner" (m2).
    assert (row["display_name"], row["given_name"], row["acquisition_source"]) == ("王晓明", "晓明", "manual")
    # most_trusted falls back to the only non-empty value.
    assert row["name_latin"] == "Wang Xiaoming"
    # most_recent: m2 was updated last.
    assert row["city"] == "深圳"
    assert row["occupation"] == "工程师"
    # Custom attributes per key, most complete: "silver" is longer than "gold".
    assert row["attributes"] == {"vip": "silver", "note": "首单"}
    assert row["gender"] is None
    assert result.choices["city"] == {"from": f.m2, "rule": "most_recent"}
    assert result.choices["attributes.vip"] == {"from": f.m1, "rule": "most_complete"}
    assert result.choices["gender"] == {"from": f.survivor, "rule": "most_trusted"}
    assert row["version"] == 2


def test_overrides_take_the_named_customers_value(factory: Factory, db: Session) -> None:
    f = family(factory)
    result = merge_customers(
        db,
        f.principal,
        f.survivor,
        [f.m1, f.m2],
        overrides={"city": f.survivor, "display_name": f.m2, "attributes.vip": f.survivor},
    )
    row = _customer(db, f.survivor)
    assert (row["city"], row["display_name"], row["attributes"]["vip"]) == ("上海", "Wang Xiaoming", "gold")
    assert result.choices["city"] == {"from": f.survivor, "rule": "override"}


def test_overrides_must_name_a_field_and_an_involved_customer(factory: Factory, db: Session) -> None:
    f = family(factory)
    with pytest.raises(InvalidInput):
        merge_customers(db, f.principal, f.survivor, [f.m1], overrides={"password": f.m1})
    with pytest.raises(InvalidInput):
        merge_customers(db, f.principal, f.survivor, [f.m1], overrides={"city": f.m2})
    with pytest.raises(InvalidInput):
        merge_customers(db, f.principal, f.survivor, [f.survivor])
    with pytest.raises(InvalidInput):
        merge_customers(db, f.principal, f.survivor, [])


def test_consent_most_restrictive_decision_wins(factory: Factory, db: Session) -> None:
    f = family(factory)
    ledger_before = db.execute(select(table_of(ConsentEvent))).all()
    merge_customers(db, f.principal, f.survivor, [f.m1, f.m2])
    st = table_of(ConsentState)
    states = dict(db.execute(select(st.c.purpose, st.c.granted).where(st.c.customer_id == f.survivor)).all())
    # marketing: survivor granted, m1 withdrew -> withdrawn. profiling: only merged grants -> granted.
    assert states == {"marketing": False, "profiling": True}
    ev = table_of(ConsentEvent)
    new = db.execute(
        select(ev.c.purpose, ev.c.granted, ev.c.source, ev.c.evidence)
        .where(ev.c.customer_id == f.survivor, ev.c.source == "merge")
        .order_by(ev.c.purpose)
    ).all()
    assert [(p, g, s) for p, g, s, _ in new] == [("marketing", False, "merge"), ("profiling", True, "merge")]
    assert "most restrictive decision wins" in new[0].evidence
    # Earlier ledger rows are untouched.
    assert set(ledger_before) <= set(db.execute(select(ev)).all())


def _effective_consent(rows: list[dict[str, Any]]) -> dict[tuple[int, str, int], bool]:
    return {(r["customer_id"], r["purpose"], r["partner_key"]): r["granted"] for r in rows if r["granted"]}


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("version", "updated_at")} for r in rows]


def _diff(after: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[Any]:
    """(row index, column, before, after) for every cell that differs; row count first."""
    if len(after) != len(before):
        return [("rows", len(before), len(after))]
    return [
        (i, k, b[k], a.get(k))
        for i, (a, b) in enumerate(zip(after, before, strict=True))
        for k in b
        if a.get(k) != b[k]
    ]


def test_undo_restores_every_table_exactly(factory: Factory, db: Session) -> None:
    f = family(factory)
    conn = db.connection()
    before = snapshot(conn)
    result = merge_customers(db, f.principal, f.survivor, [f.m1, f.m2])
    assert snapshot(conn) != before
    undone = undo_merge(db, f.principal, result.merge_id)
    assert undone.status == "undone"
    after = snapshot(conn)
    assert set(after) == set(before)
    for table in before:
        if table == "consent_event":
            # Append-only: every earlier row is unchanged, the merge and its undo only added rows.
            assert after[table][: len(before[table])] == before[table]
            assert {r["source"] for r in after[table][len(before[table]) :]} == {"merge", "merge_undo"}
        elif table == "consent_state":
            assert _effective_consent(after[table]) == _effective_consent(before[table])
        else:
            # Versions and updated_at move forward (ETags must not repeat, syncs must see the
            # rows); every other column is as it was.
            assert _diff(strip(after[table]), strip(before[table])) == [], table
    assert db.execute(select(table_of(CustomerAlias))).all() == []
    merge = db.execute(select(table_of(CustomerMerge))).mappings().one()
    assert (merge["status"], merge["before_image"], merge["after_image"]) == ("undone", None, None)
    (event,) = [e for e in db.info["audit"] if e.action == "merge_undo"]
    assert event.details["merge_id"] == result.merge_id
    with pytest.raises(Conflict):
        undo_merge(db, f.principal, result.merge_id)


def test_before_images_are_sealed(factory: Factory, db: Session) -> None:
    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1], reason="重复客户 王晓明")
    merge = db.execute(select(table_of(CustomerMerge))).mappings().one()
    for column in ("before_image", "after_image", "reason"):
        assert "王晓明".encode() not in merge[column]
    image = unseal(db, "before_image", result.merge_id, merge["before_image"])
    assert image["customers"][str(f.m1)]["display_name"] == "王晓明"


def test_undo_refuses_when_the_survivor_changed_since(factory: Factory, db: Session) -> None:
    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1, f.m2])
    moved_task = db.execute(
        select(Task.id).where(Task.customer_id == f.survivor).order_by(Task.id.desc())
    ).scalar()
    db.execute(update(C).where(C.c.id == f.survivor).values(city="杭州", version=C.c.version + 1))
    db.execute(delete(table_of(Task)).where(Task.id == moved_task))
    with pytest.raises(Conflict) as err:
        undo_merge(db, f.principal, result.merge_id)
    assert err.value.extra["conflicts"] == {"fields": ["city"], "records": [f"task:{moved_task}"]}
    # Nothing was undone.
    assert resolve_customer_id(db, f.m1) == f.survivor


def test_undo_refuses_when_consent_changed_since(factory: Factory, db: Session) -> None:
    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1])
    st, ev = table_of(ConsentState), table_of(ConsentEvent)
    # A later decision of the survivor's (here: its earlier event made current again).
    earlier = db.execute(
        select(ev.c.id).where(ev.c.customer_id == f.survivor, ev.c.source != "merge")
    ).scalar_one()
    db.execute(
        update(st).where(st.c.customer_id == f.survivor, st.c.purpose == "marketing").values(event_id=earlier)
    )
    with pytest.raises(Conflict) as err:
        undo_merge(db, f.principal, result.merge_id)
    assert err.value.extra["conflicts"]["records"] == ["consent:marketing:0"]


def test_out_of_scope_customer_is_not_found_and_nothing_changes(factory: Factory, db: Session) -> None:
    f = family(factory)
    other_team = factory.team()
    stranger = factory.customer(None, other_team, display_name="别人")
    rep = principal(factory.user("sales_rep", f.team), f.team, Role.sales_rep)
    before = snapshot(db.connection())
    with pytest.raises(NotFound):
        merge_customers(db, rep, f.survivor, [f.m1, stranger])
    with pytest.raises(NotFound):
        merge_customers(db, rep, stranger, [f.m1])
    assert snapshot(db.connection()) == before
    assert [e.outcome for e in db.info["audit"]] == ["denied", "denied"]


def test_merging_needs_update_permission(factory: Factory, db: Session) -> None:
    f = family(factory)
    analyst = principal(factory.user("data_analyst", f.team), f.team, Role.data_analyst)
    with pytest.raises(Forbidden):
        merge_customers(db, analyst, f.survivor, [f.m1])


def test_a_merged_customer_cannot_be_merged_again(factory: Factory, db: Session) -> None:
    f = family(factory)
    merge_customers(db, f.principal, f.survivor, [f.m1])
    with pytest.raises(Conflict):
        merge_customers(db, f.principal, f.m2, [f.m1])
    with pytest.raises(Conflict):
        merge_customers(db, f.principal, f.m1, [f.m2])


def test_aliases_follow_chained_merges(factory: Factory, db: Session) -> None:
    f = family(factory)
    merge_customers(db, f.principal, f.m1, [f.m2])
    merge_customers(db, f.principal, f.survivor, [f.m1])
    assert resolve_customer_id(db, f.m2) == f.survivor


def test_undo_reopens_only_the_dedup_cluster_the_merge_resolved(factory: Factory, db: Session) -> None:
    f = family(factory)
    result = merge_customers(db, f.principal, f.survivor, [f.m1, f.m2], reason="queue")
    other = merge_customers(
        db, f.principal, factory.customer(f.user, f.team), [factory.customer(f.user, f.team)], reason="other"
    )
    now = utcnow()
    run = db.execute(
        insert(DedupRun)
        .values(started_at=now, threshold=0.9, backend="duckdb", details={})
        .returning(DedupRun.id)
    ).scalar_one()
    stamp = {"created_at": now, "updated_at": now, "version": 1, "run_id": run, "max_probability": 0.99}
    ours, theirs, dismissed = (
        db.execute(insert(DedupCluster).values(**stamp, **v).returning(DedupCluster.id)).scalar_one()
        for v in (
            {
                "status": "merged",
                "size": 3,
                "merge_id": result.merge_id,
                "decided_by": f.user,
                "decided_at": now,
            },
            {
                "status": "merged",
                "size": 2,
                "merge_id": other.merge_id,
                "decided_by": f.user,
                "decided_at": now,
            },
            {"status": "dismissed", "size": 2, "decided_by": f.user, "decided_at": now},
        )
    )

    undo_merge(db, f.principal, result.merge_id)

    rows = {
        r.id: (r.status, r.merge_id, r.decided_by, r.decided_at, r.version)
        for r in db.execute(
            select(DedupCluster).where(DedupCluster.id.in_([ours, theirs, dismissed]))
        ).scalars()
    }
    assert rows == {
        ours: ("open", None, None, None, 2),
        theirs: ("merged", other.merge_id, f.user, rows[theirs][3], 1),
        dismissed: ("dismissed", None, f.user, rows[dismissed][3], 1),
    }
    # Audit events wait on the unit until it commits.
    events = [(e.action, e.record_id, e.details) for e in db.info["audit"] if e.resource == "dedup"]
    assert events == [("reopen", str(ours), {"merge_id": result.merge_id, "reason": "merge undone"})]
