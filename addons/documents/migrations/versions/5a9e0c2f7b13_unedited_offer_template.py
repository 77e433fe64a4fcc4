"""unedited offer template follows the shipped file (IBAN, BIC, website in the seller block)

Default templates are copied into the database the first time they are used. A copy nobody
edited is brought up to the new file as a new version (the old one stays revertible); an edited
copy is left as the firm made it.

Revision ID: 5a9e0c2f7b13
Revises: f8100c6d935b
Create Date: 2026-11-23 17:25:00
"""
from alembic import op

revision = "5a9e0c2f7b13"
down_revision = "f8100c6d935b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from addons.documents.default_templates import refresh_unedited

    refresh_unedited(op.get_bind())


def downgrade() -> None:
    """Nothing to undo: the earlier version is in the template's history."""
