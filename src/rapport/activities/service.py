"""Interactions (the conversation history) and follow-up tasks, both kept under a customer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select

from rapport.access.policy import Action, Role
from rapport.access.records import Records, Row
from rapport.access.specs import INTERACTION, TASK, USER
from rapport.activities.schemas import (
    InteractionCreate,
    InteractionFilters,
    InteractionRead,
    InteractionUpdate,
    TaskCreate,
    TaskFilters,
    TaskRead,
    TaskUpdate,
)
from rapport.crud import Resource, equal_filters, refuse_nulls, time_window
from rapport.errors import Forbidden, invalid_field
from rapport.models.base import utcnow

# Front-line roles may correct their own notes, not rewrite what a colleague recorded.
_AUTHOR_ONLY = frozenset({Role.sales_rep, Role.service_rep})


class Interactions(Resource):
    spec = INTERACTION
    read = InteractionRead
    create = InteractionCreate
    update = InteractionUpdate
    filters = InteractionFilters
    parent = "customer"
    default_sort = "-occurred_at"
    tag = "interactions"

    def where(self, recs: Records, f: InteractionFilters) -> Sequence[ColumnElement[bool]]:
        t = INTERACTION.table
        return [
            *equal_filters(t, f, "customer_id", "kind", "author_id"),
            *time_window(t.c.occurred_at, f.occurred_from, f.occurred_to, "occurred_from", "occurred_to"),
        ]

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        values: dict[str, Any] = body.model_dump()
        values["customer_id"] = parent_id
        values["author_id"] = recs.principal.user_id
        if values["occurred_at"] is None:
            values["occurred_at"] = utcnow()
        return values

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, "kind", "direction", "occurred_at")
        current = self.locate(recs, record_id, Action.update, version)
        p = recs.principal
        if p.role in _AUTHOR_ONLY and current.get("author_id") != p.user_id:
            recs.audit("update", INTERACTION.name, record_id, outcome="denied")
            raise Forbidden("only the author of an interaction or a team lead may change it")
        recs.update(INTERACTION, record_id, values, version)
        return self.get_after_write(recs, record_id)


def check_assignee(recs: Records, user_id: int) -> None:
    """An assignee must be an active user the caller can see (for a rep: someone on their team)."""
    u = USER.table
    active = recs.conn.execute(
        select(u.c.is_active).where(u.c.id == user_id, recs.visible(USER))
    ).scalar_one_or_none()
    if active is None:
        raise invalid_field("assignee_id", f"no user {user_id} that you can see", "reference")
    if not active:
        raise invalid_field("assignee_id", f"user {user_id} is disabled", "inactive")


class Tasks(Resource):
    spec = TASK
    read = TaskRead
    create = TaskCreate
    update = TaskUpdate
    filters = TaskFilters
    parent = "customer"
    default_sort = "due_at"
    tag = "tasks"

    def where(self, recs: Records, f: TaskFilters) -> Sequence[ColumnElement[bool]]:
        t = TASK.table
        clauses = equal_filters(t, f, "customer_id", "assignee_id", "status", "priority")
        if f.mine:
            clauses.append(t.c.assignee_id == recs.principal.user_id)
        if f.overdue:
            clauses.extend((t.c.status == "open", t.c.due_at < utcnow()))
        if f.due_before is not None:
            clauses.append(t.c.due_at < f.due_before)
        return clauses

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        values: dict[str, Any] = body.model_dump()
        # A task nobody owns is a task nobody does: unassigned means "mine".
        if values["assignee_id"] is None:
            values["assignee_id"] = recs.principal.user_id
        else:
            check_assignee(recs, values["assignee_id"])
        values.update(customer_id=parent_id, status="open", completed_at=None)
        return values

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, "title", "priority", "status")
        current = self.locate(recs, record_id, Action.update, version)
        if values.get("assignee_id") is not None:
            check_assignee(recs, values["assignee_id"])
        status = values.get("status")
        if status is not None and status != current["status"]:
            values["completed_at"] = None if status == "open" else utcnow()
        recs.update(TASK, record_id, values, version)
        return self.get_after_write(recs, record_id)


interactions = Interactions()
tasks = Tasks()
