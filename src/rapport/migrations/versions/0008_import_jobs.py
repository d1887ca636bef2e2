"""import jobs, rejections, changes (before-images) and customers' external ids

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rapport.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, rapport.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("match_keys", sa.JSON(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("file_path", sa.String(length=1000), nullable=False),
        sa.Column("file_digest", sa.String(length=64), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("checkpoint_line", sa.Integer(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("team_id", _ID, nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("reverted_at"),
        sa.Column(
            "created_at",
            rapport.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            rapport.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["app_user.id"], name=op.f("fk_import_job_created_by_app_user")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_import_job_team_id_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
    )
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.create_index("ix_import_job_created_by_id", ["created_by", "id"], unique=False)
        batch_op.create_index("ix_import_job_team_id_id", ["team_id", "id"], unique=False)

    op.create_table(
        "import_rejection",
        sa.Column("id", _ID, nullable=False),
        sa.Column("job_id", _ID, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=200), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_job.id"],
            name=op.f("fk_import_rejection_job_id_import_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_rejection")),
    )
    with op.batch_alter_table("import_rejection", schema=None) as batch_op:
        batch_op.create_index("ix_import_rejection_job_id_line", ["job_id", "line"], unique=False)

    op.create_table(
        "import_change",
        sa.Column("id", _ID, nullable=False),
        sa.Column("job_id", _ID, nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["import_job.id"], name=op.f("fk_import_change_job_id_import_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_change")),
    )
    with op.batch_alter_table("import_change", schema=None) as batch_op:
        batch_op.create_index(
            "ix_import_change_job_id_entity_record_id", ["job_id", "entity", "record_id"], unique=False
        )
        batch_op.create_index("ix_import_change_entity_record_id", ["entity", "record_id"], unique=False)

    op.create_table(
        "customer_external_id",
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_external_id_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("external_id", name=op.f("pk_customer_external_id")),
    )
    with op.batch_alter_table("customer_external_id", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_external_id_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_external_id", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_external_id_customer_id"))
    op.drop_table("customer_external_id")
    with op.batch_alter_table("import_change", schema=None) as batch_op:
        batch_op.drop_index("ix_import_change_entity_record_id")
        batch_op.drop_index("ix_import_change_job_id_entity_record_id")
    op.drop_table("import_change")
    with op.batch_alter_table("import_rejection", schema=None) as batch_op:
        batch_op.drop_index("ix_import_rejection_job_id_line")
    op.drop_table("import_rejection")
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_index("ix_import_job_team_id_id")
        batch_op.drop_index("ix_import_job_created_by_id")
    op.drop_table("import_job")
