"""Imports started with an API key act with the key's scopes, not the owner's whole role: checked
when the job is created and again whenever it runs or resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select, update

from rapport.access.policy import Action, Role
from rapport.access.principal import SYSTEM, Principal
from rapport.db import Database
from rapport.ingest import jobs
from rapport.ingest import repository as repo
from rapport.models import ApiKey, Customer, User
from rapport.models.base import table_of, utcnow
from tests.factories import Factory
from tests.ingest.helpers import queue_upsert

ROWS = [
    {"客户编号": "K1", "姓名": "王小明"},
    {"客户编号": "K2", "姓名": "李雷"},
    {"客户编号": "K3", "姓名": "韩梅梅"},
]


def _key(factory: Factory, user_id: int, scopes: list[str]) -> tuple[int, dict[str, str]]:
    key_id, secret = factory.api_key(user_id, scopes, name="import key")
    return key_id, {"Authorization": f"Bearer {secret}"}


def _customers(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(table_of(Customer))).scalar_one())


def _jobs(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(repo.JOBS)).scalar_one())


def _post(client: TestClient, auth: dict[str, str], mode: str) -> Any:
    body = {"rows": ROWS, "mode": mode, "match": ["external_id"], "batch_size": 1}
    return client.post("/api/v1/imports", headers=auth, content=json.dumps(body))


def test_a_key_without_customer_write_scope_cannot_import_customers(
    client: TestClient, factory: Factory, connection: Connection
) -> None:
    owner = factory.user("crm_specialist", team_id=factory.team())  # the role could
    _, read_only = _key(factory, owner, ["import:create", "import:read", "customer:read"])
    _, create_only = _key(factory, owner, ["import:create", "import:read", "customer:create"])
    headers = {"Content-Type": "application/json"}

    r = _post(client, read_only | headers, "create")
    assert r.status_code == 403, r.text
    assert r.json()["detail"] == "this API key may not create customer records"
    # Upsert also updates: a key that may only create is refused too.
    r = _post(client, create_only | headers, "upsert")
    assert r.status_code == 403, r.text
    assert r.json()["detail"] == "this API key may not update customer records"
    r = _post(client, create_only | headers, "update")
    assert r.status_code == 403
    assert (_customers(connection), _jobs(connection)) == (0, 0)

    # Creating only is what that key may do: the job runs and records the key and its scopes.
    r = _post(client, create_only | headers, "create")
    assert r.status_code == 202, r.text
    job = connection.execute(select(repo.JOBS).where(repo.JOBS.c.id == r.json()["id"])).mappings().one()
    assert (job["status"], job["created_count"], job["actor_kind"]) == ("done", 3, "api_key")
    assert job["scopes"] == ["customer:create", "import:create", "import:read"]
    assert job["api_key_id"] is not None
    assert _customers(connection) == 3


def _key_job(tmp_path: Path, database: Database, factory: Factory, scopes: list[str]) -> tuple[int, int, int]:
    team = factory.team()
    owner = factory.user("crm_specialist", team_id=team)
    key_id, _ = _key(factory, owner, scopes)
    principal = Principal(
        user_id=owner,
        username=f"u{owner}",
        role=Role.crm_specialist,
        team_id=team,
        kind="api_key",
        scopes=frozenset(scopes),
        api_key_id=key_id,
    )
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return queue_upsert(database, principal, path, batch_size=1), key_id, owner


SCOPES = ["customer:create", "customer:update", "import:create", "import:read", "import:update"]


def _interrupt_after_one_batch(database: Database, connection: Connection, job_id: int) -> dict[str, Any]:
    """Run one batch, then leave the job as a runner that died would (interrupted)."""
    first = jobs.run_job(database, job_id, max_batches=1)
    connection.execute(update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(status="interrupted"))
    return first


def _resume(database: Database, job_id: int) -> None:
    with database.unit(write=True) as session:
        jobs.resume_job(session, SYSTEM, job_id)


def test_a_revoked_key_stops_the_job_on_run_and_on_resume(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    job_id, key_id, _ = _key_job(tmp_path, database, factory, SCOPES)
    first = _interrupt_after_one_batch(database, connection, job_id)
    assert (first["status"], first["created"]) == ("running", 1)
    connection.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))

    _resume(database, job_id)
    out = jobs.run_job(database, job_id)
    assert (out["status"], out["rows"], out["created"]) == ("failed", 1, 1)
    error = connection.execute(select(repo.JOBS.c.error).where(repo.JOBS.c.id == job_id)).scalar_one()
    assert error == "not allowed: the API key that started this import is revoked"
    assert _customers(connection) == 1


def test_the_job_keeps_the_keys_scopes_when_the_role_changes(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    job_id, _, owner = _key_job(tmp_path, database, factory, SCOPES)
    _interrupt_after_one_batch(database, connection, job_id)
    # The owner is now a data analyst: the role no longer allows writing customers at all, so the
    # key's scopes (narrowing the current role) allow nothing either.
    connection.execute(update(User).where(User.id == owner).values(role="data_analyst"))
    _resume(database, job_id)
    out = jobs.run_job(database, job_id)
    assert (out["status"], out["created"]) == ("failed", 1)
    error = connection.execute(select(repo.JOBS.c.error).where(repo.JOBS.c.id == job_id)).scalar_one()
    assert error == "not allowed: this API key may not create customer records"
    assert _customers(connection) == 1


def test_a_valid_key_resumes_with_its_scopes(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    job_id, _, owner = _key_job(tmp_path, database, factory, SCOPES)
    _interrupt_after_one_batch(database, connection, job_id)
    with database.unit(write=True) as session:
        jobs.resume_job(session, SYSTEM, job_id)
        principal = jobs.principal_of(session, jobs.get_job(session, SYSTEM, job_id))
    assert (principal.kind, principal.scopes, principal.user_id) == ("api_key", frozenset(SCOPES), owner)
    # The owner's role may delete and export customers; the job's principal may not.
    assert [principal.can("customer", a) for a in (Action.create, Action.update, Action.delete)] == [
        True,
        True,
        False,
    ]
    assert not principal.can("customer", Action.export)
    out = jobs.run_job(database, job_id)
    assert (out["status"], out["created"]) == ("done", 3)
    assert _customers(connection) == 3
