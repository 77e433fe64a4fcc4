"""Enabling and disabling addons for an installation (the Addons page and `birga addons`)."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from .addons import AddonInUse, dependents_of, discover, resolve
from .extensions import db
from .state import read_enabled, write_enabled


def _available(app: Flask):
    """Discover again: a partner package may have been pip-installed since start-up."""
    paths = [Path(p) for p in app.config["BIRGA_ADDONS_PATHS"]]
    return discover(paths, entry_points=app.config["BIRGA_ENTRY_POINTS"])


def _enabled_now(app: Flask) -> list[str]:
    with app.app_context(), db.engine.connect() as conn:
        names = read_enabled(conn)
    return names if names is not None else [a.name for a in app.extensions["birga"].addons]


def enable_addon(app: Flask, name: str) -> list[str]:
    """Enable `name` and its dependencies, migrate them; returns the names newly enabled."""
    from . import create_app
    from .migrate import upgrade
    from .seeding import run_seeds

    available = _available(app)
    current = _enabled_now(app)
    ordered = resolve([*current, name], available)
    new = [a.name for a in ordered if a.name not in current]
    target = create_app(app.config.get("BIRGA_OVERRIDES"), addons=[a.name for a in ordered])
    upgrade(target, owners=["core", *new])
    with target.app_context():
        run_seeds(target, new)
    with app.app_context(), db.engine.begin() as conn:
        write_enabled(conn, {a.name: a.version for a in ordered})
    return new


def disable_addon(app: Flask, name: str) -> bool:
    """Disable `name`; refused with the dependents' names while any of them is enabled."""
    available = _available(app)
    current = _enabled_now(app)
    if name not in current:
        return False
    enabled = resolve(current, available)
    dependents = dependents_of(name, enabled)
    if dependents:
        raise AddonInUse(name, dependents)
    with app.app_context(), db.engine.begin() as conn:
        write_enabled(conn, {}, [name])
    return True
