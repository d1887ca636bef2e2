"""What every command shares: settings, the database, and turning failures into clean exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from rapport.config import Settings
    from rapport.db import Database

# The database, migration, model and crypto modules are imported by the functions that use them:
# ``rapport COMMAND --help`` then costs a fraction of a second instead of loading the whole app.

console = Console(highlight=False)

URL_HELP = "SQLAlchemy database URL; defaults to RAPPORT_DATABASE_URL or the SQLite file in RAPPORT_DATA_DIR."


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    from rapport.config import Settings
    from rapport.security import crypto

    # Read the environment afresh (not the cached app settings) so each invocation sees its own.
    cfg = Settings()
    # The field-encryption master key comes from the same settings (env or the data dir's file).
    crypto.configure_from_settings(cfg)
    return cfg


def database_url(url: str | None = None) -> str:
    cfg = settings()
    if url:
        return url
    if not cfg.database_url:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return cfg.resolved_database_url


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Known failures become one line on stderr and exit 1, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from rapport.errors import RapportError
    from rapport.security import crypto

    try:
        yield
    except crypto.CryptoError as exc:
        fail(exc.reason)  # the operator at the console may see what the API never says
    except RapportError as exc:
        fail(exc.detail)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        fail(f"database error: {first}")
    except KeyboardInterrupt:
        fail("interrupted", 130)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from rapport import migrate

    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def open_database(url: str | None = None, *, require_schema: bool = True) -> Iterator[Database]:
    """A Database on the URL; refuses to work on a schema older than this code expects."""
    from rapport.db import Database, make_engine

    resolved = database_url(url)  # reads the settings, which configures the master key
    with cli_errors():
        engine = make_engine(resolved)
        try:
            if require_schema:
                current, head = current_revision(engine), head_revision()
                if current != head:
                    fail(
                        f"database schema is at {current or 'nothing'}, this version needs {head}; "
                        "run `rapport db upgrade` first"
                    )
            yield Database(engine)
        finally:
            engine.dispose()
