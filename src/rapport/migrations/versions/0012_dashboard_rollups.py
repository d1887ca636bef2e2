"""web: dashboard rollups (customers per stage/region, orders per day, open tasks per assignee and due day)

Kept by triggers on customer, sales_order and task, so every write path (API, import, merge,
erasure, demo load, raw SQL) updates them in its own transaction. Backfilled here.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 04:20:00
"""

# ruff: noqa: S608  (trigger and backfill SQL is assembled from constants in this file only)
from collections.abc import Callable, Sequence
from functools import partial

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# rapport.analytics.store.PURCHASE_STATUSES when this was written (a test checks they agree).
PURCHASES = "('paid', 'shipped', 'completed')"
_Count = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tables() -> None:
    op.create_table(
        "dashboard_customer_count",
        sa.Column("team_id", _Count, nullable=False),
        sa.Column("owner_id", _Count, nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("customers", _Count, nullable=False),
        sa.PrimaryKeyConstraint(
            "team_id", "owner_id", "lifecycle_stage", "region", name=op.f("pk_dashboard_customer_count")
        ),
    )
    op.create_table(
        "dashboard_order_day",
        sa.Column("team_id", _Count, nullable=False),
        sa.Column("owner_id", _Count, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_cents", _Count, nullable=False),
        sa.Column("orders", _Count, nullable=False),
        sa.PrimaryKeyConstraint(
            "team_id", "owner_id", "day", "currency", name=op.f("pk_dashboard_order_day")
        ),
    )
    op.create_table(
        "dashboard_task_day",
        sa.Column("team_id", _Count, nullable=False),
        sa.Column("owner_id", _Count, nullable=False),
        sa.Column("assignee_id", _Count, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("tasks", _Count, nullable=False),
        sa.PrimaryKeyConstraint(
            "team_id", "owner_id", "assignee_id", "day", name=op.f("pk_dashboard_task_day")
        ),
    )


def _day(pg: bool, expr: str) -> str:
    # SQLite keeps UTC timestamps as ISO text; PostgreSQL as timestamptz.
    return f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if pg else f"substr({expr}, 1, 10)"


def _cents(pg: bool, expr: str) -> str:
    return f"round({expr} * 100)::bigint" if pg else f"CAST(round({expr} * 100) AS INTEGER)"


def _bump_customers(row: str, sign: str) -> str:
    return (
        "INSERT INTO dashboard_customer_count (team_id, owner_id, lifecycle_stage, region, customers) "
        f"SELECT coalesce({row}.team_id, 0), coalesce({row}.owner_id, 0), {row}.lifecycle_stage, "
        f"coalesce({row}.region, ''), {sign}1 WHERE {row}.deleted_at IS NULL "
        "ON CONFLICT (team_id, owner_id, lifecycle_stage, region) DO UPDATE "
        "SET customers = dashboard_customer_count.customers + excluded.customers;"
    )


def _move_orders(pg: bool, row: str, sign: str) -> str:
    """Add (sign +) or take away (-) all purchases of customer ``row`` under its team/owner."""
    return (
        "INSERT INTO dashboard_order_day (team_id, owner_id, day, currency, amount_cents, orders) "
        f"SELECT coalesce({row}.team_id, 0), coalesce({row}.owner_id, 0), {_day(pg, 'o.ordered_at')}, "
        f"o.currency, {sign}sum({_cents(pg, 'o.total_amount')}), {sign}count(*) FROM sales_order o "
        f"WHERE o.customer_id = {row}.id AND o.status IN {PURCHASES} AND {row}.deleted_at IS NULL "
        f"GROUP BY {_day(pg, 'o.ordered_at')}, o.currency "
        "ON CONFLICT (team_id, owner_id, day, currency) DO UPDATE SET "
        "amount_cents = dashboard_order_day.amount_cents + excluded.amount_cents, "
        "orders = dashboard_order_day.orders + excluded.orders;"
    )


def _move_tasks(pg: bool, row: str, sign: str) -> str:
    return (
        "INSERT INTO dashboard_task_day (team_id, owner_id, assignee_id, day, tasks) "
        f"SELECT coalesce({row}.team_id, 0), coalesce({row}.owner_id, 0), coalesce(t.assignee_id, 0), "
        f"{_day(pg, 't.due_at')}, {sign}count(*) FROM task t WHERE t.customer_id = {row}.id "
        f"AND t.status = 'open' AND t.due_at IS NOT NULL AND {row}.deleted_at IS NULL "
        f"GROUP BY coalesce(t.assignee_id, 0), {_day(pg, 't.due_at')} "
        "ON CONFLICT (team_id, owner_id, assignee_id, day) DO UPDATE "
        "SET tasks = dashboard_task_day.tasks + excluded.tasks;"
    )


def _bump_order(pg: bool, row: str, sign: str) -> str:
    """Add or take away one order row (OLD or NEW) under its live customer's team/owner."""
    return (
        "INSERT INTO dashboard_order_day (team_id, owner_id, day, currency, amount_cents, orders) "
        f"SELECT coalesce(c.team_id, 0), coalesce(c.owner_id, 0), {_day(pg, row + '.ordered_at')}, "
        f"{row}.currency, {sign}{_cents(pg, row + '.total_amount')}, {sign}1 FROM customer c "
        f"WHERE c.id = {row}.customer_id AND c.deleted_at IS NULL AND {row}.status IN {PURCHASES} "
        "ON CONFLICT (team_id, owner_id, day, currency) DO UPDATE SET "
        "amount_cents = dashboard_order_day.amount_cents + excluded.amount_cents, "
        "orders = dashboard_order_day.orders + excluded.orders;"
    )


def _bump_task(pg: bool, row: str, sign: str) -> str:
    return (
        "INSERT INTO dashboard_task_day (team_id, owner_id, assignee_id, day, tasks) "
        f"SELECT coalesce(c.team_id, 0), coalesce(c.owner_id, 0), coalesce({row}.assignee_id, 0), "
        f"{_day(pg, row + '.due_at')}, {sign}1 FROM customer c WHERE c.id = {row}.customer_id "
        f"AND c.deleted_at IS NULL AND {row}.status = 'open' AND {row}.due_at IS NOT NULL "
        "ON CONFLICT (team_id, owner_id, assignee_id, day) DO UPDATE "
        "SET tasks = dashboard_task_day.tasks + excluded.tasks;"
    )


_CUSTOMER_KEY_CHANGED = (
    "(OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) OR OLD.team_id IS DISTINCT FROM NEW.team_id "
    "OR OLD.owner_id IS DISTINCT FROM NEW.owner_id"
)
_CUSTOMER_COUNT_CHANGED = (
    f"{_CUSTOMER_KEY_CHANGED} OR OLD.lifecycle_stage IS DISTINCT FROM NEW.lifecycle_stage "
    "OR OLD.region IS DISTINCT FROM NEW.region"
)
_ORDER_CHANGED = (
    "OLD.status IS DISTINCT FROM NEW.status OR OLD.total_amount IS DISTINCT FROM NEW.total_amount "
    "OR OLD.ordered_at IS DISTINCT FROM NEW.ordered_at OR OLD.currency IS DISTINCT FROM NEW.currency "
    "OR OLD.customer_id IS DISTINCT FROM NEW.customer_id"
)
_TASK_CHANGED = (
    "OLD.status IS DISTINCT FROM NEW.status OR OLD.due_at IS DISTINCT FROM NEW.due_at "
    "OR OLD.customer_id IS DISTINCT FROM NEW.customer_id OR OLD.assignee_id IS DISTINCT FROM NEW.assignee_id"
)


# Each rollup trigger fires on these columns of its table (insert and delete fire it too).
_WATCHED: dict[str, tuple[str, str]] = {
    "customer": ("customer", "lifecycle_stage, region, owner_id, team_id, deleted_at"),
    "order": ("sales_order", "status, total_amount, ordered_at, currency, customer_id"),
    "task": ("task", "status, due_at, customer_id, assignee_id"),
}


def _sqlite(cond: str) -> str:
    return cond.replace("IS DISTINCT FROM", "IS NOT")


def _sqlite_row_triggers(name: str, bump: Callable[[str, str], str], changed: str) -> list[str]:
    """Insert, delete and update triggers adding the NEW row and taking away the OLD one."""
    table, columns = _WATCHED[name]
    return [
        f"CREATE TRIGGER dashboard_{name}_ins AFTER INSERT ON {table} BEGIN {bump('NEW', '+')} END",
        f"CREATE TRIGGER dashboard_{name}_del AFTER DELETE ON {table} BEGIN {bump('OLD', '-')} END",
        f"CREATE TRIGGER dashboard_{name}_upd AFTER UPDATE OF {columns} ON {table} "
        f"WHEN {_sqlite(changed)} BEGIN {bump('OLD', '-')} {bump('NEW', '+')} END",
    ]


def _sqlite_triggers() -> list[str]:
    pg = False
    return [
        "CREATE TRIGGER dashboard_customer_ins AFTER INSERT ON customer BEGIN "
        f"{_bump_customers('NEW', '+')} END",
        "CREATE TRIGGER dashboard_customer_del AFTER DELETE ON customer BEGIN "
        f"{_bump_customers('OLD', '-')} {_move_orders(pg, 'OLD', '-')} {_move_tasks(pg, 'OLD', '-')} END",
        f"CREATE TRIGGER dashboard_customer_upd AFTER UPDATE OF {_WATCHED['customer'][1]} "
        f"ON customer WHEN {_sqlite(_CUSTOMER_COUNT_CHANGED)} BEGIN "
        f"{_bump_customers('OLD', '-')} {_bump_customers('NEW', '+')} END",
        "CREATE TRIGGER dashboard_customer_move AFTER UPDATE OF owner_id, team_id, deleted_at ON customer "
        f"WHEN {_sqlite(_CUSTOMER_KEY_CHANGED)} BEGIN "
        f"{_move_orders(pg, 'OLD', '-')} {_move_orders(pg, 'NEW', '+')} "
        f"{_move_tasks(pg, 'OLD', '-')} {_move_tasks(pg, 'NEW', '+')} END",
        *_sqlite_row_triggers("order", partial(_bump_order, pg), _ORDER_CHANGED),
        *_sqlite_row_triggers("task", partial(_bump_task, pg), _TASK_CHANGED),
    ]


def _pg_row_body(bump: Callable[[str, str], str], changed: str) -> str:
    """PL/pgSQL taking away the OLD row (update, delete) and adding the NEW one (update, insert)."""
    return (
        f"IF TG_OP = 'UPDATE' AND NOT ({changed}) THEN RETURN NULL; END IF; "
        f"IF TG_OP IN ('UPDATE', 'DELETE') THEN {bump('OLD', '-')} END IF; "
        f"IF TG_OP IN ('UPDATE', 'INSERT') THEN {bump('NEW', '+')} END IF;"
    )


def _pg_triggers() -> list[str]:
    pg = True
    bodies = {
        "customer": (
            f"{_pg_row_body(_bump_customers, _CUSTOMER_COUNT_CHANGED)} "
            f"IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ({_CUSTOMER_KEY_CHANGED})) THEN "
            f"{_move_orders(pg, 'OLD', '-')} {_move_tasks(pg, 'OLD', '-')} END IF; "
            f"IF TG_OP = 'UPDATE' AND ({_CUSTOMER_KEY_CHANGED}) THEN "
            f"{_move_orders(pg, 'NEW', '+')} {_move_tasks(pg, 'NEW', '+')} END IF;"
        ),
        "order": _pg_row_body(partial(_bump_order, pg), _ORDER_CHANGED),
        "task": _pg_row_body(partial(_bump_task, pg), _TASK_CHANGED),
    }
    statements = []
    for name, (table, columns) in _WATCHED.items():
        statements += [
            f"CREATE FUNCTION dashboard_{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{bodies[name]} RETURN NULL; END $$",
            f"CREATE TRIGGER dashboard_{name} AFTER INSERT OR DELETE OR UPDATE OF {columns} "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION dashboard_{name}()",
        ]
    return statements


def _backfill(pg: bool) -> list[str]:
    return [
        "INSERT INTO dashboard_customer_count (team_id, owner_id, lifecycle_stage, region, customers) "
        "SELECT coalesce(team_id, 0), coalesce(owner_id, 0), lifecycle_stage, coalesce(region, ''), count(*) "
        "FROM customer WHERE deleted_at IS NULL "
        "GROUP BY coalesce(team_id, 0), coalesce(owner_id, 0), lifecycle_stage, coalesce(region, '')",
        "INSERT INTO dashboard_order_day (team_id, owner_id, day, currency, amount_cents, orders) "
        f"SELECT coalesce(c.team_id, 0), coalesce(c.owner_id, 0), {_day(pg, 'o.ordered_at')}, o.currency, "
        f"sum({_cents(pg, 'o.total_amount')}), count(*) FROM sales_order o JOIN customer c "
        f"ON c.id = o.customer_id WHERE c.deleted_at IS NULL AND o.status IN {PURCHASES} "
        f"GROUP BY coalesce(c.team_id, 0), coalesce(c.owner_id, 0), {_day(pg, 'o.ordered_at')}, o.currency",
        "INSERT INTO dashboard_task_day (team_id, owner_id, assignee_id, day, tasks) "
        "SELECT coalesce(c.team_id, 0), coalesce(c.owner_id, 0), coalesce(t.assignee_id, 0), "
        f"{_day(pg, 't.due_at')}, count(*) FROM task t JOIN customer c ON c.id = t.customer_id "
        "WHERE c.deleted_at IS NULL AND t.status = 'open' AND t.due_at IS NOT NULL "
        "GROUP BY coalesce(c.team_id, 0), coalesce(c.owner_id, 0), coalesce(t.assignee_id, 0), "
        f"{_day(pg, 't.due_at')}",
    ]


def upgrade() -> None:
    _tables()
    pg = op.get_bind().dialect.name == "postgresql"
    for statement in _backfill(pg):
        op.execute(statement)
    for statement in _pg_triggers() if pg else _sqlite_triggers():
        op.execute(statement)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for name, (table, _) in _WATCHED.items():
        if pg:
            op.execute(f"DROP TRIGGER IF EXISTS dashboard_{name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS dashboard_{name}()")
    if not pg:
        for trigger in [
            "customer_ins",
            "customer_del",
            "customer_upd",
            "customer_move",
            "order_ins",
            "order_del",
            "order_upd",
            "task_ins",
            "task_del",
            "task_upd",
        ]:
            op.execute(f"DROP TRIGGER IF EXISTS dashboard_{trigger}")
    op.drop_table("dashboard_task_day")
    op.drop_table("dashboard_order_day")
    op.drop_table("dashboard_customer_count")
