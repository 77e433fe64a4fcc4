"""cache generation (core_cache_generation): one number that ends every worker's cached rows

See `core.cache`: workers cache rarely changed rows (custom fields, users for filters, tags)
and compare this number once per request; a change to such a row bumps it.

Revision ID: 5d2a7c9e4b13
Revises: c4d8e2f6a915
Create Date: 2026-11-24 04:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = "5d2a7c9e4b13"
down_revision = "c4d8e2f6a915"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "core_cache_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_cache_generation")),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 1}])


def downgrade() -> None:
    op.drop_table("core_cache_generation")
