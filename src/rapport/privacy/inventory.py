"""The record of processing (PIPL art. 54-55 audits, GDPR art. 30), built from the declarations.

Nothing here is written by hand per column: categories and purposes come from the column ``info``
(:mod:`rapport.privacy.classification`), who reads what comes from ``POLICY`` and the resource specs,
so the record cannot drift from what the code actually does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from rapport.access.policy import Action, Role, grant_for
from rapport.access.specs import ALL_SPECS
from rapport.audit.schemas import AuditEventRead
from rapport.models import Base
from rapport.privacy.classification import (
    CATEGORY_MEANING,
    PROTECTION_MEANING,
    PURPOSE_MEANING,
    RETENTION_MEANING,
    TABLES,
    classification_of,
)

# Tables the API serves through a policy resource: (resource, the columns a reader may receive).
_SERVED: dict[str, tuple[str, frozenset[str]]] = {
    spec.table.name: (spec.name, frozenset(spec.read_columns) - spec.hidden_always) for spec in ALL_SPECS
}
_SERVED["audit_event"] = ("audit", frozenset(AuditEventRead.model_fields))
# GET /customers/{id}/scores: a customer's scores, to roles that may read analytics (and the customer).
_SERVED["customer_score"] = (
    "analytics",
    frozenset({"customer_id", "kind", "value", "label", "details", "model_version", "computed_at"}),
)

# How the personal tables without a policy resource reach anyone, if at all.
_OTHER_EXPOSURE: Mapping[str, str] = {
    "customer_tag": "returned as the customer's tags to whoever may read the customer",
    "customer_search_term": "never returned; only answers name searches of roles that see names",
    "auth_token": "never returned; the database holds digests only",
    "api_key": "each staff member lists their own keys; the digest is never returned",
    "idempotency_record": "replayed only to the principal that sent the original request",
    "consent_event": "consent history of a customer, to roles with consent read who may read the customer, "
    "and to the customer in the privacy portal; evidence hidden from analysts",
    "consent_state": "current consent on the customer 360 and in the privacy portal",
    "processing_restriction": "the flag on the 360; the reason to roles with consent read, not analysts",
    "provision_log": "never returned by the API; the audit chain and the database keep it",
    "privacy_complaint": "the privacy office (admins, CRM specialists) and service reps who take them in",
    "portal_challenge": "never returned; the database holds digests of codes and addresses only",
    "portal_session": "never returned; the database holds digests only",
    "user_totp": "never returned; the secret is shown once at enrolment and stored sealed",
    "mfa_recovery_code": "never returned; the codes are shown once and stored as argon2 hashes",
    "oidc_identity": "never returned; links a single sign-on subject to a staff account",
    "webhook_delivery": "the delivery log, to administrators; receivers get ids only, never values",
    "customer_merge": "GET /merges/{id} to whoever may read the survivor: ids, rules, counts and the "
    "reason; the sealed before- and after-images never leave the database",
    "customer_alias": "never returned; a read of a merged id redirects (307) to the survivor",
    "import_change": "never returned; read only to revert an import within its window, then pruned",
    "customer_external_id": "never returned; matches imported rows to the customer they describe",
    "dedup_pair": "GET /dedup/clusters to whoever may read the customers: ids and match probabilities, "
    "members outside the reader's scope hidden",
}


def _masks(table: str, column: str) -> dict[str, str]:
    """Roles that receive the column only partially, and the mask they get."""
    served = _SERVED.get(table)
    if served is None or column not in served[1]:
        return {}
    found: dict[str, str] = {}
    for role in Role:
        grant = grant_for(role, served[0])
        if grant.allows(Action.read) and column not in grant.hidden:
            for masked_column, mask in grant.masked:
                if masked_column == column:
                    found[role.value] = mask.value
    return found


def _access(table: str, column: str) -> tuple[dict[str, str], list[str]]:
    """Roles that receive the column in full (with their record scope), and roles it is masked for."""
    served = _SERVED.get(table)
    if served is None or column not in served[1]:
        return {}, []
    resource = served[0]
    readers: dict[str, str] = {}
    hidden: list[str] = []
    for role in Role:
        grant = grant_for(role, resource)
        if not grant.allows(Action.read):
            continue
        if column in grant.hidden:
            hidden.append(role.value)
        else:
            readers[role.value] = grant.scope.value
    return readers, hidden


def _column_entry(table: Table, name: str) -> dict[str, Any]:
    cls = classification_of(table.c[name])
    if cls is None:  # the classification tests keep this from happening; be explicit if it does
        raise ValueError(f"{table.name}.{name} is not classified")
    readers, hidden = _access(table.name, name)
    decl = TABLES[table.name]
    retention = cls.retention or decl.retention
    return {
        "column": name,
        "personal": cls.personal,
        "category": cls.category.value if cls.category else None,
        "subtype": cls.subtype.value if cls.subtype else None,
        "purposes": [p.value for p in cls.purposes],
        "retention": retention.value if cls.personal and retention else None,
        "note": cls.note,
        "at_rest": cls.protection.value if cls.protection else "plain",
        "served": table.name in _SERVED and name in _SERVED[table.name][1],
        "readers": readers,
        "hidden_from": hidden,
        "masked_for": _masks(table.name, name),
    }


def inventory() -> dict[str, Any]:
    """Every personal table with its columns, then the tables judged not personal and why."""
    tables = Base.metadata.tables
    personal: list[dict[str, Any]] = []
    other: list[dict[str, str]] = []
    for name, decl in TABLES.items():
        if not decl.personal:
            other.append({"table": name, "reason": decl.reason})
            continue
        table = tables[name]
        served = _SERVED.get(name)
        personal.append(
            {
                "table": name,
                "description": decl.reason,
                "subjects": list(decl.subjects),
                "retention": decl.retention.value if decl.retention else None,
                "resource": served[0] if served else None,
                "exposure": "through the API per the access policy" if served else _OTHER_EXPOSURE[name],
                "columns": [_column_entry(table, c.name) for c in table.columns],
            }
        )
    return {
        "tables": personal,
        "not_personal": other,
        "vocabulary": {
            "categories": {k.value: v for k, v in CATEGORY_MEANING.items()},
            "purposes": {k.value: v for k, v in PURPOSE_MEANING.items()},
            "retention": {k.value: v for k, v in RETENTION_MEANING.items()},
            "at_rest": {
                "plain": "stored as is; protected by database access control and disk encryption only",
                **{k.value: v for k, v in PROTECTION_MEANING.items()},
            },
        },
    }
