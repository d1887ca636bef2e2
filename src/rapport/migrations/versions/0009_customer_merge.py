"""customer merges and aliases

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rapport.models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customer_merge",
        sa.Column("id", _ID, nullable=False),
        sa.Column("survivor_id", _ID, nullable=False),
        sa.Column("merged_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=True),
        sa.Column("before_image", sa.LargeBinary(), nullable=True),
        sa.Column("after_image", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.LargeBinary(), nullable=True),
        sa.Column("merged_at", rapport.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("merged_by", sa.BigInteger(), nullable=True),
        sa.Column("undone_at", rapport.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["survivor_id"], ["customer.id"], name=op.f("fk_customer_merge_survivor_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merge")),
    )
    with op.batch_alter_table("customer_merge", schema=None) as batch_op:
        batch_op.create_index("ix_customer_merge_survivor_id", ["survivor_id"], unique=False)

    op.create_table(
        "customer_alias",
        sa.Column("alias_id", _ID, autoincrement=False, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("merge_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["customer.id"], name=op.f("fk_customer_alias_alias_id_customer")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_customer_alias_customer_id_customer")
        ),
        sa.ForeignKeyConstraint(
            ["merge_id"], ["customer_merge.id"], name=op.f("fk_customer_alias_merge_id_customer_merge")
        ),
        sa.PrimaryKeyConstraint("alias_id", name=op.f("pk_customer_alias")),
    )
    with op.batch_alter_table("customer_alias", schema=None) as batch_op:
        batch_op.create_index("ix_customer_alias_customer_id", ["customer_id"], unique=False)
        batch_op.create_index("ix_customer_alias_merge_id", ["merge_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_alias", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_alias_merge_id")
        batch_op.drop_index("ix_customer_alias_customer_id")
    op.drop_table("customer_alias")
    with op.batch_alter_table("customer_merge", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_merge_survivor_id")
    op.drop_table("customer_merge")
