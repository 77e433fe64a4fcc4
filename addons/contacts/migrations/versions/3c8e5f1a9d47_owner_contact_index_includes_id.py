"""owner contact index includes the id on PostgreSQL

The start page's birthdays first pick the ids of a salesperson's clients whose birthday falls
this week, then read those few rows. SQLite's index already holds the rowid, so that first step
reads the index alone; on PostgreSQL it fetched every one of the salesperson's rows from the
table (5,000 clients: 20 ms -> 7 ms with the id in the index). Nothing changes on SQLite.

Revision ID: 3c8e5f1a9d47
Revises: 7d2c4e9a1b36
Create Date: 2026-11-24 00:40:00
"""
from alembic import op

revision = "3c8e5f1a9d47"
down_revision = "7d2c4e9a1b36"
branch_labels = None
depends_on = None

COLUMNS = ["owner_id", "active", "last_contact_at", "birthday"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_contacts_partner_owner_contact", table_name="contacts_partner")
    op.create_index("ix_contacts_partner_owner_contact", "contacts_partner", COLUMNS,
                    postgresql_include=["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_contacts_partner_owner_contact", table_name="contacts_partner")
    op.create_index("ix_contacts_partner_owner_contact", "contacts_partner", COLUMNS)
