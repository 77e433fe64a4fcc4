"""personal API tokens (core_api_token): programs call the JSON API as a user

See `core.api_tokens`: only a SHA-256 hash of each token is stored.

Revision ID: e7a3c1f5b820
Revises: 5d2a7c9e4b13
Create Date: 2026-11-24 06:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "e7a3c1f5b820"
down_revision = "5d2a7c9e4b13"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["core_user.id"],
                                name=op.f("fk_core_api_token_user_id_core_user"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_core_api_token_token_hash")),
    )
    op.create_index(op.f("ix_core_api_token_user_id"), "core_api_token", ["user_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_core_api_token_user_id"), table_name="core_api_token")
    op.drop_table("core_api_token")
