"""Migrations per owner (core, then each enabled addon in dependency order) with Alembic.

Each owner keeps its own version table and its own linear history in its `migrations/versions`
folder; removing an addon's code never breaks another's history (a single table with branches
would).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy.engine import Connection

from .extensions import db
from .loader import owned_tables

CORE_DIR = Path(__file__).parent / "migrations"


def versions_dir(app: Flask, owner: str) -> Path:
    if owner == "core":
        return CORE_DIR / "versions"
    return app.extensions["birga"].addons_by_name[owner].path / "migrations" / "versions"


def _owners(app: Flask) -> list[str]:
    return ["core", *[a.name for a in app.extensions["birga"].addons]]


def alembic_config(app: Flask, owner: str, connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_DIR))
    cfg.set_main_option("version_locations", str(versions_dir(app, owner)))
    cfg.set_main_option("path_separator", "os")
    declared = set()
    for name in _owners(app):
        declared |= owned_tables(name)
    cfg.attributes.update(connection=connection, owner=owner, tables=owned_tables(owner),
                          owners=_owners(app), declared=declared)
    return cfg


def table_filter(attrs: dict) -> Callable[[str, str, dict], bool]:
    """Alembic `include_name` that keeps only the tables of `attrs["owner"]`.

    A table in the models belongs to whoever declared it; a table found only in the database
    belongs to the owner with the longest matching name prefix.
    """
    owner, tables = attrs["owner"], set(attrs["tables"])
    declared, owners = set(attrs["declared"]), list(attrs["owners"])

    def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
        if type_ != "table" or name is None:
            return True
        if name.startswith("alembic_version"):
            return False
        if name in tables:
            return True
        if name in declared:
            return False
        best = max((o for o in owners if name.startswith(o + "_")), key=len, default=None)
        return best == owner

    return include_name


def upgrade(app: Flask, owners: list[str] | None = None) -> list[str]:
    """Upgrade core then the enabled addons (or just `owners`) to head; returns who ran."""
    ran = []
    with app.app_context():
        for owner in owners or _owners(app):
            if not versions_dir(app, owner).is_dir():
                continue
            with db.engine.begin() as conn:
                command.upgrade(alembic_config(app, owner, conn), "head")
            ran.append(owner)
    return ran


def downgrade(app: Flask, owner: str, revision: str = "base") -> None:
    with app.app_context(), db.engine.begin() as conn:
        command.downgrade(alembic_config(app, owner, conn), revision)


def revision(app: Flask, owner: str, message: str, autogenerate: bool = True) -> None:
    """Write a new revision for `owner`; autogenerate only compares `owner`'s tables."""
    folder = versions_dir(app, owner)
    folder.mkdir(parents=True, exist_ok=True)
    with app.app_context(), db.engine.begin() as conn:
        command.revision(alembic_config(app, owner, conn), message=message,
                         autogenerate=autogenerate)


def diff(app: Flask, owner: str) -> list:
    """What autogenerate would change for `owner`: empty when models and database agree."""
    with app.app_context(), db.engine.connect() as conn:
        cfg = alembic_config(app, owner, conn)
        include_name = table_filter(cfg.attributes)
        ctx = MigrationContext.configure(conn, opts={
            "include_name": include_name,
            "include_object": lambda o, n, t, r, c: include_name(n, t, {}),
            "compare_type": True,
        })
        return compare_metadata(ctx, db.metadata)


def current(app: Flask) -> dict[str, str | None]:
    result = {}
    with app.app_context(), db.engine.connect() as conn:
        for owner in _owners(app):
            ctx = MigrationContext.configure(conn, opts={
                "version_table": f"alembic_version_{owner}"})
            result[owner] = ctx.get_current_revision()
    return result
