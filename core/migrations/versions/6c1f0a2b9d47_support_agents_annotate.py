"""support agents may add notes and files (records.annotate)

Notes and files on a record now need the record addon's write permission or the new
`records.annotate`. The default support-agent role gets it in new installations
(`seed_default_roles`); this gives it to an existing `support_agent` role too, so agents
keep logging calls after the upgrade. A role an admin renamed or rebuilt is left alone
unless it still has the code.

Revision ID: 6c1f0a2b9d47
Revises: 02b648aeb79f
Create Date: 2026-11-23 09:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "6c1f0a2b9d47"
down_revision = "02b648aeb79f"
branch_labels = None
depends_on = None

PERMISSION = "records.annotate"
role = sa.table("core_role", sa.column("id", sa.Integer), sa.column("code", sa.String))
grant = sa.table("core_role_permission", sa.column("role_id", sa.Integer),
                 sa.column("permission", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    role_id = bind.scalar(sa.select(role.c.id).where(role.c.code == "support_agent"))
    if role_id is None:
        return
    held = bind.scalar(sa.select(sa.func.count()).select_from(grant).where(
        grant.c.role_id == role_id, grant.c.permission == PERMISSION))
    if not held:
        bind.execute(grant.insert().values(role_id=role_id, permission=PERMISSION))


def downgrade() -> None:
    bind = op.get_bind()
    role_id = bind.scalar(sa.select(role.c.id).where(role.c.code == "support_agent"))
    if role_id is not None:
        bind.execute(grant.delete().where(grant.c.role_id == role_id,
                                          grant.c.permission == PERMISSION))
