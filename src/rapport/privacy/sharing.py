"""Third-party provision and cross-border transfer (PIPL art. 23, 38-39, 55; GDPR art. 44-46).

The register holds the data-sharing agreements; :func:`provide` is the one gate through which
personal data leaves for a partner. It refuses unless an agreement in force covers the purpose and
every category, and every customer gave separate consent to sharing with that partner (and to
transfer abroad when the agreement is cross-border, and to sensitive processing for sensitive
data). Each provision is logged (append-only ``provision_log``) and audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from rapport.access.policy import Action
from rapport.access.principal import Principal
from rapport.access.records import Records, Row
from rapport.access.specs import CONTACT_POINT, CUSTOMER, ResourceSpec
from rapport.crud import Resource, equal_filters
from rapport.errors import Conflict, Forbidden, NotFound, invalid_field
from rapport.models.base import table_of, utcnow
from rapport.models.privacy import ProvisionLog, SharingAgreement, SharingPartner
from rapport.pagination import CursorCodec
from rapport.privacy.classification import Category, classification_of
from rapport.privacy.classification import Purpose as ProcessingPurpose
from rapport.privacy.consent import Purpose, may_use
from rapport.privacy.schemas import AgreementCreate, AgreementFilters, AgreementRead, AgreementUpdate

AGREEMENT = ResourceSpec(
    "sharing_agreement",
    table_of(SharingAgreement),
    "global",
    tuple(c.name for c in table_of(SharingAgreement).columns),
    sortable=("id", "valid_until", "created_at"),
    path="sharing/agreements",
)
PARTNERS = table_of(SharingPartner)
PROVISIONS = table_of(ProvisionLog)


class SharingNotCovered(Conflict):
    slug, title = "sharing-not-covered", "No agreement in force covers this provision"


class ConsentMissing(Forbidden):
    slug, title = "consent-missing", "Customers have not consented to this provision"


def check_partner(recs: Records, partner_id: int) -> None:
    if recs.session.execute(select(PARTNERS.c.id).where(PARTNERS.c.id == partner_id)).first() is None:
        raise invalid_field("partner_id", f"no sharing partner {partner_id}", "reference")


def _check_agreement(values: dict[str, Any]) -> None:
    start, end = values.get("valid_from"), values.get("valid_until")
    if start is not None and end is not None and end <= start:
        raise invalid_field("valid_until", "must be after valid_from", "range")
    if values.get("cross_border"):
        if not values.get("transfer_mechanism"):
            raise invalid_field(
                "transfer_mechanism",
                "a cross-border agreement names its mechanism: standard_contract, certification or "
                "security_assessment",
                "missing",
            )
        if not values.get("destination_country"):
            raise invalid_field(
                "destination_country", "a cross-border agreement names the country", "missing"
            )


class Agreements(Resource):
    spec = AGREEMENT
    read = AgreementRead
    create = AgreementCreate
    update = AgreementUpdate
    filters = AgreementFilters
    deletable = False  # the register is evidence: agreements end (valid_until), they are not removed
    tag = "sharing"

    def where(self, recs: Records, f: AgreementFilters) -> Sequence[Any]:
        return equal_filters(AGREEMENT.table, f, "partner_id")

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        values: dict[str, Any] = body.model_dump(mode="python")
        check_partner(recs, values["partner_id"])
        values["purposes"] = [str(p) for p in values["purposes"]]
        values["data_categories"] = [str(c) for c in values["data_categories"]]
        _check_agreement(values)
        return values

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        values: dict[str, Any] = body.changes()
        for name in ("title", "purposes", "data_categories", "valid_until", "impact_assessment_ref"):
            if name in values and values[name] is None:
                raise invalid_field(name, "must not be null", "null")
        current = dict(recs.get(AGREEMENT, record_id, audit_action=None))
        if "purposes" in values:
            values["purposes"] = [str(p) for p in values["purposes"]]
        if "data_categories" in values:
            values["data_categories"] = [str(c) for c in values["data_categories"]]
        _check_agreement({**current, **values})
        return values


agreements = Agreements()


# -- the provision gate -------------------------------------------------------------------------


@dataclass(slots=True)
class Provision:
    provision_id: int
    agreement_id: int
    partner_id: int
    purpose: str
    categories: list[str]
    customers: list[Row]


def _category_columns(spec: ResourceSpec, categories: frozenset[str]) -> list[str]:
    out = []
    for name in spec.read_columns:
        cls = classification_of(spec.table.c[name])
        if cls is not None and cls.personal and cls.category is not None and cls.category.value in categories:
            out.append(name)
    return out


def _covering(
    rows: Iterable[Row], purpose: str, categories: frozenset[str]
) -> tuple[Row | None, list[str], bool]:
    """The first agreement covering purpose and categories, else what the closest one lacks."""
    best_missing: list[str] | None = None
    purpose_covered = False
    for row in rows:
        missing = sorted(categories - set(row["data_categories"]))
        has_purpose = purpose in row["purposes"]
        if has_purpose and not missing:
            return row, [], True
        if has_purpose and (best_missing is None or len(missing) < len(best_missing) or not purpose_covered):
            best_missing, purpose_covered = missing, True
        elif not purpose_covered and (best_missing is None or len(missing) < len(best_missing)):
            best_missing = missing
    return None, best_missing if best_missing is not None else sorted(categories), purpose_covered


def provide(
    session: Any,
    partner_id: int,
    customer_ids: Sequence[int],
    categories: Sequence[Category | str],
    purpose: ProcessingPurpose | str,
    actor: Principal,
    *,
    agreement_id: int | None = None,
    recs: Records | None = None,
) -> Provision:
    """Provide ``categories`` of ``customer_ids`` to ``partner_id`` for ``purpose``, or refuse.

    Refusals: 403 when the caller may not provide data or customers lack consent (the problem lists
    each customer and the consents missing), 404 for customers outside the caller's scope, 409 when
    no agreement in force covers the purpose and categories (the problem lists what is uncovered).
    """
    recs = recs or Records(session, actor, CursorCodec(secrets.token_hex(16)))
    cats = frozenset(Category(c).value for c in categories)
    purpose_value = ProcessingPurpose(purpose).value
    ids = list(dict.fromkeys(customer_ids))
    grant = actor.grant(AGREEMENT.name)
    if not grant.allows(Action.export):
        recs.audit("provide", AGREEMENT.name, agreement_id, outcome="denied")
        raise Forbidden("your role may not provide personal data to partners")
    # Scope: every customer must be one the caller may read, or the answer is 404 as elsewhere.
    visible = set(
        session.execute(
            select(CUSTOMER.table.c.id).where(CUSTOMER.table.c.id.in_(ids), recs.visible(CUSTOMER))
        ).scalars()
    )
    for cid in ids:
        if cid not in visible:
            recs.not_found(CUSTOMER, cid)
    now = utcnow()
    a = AGREEMENT.table
    where = [a.c.partner_id == partner_id]
    if agreement_id is not None:
        where.append(a.c.id == agreement_id)
    candidates = [dict(r) for r in session.execute(select(a).where(*where).order_by(a.c.id)).mappings()]
    in_force = [r for r in candidates if r["valid_from"] <= now < r["valid_until"]]
    if not in_force:
        detail = {"partner_id": partner_id, "purpose": purpose_value}
        recs.audit(
            "provide", AGREEMENT.name, agreement_id, outcome="denied", details={**detail, "why": "none"}
        )
        what = f"agreement {agreement_id}" if agreement_id is not None else f"any agreement with {partner_id}"
        raise SharingNotCovered(
            f"{what} is not in force (expired, not yet valid or missing)",
            uncovered_categories=sorted(cats),
            purpose_covered=False,
        )
    agreement, uncovered, purpose_covered = _covering(in_force, purpose_value, cats)
    if agreement is None:
        recs.audit(
            "provide",
            AGREEMENT.name,
            agreement_id,
            outcome="denied",
            details={"partner_id": partner_id, "purpose": purpose_value, "uncovered": uncovered},
        )
        raise SharingNotCovered(
            "the agreement in force does not cover "
            + (
                f"the categories {', '.join(uncovered)}"
                if purpose_covered
                else f"the purpose {purpose_value}"
            ),
            uncovered_categories=uncovered,
            purpose_covered=purpose_covered,
        )
    needed = [Purpose.third_party_sharing]
    if agreement["cross_border"]:
        needed.append(Purpose.cross_border_transfer)
    lacking: list[dict[str, Any]] = []
    for cid in ids:
        missing = [p.value for p in needed if not may_use(session, cid, p, partner_id=partner_id)]
        if Category.sensitive.value in cats and not may_use(session, cid, Purpose.sensitive_processing):
            missing.append(Purpose.sensitive_processing.value)
        if missing:
            lacking.append({"customer_id": cid, "missing": missing})
    if lacking:
        recs.audit(
            "provide",
            AGREEMENT.name,
            agreement["id"],
            outcome="denied",
            details={"partner_id": partner_id, "refused_ids": [x["customer_id"] for x in lacking]},
        )
        raise ConsentMissing(
            f"{len(lacking)} of {len(ids)} customers lack the consent this provision needs",
            customers=lacking,
        )
    rows = _export(recs, ids, cats)
    provision_id = session.execute(
        PROVISIONS.insert()
        .values(
            agreement_id=agreement["id"],
            partner_id=partner_id,
            purpose=purpose_value,
            categories=sorted(cats),
            customer_ids=[str(i) for i in ids],
            customer_count=len(ids),
            at=now,
            actor_id=actor.user_id,
            request_id=actor.request_id,
        )
        .returning(PROVISIONS.c.id)
    ).scalar_one()
    recs.audit(
        "provide",
        AGREEMENT.name,
        agreement["id"],
        fields=sorted({k for r in rows for k in r}),
        details={"partner_id": partner_id, "ids": ids, "count": len(ids), "provision_id": provision_id},
    )
    return Provision(provision_id, agreement["id"], partner_id, purpose_value, sorted(cats), rows)


def _export(recs: Records, ids: list[int], cats: frozenset[str]) -> list[Row]:
    """The provided data: only the agreed categories, and only what the caller's role may read."""
    grant = recs.principal.grant(CUSTOMER.name)
    columns = ["id", *(c for c in _category_columns(CUSTOMER, cats) if c not in grant.hidden and c != "id")]
    t = CUSTOMER.table
    stmt = select(*(t.c[c] for c in columns)).where(t.c.id.in_(ids), recs.visible(CUSTOMER)).order_by(t.c.id)
    rows = {r["id"]: dict(r) for r in recs.session.execute(stmt).mappings()}
    cp_cols = _category_columns(CONTACT_POINT, cats)
    if cp_cols and recs.principal.can(CONTACT_POINT.name, Action.read):
        cgrant = recs.principal.grant(CONTACT_POINT.name)
        wanted = [
            "kind",
            *(c for c in cp_cols if c not in cgrant.hidden and c not in ("customer_id", "id", "kind")),
        ]
        cp = CONTACT_POINT.table
        stmt = (
            select(cp.c.id, cp.c.customer_id, *(cp.c[c] for c in wanted))
            .where(cp.c.customer_id.in_(ids))
            .order_by(cp.c.customer_id, cp.c.id)
        )
        for r in recs.open(CONTACT_POINT, [dict(m) for m in recs.session.execute(stmt).mappings()]):
            row = rows.get(r["customer_id"])
            if row is not None:
                row.setdefault("contact_points", []).append({c: r[c] for c in wanted})
    return [rows[i] for i in ids if i in rows]


def agreement_partner(recs: Records, agreement_id: int) -> int:
    row = recs.get(AGREEMENT, agreement_id, audit_action=None)
    if row.get("partner_id") is None:
        raise NotFound(f"sharing agreement {agreement_id} not found")
    return int(row["partner_id"])
