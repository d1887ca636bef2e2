from __future__ import annotations

import pytest
from alembic.util.exc import CommandError
from sqlalchemy import Engine, inspect

from rapport import migrate
from rapport.models import Base


def test_models_and_migrations_do_not_drift(engine: Engine) -> None:
    # Raises CommandError("New upgrade operations detected") when a model changed without a migration.
    migrate.check(engine.url.render_as_string(hide_password=False))


def test_migrated_schema_has_every_model_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_check_fails_on_an_unmigrated_database(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    with pytest.raises(CommandError):
        migrate.check(url)
