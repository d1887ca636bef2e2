"""Entry point: ``rapport`` (declared in pyproject.toml as ``rapport.cli.main:app``).

Exit codes: 0 success, 1 a failure the message explains (bad input, broken chain, drift, database
unreachable), 2 a usage error (unknown option, missing argument), 130 interrupted.
"""

from __future__ import annotations

import typer

from rapport.cli import analytics, audit, db, dedup, exports, imports, keys, merge, privacy, users, webhooks
from rapport.cli.demo import demo
from rapport.cli.serve import serve

app = typer.Typer(
    name="rapport",
    help="Rapport: a self-hosted, privacy-first CRM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(serve)
app.command()(demo)
app.add_typer(db.app, name="db")
app.add_typer(users.user_app, name="user")
app.add_typer(users.team_app, name="team")
app.add_typer(audit.app, name="audit")
app.add_typer(privacy.app, name="privacy")
app.add_typer(keys.app, name="keys")
app.add_typer(analytics.app, name="analytics")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(merge.app, name="merge")
app.add_typer(dedup.app, name="dedup")
app.add_typer(imports.app, name="import")
app.add_typer(exports.app, name="export")

if __name__ == "__main__":
    app()
