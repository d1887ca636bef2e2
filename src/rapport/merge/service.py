"""Merge duplicate customers into a survivor, and undo a merge.

:func:`merge_customers` (all in the caller's unit: it flushes, never commits):

1. checks that the caller may update every customer involved (404 outside their scope, 403
   without the permission) and that none is already merged or erased (409);
2. decides each field by the survivorship rules (:mod:`rapport.merge.survivorship`) and writes
   them on the survivor; the merged customers are soft-deleted and their ids become aliases
   (:func:`resolve_customer_id`);
3. moves every related record (:data:`rapport.merge.relations.RELATIONS`) and appends consent
   events for the survivor (:mod:`rapport.merge.consents`);
4. stores a ``customer_merge`` record: sealed before- and after-images, the moved rows (ids and
   where each came from), and the field choices; and queues one ``merge`` audit event listing the
   ids and which customer each field came from (never values, never the free-text reason).

Moved rows change only their customer reference (and get a new version and ``updated_at``, so
ETags go stale and the analytics sync sees them); undo puts every reference back, so the rows
are as they were apart from those two bookkeeping columns.

:func:`undo_merge` moves everything back, restores the survivor's fields from the before-image,
revives the merged customers and removes the aliases. It refuses (409, listing fields and
records) when the survivor changed since in a way the undo would lose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Scope
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER
from rapport.config import get_settings
from rapport.customers import repository as customer_repo
from rapport.dedup.decisions import reopen_for_undone_merge
from rapport.errors import Conflict, Forbidden, NotFound, invalid_field
from rapport.merge import consents
from rapport.merge.images import decode_row, encode_row, seal, unseal
from rapport.merge.relations import MOVING, Relation
from rapport.merge.survivorship import ATTRIBUTE_PREFIX, FIELD_RULES, check_overrides, decide, survivor_values
from rapport.models import ContactPoint, CustomerAlias, CustomerMerge
from rapport.models.base import table_of, utcnow
from rapport.privacy.common import records
from rapport.security.keyring import allocate_id
from rapport.webhooks import service as webhooks

C = CUSTOMER.table
MERGES = table_of(CustomerMerge)
ALIASES = table_of(CustomerAlias)
CONTACTS = table_of(ContactPoint)
MAX_MERGED = 50
_MAX_HOPS = 64
_NAME_COLUMNS = ("display_name", "family_name", "given_name", "name_latin")  # sorted, as customers do


@dataclass(slots=True)
class MergeResult:
    merge_id: int
    survivor_id: int
    merged_ids: list[int]
    status: str
    choices: dict[str, dict[str, Any]]
    moved: dict[str, int]
    consents: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.merge_id,
            "survivor_id": self.survivor_id,
            "merged_ids": self.merged_ids,
            "status": self.status,
            "choices": self.choices,
            "moved": self.moved,
            "consents": self.consents,
        }


# -- aliases -----------------------------------------------------------------------------------


def resolve_customer_id(session: Session, customer_id: int) -> int:
    """The customer an id stands for now: itself, or the survivor of the merge(s) it went into."""
    current, seen = customer_id, {customer_id}
    for _ in range(_MAX_HOPS):
        nxt = session.execute(select(ALIASES.c.customer_id).where(ALIASES.c.alias_id == current)).scalar()
        if nxt is None or nxt in seen:
            return current
        seen.add(nxt)
        current = int(nxt)
    return current


# -- scope -------------------------------------------------------------------------------------


def _in_scope(recs: Records, row: Mapping[str, Any]) -> bool:
    p = recs.principal
    grant = p.grant(CUSTOMER.name)
    return grant.allows(Action.read) and (
        grant.scope is Scope.all
        or row["owner_id"] == p.user_id
        or (grant.scope is Scope.team and p.team_id is not None and row["team_id"] == p.team_id)
    )


def _require(recs: Records, rows: Mapping[int, Mapping[str, Any]], ids: Sequence[int], action: str) -> None:
    """404 for a missing or out-of-scope customer, 403 without update permission (both audited)."""
    grant = recs.principal.grant(CUSTOMER.name)
    for cid in ids:
        row = rows.get(cid)
        if row is None or not _in_scope(recs, row):
            if row is not None:
                recs.audit(action, CUSTOMER.name, cid, outcome="denied")
            raise NotFound(f"customer {cid} not found")
    if action != "merge_preview" and not grant.allows(Action.update):
        for cid in ids:
            recs.audit(action, CUSTOMER.name, cid, outcome="denied")
        raise Forbidden("your role may not merge customer records")


def _load(session: Session, ids: Sequence[int], *, lock: bool) -> dict[int, dict[str, Any]]:
    stmt = select(C).where(C.c.id.in_(list(ids))).order_by(C.c.id)
    if lock:
        stmt = stmt.with_for_update()
    return {r["id"]: dict(r) for r in session.execute(stmt).mappings()}


def _check_request(survivor_id: int, merged_ids: Sequence[int]) -> list[int]:
    merged = list(dict.fromkeys(merged_ids))
    if not merged:
        raise invalid_field("merged_ids", "name at least one customer to merge", "missing")
    if len(merged) > MAX_MERGED:
        raise invalid_field("merged_ids", f"at most {MAX_MERGED} customers per merge", "too_long")
    if survivor_id in merged:
        raise invalid_field("merged_ids", "the survivor cannot be merged into itself", "value_error")
    return merged


def _check_state(session: Session, rows: Mapping[int, Mapping[str, Any]], ids: Sequence[int]) -> None:
    aliased = dict(
        session.execute(
            select(ALIASES.c.alias_id, ALIASES.c.customer_id).where(ALIASES.c.alias_id.in_(list(ids)))
        ).all()
    )
    for cid in ids:
        if cid in aliased:
            raise Conflict(
                f"customer {cid} was already merged into customer {aliased[cid]}",
                conflicts={"records": [f"customer:{cid}"]},
            )
        row = rows[cid]
        if row["erased_at"] is not None:
            raise Conflict(f"customer {cid} was erased", conflicts={"records": [f"customer:{cid}"]})
        if row["deleted_at"] is not None:
            raise Conflict(
                f"customer {cid} is deleted; restore it before merging",
                conflicts={"records": [f"customer:{cid}"]},
            )


# -- survivorship ------------------------------------------------------------------------------


def plan(
    session: Session,
    principal: Principal,
    survivor_id: int,
    merged_ids: list[int],
    overrides: Mapping[str, int],
    action: str = "merge",
) -> tuple[Records, dict[int, dict[str, Any]], list[Any]]:
    """Scope checks and the field choices, without writing anything (a preview needs read only)."""
    recs = records(session, principal)
    merged = _check_request(survivor_id, merged_ids)
    ids = [survivor_id, *merged]
    rows = _load(session, ids, lock=False)
    _require(recs, rows, ids, action)
    _check_state(session, rows, ids)
    check_overrides(overrides, ids)
    choices = decide([rows[i] for i in ids], survivor_id, overrides, get_settings().merge_source_ranking)
    return recs, rows, choices


# -- moving related records -------------------------------------------------------------------


def _pk_cols(rel: Relation) -> list[str]:
    return [c.name for c in rel.t.primary_key.columns]


def _move(session: Session, rel: Relation, survivor_id: int, merged: list[int]) -> list[dict[str, Any]]:
    t, col, pk = rel.t, rel.t.c[rel.column], _pk_cols(rel)
    seen: set[tuple[Any, ...]] = set()
    if rel.unique_on:
        seen = {
            tuple(r)
            for r in session.execute(select(*(t.c[u] for u in rel.unique_on)).where(col == survivor_id)).all()
        }
    moved: list[dict[str, Any]] = []
    for mid in merged:
        cols = list(dict.fromkeys([*pk, *rel.unique_on]))
        rows = session.execute(
            select(*(t.c[c] for c in cols)).where(col == mid).order_by(*(t.c[c] for c in pk))
        )
        for r in rows.mappings():
            if rel.unique_on:
                key = tuple(r[u] for u in rel.unique_on)
                if None not in key:
                    if key in seen:
                        continue  # a duplicate: stays on the merged record
                    seen.add(key)
            moved.append({"pk": {c: r[c] for c in pk}, "from": mid})
    for m in moved:
        session.execute(
            update(t)
            .where(*(t.c[c] == v for c, v in m["pk"].items()))
            .values(_touch(t, rel.column, survivor_id))
        )
    return moved


def _touch(t: Any, column: str, customer_id: int) -> dict[str, Any]:
    """The new reference, and a new version where the row has one (``updated_at`` follows by the
    column's onupdate): ETags go stale and the analytics sync sees the row changed."""
    values: dict[str, Any] = {column: customer_id}
    if "version" in t.c:
        values["version"] = t.c.version + 1
    return values


def _after_pk(rel: Relation, m: dict[str, Any], survivor_id: int) -> dict[str, Any]:
    return {c: (survivor_id if c == rel.column else v) for c, v in m["pk"].items()}


def _one_primary_per_kind(session: Session, survivor_id: int, moved_ids: set[int]) -> list[int]:
    """Keep the survivor's own primary per kind (else the first moved one); demote the rest."""
    rows = session.execute(
        select(CONTACTS.c.id, CONTACTS.c.kind)
        .where(CONTACTS.c.customer_id == survivor_id, CONTACTS.c.is_primary.is_(True))
        .order_by(CONTACTS.c.id)
    ).all()
    by_kind: dict[str, list[int]] = {}
    for cid, kind in rows:
        by_kind.setdefault(kind, []).append(cid)
    demoted: list[int] = []
    for ids in by_kind.values():
        own = [i for i in ids if i not in moved_ids]
        keep = own[0] if own else ids[0]
        demoted += [i for i in ids if i != keep and i in moved_ids]
    if demoted:
        session.execute(
            update(CONTACTS)
            .where(CONTACTS.c.id.in_(demoted))
            .values(is_primary=False, version=CONTACTS.c.version + 1)
        )
    return sorted(demoted)


def _rebuild_search_terms(session: Session, customer_id: int) -> None:
    names = session.execute(select(*(C.c[n] for n in _NAME_COLUMNS)).where(C.c.id == customer_id)).one()
    customer_repo.replace_search_terms(session, customer_id, *names)


# -- merge -------------------------------------------------------------------------------------

_REASON_MAX = 2000


def merge_customers(
    session: Session,
    principal: Principal,
    survivor_id: int,
    merged_ids: list[int],
    overrides: dict[str, int] | None = None,
    reason: str = "",
) -> MergeResult:
    """Merge ``merged_ids`` into ``survivor_id`` in the caller's unit (flushes, never commits)."""
    if len(reason) > _REASON_MAX:
        raise invalid_field("reason", f"at most {_REASON_MAX} characters", "too_long")
    overrides = dict(overrides or {})
    recs, _, _ = plan(session, principal, survivor_id, merged_ids, overrides)
    merged = list(dict.fromkeys(merged_ids))
    ids = [survivor_id, *merged]
    # Lock the rows (PostgreSQL) and decide again on what is now current.
    rows = _load(session, ids, lock=True)
    _check_state(session, rows, ids)
    choices = decide([rows[i] for i in ids], survivor_id, overrides, get_settings().merge_source_ranking)
    now = utcnow()
    merge_id = allocate_id(recs.conn, MERGES)

    values = survivor_values(choices)
    session.execute(
        update(C).where(C.c.id == survivor_id).values(**values, updated_at=now, version=C.c.version + 1)
    )
    session.execute(
        update(C).where(C.c.id.in_(merged)).values(deleted_at=now, updated_at=now, version=C.c.version + 1)
    )

    moved: dict[str, list[dict[str, Any]]] = {}
    for rel in MOVING:
        moved[rel.table] = _move(session, rel, survivor_id, merged)
    moved_contacts = {m["pk"]["id"] for m in moved["contact_point"]}
    demoted = _one_primary_per_kind(session, survivor_id, moved_contacts)
    _rebuild_search_terms(session, survivor_id)
    consent_changes = consents.merge_consents(session, principal, merge_id, survivor_id, merged)
    restriction = consents.merge_restriction(session, survivor_id, merged)

    after = dict(session.execute(select(C).where(C.c.id == survivor_id)).mappings().one())
    choice_record = {c.field: c.as_record() for c in choices}
    bookkeeping = {
        "rows": moved,
        "demoted_primaries": demoted,
        "consents": [{k: v for k, v in ch.items() if k != "before"} for ch in consent_changes],
        "merged_versions": {str(i): rows[i]["version"] + 1 for i in merged},
    }
    before_image = {
        "customers": {str(i): encode_row(rows[i]) for i in ids},
        "consents": [{"event_id": ch["event_id"], "before": ch["before"]} for ch in consent_changes],
        "restriction": restriction,
    }
    session.execute(
        insert(MERGES).values(
            id=merge_id,
            survivor_id=survivor_id,
            merged_ids=merged,
            status="merged",
            choices=choice_record,
            moved=bookkeeping,
            before_image=seal(session, "before_image", merge_id, before_image),
            after_image=seal(session, "after_image", merge_id, encode_row(after)),
            reason=seal(session, "reason", merge_id, reason) if reason else None,
            merged_at=now,
            merged_by=principal.user_id,
        )
    )
    session.execute(
        insert(ALIASES), [{"alias_id": i, "customer_id": survivor_id, "merge_id": merge_id} for i in merged]
    )
    counts = {table: len(rows_) for table, rows_ in moved.items()}
    counts["consent_event"] = len(consent_changes)
    recs.audit(
        "merge",
        CUSTOMER.name,
        survivor_id,
        fields=sorted(f for f, c in choice_record.items() if c["from"] != survivor_id),
        details={
            "merge_id": merge_id,
            "survivor_id": survivor_id,
            "merged_ids": merged,
            "choices": choice_record,
            "moved": counts,
            "consent_events": [ch["event_id"] for ch in consent_changes],
        },
    )
    for cid in ids:
        webhooks.emit(session, "customer.updated", cid)
    session.flush()
    return MergeResult(
        merge_id,
        survivor_id,
        merged,
        "merged",
        choice_record,
        counts,
        [{k: v for k, v in ch.items() if k != "before"} for ch in consent_changes],
    )


# -- undo --------------------------------------------------------------------------------------


def _merge_row(session: Session, merge_id: int) -> dict[str, Any]:
    row = session.execute(select(MERGES).where(MERGES.c.id == merge_id)).mappings().first()
    if row is None:
        raise NotFound(f"merge {merge_id} not found")
    return dict(row)


def _fields_of(image: Mapping[str, Any]) -> dict[str, Any]:
    out = {f: image.get(f) for f in FIELD_RULES}
    for k, v in (image.get("attributes") or {}).items():
        out[ATTRIBUTE_PREFIX + k] = v
    return out


def _conflicts(
    session: Session, merge: Mapping[str, Any], after: dict[str, Any], before: dict[str, Any]
) -> dict[str, list[str]]:
    survivor_id = merge["survivor_id"]
    bookkeeping = merge["moved"] or {}
    current = session.execute(select(C).where(C.c.id == survivor_id)).mappings().first()
    fields: list[str] = []
    records_: list[str] = []
    if current is None or current["deleted_at"] is not None or current["erased_at"] is not None:
        records_.append(f"customer:{survivor_id}")
    else:
        now_fields = _fields_of(encode_row(dict(current)))
        then_fields = _fields_of(after)
        fields = sorted(
            f for f in set(now_fields) | set(then_fields) if now_fields.get(f) != then_fields.get(f)
        )
    if session.execute(select(ALIASES.c.alias_id).where(ALIASES.c.alias_id == survivor_id)).first():
        records_.append(f"customer:{survivor_id} (merged into another customer since)")
    for mid in merge["merged_ids"]:
        row = session.execute(select(C.c.deleted_at, C.c.erased_at).where(C.c.id == mid)).first()
        alias = session.execute(
            select(ALIASES.c.merge_id).where(ALIASES.c.alias_id == mid, ALIASES.c.merge_id == merge["id"])
        ).first()
        if row is None or row.erased_at is not None or row.deleted_at is None or alias is None:
            records_.append(f"customer:{mid}")
    for table, moved in (bookkeeping.get("rows") or {}).items():
        rel = next(r for r in MOVING if r.table == table)
        t = rel.t
        for m in moved:
            pk = _after_pk(rel, m, survivor_id)
            found = session.execute(
                select(t.c[rel.column]).where(*(t.c[c] == v for c, v in pk.items()))
            ).first()
            if found is None or found[0] != survivor_id:
                records_.append(f"{table}:{','.join(str(v) for c, v in m['pk'].items() if c != rel.column)}")
    records_ += consents.consent_conflicts(session, survivor_id, bookkeeping.get("consents") or [])
    records_ += consents.restriction_conflicts(session, survivor_id, before.get("restriction"))
    return {"fields": fields, "records": records_}


def undo_merge(session: Session, principal: Principal, merge_id: int) -> MergeResult:
    """Reverse a merge in the caller's unit; 409 with the conflicting fields and records."""
    recs = records(session, principal)
    merge = _merge_row(session, merge_id)
    survivor_id = int(merge["survivor_id"])
    merged = [int(i) for i in merge["merged_ids"]]
    ids = [survivor_id, *merged]
    rows = _load(session, ids, lock=True)
    _require(recs, rows, ids, "merge_undo")
    if merge["status"] != "merged":
        raise Conflict(f"merge {merge_id} is {merge['status']}; only a merge in effect can be undone")
    before = unseal(session, "before_image", merge_id, merge["before_image"])
    after = unseal(session, "after_image", merge_id, merge["after_image"])
    if before is None or after is None:
        raise Conflict(f"merge {merge_id} has no before-image any more; it cannot be undone")
    found = _conflicts(session, merge, after, before)
    if found["fields"] or found["records"]:
        recs.audit(
            "merge_undo", CUSTOMER.name, survivor_id, outcome="conflict", details={"merge_id": merge_id}
        )
        raise Conflict(
            f"customer {survivor_id} changed since merge {merge_id}; undoing it would lose those changes",
            conflicts=found,
        )
    now = utcnow()
    bookkeeping = merge["moved"] or {}
    for table, moved in (bookkeeping.get("rows") or {}).items():
        rel = next(r for r in MOVING if r.table == table)
        t = rel.t
        for m in moved:
            pk = _after_pk(rel, m, survivor_id)
            session.execute(
                update(t)
                .where(*(t.c[c] == v for c, v in pk.items()))
                .values(_touch(t, rel.column, m["from"]))
            )
    demoted = bookkeeping.get("demoted_primaries") or []
    if demoted:
        session.execute(
            update(CONTACTS)
            .where(CONTACTS.c.id.in_(demoted))
            .values(is_primary=True, version=CONTACTS.c.version + 1)
        )
    # Consents: append the survivor's earlier decisions (the ledger is never rewritten).
    changes = [
        {**ch, "before": img["before"]}
        for ch, img in zip(bookkeeping.get("consents") or [], before.get("consents") or [], strict=True)
    ]
    undo_events = consents.undo_consents(session, principal, merge_id, survivor_id, changes)
    consents.undo_restriction(session, survivor_id, before.get("restriction"))
    # Customers: the survivor's fields from the before-image, merged ones revived.
    images = before["customers"]
    survivor_before = decode_row(C, images[str(survivor_id)])
    restore = {f: survivor_before.get(f) for f in (*FIELD_RULES, "attributes")}
    session.execute(
        update(C).where(C.c.id == survivor_id).values(**restore, updated_at=now, version=C.c.version + 1)
    )
    for mid in merged:
        was = decode_row(C, images[str(mid)])
        session.execute(
            update(C)
            .where(and_(C.c.id == mid))
            .values(deleted_at=was["deleted_at"], updated_at=now, version=C.c.version + 1)
        )
    session.execute(delete(ALIASES).where(ALIASES.c.merge_id == merge_id))
    for cid in ids:
        _rebuild_search_terms(session, cid)
    session.execute(
        update(MERGES)
        .where(MERGES.c.id == merge_id)
        .values(
            status="undone", undone_at=now, undone_by=principal.user_id, before_image=None, after_image=None
        )
    )
    counts = {table: len(m) for table, m in (bookkeeping.get("rows") or {}).items()}
    counts["consent_event"] = len(undo_events)
    # A merge decided in the duplicate review queue: its cluster goes back to the queue.
    reopened = reopen_for_undone_merge(session, recs, merge_id)
    recs.audit(
        "merge_undo",
        CUSTOMER.name,
        survivor_id,
        fields=sorted(merge["choices"]),
        details={
            "merge_id": merge_id,
            "survivor_id": survivor_id,
            "merged_ids": merged,
            "moved_back": counts,
            "consent_events": undo_events,
            "dedup_clusters_reopened": reopened,
        },
    )
    for cid in ids:
        webhooks.emit(session, "customer.updated", cid)
    session.flush()
    return MergeResult(merge_id, survivor_id, merged, "undone", dict(merge["choices"]), counts)


# -- reads ---------------------------------------------------------------------------------------


def get_merge(session: Session, principal: Principal, merge_id: int, *, audit: bool = True) -> dict[str, Any]:
    """The merge record, for callers who can see the survivor (deleted or not)."""
    recs = records(session, principal)
    merge = session.execute(select(MERGES).where(MERGES.c.id == merge_id)).mappings().first()
    if merge is None:
        raise NotFound(f"merge {merge_id} not found")
    survivor = (
        session.execute(select(C.c.owner_id, C.c.team_id).where(C.c.id == merge["survivor_id"]))
        .mappings()
        .first()
    )
    if survivor is None or not _in_scope(recs, dict(survivor)):
        recs.audit("read", "customer_merge", merge_id, outcome="denied")
        raise NotFound(f"merge {merge_id} not found")
    if audit:
        recs.audit("read", "customer_merge", merge_id)
    bookkeeping = merge["moved"] or {}
    reason = unseal(session, "reason", merge_id, merge["reason"])
    return {
        "id": merge["id"],
        "survivor_id": merge["survivor_id"],
        "merged_ids": list(merge["merged_ids"]),
        "status": merge["status"],
        "choices": merge["choices"],
        "moved": {table: len(m) for table, m in (bookkeeping.get("rows") or {}).items()},
        "consents": bookkeeping.get("consents") or [],
        "reason": reason,
        "merged_at": merge["merged_at"],
        "merged_by": merge["merged_by"],
        "undone_at": merge["undone_at"],
        "undone_by": merge["undone_by"],
    }


def preview(
    session: Session,
    principal: Principal,
    survivor_id: int,
    merged_ids: list[int],
    overrides: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Per field: the value a merge would keep, from which customer and by which rule (masked)."""
    recs, _, choices = plan(
        session, principal, survivor_id, merged_ids, dict(overrides or {}), "merge_preview"
    )
    ids = [survivor_id, *dict.fromkeys(merged_ids)]
    # Values are shown as the caller may read them: hidden fields stay hidden, masks apply.
    shown = {cid: recs.get(CUSTOMER, cid) for cid in ids}
    fields = []
    for c in choices:
        if c.field.startswith(ATTRIBUTE_PREFIX):
            column, key = "attributes", c.field[len(ATTRIBUTE_PREFIX) :]
            candidates = {
                str(cid): (row.get("attributes") or {}).get(key) if "attributes" in row else None
                for cid, row in shown.items()
            }
        else:
            column = c.field
            candidates = {str(cid): row.get(column) for cid, row in shown.items()}
        hidden = column not in shown[survivor_id]
        fields.append(
            {
                "field": c.field,
                "rule": c.rule,
                "source_id": c.source_id,
                "value": None if hidden else candidates[str(c.source_id)],
                "hidden": hidden,
                "candidates": {} if hidden else candidates,
            }
        )
    return {"survivor_id": survivor_id, "merged_ids": ids[1:], "fields": fields}
