"""timeline entries keep their message, shown in the reader's language

`core_timeline_entry.message` holds the gettext calls behind a system entry's subject and body
(msgid, context, plural, parameters with money and dates typed), so each reader sees the line
in her own language. Rows written before keep NULL and show their stored text as before.

Revision ID: c4d8e2f6a915
Revises: 9b3e5c7d1a20
Create Date: 2026-11-23 15:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "c4d8e2f6a915"
down_revision = "9b3e5c7d1a20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("core_timeline_entry", sa.Column("message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("core_timeline_entry") as batch:
        batch.drop_column("message")
