"""custom text values get a folded key for the list's "contains" filter

SQLite's `lower()` folds ASCII only, and neither engine folds diacritics or scripts, so the
filter "buve" missed "Būve" and, on SQLite, "проект" missed "ПРОЕКТ". The new column holds
the value folded as the search does (`folding.fold`); existing values are folded here.

Revision ID: 9b4d2e7c1f58
Revises: 3c8e5f1a9d47
Create Date: 2026-11-24 01:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "9b4d2e7c1f58"
down_revision = "3c8e5f1a9d47"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    from addons.contacts.models import value_key

    with op.batch_alter_table("contacts_custom_value", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value_key", sa.String(length=500), nullable=True))
    values = sa.table("contacts_custom_value", sa.column("id", sa.Integer),
                      sa.column("value_text", sa.String), sa.column("value_key", sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(values.c.id, values.c.value_text)
                        .where(values.c.value_text.is_not(None))).all()
    update = values.update().where(values.c.id == sa.bindparam("row_id")).values(
        value_key=sa.bindparam("key"))
    for start in range(0, len(rows), BATCH):
        bind.execute(update, [{"row_id": row_id, "key": value_key(text)}
                              for row_id, text in rows[start:start + BATCH]])


def downgrade() -> None:
    with op.batch_alter_table("contacts_custom_value", schema=None) as batch_op:
        batch_op.drop_column("value_key")
