"""Every table that references a customer, and what a merge does with its rows.

:data:`RELATIONS` must name every foreign key to ``customer.id`` in the schema:
tests/merge/test_relations.py enumerates them from the SQLAlchemy metadata and fails when a new
table references customers without saying here how a merge treats it.

Strategies:

- ``move``: the rows move to the survivor (orders, interactions, tasks, privacy cases...).
- ``move_unique``: the rows move unless the survivor already has one with the same key (contact
  points by kind and blind index, tags, scores by kind); duplicates stay on the merged record,
  so undo finds everything where it was.
- ``rebuild``: derived rows, recomputed for the survivor from its chosen values (search terms).
- ``consent_ledger`` / ``consent_state``: the append-only ledger is never updated; the merge
  appends events for the survivor (see :mod:`rapport.merge.consents`).
- ``restriction``: processing restriction; restricted wins.
- ``keep``: short-lived security rows that stay with the merged record and expire there
  (privacy-portal codes and sessions live minutes).
- ``bookkeeping``: the merge's own tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import MetaData, Table

from rapport.models import Base

Strategy = Literal[
    "move", "move_unique", "rebuild", "consent_ledger", "consent_state", "restriction", "keep", "bookkeeping"
]


@dataclass(frozen=True, slots=True)
class Relation:
    table: str
    column: str
    strategy: Strategy
    unique_on: tuple[str, ...] = ()

    @property
    def t(self) -> Table:
        return Base.metadata.tables[self.table]


RELATIONS: tuple[Relation, ...] = (
    Relation("sales_order", "customer_id", "move"),
    Relation("interaction", "customer_id", "move"),
    Relation("task", "customer_id", "move"),
    Relation("data_subject_request", "customer_id", "move"),
    Relation("privacy_complaint", "customer_id", "move"),
    # Ids in the systems the person was imported from: later imports then match the survivor.
    Relation("customer_external_id", "customer_id", "move"),
    Relation("contact_point", "customer_id", "move_unique", ("kind", "value_bidx")),
    Relation("customer_tag", "customer_id", "move_unique", ("tag",)),
    Relation("customer_score", "customer_id", "move_unique", ("kind",)),
    Relation("customer_search_term", "customer_id", "rebuild"),
    Relation("consent_event", "customer_id", "consent_ledger"),
    Relation("consent_state", "customer_id", "consent_state"),
    Relation("processing_restriction", "customer_id", "restriction"),
    Relation("portal_challenge", "customer_id", "keep"),
    Relation("portal_session", "customer_id", "keep"),
    # The duplicate-detection pairs are the review history that led to the merge.
    Relation("dedup_pair", "left_id", "keep"),
    Relation("dedup_pair", "right_id", "keep"),
    Relation("customer_merge", "survivor_id", "bookkeeping"),
    Relation("customer_alias", "alias_id", "bookkeeping"),
    Relation("customer_alias", "customer_id", "bookkeeping"),
)

MOVING = tuple(r for r in RELATIONS if r.strategy in ("move", "move_unique"))


def customer_references(metadata: MetaData = Base.metadata) -> Iterator[tuple[str, str]]:
    """(table, column) of every foreign key to ``customer.id``."""
    for table in metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == "customer" and fk.column.name == "id":
                yield table.name, fk.parent.name
