"""The navigation bar: pages register themselves here (label, path, the resource they need)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rapport.access.policy import Action
from rapport.access.principal import Principal


def N_(message: str) -> str:  # noqa: N802 (the gettext convention)
    """Marks a msgid for extraction; the template translates it when the bar is rendered."""
    return message


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str  # highlights the entry: pages pass the same key as ``nav`` when rendering
    label: str  # msgid, translated at render time
    path: str
    resource: str | None = None  # shown only to roles that may read this resource
    order: int = 100
    # Instead of ``resource``: shown to whom this says may open the pages the entry leads to.
    allowed: Callable[[Principal], bool] | None = None


NAV: list[NavItem] = []

# Labels of values shown on many pages (msgids; templates translate them with ``_()``).
ROLE_LABELS = {
    "admin": N_("Administrator"),
    "team_lead": N_("Team lead"),
    "crm_specialist": N_("CRM specialist"),
    "sales_rep": N_("Sales representative"),
    "service_rep": N_("Service representative"),
    "data_analyst": N_("Data analyst"),
}


def register_nav(item: NavItem) -> NavItem:
    """Add (or replace, by key) an entry of the navigation bar."""
    NAV[:] = [n for n in NAV if n.key != item.key]
    NAV.append(item)
    NAV.sort(key=lambda n: (n.order, n.key))
    return item


def _shown(item: NavItem, principal: Principal) -> bool:
    if item.allowed is not None:
        return item.allowed(principal)
    return item.resource is None or principal.can(item.resource, Action.read)


def visible_nav(principal: Principal) -> list[NavItem]:
    return [n for n in NAV if _shown(n, principal)]
