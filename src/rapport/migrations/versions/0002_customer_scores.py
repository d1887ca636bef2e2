"""customer scores

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 21:39:09.635004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rapport.models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_score",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("computed_at", rapport.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_score_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_score")),
        sa.UniqueConstraint("customer_id", "kind", name=op.f("uq_customer_score_customer_id_kind")),
    )
    with op.batch_alter_table("customer_score", schema=None) as batch_op:
        batch_op.create_index("ix_customer_score_kind_label", ["kind", "label"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_score", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_score_kind_label")

    op.drop_table("customer_score")
