"""Standard REST routes for a resource, built on the data-access layer.

A domain describes its resource with a :class:`Resource` subclass (schemas, filters, hooks) and
calls :func:`mount`; list, read, create, update and delete then behave the same everywhere
(scope, field masks, ETag/If-Match, idempotency, cursors, audit, problem details).
"""

# No ``from __future__ import annotations`` here: FastAPI must see the real classes in the
# signatures of the generated route functions.

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, create_model
from sqlalchemy import ColumnElement, Select
from sqlalchemy.exc import IntegrityError

from rapport.access.policy import Action
from rapport.access.records import Records, Row
from rapport.access.specs import CUSTOMER, ResourceSpec
from rapport.deps import CurrentPrincipal, DbSession, Recs
from rapport.errors import Conflict, Forbidden, PreconditionFailed, RapportError, invalid_field
from rapport.http import JSON, etag, expected_version, idempotent, json_record
from rapport.schemas import ListParams, Output

RecordId = Annotated[int, Path(ge=1, le=2**53, description="Record id")]

PROBLEM = {"content": {"application/problem+json": {}}, "description": "Problem details (RFC 9457)"}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return dict.fromkeys(codes, PROBLEM)


class Resource:
    spec: ClassVar[ResourceSpec]
    read: ClassVar[type[BaseModel]]
    create: ClassVar[type[BaseModel] | None] = None
    update: ClassVar[type[BaseModel] | None] = None
    filters: ClassVar[type[BaseModel] | None] = None
    # "customer": created under /customers/{id}/<path>; None: created at /<path>.
    parent: ClassVar[str | None] = None
    deletable: ClassVar[bool] = True
    default_sort: ClassVar[str] = "-id"
    tag: ClassVar[str] = ""

    def default_sort_for(self, recs: Records) -> str:
        """The resource's default order, or id order when the caller may not see that column."""
        hidden = recs.principal.grant(self.spec.name).hidden
        return "id" if self.default_sort.lstrip("-") in hidden else self.default_sort

    # -- hooks a domain overrides -------------------------------------------------------------

    def where(self, recs: Records, filters: Any) -> Sequence[ColumnElement[bool]]:
        return ()

    def refine(self, recs: Records, filters: Any) -> Any:
        """Optionally returns a function that adds joins or subqueries to the list select."""
        return None

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        values = body.model_dump()
        if parent_id is not None:
            values["customer_id"] = parent_id
        return values  # type: ignore[no-any-return]

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        return body.changes()  # type: ignore[no-any-return]

    def after_write(self, recs: Records, row: Row, body: Any) -> None:
        """Maintain derived rows (tags, search terms, lines) after a create or update."""

    def expand(self, recs: Records, rows: list[Row]) -> list[Row]:
        """Attach related data to rows about to be returned; must respect the caller's masks."""
        return rows

    # -- operations used by the routes and by other domains ----------------------------------

    def get(self, recs: Records, record_id: int) -> Row:
        return self.expand(recs, [recs.get(self.spec, record_id)])[0]

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        recs.require(self.spec, Action.create)
        if parent_id is not None:
            recs.get(CUSTOMER, parent_id, audit_action=None)
        row = recs.create(self.spec, self.prepare_create(recs, body, parent_id))
        self.after_write(recs, row, body)
        return self.get_after_write(recs, row["id"])

    def get_after_write(self, recs: Records, record_id: int) -> Row:
        return self.expand(recs, [recs.get(self.spec, record_id, audit_action=None)])[0]

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        # Scope first: prepare_update may read the record, and must never see one out of scope
        # (that would leak its existence through a 422, or fail on a missing id).
        recs.locate(self.spec, record_id, Action.update)
        values = self.prepare_update(recs, record_id, body)
        row = recs.update(self.spec, record_id, values, version)
        self.after_write(recs, row, body)
        return self.get_after_write(recs, record_id)

    def locate(self, recs: Records, record_id: int, action: Action, version: int | None = None) -> Row:
        """The current row, checked the way the write itself will be (404, then 403, then 412).

        Business rules that read the current state (transitions, uniqueness, in-use checks) call
        this first so they never answer 409/422 about a record the caller may not touch, and a
        stale If-Match is reported as 412 instead of a rule violation computed from newer data.
        """
        row = recs.get(self.spec, record_id, audit_action=None)
        if not recs.principal.can(self.spec.name, action):
            recs.audit(action.value, self.spec.name, record_id, outcome="denied")
            raise Forbidden(f"your role may not {action.value} {self.spec.name.replace('_', ' ')} records")
        if version is not None and "version" in row and row["version"] != version:
            raise PreconditionFailed(
                f"{self.spec.name.replace('_', ' ')} {record_id} was changed by someone else; "
                "reload it and apply your change again"
            )
        return row

    def do_delete(self, recs: Records, record_id: int, version: int) -> None:
        """Override to refuse deleting records that others still reference (409, not a 500)."""
        recs.delete(self.spec, record_id, version)


def starts_with(column: Any, text: str) -> ColumnElement[bool]:
    """Anchored LIKE: a prefix (no leading wildcard) that a suitable index can serve.

    LIKE wildcards in the user's text are escaped so "50%" means the characters 5, 0, %.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")  # type: ignore[no-any-return]


def refuse_nulls(values: dict[str, Any], *names: str) -> None:
    """PATCH may clear optional fields with null, never required ones."""
    for name in names:
        if name in values and values[name] is None:
            raise invalid_field(name, "must not be null", "null")


def equal_filters(table: Any, filters: Any, *names: str) -> list[ColumnElement[bool]]:
    """``column = value`` for each named filter the caller set."""
    return [table.c[n] == getattr(filters, n) for n in names if getattr(filters, n) is not None]


def time_window(
    column: Any, start: Any, end: Any, start_name: str, end_name: str
) -> list[ColumnElement[bool]]:
    """Half-open [start, end) on ``column``; an empty or inverted window is a 422."""
    check_range(start, end, end_name, start_name)
    clauses: list[ColumnElement[bool]] = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return clauses


def check_range(start: Any, end: Any, end_name: str, start_name: str) -> None:
    """Query filters: an empty or inverted range is a mistake worth a 422, not an empty page."""
    if start is not None and end is not None and start >= end:
        raise invalid_field(end_name, f"must be after {start_name}", "range", where="query")


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return "UNIQUE constraint failed" in str(orig)  # SQLite


def unique_error(field: str) -> list[dict[str, Any]]:
    return [{"loc": ["body", field], "field": field, "message": "already used", "type": "unique"}]


@contextmanager
def unique_or_conflict(field: str, message: str) -> Iterator[None]:
    """Turn a unique-index violation into the same 409 the pre-insert check gives.

    Services check uniqueness before writing; two concurrent requests can both pass that check,
    and then the index decides. The loser must get a clear 409, not a 500.
    """
    try:
        yield
    except IntegrityError as exc:
        if not _is_unique_violation(exc):
            raise
        raise Conflict(message, errors=unique_error(field)) from None


def _typed(fn: Any, **annotations: Any) -> Any:
    """Give a generated route function its resource's body/query classes for FastAPI to read."""
    fn.__annotations__.update(annotations)
    return fn


def mount(router: APIRouter, res: Resource) -> None:
    spec, path = res.spec, res.spec.path
    name = spec.name.replace("_", " ")
    read, create, update = res.read, res.create, res.update
    page_model = create_model(
        f"{read.__name__}Page",
        __base__=Output,
        items=(list.__class_getitem__(read), ...),  # type: ignore[arg-type]
        next_cursor=(str | None, None),
        prev_cursor=(str | None, None),
        limit=(int, ...),
    )
    tags: list[str | Any] = [res.tag or spec.path]
    params_model = res.filters or create_model(f"{read.__name__}ListParams", __base__=ListParams)

    async def list_fn(recs: Recs, params: Any) -> Response:
        page = recs.page(
            spec,
            sort=params.sort or res.default_sort_for(recs),
            cursor=params.cursor,
            limit=params.limit,
            where=res.where(recs, params),
            refine=res.refine(recs, params),
        )
        items = res.expand(recs, page.items)
        return JSON(
            {
                "items": items,
                "next_cursor": page.next_cursor,
                "prev_cursor": page.prev_cursor,
                "limit": page.limit,
            }
        )

    router.add_api_route(
        f"/{path}",
        _typed(list_fn, params=Annotated[params_model, Query()]),
        methods=["GET"],
        response_model=page_model,
        tags=tags,
        summary=f"List {name} records",
        operation_id=f"list_{spec.name}",
        responses=problem_responses(401, 403, 422),
    )

    async def read_record(record_id: RecordId, recs: Recs) -> Response:
        return json_record(res.get(recs, record_id))

    router.add_api_route(
        f"/{path}/{{record_id}}",
        read_record,
        methods=["GET"],
        response_model=read,
        tags=tags,
        summary=f"Read one {name}",
        operation_id=f"get_{spec.name}",
        responses=problem_responses(401, 403, 404, 422),
    )

    if create is not None and res.parent is None:

        def create_record(
            body: Any, request: Request, recs: Recs, db: DbSession, principal: CurrentPrincipal
        ) -> Response:
            return idempotent(
                db, request, principal, body, lambda: json_record(res.do_create(recs, body), 201)
            )

        router.add_api_route(
            f"/{path}",
            _typed(create_record, body=create),
            methods=["POST"],
            status_code=201,
            response_model=read,
            tags=tags,
            summary=f"Create a {name}",
            operation_id=f"create_{spec.name}",
            responses=problem_responses(401, 403, 409, 413, 422),
        )
    elif create is not None:

        def create_child(
            record_id: RecordId,
            body: Any,
            request: Request,
            recs: Recs,
            db: DbSession,
            principal: CurrentPrincipal,
        ) -> Response:
            return idempotent(
                db, request, principal, body, lambda: json_record(res.do_create(recs, body, record_id), 201)
            )

        router.add_api_route(
            f"/customers/{{record_id}}/{path}",
            _typed(create_child, body=create),
            methods=["POST"],
            status_code=201,
            response_model=read,
            tags=tags,
            summary=f"Add a {name} to a customer",
            operation_id=f"create_{spec.name}",
            responses=problem_responses(401, 403, 404, 409, 413, 422),
        )

    if update is not None:

        def update_record(record_id: RecordId, body: Any, request: Request, recs: Recs) -> Response:
            version = expected_version(request, record_id)
            return json_record(res.do_update(recs, record_id, body, version))

        router.add_api_route(
            f"/{path}/{{record_id}}",
            _typed(update_record, body=update),
            methods=["PATCH"],
            response_model=read,
            tags=tags,
            summary=f"Change a {name} (send If-Match)",
            operation_id=f"update_{spec.name}",
            responses=problem_responses(401, 403, 404, 409, 412, 413, 422, 428),
        )

    if res.deletable:

        def delete_record(record_id: RecordId, request: Request, recs: Recs) -> Response:
            version = expected_version(request, record_id)
            res.do_delete(recs, record_id, version)
            if spec.soft_delete:
                # The ETag of the deleted state is what POST .../restore needs as If-Match.
                return Response(
                    status_code=204, headers={"ETag": etag(record_id, recs.version_of(spec, record_id))}
                )
            return Response(status_code=204)

        router.add_api_route(
            f"/{path}/{{record_id}}",
            delete_record,
            methods=["DELETE"],
            status_code=204,
            tags=tags,
            summary=f"Delete a {name} (send If-Match)",
            operation_id=f"delete_{spec.name}",
            responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
        )

    if res.deletable and spec.soft_delete:

        def restore_record(record_id: RecordId, request: Request, recs: Recs) -> Response:
            version = expected_version(request, record_id)
            recs.restore(spec, record_id, version)
            return json_record(res.get_after_write(recs, record_id))

        router.add_api_route(
            f"/{path}/{{record_id}}/restore",
            restore_record,
            methods=["POST"],
            response_model=read,
            tags=tags,
            summary=f"Undo the deletion of a {name} (If-Match: the ETag the DELETE returned)",
            operation_id=f"restore_{spec.name}",
            # 409: an erased customer (rapport.privacy.erasure) is a tombstone, never restored.
            responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
        )


__all__ = [
    "RapportError",
    "RecordId",
    "Resource",
    "Select",
    "check_range",
    "equal_filters",
    "mount",
    "refuse_nulls",
    "starts_with",
    "time_window",
    "unique_error",
    "unique_or_conflict",
]
