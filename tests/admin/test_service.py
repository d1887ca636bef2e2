"""Administration services: the role matrix from the policy, users and teams, the audit trail."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.access.policy import RESOURCES, Role
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.admin import service
from rapport.admin.service import Cell
from rapport.audit.chain import PendingEvent, append_events
from rapport.errors import Conflict, Forbidden, InvalidInput
from rapport.models import User
from rapport.pagination import CursorCodec
from tests.factories import PASSWORD, Factory


def recs_for(db: Session, user_id: int, role: Role, team_id: int | None = None) -> Records:
    return Records(
        db, Principal(user_id=user_id, username=f"u{user_id}", role=role, team_id=team_id), CursorCodec("t")
    )


def test_role_matrix_is_the_policy() -> None:
    m = service.role_matrix()
    assert list(m) == list(RESOURCES)
    assert list(m["customer"]) == [r.value for r in Role]
    assert m["customer"]["sales_rep"] == Cell(("read", "create", "update"), "team", (), ())
    assert m["customer"]["admin"] == Cell(
        ("read", "create", "update", "delete", "export", "assign"), "all", (), ()
    )
    assert m["customer"]["data_analyst"] == Cell(
        ("read", "export"),
        "all",
        ("attributes", "birth_date", "display_name", "family_name", "given_name", "name_latin"),
        (),
    )
    assert m["order"]["service_rep"] == Cell(
        ("read",), "all", ("cost_amount", "margin_amount", "unit_cost"), ()
    )
    assert m["contact_point"]["service_rep"].masked == (("value", "contact"), ("value_normalized", "contact"))
    assert m["webhook"]["sales_rep"] == Cell((), None, (), ())
    assert m["audit"]["team_lead"] == Cell(("read",), "team", (), ())
    assert m["user"]["admin"].actions == ("read", "create", "update", "export", "assign")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.admin, True)] + [(r, False) for r in Role if r is not Role.admin],
)
def test_only_administrators_administer(db: Session, factory: Factory, role: Role, allowed: bool) -> None:
    team = factory.team()
    uid = factory.user(role.value, team)
    recs = recs_for(db, uid, role, team)
    assert service.can_administer(recs.principal) is allowed
    if allowed:
        service.require_admin(recs)
        return
    with pytest.raises(Forbidden):
        service.list_teams(recs)
    (event,) = db.info["audit"]
    assert (event.action, event.resource, event.outcome, event.actor_id) == (
        "access",
        "administration",
        "denied",
        uid,
    )


def test_users_listed_filtered_and_paginated(db: Session, factory: Factory) -> None:
    east, north = factory.team("East"), factory.team("North")
    admin = factory.user("admin", username="admin")
    factory.user("sales_rep", east, username="sales.east")
    factory.user("sales_rep", north, username="sales.north", active=False)
    factory.user("team_lead", east, username="lead.east")
    recs = recs_for(db, admin, Role.admin)
    page = service.list_users(recs, {}, cursor=None, limit=3)
    assert [u["username"] for u in page.items] == ["admin", "lead.east", "sales.east"]
    assert page.next_cursor is not None
    rest = service.list_users(recs, {}, cursor=page.next_cursor, limit=3)
    assert [u["username"] for u in rest.items] == ["sales.north"] and rest.next_cursor is None
    assert "password_hash" not in rest.items[0]
    by_role = service.list_users(recs, {"role": "sales_rep"}, cursor=None)
    assert [u["username"] for u in by_role.items] == ["sales.east", "sales.north"]
    assert [u["username"] for u in service.list_users(recs, {"q": "sales."}, cursor=None).items] == [
        "sales.east",
        "sales.north",
    ]
    inactive = service.list_users(recs, {"is_active": "false", "team_id": str(north)}, cursor=None)
    assert [u["username"] for u in inactive.items] == ["sales.north"]
    with pytest.raises(InvalidInput) as bad:
        service.list_users(recs, {"role": "pope"}, cursor=None)
    assert [e["field"] for e in bad.value.errors or []] == ["role"]
    assert service.team_names(recs) == {east: "East", north: "North"}


def test_teams_with_member_counts(db: Session, factory: Factory) -> None:
    east, north = factory.team("East"), factory.team("North")
    admin = factory.user("admin")
    factory.user("sales_rep", east)
    factory.user("service_rep", east)
    factory.user("sales_rep", east, active=False)
    recs = recs_for(db, admin, Role.admin)
    teams = service.list_teams(recs)
    assert [(t["id"], t["name"], t["active"], t["disabled"]) for t in teams] == [
        (east, "East", 2, 1),
        (north, "North", 0, 0),
    ]
    created = service.create_team(recs, {"name": " South ", "description": ""})
    assert (created["name"], created["description"]) == ("South", None)
    with pytest.raises(Conflict):
        service.create_team(recs, {"name": "East"})
    with pytest.raises(InvalidInput) as blank:
        service.create_team(recs, {"name": "   "})
    assert [e["field"] for e in blank.value.errors or []] == ["name"]


def test_create_user_reports_every_bad_field(db: Session, factory: Factory) -> None:
    admin = factory.user("admin")
    recs = recs_for(db, admin, Role.admin)
    with pytest.raises(InvalidInput) as bad:
        service.create_user(recs, {"username": "X!", "role": "wizard", "password": PASSWORD, "email": "nope"})
    errors = bad.value.errors or []
    assert sorted((e["field"], e["type"]) for e in errors) == [
        ("email", "value_error"),
        ("role", "enum"),
        ("username", "string_pattern_mismatch"),
    ]
    with pytest.raises(InvalidInput) as weak:
        service.create_user(recs, {"username": "new.rep", "role": "sales_rep", "password": "short"})
    assert {e["field"] for e in weak.value.errors or []} == {"password"}


def test_create_change_disable_enable_a_user(db: Session, factory: Factory) -> None:
    east, north = factory.team("East"), factory.team("North")
    admin = factory.user("admin")
    recs = recs_for(db, admin, Role.admin)
    row = service.create_user(
        recs,
        {"username": "new.rep", "role": "sales_rep", "team_id": str(east), "password": PASSWORD, "email": ""},
    )
    assert (row["username"], row["role"], row["team_id"], row["is_active"], row["email"]) == (
        "new.rep",
        "sales_rep",
        east,
        True,
        None,
    )
    moved = service.update_user(recs, row["id"], {"role": "team_lead", "team_id": str(north)}, row["version"])
    assert (moved["role"], moved["team_id"], moved["version"]) == ("team_lead", north, row["version"] + 1)
    no_team = service.update_user(recs, row["id"], {"team_id": ""}, moved["version"])
    assert no_team["team_id"] is None
    off = service.set_active(recs, row["id"], False)
    assert off["is_active"] is False
    assert db.execute(select(User.is_active).where(User.id == row["id"])).scalar_one() is False
    assert service.set_active(recs, row["id"], True)["is_active"] is True
    with pytest.raises(Conflict):
        service.set_active(recs, admin, False)  # not yourself
    with pytest.raises(Conflict):
        service.update_user(recs, admin, {"role": "sales_rep"}, 1)  # the last administrator


def test_audit_events_filter_by_actor_username_and_name_actors(db: Session, factory: Factory) -> None:
    admin = factory.user("admin", username="root.admin")
    rep = factory.user("sales_rep", username="rep.one")
    at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    append_events(
        db,
        [
            PendingEvent(
                action="read", resource="customer", record_id="5", actor_id=rep, actor_kind="user", at=at
            ),
            PendingEvent(action="login", resource="auth", actor_id=admin, actor_kind="user", at=at),
            PendingEvent(action="prune", resource="token", actor_kind="system", at=at + dt.timedelta(days=1)),
        ],
    )
    recs = recs_for(db, admin, Role.admin)
    page = service.audit_events(recs, {})
    assert [(e["seq"], e["actor"], e["action"]) for e in page["items"]] == [
        (3, None, "prune"),
        (2, "root.admin", "login"),
        (1, "rep.one", "read"),
    ]
    assert [e["seq"] for e in service.audit_events(recs, {"actor": "Rep.One"})["items"]] == [1]
    assert [
        e["seq"] for e in service.audit_events(recs, {"resource": "auth", "action": "login"})["items"]
    ] == [2]
    window = {"at_from": "2026-03-02T00:00:00Z", "at_to": "2026-03-03T00:00:00Z"}
    assert [e["seq"] for e in service.audit_events(recs, window)["items"]] == [3]
    first = service.audit_events(recs, {"limit": "2"})
    assert [e["seq"] for e in first["items"]] == [3, 2]
    after = service.audit_events(recs, {"limit": "2", "cursor": first["next_cursor"]})
    assert [e["seq"] for e in after["items"]] == [1] and after["next_cursor"] is None
    with pytest.raises(InvalidInput) as unknown:
        service.audit_events(recs, {"actor": "nobody"})
    assert [e["field"] for e in unknown.value.errors or []] == ["actor"]
    with pytest.raises(InvalidInput) as inverted:
        service.audit_events(recs, {"at_from": "2026-03-03T00:00:00Z", "at_to": "2026-03-02T00:00:00Z"})
    assert inverted.value.errors


def test_chain_verification_is_cached_and_audited(db: Session, factory: Factory) -> None:
    admin = factory.user("admin")
    append_events(db, [PendingEvent(action="login", resource="auth", actor_id=admin) for _ in range(3)])
    cache = service.ChainStatusCache()
    assert cache.last is None
    status = service.verify_chain(recs_for(db, admin, Role.admin), cache)
    assert (status.ok, status.checked, status.last_seq, status.bad_seq) == (True, 3, 3, None)
    assert cache.last == status
    assert [(e.action, e.resource, e.details) for e in db.info["audit"]] == [
        ("verify", "audit", {"ok": True, "checked": 3})
    ]
    lead = factory.user("team_lead", factory.team())
    with pytest.raises(Forbidden):
        service.verify_chain(recs_for(db, lead, Role.team_lead), cache)
