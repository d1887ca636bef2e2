"""field encryption: sealed contact values, blind index, wrapped data keys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 21:50:00

Existing rows are encrypted here, in the migration's transaction: contact values (label, value,
value_normalized, district, postal_code) and stored idempotent responses are sealed under data key
version 1, and the blind index is computed from the plaintext. On an empty database (a fresh
install, the test suite) no key is touched; the first write creates key version 1. The master key
comes from RAPPORT_MASTER_KEY or <data dir>/master.key, as for the server. SQLite zeroes the
replaced plaintext (secure_delete); on PostgreSQL `rapport db upgrade` rewrites the tables afterwards.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rapport.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, nullable) of contact_point that become ciphertext.
_SEALED = (
    ("label", True),
    ("value", False),
    ("value_normalized", False),
    ("district", True),
    ("postal_code", True),
)
_LENGTHS = {"label": 32, "value": 500, "value_normalized": 500, "district": 100, "postal_code": 20}
_BATCH = 1000

# This revision's view of the tables, independent of later model changes.
_contact = sa.table(
    "contact_point",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("value_bidx", sa.String()),
    *(sa.column(c, sa.LargeBinary()) for c, _ in _SEALED),
)
_idem = sa.table(
    "idempotency_record", sa.column("id", sa.Integer()), sa.column("response_body", sa.LargeBinary())
)


def upgrade() -> None:
    op.create_table(
        "encryption_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", rapport.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", rapport.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encryption_key")),
    )
    if op.get_bind().dialect.name == "sqlite":
        # The plaintext copied away from and overwritten below is zeroed, not left in free pages.
        op.execute("PRAGMA secure_delete = ON")
    with op.batch_alter_table("contact_point", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_point_kind_value_normalized")
        batch_op.add_column(sa.Column("value_bidx", sa.String(length=32), nullable=True))
        for name, nullable in _SEALED:
            batch_op.alter_column(
                name,
                existing_type=sa.String(length=_LENGTHS[name]),
                type_=sa.LargeBinary(),
                existing_nullable=nullable,
                postgresql_using=f"convert_to({name}, 'UTF8')",
            )
        batch_op.create_index("ix_contact_point_kind_value_bidx", ["kind", "value_bidx"], unique=False)
    _encrypt_existing()


def _encrypt_existing() -> None:
    conn = op.get_bind()
    has_contacts = conn.execute(sa.select(_contact.c.id).limit(1)).first() is not None
    has_bodies = (
        conn.execute(sa.select(_idem.c.id).where(_idem.c.response_body.is_not(None)).limit(1)).first()
        is not None
    )
    if not (has_contacts or has_bodies):
        return
    from rapport.security import crypto, keyring

    ring = keyring.keyring_for(conn, for_write=True)
    # Blind index from the plaintext, before it is sealed.
    last = 0
    while True:
        rows = conn.execute(
            sa.select(_contact.c.id, _contact.c.kind, _contact.c.value_normalized)
            .where(_contact.c.id > last)
            .order_by(_contact.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            sa.update(_contact)
            .where(_contact.c.id == sa.bindparam("b_id"))
            .values(value_bidx=sa.bindparam("b")),
            [
                {
                    "b_id": r.id,
                    "b": crypto.blind_index(
                        r.kind, (keyring.raw_plaintext(r.value_normalized) or b"").decode()
                    ),
                }
                for r in rows
            ],
        )
        last = rows[-1].id
    for table, columns in ((_contact, tuple(c for c, _ in _SEALED)), (_idem, ("response_body",))):
        last = 0
        while True:
            n, last = keyring.reseal_batch(conn, ring, table, columns, last, _BATCH, legacy=True)
            if n == 0:
                break
    # PostgreSQL keeps the plaintext tuple versions in the heap until the tables are rewritten,
    # which cannot happen inside this transaction: `rapport db upgrade` runs VACUUM FULL after it
    # (rapport.security.keyring.scrub_after_first_encryption).


def downgrade() -> None:
    """Decrypt everything back to plaintext text columns (needs the master key)."""
    conn = op.get_bind()
    from rapport.security import keyring

    if conn.execute(sa.select(sa.func.count()).select_from(sa.table("encryption_key"))).scalar_one():
        ring = keyring.keyring_for(conn)
        text_out = conn.dialect.name == "sqlite"  # PostgreSQL converts bytea to text below
        for table, columns in ((_contact, tuple(c for c, _ in _SEALED)), (_idem, ("response_body",))):
            rows = conn.execute(sa.select(table.c.id, *(table.c[c] for c in columns))).all()
            sets = ", ".join(f"{c} = :{c}" for c in columns)
            stmt = sa.text(f"UPDATE {table.name} SET {sets} WHERE id = :b_id")  # noqa: S608
            for row in rows:
                values: dict[str, object] = {"b_id": row[0]}
                for i, c in enumerate(columns, start=1):
                    plain = keyring.open_stored(ring, table.name, c, row[0], row[i])
                    values[c] = (
                        plain.decode() if plain is not None and text_out and table is _contact else plain
                    )
                conn.execute(stmt, values)
    with op.batch_alter_table("contact_point", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_point_kind_value_bidx")
        for name, nullable in _SEALED:
            batch_op.alter_column(
                name,
                existing_type=sa.LargeBinary(),
                type_=sa.String(length=_LENGTHS[name]),
                existing_nullable=nullable,
                postgresql_using=f"convert_from({name}, 'UTF8')",
            )
        batch_op.drop_column("value_bidx")
        batch_op.create_index(
            "ix_contact_point_kind_value_normalized", ["kind", "value_normalized"], unique=False
        )
    op.drop_table("encryption_key")
