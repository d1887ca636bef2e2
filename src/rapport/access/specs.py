"""How each resource maps onto tables for the data-access layer: columns, scope path, soft delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Table

from rapport import models as m
from rapport.models.base import table_of

# "via_customer_any": like via_customer, but erased or deleted customers still count (privacy cases
# outlive the person they are about).
ScopePath = Literal["owned", "via_customer", "via_customer_any", "via_order", "user", "team", "global"]


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    table: Table
    scope_path: ScopePath
    read_columns: tuple[str, ...]
    # Reads of these resources are personal data and are audited per record.
    personal: bool = False
    soft_delete: bool = False
    sortable: tuple[str, ...] = ("id",)
    path: str = ""
    hidden_always: frozenset[str] = field(default_factory=frozenset)

    @property
    def versioned(self) -> bool:
        return "version" in self.table.c


def _cols(table: Table, *exclude: str) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name not in exclude)


_t = table_of


CUSTOMER = ResourceSpec(
    "customer",
    _t(m.Customer),
    "owned",
    _cols(_t(m.Customer), "deleted_at"),
    personal=True,
    soft_delete=True,
    sortable=("id", "created_at", "updated_at", "display_name"),
    path="customers",
)
ORGANISATION = ResourceSpec(
    "organisation",
    _t(m.Organisation),
    "owned",
    _cols(_t(m.Organisation), "deleted_at"),
    soft_delete=True,
    sortable=("id", "created_at", "updated_at", "name"),
    path="organisations",
)
CONTACT_POINT = ResourceSpec(
    "contact_point",
    _t(m.ContactPoint),
    "via_customer",
    _cols(_t(m.ContactPoint), "value_bidx"),  # the blind index only answers searches
    personal=True,
    path="contact-points",
)
PRODUCT = ResourceSpec(
    "product",
    _t(m.Product),
    "global",
    _cols(_t(m.Product)),
    sortable=("id", "created_at", "name"),
    path="products",
)
ORDER = ResourceSpec(
    "order",
    _t(m.Order),
    "via_customer",
    _cols(_t(m.Order)),
    personal=True,
    sortable=("id", "ordered_at", "created_at"),
    path="orders",
)
ORDER_LINE = ResourceSpec(
    "order_line", _t(m.OrderLine), "via_order", _cols(_t(m.OrderLine)), path="order-lines"
)
INTERACTION = ResourceSpec(
    "interaction",
    _t(m.Interaction),
    "via_customer",
    _cols(_t(m.Interaction)),
    personal=True,
    sortable=("id", "occurred_at", "created_at"),
    path="interactions",
)
TASK = ResourceSpec(
    "task",
    _t(m.Task),
    "via_customer",
    _cols(_t(m.Task)),
    sortable=("id", "due_at", "created_at"),
    path="tasks",
)
USER = ResourceSpec(
    "user",
    _t(m.User),
    "user",
    _cols(_t(m.User), "password_hash"),
    sortable=("id", "username", "created_at"),
    path="users",
)
TEAM = ResourceSpec("team", _t(m.Team), "team", _cols(_t(m.Team)), sortable=("id", "name"), path="teams")
CUSTOM_FIELD = ResourceSpec(
    "custom_field", _t(m.CustomField), "global", _cols(_t(m.CustomField)), path="custom-fields"
)

DATA_SUBJECT_REQUEST = ResourceSpec(
    "data_subject_request",
    _t(m.DataSubjectRequest),
    "via_customer_any",
    _cols(_t(m.DataSubjectRequest), "export_body"),
    personal=True,
    sortable=("id", "due_at", "received_at"),
    path="privacy/requests",
    hidden_always=frozenset({"export_body"}),
)
SEGMENT = ResourceSpec(
    "segment",
    _t(m.Segment),
    "owned",
    _cols(_t(m.Segment), "deleted_at"),
    soft_delete=True,
    sortable=("id", "created_at", "updated_at", "name"),
    path="segments",
)
# Import jobs are scoped by who started them (rapport.ingest.jobs.visible_jobs), not by owner_id.
IMPORT = ResourceSpec(
    "import",
    _t(m.ImportJob),
    "global",
    _cols(_t(m.ImportJob), "file_path"),
    sortable=("id", "created_at"),
    path="imports",
    hidden_always=frozenset({"file_path"}),
)

# The blind indexes of contact points, for record linkage only (no role holds this resource; the
# duplicate scan's principal does, see policy.LINKAGE_FIELDS). Not in ALL_SPECS: it is a view of
# contact_point, whose columns the privacy inventory describes through CONTACT_POINT.
CONTACT_POINT_INDEX = ResourceSpec(
    "contact_point_index",
    _t(m.ContactPoint),
    "via_customer",
    ("id", "customer_id", "kind", "value_bidx"),
    personal=True,
)
DEDUP_CLUSTER = ResourceSpec(
    "dedup",
    _t(m.DedupCluster),
    "global",
    _cols(_t(m.DedupCluster)),
    sortable=("id", "max_probability", "created_at"),
    path="dedup/clusters",
)

ALL_SPECS = (
    CUSTOMER,
    ORGANISATION,
    CONTACT_POINT,
    PRODUCT,
    ORDER,
    ORDER_LINE,
    INTERACTION,
    TASK,
    USER,
    TEAM,
    CUSTOM_FIELD,
    DATA_SUBJECT_REQUEST,
    SEGMENT,
    DEDUP_CLUSTER,
)
