from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import Task
from rapport.models.base import utcnow
from tests.factories import Factory

API = "/api/v1/tasks"


def test_create_defaults_to_me_and_checks_assignee(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    mate = factory.user("sales_rep", east)
    stranger = factory.user("sales_rep", north)
    gone = factory.user("sales_rep", east, active=False)
    cid = factory.customer(rep, east)
    h = factory.auth(rep)
    url = f"/api/v1/customers/{cid}/tasks"
    due = (utcnow() + dt.timedelta(days=2)).replace(microsecond=0)
    r = client.post(url, json={"title": "回访", "due_at": due.isoformat(), "priority": "high"}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["assignee_id"], body["status"], body["priority"], body["completed_at"]) == (
        rep,
        "open",
        "high",
        None,
    )
    assert dt.datetime.fromisoformat(body["due_at"]) == due
    assert (
        client.post(url, json={"title": "交接", "assignee_id": mate}, headers=h).json()["assignee_id"] == mate
    )
    for assignee, message in (
        (stranger, f"no user {stranger} that you can see"),
        (gone, f"user {gone} is disabled"),
        (999999, "no user 999999 that you can see"),
    ):
        r = client.post(url, json={"title": "x", "assignee_id": assignee}, headers=h)
        assert r.status_code == 422
        assert (r.json()["errors"][0]["field"], r.json()["errors"][0]["message"]) == ("assignee_id", message)
    for payload, field in (
        ({"title": ""}, "title"),
        ({"title": "x", "priority": "asap"}, "priority"),
        ({"title": "x", "status": "done"}, "status"),
        ({"title": "x", "due_at": "2030-01-01"}, "due_at"),
        ({"title": "x", "completed_at": "2030-01-01T00:00:00Z"}, "completed_at"),
    ):
        r = client.post(url, json=payload, headers=h)
        assert r.status_code == 422, payload
        assert r.json()["errors"][0]["field"] == field
    assert factory.scalar(select(func.count()).select_from(Task)) == 2


def test_status_sets_and_clears_completed_at(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    tid = factory.task(factory.customer(rep, team), rep)
    h = factory.auth(rep)
    done = client.patch(f"{API}/{tid}", json={"status": "done"}, headers={**h, "If-Match": f'"{tid}.1"'})
    assert done.status_code == 200, done.text
    assert done.json()["completed_at"] is not None
    reopened = client.patch(f"{API}/{tid}", json={"status": "open"}, headers={**h, "If-Match": f'"{tid}.2"'})
    assert (reopened.json()["status"], reopened.json()["completed_at"]) == ("open", None)
    r = client.patch(f"{API}/{tid}", json={"status": "paused"}, headers={**h, "If-Match": f'"{tid}.3"'})
    assert r.status_code == 422
    r = client.patch(f"{API}/{tid}", json={"title": None}, headers={**h, "If-Match": f'"{tid}.3"'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "title"
    cancelled = client.patch(
        f"{API}/{tid}", json={"status": "cancelled"}, headers={**h, "If-Match": f'"{tid}.3"'}
    )
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["completed_at"] is not None
    assert factory.row(Task, tid)["version"] == 4


def test_mine_overdue_and_due_before(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    mate = factory.user("sales_rep", team)
    cid = factory.customer(rep, team)
    now = utcnow()
    late = factory.task(cid, rep, due_at=now - dt.timedelta(days=1))
    late_done = factory.task(cid, rep, due_at=now - dt.timedelta(days=2), status="done")
    soon = factory.task(cid, rep, due_at=now + dt.timedelta(hours=3))
    later = factory.task(cid, mate, due_at=now + dt.timedelta(days=9))
    undated = factory.task(cid, rep, due_at=None)
    h = factory.auth(rep)

    def ids(**params: object) -> list[int]:
        r = client.get(API, params=params, headers=h)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    # Default order: soonest due first, tasks without a due time last.
    assert ids() == [late_done, late, soon, later, undated]
    assert ids(mine="true") == [late_done, late, soon, undated]
    assert ids(overdue="true") == [late]
    assert ids(mine="true", status="open", due_before=(now + dt.timedelta(days=1)).isoformat()) == [
        late,
        soon,
    ]
    assert ids(sort="-due_at") == [undated, later, soon, late, late_done]
    assert ids(assignee_id=mate) == [later]


def test_paging_through_tasks_without_due_dates(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(rep, team)
    now = utcnow()
    dated = [factory.task(cid, rep, due_at=now + dt.timedelta(days=d)) for d in (1, 2)]
    undated = [factory.task(cid, rep, due_at=None) for _ in range(3)]
    h = factory.auth(rep)
    for sort, expected in (("due_at", dated + undated), ("-due_at", undated[::-1] + dated[::-1])):
        seen: list[int] = []
        cursor = None
        for _ in range(10):
            params: dict[str, object] = {"sort": sort, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get(API, params=params, headers=h).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, sort


def test_other_team_tasks_are_404(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    other = factory.user("sales_rep", north)
    theirs = factory.task(factory.customer(other, north), other)
    h = factory.auth(rep)
    assert client.get(f"{API}/{theirs}", headers=h).status_code == 404
    r = client.patch(f"{API}/{theirs}", json={"status": "done"}, headers={**h, "If-Match": f'"{theirs}.1"'})
    assert r.status_code == 404
    assert client.delete(f"{API}/{theirs}", headers={**h, "If-Match": f'"{theirs}.1"'}).status_code == 404
    assert factory.row(Task, theirs)["status"] == "open"
    mine = factory.task(factory.customer(rep, east), rep)
    assert client.delete(f"{API}/{mine}", headers={**h, "If-Match": f'"{mine}.1"'}).status_code == 204


def test_analyst_reads_tasks_without_free_text(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    tid = factory.task(factory.customer(rep, team), rep, description="客户电话 13800138000")
    body = client.get(f"{API}/{tid}", headers=factory.auth(factory.user("data_analyst", team))).json()
    assert body["title"] == "回访" and "description" not in body
