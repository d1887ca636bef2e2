"""Organisations, customers (persons), their tags, search terms and contact points."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, LargeBinary, String
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal, pii


class Organisation(Tracked, Base):
    __tablename__ = "organisation"
    __table_args__ = (
        Index("ix_organisation_team_id_id", "team_id", "id"),
        Index("ix_organisation_owner_id_id", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    name_latin: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(100))
    size_band: Mapped[str | None] = mapped_column(String(32))
    website: Mapped[str | None] = mapped_column(String(300))
    region: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="lead")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deleted_at: Mapped[dt.datetime | None]

    people: Mapped[list[Customer]] = relationship(back_populates="organisation", lazy="raise")


# A person's profile columns: what imports write, merges choose between and exports carry.
PROFILE_COLUMNS = (
    "display_name",
    "family_name",
    "given_name",
    "name_latin",
    "gender",
    "birth_date",
    "occupation",
    "region",
    "city",
    "preferred_language",
    "preferred_channel",
    "acquisition_source",
    "lifecycle_stage",
)


class Customer(Tracked, Base):
    __tablename__ = "customer"
    # Every list filter and sort pairs with id so keyset pagination stays an index range scan.
    __table_args__ = (
        Index("ix_customer_team_id_id", "team_id", "id"),
        Index("ix_customer_owner_id_id", "owner_id", "id"),
        Index("ix_customer_lifecycle_stage_id", "lifecycle_stage", "id"),
        Index("ix_customer_region_id", "region", "id"),
        Index("ix_customer_created_at_id", "created_at", "id"),
        Index("ix_customer_updated_at_id", "updated_at", "id"),
        Index("ix_customer_display_name_id", "display_name", "id"),
        Index("ix_customer_organisation_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(
        BigId,
        primary_key=True,
        info=pii(
            "reference", purposes=("service", "sales", "analytics"), note="the pseudonym analysts work with"
        ),
    )
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisation.id"),
        info=pii("demographic", purposes=("service", "sales", "analytics"), note="employer"),
    )
    display_name: Mapped[str] = mapped_column(
        String(200), info=pii("identity", purposes=("service", "sales", "marketing"))
    )
    family_name: Mapped[str | None] = mapped_column(
        String(100), info=pii("identity", purposes=("service", "sales", "marketing"))
    )
    given_name: Mapped[str | None] = mapped_column(
        String(100), info=pii("identity", purposes=("service", "sales", "marketing"))
    )
    name_latin: Mapped[str | None] = mapped_column(
        String(200), info=pii("identity", purposes=("service", "sales", "marketing"))
    )
    gender: Mapped[str | None] = mapped_column(
        String(16), info=pii("demographic", purposes=("service", "marketing", "analytics"))
    )
    birth_date: Mapped[dt.date | None] = mapped_column(
        Date,
        info=pii(
            "identity",
            purposes=("service", "marketing"),
            note="with gender and city a near-unique quasi-identifier; reveals minors",
        ),
    )
    occupation: Mapped[str | None] = mapped_column(
        String(100), info=pii("demographic", purposes=("sales", "marketing", "analytics"))
    )
    region: Mapped[str | None] = mapped_column(
        String(100), info=pii("demographic", purposes=("service", "sales", "analytics"))
    )
    city: Mapped[str | None] = mapped_column(
        String(100), info=pii("demographic", purposes=("service", "sales", "analytics"))
    )
    preferred_language: Mapped[str | None] = mapped_column(
        String(16), info=pii("demographic", purposes=("service", "marketing"))
    )
    preferred_channel: Mapped[str | None] = mapped_column(
        String(16), info=pii("behavioural", purposes=("service", "marketing"))
    )
    acquisition_source: Mapped[str | None] = mapped_column(
        String(64), info=pii("behavioural", purposes=("marketing", "analytics"))
    )
    lifecycle_stage: Mapped[str] = mapped_column(
        String(32),
        default="lead",
        info=pii("behavioural", purposes=("sales", "marketing", "analytics", "profiling")),
    )
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"),
        info=pii(
            "reference",
            purposes=("sales", "administration"),
            note="the staff member who owns the relationship",
        ),
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id"), info=not_personal("a team, not a person")
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(
        default=dict,
        info=pii(
            "free_text",
            purposes=("service", "sales"),
            note="administrator-defined custom fields; a text field can hold anything",
        ),
    )
    deleted_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii(
            "record_metadata",
            purposes=("service",),
            note="soft-delete mark; erasure must purge, not only mark",
        )
    )
    erased_at: Mapped[dt.datetime | None] = mapped_column(
        info=not_personal(
            "when the person's data was erased or anonymised; the row is then a tombstone that keeps "
            "orders countable without saying whose they were"
        )
    )

    organisation: Mapped[Organisation | None] = relationship(back_populates="people", lazy="raise")
    contact_points: Mapped[list[ContactPoint]] = relationship(back_populates="customer", lazy="raise")


class CustomerTag(Base):
    __tablename__ = "customer_tag"
    __table_args__ = (Index("ix_customer_tag_tag_customer_id", "tag", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"),
        primary_key=True,
        info=pii("reference", purposes=("service", "sales", "marketing", "analytics")),
    )
    tag: Mapped[str] = mapped_column(
        String(64),
        primary_key=True,
        info=pii(
            "behavioural",
            purposes=("marketing", "analytics", "profiling"),
            note="a tag can state a sensitive fact; keep the vocabulary free of them",
        ),
    )


class CustomerSearchTerm(Base):
    """Normalised name fragments (CJK suffixes, Latin words, pinyin) for indexed prefix search."""

    __tablename__ = "customer_search_term"

    # Byte order ("C") on PostgreSQL so a prefix is a contiguous index range, as on SQLite.
    term: Mapped[str] = mapped_column(
        String(200).with_variant(postgresql.VARCHAR(200, collation="C"), "postgresql"),
        primary_key=True,
        info=pii("identity", purposes=("service",), note="fragments and pinyin of the person's names"),
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
        info=pii("reference", purposes=("service",)),
    )


class CustomField(Tracked, Base):
    """Typed custom attributes an administrator defines for customers or organisations."""

    __tablename__ = "custom_field"
    __table_args__ = (Index("uq_custom_field_entity_key", "entity", "key", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    field_type: Mapped[str] = mapped_column(String(16))  # text | number | date | boolean | choice
    choices: Mapped[list[str]] = mapped_column(default=list)
    required: Mapped[bool] = mapped_column(default=False)


class ContactPoint(Tracked, Base):
    """A way to reach a person. Values are sealed per row (rapport.security.keyring): the columns
    hold AES-GCM ciphertext, and exact-match lookups go through the keyed ``value_bidx`` digest."""

    __tablename__ = "contact_point"
    __table_args__ = (
        Index("ix_contact_point_kind_value_bidx", "kind", "value_bidx"),
        Index("ix_contact_point_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("service", "analytics"))
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"),
        info=pii("reference", purposes=("service", "sales", "marketing", "analytics")),
    )
    # email | phone | wechat | address | national_id
    kind: Mapped[str] = mapped_column(
        String(16),
        info=pii(
            "behavioural",
            purposes=("service", "marketing", "analytics"),
            note="which channel types a person has",
        ),
    )
    label: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "free_text",
            purposes=("service",),
            note="staff-typed; can name a relative, an employer or a place",
            protection="encrypted",
        ),
    )
    value: Mapped[bytes] = mapped_column(
        LargeBinary,
        info=pii(
            "contact",
            purposes=("service", "sales", "marketing"),
            note="kind national_id holds a resident ID number: sensitive (PIPL art. 28)",
            protection="encrypted",
        ),
    )
    value_normalized: Mapped[bytes] = mapped_column(
        LargeBinary,
        info=pii(
            "contact",
            purposes=("service", "sales", "marketing"),
            note="the value normalised for display and de-duplication",
            protection="encrypted",
        ),
    )
    value_bidx: Mapped[str | None] = mapped_column(
        String(32),
        info=pii(
            "reference",
            purposes=("service", "sales", "marketing"),
            note="keyed digest of kind and normalised value: exact-match search and duplicate "
            "detection; never returned",
            protection="blind_index",
        ),
    )
    country: Mapped[str | None] = mapped_column(
        String(2),
        info=pii("demographic", purposes=("service", "analytics"), note="coarse location of an address"),
    )
    region: Mapped[str | None] = mapped_column(
        String(100),
        info=pii("demographic", purposes=("service", "analytics"), note="coarse location of an address"),
    )
    city: Mapped[str | None] = mapped_column(
        String(100),
        info=pii("demographic", purposes=("service", "analytics"), note="coarse location of an address"),
    )
    district: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "contact", purposes=("service", "sales"), note="fine-grained address part", protection="encrypted"
        ),
    )
    postal_code: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "contact", purposes=("service", "sales"), note="fine-grained address part", protection="encrypted"
        ),
    )
    is_primary: Mapped[bool] = mapped_column(
        default=False, info=pii("record_metadata", purposes=("service",))
    )
    is_verified: Mapped[bool] = mapped_column(
        default=False, info=pii("record_metadata", purposes=("service",))
    )

    customer: Mapped[Customer] = relationship(back_populates="contact_points", lazy="raise")
