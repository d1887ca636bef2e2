"""Bulk import routes: start a job from a file or JSON rows, poll it, cancel, revert, rejections CSV.

``POST /imports`` answers 202 with the queued job and runs it after the response (in the server's
thread pool), batch by batch; poll ``GET /imports/{record_id}`` for progress. A server stopped
mid-job leaves the job at its checkpoint; the next server start (or its periodic check, or
``rapport import status``) marks it ``interrupted``, and ``POST /imports/{id}/resume`` or
``rapport import resume JOB`` continues it.
"""

# No ``from __future__ import annotations``: FastAPI reads the real classes of the signatures.

import contextlib
import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from rapport.access.policy import Action
from rapport.crud import RecordId, problem_responses
from rapport.db import Database
from rapport.deps import CurrentPrincipal, DbSession
from rapport.errors import Forbidden, InvalidInput
from rapport.http import JSON
from rapport.ingest import jobs
from rapport.ingest.readers import ReadError
from rapport.ingest.schemas import (
    ImportJobRead,
    ImportOptions,
    ImportRowsIn,
    MappingIn,
    MappingOut,
    PreviewOut,
)
from rapport.ingest.service import propose

router = APIRouter(tags=["imports"])
_SUFFIXES = {".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".xlsx", ".xlsm", ".vcf"}

_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["rows"],
                "properties": {"rows": {"type": "array", "items": {"type": "object"}}},
                "description": "ImportRowsIn: options plus rows",
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "options": {
                        "type": "string",
                        "description": "JSON of ImportOptions (kind, mode, match, mapping, ...)",
                    },
                },
            }
        },
    },
}


def _invalid(exc: ValidationError, prefix: str = "body") -> InvalidInput:
    errors = [
        {
            "loc": [prefix, *e["loc"]],
            "field": ".".join(map(str, e["loc"])),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False)
    ]
    return InvalidInput(f"{errors[0]['field'] or prefix}: {errors[0]['message']}", errors=errors)


def _upload_dir(request: Request) -> Path:
    folder = jobs.upload_dir(request.app.state.settings)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def prune_drafts(request: Request, session: Session) -> list[str]:
    """At job creation: wizard uploads never started for ``import_upload_hours`` are deleted."""
    settings = request.app.state.settings
    age = dt.timedelta(hours=settings.import_upload_hours)
    return jobs.prune_uploads(session, _upload_dir(request), max_age=age)


async def _read_body(request: Request) -> tuple[ImportOptions, Path, str]:
    """The options and the stored file (an upload, or the JSON rows written as JSON Lines)."""
    folder = _upload_dir(request)
    token = secrets.token_hex(8)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput(
                "file: send the import file as the multipart field 'file'",
                errors=[{"loc": ["body", "file"], "field": "file", "message": "required", "type": "missing"}],
            )
        suffix = Path(upload.filename).suffix.lower()
        if suffix not in _SUFFIXES:
            raise InvalidInput(
                f"file: unsupported file type {suffix or '(none)'!r}",
                errors=[
                    {
                        "loc": ["body", "file"],
                        "field": "file",
                        "message": f"one of {sorted(_SUFFIXES)}",
                        "type": "file_type",
                    }
                ],
            )
        raw = form.get("options")
        try:
            options = ImportOptions.model_validate_json(raw if isinstance(raw, str) and raw else "{}")
        except ValidationError as exc:
            raise _invalid(exc, "options") from None
        path = folder / f"{token}{suffix}"
        data = await upload.read()
        await run_in_threadpool(path.write_bytes, data)
        return options, path, Path(upload.filename).name
    if ctype.startswith("application/json"):
        try:
            body = ImportRowsIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _invalid(exc) from None
        path = folder / f"{token}.jsonl"
        lines = b"".join(
            orjson.dumps({k: "" if v is None else str(v) for k, v in row.items()}) + b"\n"
            for row in body.rows
        )
        await run_in_threadpool(path.write_bytes, lines)
        options = ImportOptions.model_validate(body.model_dump(exclude={"rows"}))
        return options, path, "rows.jsonl"
    raise InvalidInput(
        "send multipart/form-data with a file, or application/json with rows",
        errors=[
            {
                "loc": ["header", "content-type"],
                "field": "content-type",
                "message": "unsupported",
                "type": "content_type",
            }
        ],
    )


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportJobRead,
    summary="Start an import from an uploaded file or JSON rows (dry_run: preview only)",
    operation_id="create_import",
    openapi_extra={"requestBody": _BODY},
    responses={
        200: {"model": PreviewOut, "description": "Preview (dry_run)"},
        **problem_responses(401, 403, 413, 422),
    },
)
async def create_import(
    request: Request, db: DbSession, principal: CurrentPrincipal, background: BackgroundTasks
) -> Response:
    if not principal.can("import", Action.create):
        raise Forbidden("your role may not start imports")
    options, path, name = await _read_body(request)
    keys: list[str] = list(dict.fromkeys(options.match))
    try:
        if options.dry_run:
            preview = await run_in_threadpool(
                lambda: jobs.preview(
                    db,
                    principal,
                    path,
                    kind=options.kind,
                    mode=options.mode,
                    match_keys=keys,
                    mapping=options.mapping,
                    day_first=options.day_first,
                )
            )
            path.unlink(missing_ok=True)
            return JSON(preview)
        job = await run_in_threadpool(
            lambda: jobs.create_job(
                db,
                principal,
                path,
                kind=options.kind,
                mode=options.mode,
                match_keys=keys,
                mapping=options.mapping,
                batch_size=options.batch_size,
                file_name=name,
                options={"day_first": options.day_first, "match_duplicates": options.match_duplicates},
            )
        )
        await run_in_threadpool(prune_drafts, request, db)
    except ReadError as exc:
        path.unlink(missing_ok=True)
        raise InvalidInput(
            f"file: {exc.reason}" + (f" (line {exc.line})" if exc.line else ""),
            errors=[
                {
                    "loc": ["body", "file"],
                    "field": "file",
                    "line": exc.line,
                    "message": exc.reason,
                    "type": "file",
                }
            ],
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    database: Database = request.app.state.database
    background.add_task(_run_quietly, database, job["id"])
    return JSON(jobs.job_view(job), status_code=202, headers={"Location": f"/api/v1/imports/{job['id']}"})


def _run_quietly(database: Database, job_id: int) -> None:
    # A failure is stored on the job (status failed, error); the response is long gone.
    with contextlib.suppress(Exception):
        jobs.run_job(database, job_id)


@router.post(
    "/imports/mapping",
    response_model=MappingOut,
    summary="Propose which Rapport field each column holds, from the headers (Chinese or English)",
    operation_id="propose_import_mapping",
    responses=problem_responses(401, 403, 422),
)
def propose_mapping(body: MappingIn, principal: CurrentPrincipal) -> MappingOut:
    if not principal.can("import", Action.read):
        raise Forbidden("your role may not use imports")
    from rapport.ingest.schemas import FIELDS_BY_KIND

    proposals = propose(body.kind, body.headers)
    return MappingOut.model_validate(
        {
            "kind": body.kind,
            "mapping": {p.column: p.field for p in proposals},
            "proposals": [
                {"column": p.column, "field": p.field, "confidence": p.confidence, "reason": p.reason}
                for p in proposals
            ],
            "fields": list(FIELDS_BY_KIND[body.kind]),
        }
    )


@router.get(
    "/imports/{record_id}",
    response_model=ImportJobRead,
    summary="An import's status, progress counts and checkpoint (poll while it runs)",
    operation_id="get_import",
    responses=problem_responses(401, 403, 404, 422),
)
def get_import(record_id: RecordId, db: DbSession, principal: CurrentPrincipal) -> Response:
    return JSON(jobs.job_view(jobs.get_job(db, principal, record_id)))


@router.get(
    "/imports/{record_id}/rejections",
    response_class=Response,
    summary="The rejected rows as CSV: line, column, field, reason",
    operation_id="get_import_rejections",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "UTF-8 CSV"},
        **problem_responses(401, 403, 404, 422),
    },
)
def get_import_rejections(record_id: RecordId, db: DbSession, principal: CurrentPrincipal) -> Response:
    body = "".join(jobs.rejections_csv(db, principal, record_id))
    headers = {
        "Content-Disposition": f'attachment; filename="import-{record_id}-rejections.csv"',
        "Cache-Control": "no-store",
    }
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)


@router.post(
    "/imports/{record_id}/cancel",
    response_model=ImportJobRead,
    summary="Stop an import after its current batch",
    operation_id="cancel_import",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def cancel_import(record_id: RecordId, db: DbSession, principal: CurrentPrincipal) -> Response:
    return JSON(jobs.job_view(jobs.cancel_job(db, principal, record_id)))


@router.post(
    "/imports/{record_id}/resume",
    response_model=ImportJobRead,
    status_code=202,
    summary="Continue an interrupted or failed import from its checkpoint",
    operation_id="resume_import",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def resume_import(
    record_id: RecordId,
    request: Request,
    db: DbSession,
    principal: CurrentPrincipal,
    background: BackgroundTasks,
) -> Response:
    job = jobs.resume_job(db, principal, record_id)
    background.add_task(_run_quietly, request.app.state.database, record_id)
    return JSON(jobs.job_view(job), status_code=202)


@router.post(
    "/imports/{record_id}/revert",
    response_model=ImportJobRead,
    summary="Undo an import: remove what it created, restore what it updated (409: changed since)",
    operation_id="revert_import",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def revert_import(record_id: RecordId, db: DbSession, principal: CurrentPrincipal) -> Response:
    return JSON(jobs.job_view(jobs.revert_job(db, principal, record_id)))


__all__ = ["Any", "json", "router"]
