"""Import wizard: the caller's imports, upload + column mapping + preview, and the job page.

Every step goes through rapport.ingest (the same services as /api/v1/imports): the proposed
mapping, the dry-run preview, job creation, the background run, cancel, revert and the rejected
rows CSV. The uploaded file waits in the data directory (named after the uploader, so nobody
else can start a job from it) between the upload and the start.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from rapport.access.policy import Action
from rapport.access.specs import IMPORT
from rapport.crud import RecordId
from rapport.errors import Forbidden, InvalidInput, NotFound, RapportError
from rapport.ingest import jobs
from rapport.ingest.endpoints import _SUFFIXES, _run_quietly, _upload_dir, prune_drafts
from rapport.ingest.readers import ReadError, read_rows
from rapport.ingest.schemas import FIELDS_BY_KIND
from rapport.ingest.service import proposed_mapping
from rapport.web.context import Page, PageContext, is_htmx
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router()
register_nav(NavItem("imports", N_("Imports"), "/imports", resource="import", order=70))

KINDS = {"customers": N_("Customers"), "orders": N_("Orders")}
MODES = {
    "create": N_("Create new records only"),
    "update": N_("Update existing records only"),
    "upsert": N_("Create or update"),
}
MATCH_KEYS = {"external_id": N_("External id"), "email": N_("Email"), "phone": N_("Phone")}
STATUSES = {
    "queued": N_("Queued"),
    "running": N_("Running"),
    "interrupted": N_("Interrupted"),
    "cancelled": N_("Cancelled"),
    "failed": N_("Failed"),
    "done": N_("Done"),
    "reverted": N_("Reverted"),
}
OUTCOMES = {
    "create": N_("will be created"),
    "update": N_("will be updated"),
    "unchanged": N_("unchanged"),
    "reject": N_("rejected"),
}
LABELS = {
    "kinds": KINDS,
    "modes": MODES,
    "match_keys": MATCH_KEYS,
    "statuses": STATUSES,
    "outcomes": OUTCOMES,
}
ACTIVE = frozenset({"queued", "running"})
_DRAFT = jobs.DRAFT_NAME


def _require(ctx: PageContext, action: Action = Action.read) -> None:
    if not ctx.user.can(IMPORT.name, action):
        raise Forbidden("your role may not use imports")


def _draft_path(ctx: PageContext, name: str) -> Path:
    """The uploaded file of a draft, only for the user who uploaded it."""
    m = _DRAFT.match(name or "")
    if m is None or int(m.group(1)) != ctx.user.user_id or m.group(2) not in _SUFFIXES:
        raise NotFound("this upload is gone; upload the file again")
    path: Path = _upload_dir(ctx.request) / name
    if not path.is_file():
        raise NotFound("this upload is gone; upload the file again")
    return path


def _choices(form: FormData, kind: str, headers: list[str]) -> dict[str, Any]:
    """The wizard's choices from its form: mapping per column (``m0``, ``m1``...), mode, keys."""
    fields = FIELDS_BY_KIND[kind]
    mapping: dict[str, str | None] = {}
    for i, column in enumerate(headers):
        value = form.get(f"m{i}")
        mapping[column] = value if isinstance(value, str) and value in fields else None
    mode = form.get("mode")
    keys = [k for k in form.getlist("match") if isinstance(k, str) and k in MATCH_KEYS]
    return {
        "mapping": mapping,
        "mode": mode if isinstance(mode, str) and mode in MODES else "create",
        "match": keys or ["external_id", "email", "phone"],
    }


def _preview(ctx: PageContext, path: Path, kind: str, choices: dict[str, Any]) -> dict[str, Any]:
    """The dry run of jobs.preview, with counts per outcome; errors as a message."""
    try:
        out = jobs.preview(
            ctx.recs.session,
            ctx.user,
            path,
            kind=kind,
            mode=choices["mode"],
            match_keys=choices["match"],
            mapping=choices["mapping"],
        )
    except (InvalidInput, ReadError) as exc:
        return {"error": str(getattr(exc, "detail", None) or getattr(exc, "reason", None) or exc)}
    rows = out.get("rows") or []
    if rows:
        counts = {k: sum(1 for r in rows if r["outcome"] == k) for k in OUTCOMES}
    else:
        rejected_lines = {r["line"] for r in out.get("rejections") or []}
        counts = {
            "create": int(out.get("created") or 0),
            "update": int(out.get("updated") or 0),
            "unchanged": int(out.get("unchanged") or 0),
            "reject": len(rejected_lines),
        }
    return {"rows": rows, "rejections": out.get("rejections") or [], "counts": counts}


@router.get("/imports")
def imports(ctx: Page) -> Response:
    _require(ctx)
    items = jobs.list_jobs(ctx.recs.session, ctx.user)
    return ctx.render(
        "imports/list.html",
        {
            "nav": "imports",
            "items": items,
            "labels": LABELS,
            "can_create": ctx.user.can(IMPORT.name, Action.create),
        },
    )


@router.get("/imports/new")
def new_import(ctx: Page) -> Response:
    _require(ctx, Action.create)
    return ctx.render(
        "imports/new.html", {"nav": "imports", "labels": LABELS, "errors": {}, "kind": "customers"}
    )


@router.post("/imports/new")
async def upload(ctx: Page) -> Response:
    """Step 1: store the file, propose the mapping and show the first rows' preview."""
    _require(ctx, Action.create)
    form = await ctx.request.form()
    kind = form.get("kind")
    kind = kind if isinstance(kind, str) and kind in KINDS else "customers"
    upload_file = form.get("file")
    errors: dict[str, str] = {}
    suffix = (
        Path(upload_file.filename).suffix.lower()
        if isinstance(upload_file, UploadFile) and upload_file.filename
        else ""
    )
    if not isinstance(upload_file, UploadFile) or not upload_file.filename:
        errors["file"] = ctx.gettext("Choose a file to import.")
    elif suffix not in _SUFFIXES:
        errors["file"] = ctx.gettext("Use a CSV, XLSX, JSON Lines or vCard file.")
    if errors:
        values = {"nav": "imports", "labels": LABELS, "errors": errors, "kind": kind}
        return ctx.render("imports/new.html", values, status=422)
    assert isinstance(upload_file, UploadFile) and upload_file.filename
    draft = f"web-{ctx.user.user_id}-{secrets.token_hex(8)}{suffix}"
    path = _upload_dir(ctx.request) / draft
    data = await upload_file.read()
    await run_in_threadpool(path.write_bytes, data)
    try:
        headers = await run_in_threadpool(jobs.headers_of, path)
    except ReadError as exc:
        path.unlink(missing_ok=True)
        errors["file"] = ctx.gettext("The file could not be read: %(reason)s", reason=exc.reason)
        values = {"nav": "imports", "labels": LABELS, "errors": errors, "kind": kind}
        return ctx.render("imports/new.html", values, status=422)
    if not headers:
        path.unlink(missing_ok=True)
        errors["file"] = ctx.gettext("The file has no rows.")
        values = {"nav": "imports", "labels": LABELS, "errors": errors, "kind": kind}
        return ctx.render("imports/new.html", values, status=422)
    choices = {
        "mapping": proposed_mapping(kind, headers),
        "mode": "create",
        "match": ["external_id", "email", "phone"],
    }
    preview = await run_in_threadpool(_preview, ctx, path, kind, choices)
    return ctx.render(
        "imports/mapping.html",
        {
            "nav": "imports",
            "labels": LABELS,
            "draft": draft,
            "kind": kind,
            "file_name": Path(upload_file.filename).name,
            "headers": headers,
            "fields": FIELDS_BY_KIND[kind],
            "choices": choices,
            "preview": preview,
        },
    )


def _draft_form(ctx: PageContext, form: FormData) -> tuple[Path, str, list[str], dict[str, Any]]:
    kind = form.get("kind")
    kind = kind if isinstance(kind, str) and kind in KINDS else "customers"
    draft = form.get("draft")
    path = _draft_path(ctx, draft if isinstance(draft, str) else "")
    headers = jobs.headers_of(path)
    return path, kind, headers, _choices(form, kind, headers)


@router.post("/imports/preview")
async def preview(ctx: Page) -> Response:
    """Step 2 (HTMX, on every change of the mapping form): the preview again."""
    _require(ctx, Action.create)
    form = await ctx.request.form()
    path, kind, _, choices = await run_in_threadpool(_draft_form, ctx, form)
    out = await run_in_threadpool(_preview, ctx, path, kind, choices)
    return ctx.render(
        "imports/_preview.html", {"labels": LABELS, "preview": out}, status=422 if "error" in out else 200
    )


@router.post("/imports/start")
async def start(ctx: Page, background: BackgroundTasks) -> Response:
    """Step 3: create the job and run it after the response, like POST /api/v1/imports."""
    _require(ctx, Action.create)
    form = await ctx.request.form()
    path, kind, _, choices = await run_in_threadpool(_draft_form, ctx, form)
    name = form.get("file_name")

    def create() -> dict[str, Any]:
        total = sum(1 for _ in read_rows(path))
        job = jobs.create_job(
            ctx.recs.session,
            ctx.user,
            path,
            kind=kind,
            mode=choices["mode"],
            match_keys=choices["match"],
            mapping=choices["mapping"],
            file_name=name if isinstance(name, str) and name else path.name,
            options={"day_first": True, "match_duplicates": False, "total_rows": total},
        )
        # Uploads other wizards left behind (never started) go now; this one is a job's file.
        prune_drafts(ctx.request, ctx.recs.session)
        return job

    try:
        job = await run_in_threadpool(create)
    except (InvalidInput, ReadError) as exc:
        ctx.flash(str(getattr(exc, "detail", None) or getattr(exc, "reason", None) or exc), "error")
        return ctx.redirect("/imports/new")
    background.add_task(_run_quietly, ctx.request.app.state.database, job["id"])
    ctx.flash(ctx.gettext("Import started."))
    return ctx.redirect(f"/imports/{job['id']}")


def _job_context(ctx: PageContext, job: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    total = (job.get("options") or {}).get("total_rows")
    done = int(job["rows_done"])
    percent = 100 if job["status"] == "done" else (min(99, done * 100 // total) if total else None)
    return {
        "nav": "imports",
        "labels": LABELS,
        "job": job,
        "total": total,
        "percent": percent,
        "polling": job["status"] in ACTIVE,
        "can_update": ctx.user.can(IMPORT.name, Action.update),
        "error": error,
    }


@router.get("/imports/{record_id}")
def import_job(record_id: RecordId, ctx: Page) -> Response:
    job = jobs.job_view(jobs.get_job(ctx.recs.session, ctx.user, record_id))
    tpl = "imports/_progress.html" if is_htmx(ctx.request) else "imports/job.html"
    return ctx.render(tpl, _job_context(ctx, job))


@router.get("/imports/{record_id}/progress")
def progress(record_id: RecordId, ctx: Page) -> Response:
    job = jobs.job_view(jobs.get_job(ctx.recs.session, ctx.user, record_id))
    return ctx.render("imports/_progress.html", _job_context(ctx, job))


def _act(
    ctx: PageContext, record_id: int, action: str, background: BackgroundTasks | None = None
) -> Response:
    try:
        if action == "cancel":
            job = jobs.cancel_job(ctx.recs.session, ctx.user, record_id)
        elif action == "resume":
            job = jobs.resume_job(ctx.recs.session, ctx.user, record_id)
            if background is not None:
                background.add_task(_run_quietly, ctx.request.app.state.database, record_id)
        else:
            job = jobs.revert_job(ctx.recs.session, ctx.user, record_id)
    except (NotFound, Forbidden):
        raise
    except RapportError as exc:
        job = jobs.get_job(ctx.recs.session, ctx.user, record_id)
        return ctx.render(
            "imports/_progress.html", _job_context(ctx, jobs.job_view(job), exc.detail), status=409
        )
    return ctx.render("imports/_progress.html", _job_context(ctx, jobs.job_view(job)))


@router.post("/imports/{record_id}/cancel")
def cancel(record_id: RecordId, ctx: Page) -> Response:
    return _act(ctx, record_id, "cancel")


@router.post("/imports/{record_id}/resume")
def resume(record_id: RecordId, ctx: Page, background: BackgroundTasks) -> Response:
    return _act(ctx, record_id, "resume", background)


@router.post("/imports/{record_id}/revert")
def revert(record_id: RecordId, ctx: Page) -> Response:
    return _act(ctx, record_id, "revert")


@router.get("/imports/{record_id}/rejections")
def rejections(record_id: RecordId, ctx: Page) -> Response:
    body = "".join(jobs.rejections_csv(ctx.recs.session, ctx.user, record_id))
    headers = {
        "Content-Disposition": f'attachment; filename="import-{record_id}-rejections.csv"',
        "Cache-Control": "no-store",
    }
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)
