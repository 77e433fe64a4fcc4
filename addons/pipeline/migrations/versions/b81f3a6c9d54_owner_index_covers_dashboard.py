"""owner index covers the home page's pipeline card

`ix_pipeline_deal_owner_active (owner_id, active)` grows the columns the "My pipeline" card
sums (stage, currency, amount, probability, next activity): a salesperson's open deals are
counted and summed from the index alone (2,700 deals: 10.6 ms -> 0.75 ms on SQLite). Same
leading columns, so every query that used it still can.

Revision ID: b81f3a6c9d54
Revises: 3e7b9c41d2a8
Create Date: 2026-11-23 17:10:00
"""
from alembic import op

revision = "b81f3a6c9d54"
down_revision = "3e7b9c41d2a8"
branch_labels = None
depends_on = None

NAME = "ix_pipeline_deal_owner_active"
BEFORE = ["owner_id", "active"]
AFTER = ["owner_id", "active", "stage_id", "currency", "amount", "probability",
         "next_activity_at"]


def upgrade() -> None:
    with op.batch_alter_table("pipeline_deal", schema=None) as batch_op:
        batch_op.drop_index(NAME)
        batch_op.create_index(NAME, AFTER, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pipeline_deal", schema=None) as batch_op:
        batch_op.drop_index(NAME)
        batch_op.create_index(NAME, BEFORE, unique=False)
