"""Who may do what: role × resource → actions, record scope and hidden fields.

This table is the single source of truth for authorisation; the data-access layer
(:mod:`rapport.access.records`) enforces it and the workspace shows it to administrators.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    "segment",
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
_MARGINS = frozenset({"cost_amount", "margin_amount", "unit_cost"})


def _grants(scope: Scope, table: dict[str, frozenset[Action]], **hidden: frozenset[str]) -> dict[str, Grant]:
    return {res: Grant(acts, scope, hidden.get(res, frozenset())) for res, acts in table.items()}


def _build() -> dict[Role, dict[str, Grant]]:
    everything = dict.fromkeys(RESOURCES, _FULL)
    # Users are disabled, never deleted (their ids stay in the audit chain); the chain is read-only.
    everything["user"] = _FULL - {Action.delete}
    everything["audit"] = _RX
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
            "segment": _FULL - {Action.assign, Action.export},
        },
    )
    lead |= _grants(Scope.all, {"product": _R, "custom_field": _R})
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
            "segment": _FULL - {Action.assign, Action.export},
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
        },
    )
    sales |= _grants(Scope.all, {"product": _R, "custom_field": _R})
    # A team's segments are its working lists; members are further cut to the caller's customer
    # scope (rapport.segments.service).
    sales |= _grants(Scope.team, {"segment": _R})
    sales |= _grants(Scope.team, {"user": _R, "team": _R})
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
        },
        order=_MARGINS,
        order_line=_MARGINS,
        product=_MARGINS,
    )
    service |= _grants(Scope.all, {"segment": _R})
    service |= _grants(Scope.team, {"user": _R, "team": _R})
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
            ),
            _RX,
        ),
        customer=_PERSON_IDENTIFIERS | _CUSTOM_VALUES,
        contact_point=_CONTACT_VALUES,
        interaction=_FREE_TEXT,
        task=_FREE_TEXT,
    )
    # Pseudonymised means no names anywhere, colleagues' included: ids are enough for analysis.
    analyst |= _grants(
        Scope.team, {"user": _R, "team": _R}, user=frozenset({"email", "display_name", "username"})
    )
    analyst |= _grants(Scope.all, {"segment": _R})
    policy[Role.data_analyst] = analyst
    return policy


POLICY: dict[Role, dict[str, Grant]] = _build()

NO_ACCESS = Grant(frozenset(), Scope.own)


def grant_for(role: Role, resource: str) -> Grant:
    return POLICY[role].get(resource, NO_ACCESS)
