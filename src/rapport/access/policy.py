"""Who may do what: role × resource → actions, record scope and hidden fields.

This table is the single source of truth for authorisation; the data-access layer
(:mod:`rapport.access.records`) enforces it and the workspace shows it to administrators.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from rapport.access.masks import Mask


class Role(StrEnum):
    admin = "admin"
    team_lead = "team_lead"
    crm_specialist = "crm_specialist"
    sales_rep = "sales_rep"
    service_rep = "service_rep"
    data_analyst = "data_analyst"


class Action(StrEnum):
    read = "read"
    create = "create"
    update = "update"
    delete = "delete"
    export = "export"
    assign = "assign"


class Scope(StrEnum):
    own = "own"
    team = "team"
    all = "all"


@dataclass(frozen=True, slots=True)
class Grant:
    actions: frozenset[Action]
    scope: Scope
    hidden: frozenset[str] = frozenset()
    # (column, mask): readable, but only partially (see rapport.access.masks).
    masked: frozenset[tuple[str, Mask]] = frozenset()

    def allows(self, action: Action) -> bool:
        return action in self.actions


RESOURCES = (
    "customer",
    "organisation",
    "contact_point",
    "product",
    "order",
    "order_line",
    "interaction",
    "task",
    "user",
    "team",
    "api_key",
    "custom_field",
    "audit",
    # Aggregate customer analytics (RFM, cohorts, revenue) and the scores jobs write back.
    "analytics",
    "data_subject_request",
    # Privacy (issue 3): consent ledger and restriction (create = record or withdraw a consent,
    # update = restrict processing), the data-sharing register (export = provide data to a partner)
    # and privacy complaints.
    "consent",
    "sharing_agreement",
    "privacy_complaint",
    "webhook",  # outbound event subscriptions: administrators only
    "segment",
    # Duplicate detection (rapport.dedup): the review queue of clusters; update = dismiss or merge
    # (a merge also needs the customer permissions rapport.merge checks).
    "dedup",
    # Bulk imports (rapport.ingest): create = start one, update = cancel or revert it. Rows still
    # need the customer/order permissions of the person importing them.
    "import",
)

_R = frozenset({Action.read})
_RX = frozenset({Action.read, Action.export})
_RC = frozenset({Action.read, Action.create})
_RCU = frozenset({Action.read, Action.create, Action.update})
_RCUX = _RCU | {Action.export}
_FULL = frozenset(Action)

# Direct identifiers a pseudonymised reader must never receive.
_PERSON_IDENTIFIERS = frozenset({"display_name", "family_name", "given_name", "name_latin", "birth_date"})
# A contact point's label is typed by staff ("wife's mobile", "office of 张伟"), so it goes too.
_CONTACT_VALUES = frozenset({"value", "value_normalized", "postal_code", "district", "label"})
# Custom attributes are administrator-defined; a text field can hold an ID number or a nickname.
_CUSTOM_VALUES = frozenset({"attributes"})
_FREE_TEXT = frozenset({"subject", "body", "description"})
_CONSENT_TEXT = frozenset({"evidence", "reason"})
_MARGINS = frozenset({"cost_amount", "margin_amount", "unit_cost"})


# Masking rules (who sees which identifiers only partially):
# - admin, team_lead, crm_specialist: full values (they manage the records).
# - sales_rep: full values; their scope is already their own and their team's customers.
# - service_rep: sees every customer (they answer whoever calls), so contact values are masked:
#   phone 138****5678, email z***@example.com, WeChat wx*******45, address after the city hidden.
#   Looking a caller up by the full phone number or email they give still works (exact match).
# - data_analyst: names, birth dates, contact values and free text hidden, not masked (as before);
#   for analysis they use the pseudonymised export.
_SERVICE_MASKS = frozenset({("value", Mask.contact), ("value_normalized", Mask.contact)})


def _grants(scope: Scope, table: dict[str, frozenset[Action]], **hidden: frozenset[str]) -> dict[str, Grant]:
    return {res: Grant(acts, scope, hidden.get(res, frozenset())) for res, acts in table.items()}


def _build() -> dict[Role, dict[str, Grant]]:
    everything = dict.fromkeys(RESOURCES, _FULL)
    # Users are disabled, never deleted (their ids stay in the audit chain); the chain is read-only.
    everything["user"] = _FULL - {Action.delete}
    everything["audit"] = _RX
    everything["analytics"] = _RX
    policy: dict[Role, dict[str, Grant]] = {Role.admin: _grants(Scope.all, everything)}

    lead = _grants(
        Scope.team,
        {
            "customer": _FULL,
            "organisation": _FULL,
            "contact_point": _FULL - {Action.assign},
            "order": _RCUX,
            "order_line": _RX,
            "interaction": _FULL - {Action.assign},
            "task": _FULL,
            "user": _R,
            "team": _R,
            "audit": _R,
            # Privacy requests of the team's customers: handled (verify, assign, complete) here.
            "data_subject_request": _RCU | {Action.assign},
            "consent": _RCU,
            "segment": _FULL - {Action.assign, Action.export},
            # Clusters with at least one of the team's customers; members outside it stay hidden.
            "dedup": frozenset({Action.read, Action.update}),
            "import": _RCU,
        },
    )
    lead |= _grants(Scope.all, {"product": _R, "custom_field": _R})
    # Analytics are aggregates over every customer; a customer's own scores still need the
    # customer in the caller's scope (GET /customers/{id}/scores checks it first).
    lead |= _grants(Scope.all, {"analytics": _RX})
    policy[Role.team_lead] = lead

    specialist = _grants(
        Scope.all,
        {
            "customer": _FULL,
            "organisation": _FULL,
            "contact_point": _RCUX | {Action.delete},
            "order": _RCUX,
            "order_line": _RX,
            "interaction": _RCUX,
            "task": _RCU | {Action.delete},
            "product": _RCU,
            "custom_field": _FULL,
            "user": _R,
            "team": _R,
            "analytics": _RX,
            "data_subject_request": _RCUX | {Action.assign},
            "consent": _RCU,
            # The privacy office: reads the register and provides data under it; handles complaints.
            "sharing_agreement": _RX,
            "privacy_complaint": _RCU,
            "segment": _FULL - {Action.assign, Action.export},
            "dedup": frozenset({Action.read, Action.update}),
            "import": _RCU,
        },
    )
    policy[Role.crm_specialist] = specialist

    sales = _grants(
        Scope.team,
        {
            "customer": _RCU,
            "organisation": _RCU,
            "contact_point": _RCU | {Action.delete},
            "order": _RC,
            "order_line": _R,
            "interaction": _RCU,
            "task": _RCU | {Action.delete},
            "consent": _RC,
        },
    )
    sales |= _grants(Scope.all, {"product": _R, "custom_field": _R})
    # A team's segments are its working lists; members are further cut to the caller's customer
    # scope (rapport.segments.service).
    sales |= _grants(Scope.team, {"segment": _R})
    sales |= _grants(Scope.team, {"user": _R, "team": _R})
    # Front-line staff log a request the moment a customer makes it; specialists handle it.
    sales |= _grants(Scope.team, {"data_subject_request": frozenset({Action.create})})
    policy[Role.sales_rep] = sales

    service = _grants(
        Scope.all,
        {
            "customer": _RCU,
            "organisation": _R,
            "contact_point": _RCU,
            "order": _R,
            "order_line": _R,
            "interaction": _RCU,
            "task": _RCU,
            "product": _R,
            "custom_field": _R,
            "consent": _RC,
            # Service takes complaints in; the privacy office acknowledges and resolves them.
            "privacy_complaint": _RC,
        },
        order=_MARGINS,
        order_line=_MARGINS,
        product=_MARGINS,
    )
    service |= _grants(Scope.all, {"segment": _R})
    service |= _grants(Scope.team, {"user": _R, "team": _R})
    service |= _grants(Scope.all, {"data_subject_request": frozenset({Action.create})})
    service["contact_point"] = replace(service["contact_point"], masked=_SERVICE_MASKS)
    policy[Role.service_rep] = service

    analyst = _grants(
        Scope.all,
        dict.fromkeys(
            (
                "customer",
                "organisation",
                "contact_point",
                "product",
                "order",
                "order_line",
                "interaction",
                "task",
                "custom_field",
                "analytics",
            ),
            _RX,
        ),
        customer=_PERSON_IDENTIFIERS | _CUSTOM_VALUES,
        contact_point=_CONTACT_VALUES,
        interaction=_FREE_TEXT,
        task=_FREE_TEXT,
    )
    # Analysts need consent state (profiling_allowed), never the staff-typed evidence.
    analyst |= _grants(Scope.all, {"consent": _R}, consent=_CONSENT_TEXT)
    # Pseudonymised means no names anywhere, colleagues' included: ids are enough for analysis.
    analyst |= _grants(
        Scope.team, {"user": _R, "team": _R}, user=frozenset({"email", "display_name", "username"})
    )
    analyst |= _grants(Scope.all, {"segment": _R})
    policy[Role.data_analyst] = analyst
    return policy


POLICY: dict[Role, dict[str, Grant]] = _build()

# Fields a pseudonymised reader may receive only in a generalised form: the analytics store keeps
# the birth year (for age bands), never the birth date. Read by rapport.analytics.store.
GENERALISED: dict[str, dict[str, str]] = {"customer": {"birth_date": "year"}}

NO_ACCESS = Grant(frozenset(), Scope.own)

# -- record linkage (duplicate detection) ------------------------------------------------------------
# The duplicate scan (rapport.dedup) reads as a system principal that holds no role: its grants are
# built from these allow-lists (every other column of the resource is hidden), read-only, scope all.
# It needs names (the analyst grant hides them), so it cannot borrow the analytics principal.
# Contact points enter only as blind indexes (resource "contact_point_index", a view of
# contact_point without value, value_normalized, label, district or postal code): phones and emails
# are compared as keyed digests and never decrypted for linkage. Occupation, organisation, owner,
# custom attributes and every free-text field stay hidden.
LINKAGE_FIELDS: dict[str, frozenset[str]] = {
    "customer": frozenset(
        {
            "id",
            "display_name",
            "family_name",
            "given_name",
            "name_latin",
            "gender",
            "birth_date",
            "region",
            "city",
            "updated_at",
        }
    ),
    "contact_point_index": frozenset({"id", "customer_id", "kind", "value_bidx"}),
}


def grant_for(role: Role, resource: str) -> Grant:
    return POLICY[role].get(resource, NO_ACCESS)


# -- pseudonymised exports -----------------------------------------------------------------------
# Output column -> (source column, generalisation). Only what is listed leaves the data-access
# layer: no names, contact values, exact birth dates, cities, occupations, employers or free text.
# A pseudonym is a keyed HMAC of the record id: stable across exports made with the same key (so
# analyses can be joined), meaningless without the key.
PSEUDONYMISED: dict[str, dict[str, tuple[str, str]]] = {
    "customer": {
        "pseudonym": ("id", "pseudonym"),
        "gender": ("gender", "keep"),
        "birth_year_band": ("birth_date", "year_band_5"),
        "region": ("region", "keep"),
        "preferred_language": ("preferred_language", "keep"),
        "preferred_channel": ("preferred_channel", "keep"),
        "acquisition_source": ("acquisition_source", "keep"),
        "lifecycle_stage": ("lifecycle_stage", "keep"),
        "created_month": ("created_at", "month"),
    }
}


def pseudonym(key: bytes, kind: str, record_id: int) -> str:
    # Keyed with the pseudonym key (RAPPORT_PSEUDONYM_KEY), separate from the blind-index key, so
    # a pseudonymised export cannot be joined against blind indexes of contact values.
    mac = hmac.new(key, f"{kind}:{record_id}".encode(), hashlib.sha256).hexdigest()
    return "p_" + mac[:20]


def generalise(how: str, value: Any, *, key: bytes, kind: str) -> Any:
    if value is None:
        return None
    if how == "keep":
        return value
    if how == "pseudonym":
        return pseudonym(key, kind, int(value))
    if how == "year_band_5":
        start = value.year - value.year % 5
        return f"{start}-{start + 4}"
    if how == "year":
        return value.year
    if how == "month":
        return f"{value.year:04d}-{value.month:02d}"
    raise ValueError(f"unknown generalisation {how!r}")
