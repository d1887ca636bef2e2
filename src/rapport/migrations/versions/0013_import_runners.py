"""import jobs: runner and heartbeat (interrupted jobs), the API key and scopes they act with

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rapport.models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner_id", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("heartbeat_at", rapport.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("api_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_import_job_api_key_id_api_key"), "api_key", ["api_key_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_import_job_api_key_id_api_key"), type_="foreignkey")
        batch_op.drop_column("scopes")
        batch_op.drop_column("api_key_id")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("runner_id")
