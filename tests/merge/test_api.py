from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rapport.audit.chain import verify_chain
from rapport.models import AuditEvent, Customer
from rapport.models.base import table_of
from tests.factories import Factory
from tests.merge.helpers import family, snapshot

C = table_of(Customer)


def test_merge_read_redirect_and_undo_through_the_api(
    client: TestClient, factory: Factory, db: Session
) -> None:
    f = family(factory)
    h = factory.auth(f.user)
    r = client.post(
        "/api/v1/merges",
        json={"survivor_id": f.survivor, "merged_ids": [f.m1, f.m2], "overrides": {"city": f.survivor}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    merge = r.json()
    assert r.headers["location"] == f"/api/v1/merges/{merge['id']}"
    assert (merge["survivor_id"], merge["merged_ids"], merge["status"]) == (
        f.survivor,
        [f.m1, f.m2],
        "merged",
    )
    assert merge["choices"]["city"] == {"from": f.survivor, "rule": "override"}
    assert merge["moved"]["sales_order"] == 3
    assert client.get(f"/api/v1/merges/{merge['id']}", headers=h).json()["id"] == merge["id"]

    # A merged id answers 307 to the survivor; clients that follow redirects get the survivor.
    gone = client.get(f"/api/v1/customers/{f.m1}", headers=h, follow_redirects=False)
    assert gone.status_code == 307
    assert gone.headers["location"] == f"/api/v1/customers/{f.survivor}"
    assert gone.headers["rapport-merged-into"] == str(f.survivor)
    assert gone.json()["merged_into"] == f.survivor
    view = client.get(f"/api/v1/customers/{f.m1}/360", headers=h, follow_redirects=False)
    assert (view.status_code, view.headers["location"]) == (307, f"/api/v1/customers/{f.survivor}/360")
    followed = client.get(f"/api/v1/customers/{f.m1}", headers=h)
    assert (followed.status_code, followed.json()["id"], followed.json()["city"]) == (200, f.survivor, "上海")

    undone = client.post(f"/api/v1/merges/{merge['id']}/undo", headers=h)
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "undone"
    back = client.get(f"/api/v1/customers/{f.m1}", headers=h, follow_redirects=False)
    assert (back.status_code, back.json()["id"]) == (200, f.m1)
    assert client.post(f"/api/v1/merges/{merge['id']}/undo", headers=h).status_code == 409

    # One merge event and one undo event, and the chain still verifies.
    actions = [a for (a,) in db.execute(select(AuditEvent.action).order_by(AuditEvent.seq))]
    assert actions.count("merge") == 1
    assert actions.count("merge_undo") == 1
    assert verify_chain(db).ok is True


def test_undo_conflict_lists_fields(client: TestClient, factory: Factory, db: Session) -> None:
    f = family(factory)
    h = factory.auth(f.user)
    merge = client.post(
        "/api/v1/merges", json={"survivor_id": f.survivor, "merged_ids": [f.m1]}, headers=h
    ).json()
    etag = client.get(f"/api/v1/customers/{f.survivor}", headers=h).headers["etag"]
    changed = client.patch(
        f"/api/v1/customers/{f.survivor}", json={"occupation": "医生"}, headers={**h, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    r = client.post(f"/api/v1/merges/{merge['id']}/undo", headers=h)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["conflicts"] == {"fields": ["occupation"], "records": []}


def test_out_of_scope_merge_is_404_and_changes_nothing(
    client: TestClient, factory: Factory, db: Session
) -> None:
    f = family(factory)
    stranger = factory.customer(None, factory.team())
    rep = factory.user("sales_rep", f.team)
    before = snapshot(db.connection())
    r = client.post(
        "/api/v1/merges",
        json={"survivor_id": f.survivor, "merged_ids": [stranger]},
        headers=factory.auth(rep),
    )
    assert r.status_code == 404
    assert snapshot(db.connection()) == before


def test_redirect_only_for_callers_who_see_the_survivor(
    client: TestClient, factory: Factory, db: Session
) -> None:
    f = family(factory)
    client.post(
        "/api/v1/merges", json={"survivor_id": f.survivor, "merged_ids": [f.m1]}, headers=factory.auth(f.user)
    )
    outsider = factory.user("sales_rep", factory.team())
    r = client.get(f"/api/v1/customers/{f.m1}", headers=factory.auth(outsider), follow_redirects=False)
    assert r.status_code == 404


def test_preview_shows_choices_masked_per_role(client: TestClient, factory: Factory, db: Session) -> None:
    f = family(factory)
    url = (
        f"/api/v1/merges/preview?survivor_id={f.survivor}&merged_ids={f.m1}&merged_ids={f.m2}"
        f"&prefer=city={f.m1}"
    )
    r = client.get(url, headers=factory.auth(f.user))
    assert r.status_code == 200, r.text
    fields = {x["field"]: x for x in r.json()["fields"]}
    assert (fields["display_name"]["value"], fields["display_name"]["source_id"]) == ("王晓明", f.m1)
    assert (fields["city"]["value"], fields["city"]["rule"]) == ("北京", "override")
    assert fields["display_name"]["candidates"] == {
        str(f.survivor): "王小明",
        str(f.m1): "王晓明",
        str(f.m2): "Wang Xiaoming",
    }
    analyst = factory.user("data_analyst", f.team)
    seen = client.get(url, headers=factory.auth(analyst)).json()
    fields = {x["field"]: x for x in seen["fields"]}
    assert fields["display_name"] == {
        "field": "display_name",
        "rule": "most_trusted",
        "source_id": f.m1,
        "value": None,
        "hidden": True,
        "candidates": {},
    }
    assert fields["attributes.vip"]["hidden"] is True
    assert fields["city"]["value"] == "北京"
    # A preview writes nothing.
    assert db.execute(select(C.c.deleted_at).where(C.c.id == f.m1)).scalar() is None


def test_merge_request_validation(client: TestClient, factory: Factory, db: Session) -> None:
    f = family(factory)
    h = factory.auth(f.user)
    for body in (
        {"survivor_id": f.survivor, "merged_ids": []},
        {"survivor_id": f.survivor, "merged_ids": [f.survivor]},
        {"survivor_id": f.survivor, "merged_ids": [f.m1], "overrides": {"password_hash": f.m1}},
        {"survivor_id": f.survivor, "merged_ids": [f.m1], "extra": 1},
    ):
        assert client.post("/api/v1/merges", json=body, headers=h).status_code == 422, body
    db.execute(update(C).where(C.c.id == f.m2).values(erased_at=C.c.created_at, deleted_at=C.c.created_at))
    erased = client.post("/api/v1/merges", json={"survivor_id": f.survivor, "merged_ids": [f.m2]}, headers=h)
    assert (erased.status_code, erased.json()["detail"]) == (409, f"customer {f.m2} was erased")


def test_a_merged_customer_is_revived_by_undo_not_by_restore(
    client: TestClient, factory: Factory, db: Session
) -> None:
    f = family(factory)
    h = factory.auth(f.user)
    client.post("/api/v1/merges", json={"survivor_id": f.survivor, "merged_ids": [f.m1]}, headers=h)
    version = db.execute(select(C.c.version).where(C.c.id == f.m1)).scalar_one()
    r = client.post(f"/api/v1/customers/{f.m1}/restore", headers={**h, "If-Match": f'"{f.m1}.{version}"'})
    assert r.status_code == 409, r.text
    assert (
        r.json()["detail"] == f"customer {f.m1} was merged into customer {f.survivor}; undo the merge instead"
    )
