"""The Administration entry of the navigation bar follows the permissions of the pages it opens
(users, teams, roles, audit), not those of an unrelated resource (outbound webhooks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.access.policy import POLICY, Action, Grant, Role, Scope
from rapport.access.principal import Principal
from rapport.web.nav import visible_nav
from tests.factories import Factory
from tests.web.test_workspace_pages import login

ENTRY = '<a href="/admin/users">Administration</a>'
ADMIN_PAGES = ("/admin/users", "/admin/teams", "/admin/roles", "/admin/audit")
ADMINISTRATION = {
    "user": Grant(frozenset({Action.read, Action.create, Action.update}), Scope.all),
    "team": Grant(frozenset({Action.read, Action.create, Action.update}), Scope.all),
    "audit": Grant(frozenset({Action.read}), Scope.all),
}
WEBHOOKS = {"webhook": Grant(frozenset(Action), Scope.all)}


@pytest.fixture(autouse=True)
def fresh_state(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def _lead_with(monkeypatch: pytest.MonkeyPatch, grants: dict[str, Grant], without: str) -> None:
    """Team leads get ``grants`` and lose ``without`` (the rest of their role stays as it is)."""
    changed = {k: v for k, v in POLICY[Role.team_lead].items() if k != without} | grants
    monkeypatch.setitem(POLICY, Role.team_lead, changed)


def _keys(role: Role) -> list[str]:
    return [n.key for n in visible_nav(Principal(user_id=1, username="x", role=role, team_id=None))]


def test_a_role_that_administers_without_webhooks_sees_the_entry_and_the_pages(
    client: TestClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lead_with(monkeypatch, ADMINISTRATION, without="webhook")
    assert not Principal(user_id=1, username="x", role=Role.team_lead, team_id=None).can(
        "webhook", Action.read
    )
    assert "admin" in _keys(Role.team_lead)
    factory.user("team_lead", factory.team(), username="nav.lead.admin")
    login(client, factory, "nav.lead.admin")
    assert ENTRY in client.get("/tasks").text
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 200, path


def test_a_role_with_webhooks_but_not_administration_does_not_see_it(
    client: TestClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lead_with(monkeypatch, WEBHOOKS, without="audit")
    assert Principal(user_id=1, username="x", role=Role.team_lead, team_id=None).can("webhook", Action.read)
    assert "admin" not in _keys(Role.team_lead)
    factory.user("team_lead", factory.team(), username="nav.lead.hooks")
    login(client, factory, "nav.lead.hooks")
    assert ENTRY not in client.get("/tasks").text
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 403, path


def test_half_the_administration_is_not_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    # Users and teams for everyone, but the audit trail of the team only: the pages refuse, so
    # the entry is not shown either.
    partial = ADMINISTRATION | {"audit": Grant(frozenset({Action.read}), Scope.team)}
    _lead_with(monkeypatch, partial, without="webhook")
    assert "admin" not in _keys(Role.team_lead)


def test_the_unchanged_policy_shows_the_entry_to_administrators_only() -> None:
    assert {role: "admin" in _keys(role) for role in Role} == {
        Role.admin: True,
        Role.team_lead: False,
        Role.crm_specialist: False,
        Role.sales_rep: False,
        Role.service_rep: False,
        Role.data_analyst: False,
    }
