"""Property-based API conformance: Schemathesis against the in-process app, every default check.

Every operation is exercised with positive and negative examples by an admin (so authorisation is
not what refuses the request); the app must never answer 5xx, every status and content type must
be documented, and every body must match its declared schema.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sqlalchemy import Engine

from rapport import migrate
from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database, make_engine
from rapport.segments.features import build_features
from tests.conftest import _drop_schema, _fresh_url
from tests.factories import Factory
from tests.segments.store import AS_OF, empty_store

EXAMPLES_PER_OPERATION = 25
SEED = 20_240_611


@pytest.fixture(scope="module")
def fuzz_db(data_dir: Path) -> Iterator[Database]:
    # Real commits in a database of its own: thousands of generated writes must not touch others.
    sub = data_dir / f"fuzz-{secrets.token_hex(4)}"
    sub.mkdir()
    url, schema = _fresh_url(sub)
    migrate.upgrade(url)
    database = Database(make_engine(url))
    assert isinstance(database.bind, Engine)
    with database.bind.begin() as conn:
        factory = Factory(conn)
        team = factory.team()
        admin = factory.user("admin", team, username="fuzz-admin")
        customer = factory.customer(owner_id=admin, team_id=team)
        factory.contact(customer)
        product = factory.product()
        factory.order_line(factory.order(customer), product)
        factory.interaction(customer, author_id=admin)
        factory.task(customer, assignee_id=admin)
        factory.organisation(owner_id=admin, team_id=team)
    yield database
    database.dispose()
    _drop_schema(schema)


@pytest.fixture(scope="module")
def fuzz_admin(fuzz_db: Database) -> int:
    assert isinstance(fuzz_db.bind, Engine)
    with fuzz_db.bind.connect() as conn:
        return int(conn.exec_driver_sql("SELECT id FROM app_user WHERE username = 'fuzz-admin'").scalar_one())


@pytest.fixture(scope="module")
def api_schema(settings: Settings, fuzz_db: Database) -> schemathesis.BaseSchema:
    app = create_app(settings, fuzz_db)
    # Segment previews and members read the analytics store: give them an empty, built one.
    store = empty_store()
    build_features(store, AS_OF)
    app.state.analytics_store = store
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "database": "none"},
            "checks": {
                # positive_data_acceptance (ST202) expects every schema-valid request to succeed.
                # Rapport also enforces rules JSON Schema cannot state, each answered with a
                # documented status: If-Match preconditions (428 without, 412 stale/foreign ETag
                # for a generated header), and 422 for cross-field or dynamic rules: contact values
                # valid for their kind (email vs phone), birth dates not in the future, PATCH bodies
                # with at least one field, sort keys of the resource, custom attributes that must
                # be declared first, control characters and blank-after-trim text, the current
                # password on /auth/password. These statuses are added to the check's accepted
                # list (the check stays on); 5xx, undocumented statuses, wrong content types and
                # schema mismatches still fail.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 412, 422, 428, 429, "5xx"]
                },
                # A schema-violating body can also be refused for its size before it is parsed
                # (413, documented on every route with a body).
                "negative_data_rejection": {
                    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
                },
            },
        }
    )
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)


# Time grows with the number of operations (two modes × 25 examples each); on PostgreSQL on a busy
# two-core machine the whole document takes longer than the suite's 300 s deadlock guard.
@pytest.mark.timeout(1200)
def test_api_conforms_to_its_schema(
    api_schema: schemathesis.BaseSchema, fuzz_db: Database, fuzz_admin: int
) -> None:
    # schemathesis.pytest.from_fixture does not work with pytest 9 (it reads a removed private
    # node attribute), so each operation's strategy is driven by Hypothesis directly, with the
    # same default checks that call_and_validate applies.
    assert isinstance(fuzz_db.bind, Engine)
    engine = fuzz_db.bind
    failures: list[str] = []
    tested: list[str] = []

    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                # A fresh token per case: generated calls to /auth/logout or /auth/password revoke it.
                with engine.begin() as conn:
                    token = Factory(conn).token(fuzz_admin)
                # Negative cases that drop the credentials on purpose must go out without them.
                negated = api_schema.is_security_param_negated(case)
                case.call_and_validate(headers=None if negated else {"Authorization": f"Bearer {token}"})

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # every failure is collected, reported below
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
            tested.append(operation.label)
    assert failures == [], "\n\n".join(failures)
    assert len(set(tested)) >= 19
