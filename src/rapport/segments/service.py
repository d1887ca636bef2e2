"""Segment definitions (records DB, through the data-access layer) and their evaluation (store)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from pydantic import TypeAdapter
from sqlalchemy import ColumnElement

from rapport.access.policy import Action, Scope
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER, SEGMENT
from rapport.crud import Resource, refuse_nulls, starts_with
from rapport.errors import RapportError
from rapport.pagination import Sort
from rapport.segments import evaluate
from rapport.segments.rules import Rule
from rapport.segments.schemas import SegmentCreate, SegmentFilters, SegmentRead, SegmentUpdate

_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
_MEMBER_SORT = Sort("id", False)


class AnalyticsUnavailable(RapportError):
    status, slug, title = 503, "analytics-unavailable", "Analytics store not ready"


class Segments(Resource):
    spec = SEGMENT
    read = SegmentRead
    create = SegmentCreate
    update = SegmentUpdate
    filters = SegmentFilters
    default_sort = "name"
    tag = "segments"

    def where(self, recs: Records, f: SegmentFilters) -> Sequence[ColumnElement[bool]]:
        return [starts_with(SEGMENT.table.c.name, f.q)] if f.q else []

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, "name", "definition")
        if "definition" in values:
            values["definition"] = body.definition.model_dump()
        return values


segments = Segments()


def visibility(recs: Records) -> evaluate.Visibility:
    """The caller's customer scope, applied to members in the store (ids are record ids)."""
    grant = recs.grant(CUSTOMER, Action.read)
    p = recs.principal
    if grant.scope is Scope.all:
        return evaluate.ALL
    if grant.scope is Scope.team and p.team_id is not None:
        return evaluate.Visibility(team_id=p.team_id, owner_id=p.user_id, everyone=False)
    return evaluate.Visibility(team_id=None, owner_id=p.user_id, everyone=False)


# -- the analytics store --------------------------------------------------------------------------


@contextmanager
def open_store(source: duckdb.DuckDBPyConnection | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on a shared connection (tests, workers), or a read-only connection to the file."""
    if isinstance(source, duckdb.DuckDBPyConnection):
        cur = source.cursor()
        try:
            yield cur
        finally:
            cur.close()
        return
    if not source.exists():
        raise AnalyticsUnavailable("the analytics store has not been built yet; run the analytics sync")
    try:
        con = duckdb.connect(str(source), read_only=True)
    except duckdb.Error as exc:
        raise AnalyticsUnavailable("the analytics store is busy; try again shortly") from exc
    try:
        yield con
    finally:
        con.close()


def _rule_of(definition: Any) -> Rule:
    return definition if not isinstance(definition, dict) else _RULE.validate_python(definition)


def _evaluated(fn: Any) -> Any:
    try:
        return fn()
    except evaluate.StoreNotReady:
        raise AnalyticsUnavailable(
            "segment features are not built yet; run the segments analytics job"
        ) from None


Store = duckdb.DuckDBPyConnection | Path


def preview(recs: Records, store: Store, definition: Rule, *, first: int = 20) -> evaluate.Preview:
    recs.require(SEGMENT, Action.read)
    vis = visibility(recs)
    with open_store(store) as con:
        result: evaluate.Preview = _evaluated(lambda: evaluate.preview(con, definition, vis, first))
    recs.audit("preview", "segment", None, details={"ids": result.first_ids, "count": result.count})
    return result


def members(
    recs: Records, store: Store, segment_id: int, *, cursor: str | None, limit: int
) -> dict[str, Any]:
    row = recs.get(SEGMENT, segment_id)
    rule = _rule_of(row["definition"])
    vis = visibility(recs)
    after = recs.cursors.decode(cursor, _MEMBER_SORT, CUSTOMER.table)[1] if cursor else None
    with open_store(store) as con:
        total: int = _evaluated(lambda: evaluate.count(con, rule, vis))
        ids: list[int] = _evaluated(
            lambda: evaluate.member_ids(con, rule, after=after, limit=limit + 1, vis=vis)
        )
    next_cursor = None
    if len(ids) > limit:
        ids = ids[:limit]
        next_cursor = recs.cursors.encode(_MEMBER_SORT, ids[-1], ids[-1])
    recs.audit("members", "segment", segment_id, details={"ids": ids, "count": total})
    return {
        "segment_id": segment_id,
        "count": total,
        "customer_ids": ids,
        "next_cursor": next_cursor,
        "limit": limit,
    }
