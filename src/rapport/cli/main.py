"""Entry point: ``rapport`` (declared in pyproject.toml as ``rapport.cli.main:app``).

Exit codes: 0 success, 1 a failure the message explains (bad input, broken chain, drift, database
unreachable), 2 a usage error (unknown option, missing argument), 130 interrupted.

Sub-commands are imported when they run, not when ``rapport`` starts: the analytics commands pull
in DuckDB, pandas, scipy and scikit-learn, dedup pulls in Splink, serve pulls in uvicorn, and
every one of them paid for all the others (about 4.5 CPU-seconds before ``rapport import`` read its
first row). ``rapport --help`` lists every command from the one-line helps below;
tests/cli/test_cli.py checks that each equals the help of the command it stands for.
"""

from __future__ import annotations

import importlib
from difflib import get_close_matches
from typing import Any, NamedTuple

import typer
from typer import _click as click  # Typer carries its own copy of Click; its classes are these
from typer.core import TyperCommand, TyperGroup


class Lazy(NamedTuple):
    module: str
    attribute: str  # a typer.Typer (a group) or a function (a single command)
    help: str


COMMANDS: dict[str, Lazy] = {
    "serve": Lazy(
        "rapport.cli.serve",
        "serve",
        "Upgrade the schema (idempotent), then serve the API and its docs at /api/v1/docs.",
    ),
    "demo": Lazy(
        "rapport.cli.demo",
        "demo",
        "Load demo teams, users, products, customers, orders and activities (upgrades the schema first).",
    ),
    "db": Lazy(
        "rapport.cli.db", "app", "Database schema: upgrade, check for drift, show the current revision."
    ),
    "user": Lazy("rapport.cli.users", "user_app", "Create, disable, enable and list users."),
    "team": Lazy("rapport.cli.users", "team_app", "Create and list teams."),
    "audit": Lazy("rapport.cli.audit", "app", "Check the tamper-evident audit chain."),
    "privacy": Lazy(
        "rapport.cli.privacy", "app", "Personal data: what is held, why, for how long and who sees it."
    ),
    "keys": Lazy(
        "rapport.cli.keys",
        "app",
        "Field-encryption keys: which versions exist, how many values each seals, rotation.",
    ),
    "analytics": Lazy(
        "rapport.cli.analytics",
        "app",
        "Customer analytics: store sync, jobs (RFM, CLV, lifecycle, churn...), reports, models on files.",
    ),
    "webhooks": Lazy("rapport.cli.webhooks", "app", "Webhook deliveries."),
    "merge": Lazy("rapport.cli.merge", "app", "Merge duplicate customers, and undo merges."),
    "dedup": Lazy(
        "rapport.cli.dedup", "app", "Duplicate detection (probabilistic record linkage with Splink)."
    ),
    "import": Lazy(
        "rapport.cli.imports", "app", "Import customers and orders from files, as resumable, revertible jobs."
    ),
    "export": Lazy("rapport.cli.exports", "app", "Export records to files (audited like API exports)."),
}


def load(name: str) -> click.Command:
    """The real click command behind ``name`` (imports its module)."""
    spec = COMMANDS[name]
    target: Any = getattr(importlib.import_module(spec.module), spec.attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """Lists every command from :data:`COMMANDS`; imports one only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(n for n in self.commands if n not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            # Only the help listing asks for a command it does not run: a stand-in with its help.
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name].help)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.commands[args[0]] = load(args[0])
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            # Typer suggests among the loaded commands only; a typo should hear of all of them.
            matches = get_close_matches(args[0], list(COMMANDS)) if args else []
            if matches and "Did you mean" not in exc.message:
                suggestions = ", ".join(repr(m) for m in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise


app = typer.Typer(
    name="rapport",
    help="Rapport: a self-hosted, privacy-first CRM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)


@app.callback()
def main() -> None:
    """Rapport: a self-hosted, privacy-first CRM."""


if __name__ == "__main__":
    app()
