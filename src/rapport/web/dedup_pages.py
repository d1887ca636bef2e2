"""Duplicate review queue: open clusters, a cluster side by side with the merge preview, merge,
dismiss, and the merge record with its undo.

Clusters and members come from rapport.dedup.service (the same scope, masks and audit as
/api/v1/dedup/clusters); the field-by-field preview, the merge and its undo from rapport.merge.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.responses import Response

from rapport.access.policy import Action
from rapport.access.specs import DEDUP_CLUSTER
from rapport.crud import RecordId
from rapport.dedup import service
from rapport.errors import Forbidden, NotFound, RapportError
from rapport.merge import service as merges
from rapport.web.context import Page, PageContext
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router()
register_nav(NavItem("dedup", N_("Duplicates"), "/dedup", resource="dedup", order=75))

STATUSES = {"open": N_("Open"), "merged": N_("Merged"), "dismissed": N_("Dismissed")}
MERGE_STATUSES = {"merged": N_("Merged"), "undone": N_("Undone")}
PAGE_SIZE = 50


def _require(ctx: PageContext, action: Action = Action.read) -> None:
    if not ctx.user.can(DEDUP_CLUSTER.name, action):
        raise Forbidden("your role may not review duplicates")


def _show(value: Any) -> str | None:
    """A preview value as text (dates ISO, lists joined, objects as JSON)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return str(value)


def _best(cluster: dict[str, Any]) -> float | None:
    probs = [p["probability"] for p in cluster.get("pairs") or []]
    return max(probs) if probs else None


@router.get("/dedup")
def queue(ctx: Page, cursor: str | None = None) -> Response:
    _require(ctx)
    items, next_cursor = service.list_clusters(
        ctx.recs, status="open", sort="-max_probability", cursor=cursor, limit=PAGE_SIZE
    )
    for c in items:
        c["best"] = _best(c)
    return ctx.render(
        "dedup/queue.html", {"nav": "dedup", "items": items, "next_cursor": next_cursor, "statuses": STATUSES}
    )


def _cluster_context(ctx: PageContext, record_id: int, survivor: int | None) -> dict[str, Any]:
    cluster = service.get_cluster(ctx.recs, record_id)
    members = cluster["members"]
    ids = [m["id"] for m in members]
    chosen = survivor if survivor in ids else (ids[0] if ids else None)
    preview: dict[str, Any] | None = None
    problem: str | None = None
    if cluster["status"] == "open" and chosen is not None and len(ids) > 1 and not cluster["hidden_members"]:
        try:
            preview = merges.preview(ctx.recs.session, ctx.user, chosen, [i for i in ids if i != chosen])
        except RapportError as exc:
            problem = exc.detail
        if preview is not None:
            for f in preview["fields"]:
                f["shown"] = {k: _show(v) for k, v in f["candidates"].items()}
    merge = None
    if cluster.get("merge_id"):
        try:
            merge = merges.get_merge(ctx.recs.session, ctx.user, int(cluster["merge_id"]), audit=False)
        except (NotFound, Forbidden):
            merge = None
    probability = {}
    for p in cluster.get("pairs") or []:
        probability[(p["left_id"], p["right_id"])] = p["probability"]
    return {
        "nav": "dedup",
        "cluster": cluster,
        "members": members,
        "survivor": chosen,
        "preview": preview,
        "problem": problem,
        "merge": merge,
        "statuses": STATUSES,
        "merge_statuses": MERGE_STATUSES,
        "can_update": ctx.user.can(DEDUP_CLUSTER.name, Action.update),
        "best": _best(cluster),
    }


@router.get("/dedup/{record_id}")
def cluster_page(record_id: RecordId, ctx: Page, survivor: int | None = None) -> Response:
    _require(ctx)
    return ctx.render("dedup/cluster.html", _cluster_context(ctx, record_id, survivor))


def _decided(ctx: PageContext, record_id: int, message: str) -> Response:
    ctx.flash(message)
    return ctx.redirect(f"/dedup/{record_id}")


def _refused(ctx: PageContext, record_id: int, survivor: int | None, exc: RapportError) -> Response:
    values = _cluster_context(ctx, record_id, survivor)
    values["problem"] = exc.detail
    return ctx.render("dedup/cluster.html", values, status=409)


@router.post("/dedup/{record_id}/dismiss")
def dismiss(record_id: RecordId, ctx: Page) -> Response:
    _require(ctx, Action.update)
    try:
        service.dismiss(ctx.recs, record_id)
    except (NotFound, Forbidden):
        raise
    except RapportError as exc:
        return _refused(ctx, record_id, None, exc)
    return _decided(ctx, record_id, ctx.gettext("Not duplicates: the cluster left the queue."))


@router.post("/dedup/{record_id}/merge")
async def merge(record_id: RecordId, ctx: Page) -> Response:
    _require(ctx, Action.update)
    form = await ctx.request.form()
    raw = form.get("survivor_id")
    survivor = int(raw) if isinstance(raw, str) and raw.isdigit() else 0
    try:
        service.merge(ctx.recs, record_id, survivor)
    except (NotFound, Forbidden):
        raise
    except RapportError as exc:
        return _refused(ctx, record_id, survivor or None, exc)
    return _decided(ctx, record_id, ctx.gettext("Merged."))


@router.get("/dedup/merges/{record_id}")
def merge_page(record_id: RecordId, ctx: Page) -> Response:
    _require(ctx)
    merge = merges.get_merge(ctx.recs.session, ctx.user, record_id)
    return ctx.render(
        "dedup/merge.html",
        {
            "nav": "dedup",
            "merge": merge,
            "merge_statuses": MERGE_STATUSES,
            "problem": None,
            "can_update": ctx.user.can(DEDUP_CLUSTER.name, Action.update),
        },
    )


@router.post("/dedup/merges/{record_id}/undo")
def undo(record_id: RecordId, ctx: Page) -> Response:
    _require(ctx, Action.update)
    try:
        merges.undo_merge(ctx.recs.session, ctx.user, record_id)
    except (NotFound, Forbidden):
        raise
    except RapportError as exc:
        merge = merges.get_merge(ctx.recs.session, ctx.user, record_id, audit=False)
        values = {
            "nav": "dedup",
            "merge": merge,
            "merge_statuses": MERGE_STATUSES,
            "problem": exc.detail,
            "can_update": True,
        }
        return ctx.render("dedup/merge.html", values, status=409)
    ctx.flash(ctx.gettext("The merge was undone."))
    return ctx.redirect(f"/dedup/merges/{record_id}")
