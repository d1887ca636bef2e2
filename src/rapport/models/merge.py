"""Customer merges: the merge record (before-images, moved records) and the aliases of merged ids."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId
from rapport.privacy.classification import not_personal, pii

_MERGE = ("service", "legal_obligation")


class CustomerMerge(Base):
    """One merge of duplicate customers into a survivor, kept so it can be explained and undone.

    ``before_image`` and ``after_image`` hold the customers' field values (names, birth dates,
    custom attributes...) and are sealed like contact values (rapport.security.keyring).
    ``moved`` lists, per table, which rows moved from which customer: ids only.
    """

    __tablename__ = "customer_merge"
    __table_args__ = (Index("ix_customer_merge_survivor_id", "survivor_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=pii("reference", purposes=_MERGE))
    survivor_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), info=pii("reference", purposes=_MERGE, note="the customer kept")
    )
    merged_ids: Mapped[list[int]] = mapped_column(
        JSON, info=pii("reference", purposes=_MERGE, note="the duplicates merged into the survivor")
    )
    # merged | undone | erased
    status: Mapped[str] = mapped_column(
        String(16), default="merged", info=pii("record_metadata", purposes=_MERGE)
    )
    choices: Mapped[dict[str, Any]] = mapped_column(
        JSON,
        info=pii(
            "reference",
            purposes=_MERGE,
            note="per field: which customer's value was kept and by which rule (ids, never values)",
        ),
    )
    moved: Mapped[dict[str, Any] | None] = mapped_column(
        JSON,
        info=pii(
            "reference",
            purposes=_MERGE,
            note="per table: the rows moved to the survivor and the customer each came from (ids only)",
        ),
    )
    before_image: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "identity",
            purposes=_MERGE,
            note="JSON of every involved customer's fields before the merge (names, birth date, custom "
            "attributes, restriction); cleared when the survivor is erased",
            protection="encrypted",
        ),
    )
    after_image: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "identity",
            purposes=_MERGE,
            note="JSON of the survivor's fields as the merge left them: undo refuses when they changed since",
            protection="encrypted",
        ),
    )
    reason: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii("free_text", purposes=_MERGE, note="why; staff-typed", protection="encrypted"),
    )
    merged_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=_MERGE))
    merged_by: Mapped[int | None] = mapped_column(
        BigInteger, info=pii("reference", purposes=("security",), note="staff member who merged")
    )
    undone_at: Mapped[dt.datetime | None] = mapped_column(info=pii("record_metadata", purposes=_MERGE))
    undone_by: Mapped[int | None] = mapped_column(
        BigInteger, info=pii("reference", purposes=("security",), note="staff member who undid it")
    )


class CustomerAlias(Base):
    """A merged customer's id, kept so old references (links, imports, API clients) still resolve."""

    __tablename__ = "customer_alias"
    __table_args__ = (
        Index("ix_customer_alias_customer_id", "customer_id"),
        Index("ix_customer_alias_merge_id", "merge_id"),
    )

    alias_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"),
        primary_key=True,
        autoincrement=False,
        info=pii("reference", purposes=_MERGE, note="the merged customer's id"),
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), info=pii("reference", purposes=_MERGE, note="the survivor it resolves to")
    )
    merge_id: Mapped[int] = mapped_column(
        ForeignKey("customer_merge.id"), info=not_personal("the merge that created the alias")
    )
