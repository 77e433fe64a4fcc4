"""company details (core_company): the seller on documents, edited by an administrator

One row; empty columns fall back to the `BIRGA_COMPANY_*` configuration keys, so an
installation that never opens the page prints what it printed before.

Revision ID: 9b3e5c7d1a20
Revises: 6c1f0a2b9d47
Create Date: 2026-11-23 15:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "9b3e5c7d1a20"
down_revision = "6c1f0a2b9d47"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_company",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("vat", sa.String(length=40), nullable=True),
        sa.Column("registration_no", sa.String(length=40), nullable=True),
        sa.Column("bank", sa.String(length=200), nullable=True),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("website", sa.String(length=300), nullable=True),
        sa.Column("logo", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_company")),
    )


def downgrade() -> None:
    op.drop_table("core_company")
