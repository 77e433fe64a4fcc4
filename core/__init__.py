"""Birga's kernel: the app factory.

`create_app()` reads the configuration, opens the database, finds the enabled addons, imports
only those, and wires their models, blueprints, templates, menus and translations in dependency
order. It knows no addon by name.
"""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import formatting, gc_freeze, i18n, jobs, read_requests, records
from .addons import Addon, discover, resolve
from .extensions import csrf, db, login_manager
from .loader import extend_addons_package, import_models, load_addon
from .registry import Registry

__all__ = ["create_app", "PROJECT_ROOT", "BirgaState"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Kernel modules that declare `core_*` tables; platform services add theirs here.
CORE_MODEL_MODULES = ["core.models", "core.sequences", "core.refdata", "core.jobs",
                      "core.security", "core.timeline", "core.audit", "core.storage",
                      "core.mail_inbound", "core.activities", "core.calendar_feed",
                      "core.company", "core.cache", "core.api_tokens"]
log = logging.getLogger("birga")


@dataclass
class BirgaState:
    """What the factory resolved for this app, kept in `app.extensions["birga"]`."""

    available: dict[str, Addon]
    addons: list[Addon]
    registry: Registry
    sequence: int
    addons_by_name: dict[str, Addon] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.addons_by_name = {a.name: a for a in self.addons}


def addon_enabled(name: str, app: Flask | None = None) -> bool:
    """Whether the addon `name` is enabled in `app` (default: the current app). For what an
    addon does only beside another one it does not depend on (an optional integration), and
    for signal receivers, which stay connected across the apps a process builds."""
    from flask import current_app

    target = app if app is not None else current_app
    state = target.extensions.get("birga")
    return state is not None and name in state.addons_by_name


def _default_config(app: Flask) -> dict[str, Any]:
    return {
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(app.instance_path, "birga.sqlite"),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "BIRGA_ADDONS_PATHS": [str(PROJECT_ROOT / "addons")],
        "BIRGA_ADDONS": None,  # None: every built-in addon on a fresh database
        "BIRGA_ENTRY_POINTS": True,
        "BIRGA_DEFAULT_TIMEZONE": "UTC",
        "BIRGA_LOGIN_MAX_FAILURES": 5,
        "BIRGA_LOGIN_LOCK_MINUTES": 15,
        "BIRGA_REGISTRY_CHECK_SECONDS": 0.0,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": True,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": 60 * 60 * 12,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "MAX_CONTENT_LENGTH": 50 * 1024 * 1024,
    }


def _secret_key(app: Flask) -> str:
    """Generated once per installation and kept in the instance folder, never in git."""
    path = Path(app.instance_path) / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def configure(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Defaults, then `instance/config.py`, then `BIRGA_*` / `DATABASE_URL`, then overrides."""
    app.config.update(_default_config(app))
    app.config.from_pyfile("config.py", silent=True)
    for key, value in sorted(os.environ.items()):
        # BIRGA_ADDONS sets our own key; BIRGA_SESSION_COOKIE_SECURE sets Flask's.
        skip = ("BIRGA_INSTANCE_PATH", "BIRGA_ADMIN_", "BIRGA_TEST_")
        if key.startswith("BIRGA_") and not key.startswith(skip):
            target = key if key in app.config else key[len("BIRGA_"):]
            app.config[target] = _loads(value)
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    if overrides:
        app.config.update(overrides)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app)


def _loads(value: str) -> Any:
    import json

    try:
        return json.loads(value)
    except ValueError:
        return value


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite: enforce foreign keys, and WAL so readers never block the writer."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def enabled_names(app: Flask, available: dict[str, Addon]) -> list[str]:
    """The database's enabled set; on a fresh database the configured or built-in set."""
    from .state import read_enabled

    with app.app_context(), db.engine.connect() as conn:
        names = read_enabled(conn)
    if names is not None:
        return names
    configured = app.config.get("BIRGA_ADDONS")
    if configured is not None:
        return list(configured)
    builtin = Path(app.config["BIRGA_ADDONS_PATHS"][0]).resolve()
    return sorted(a.name for a in available.values()
                  if a.installable and a.source == "folder" and a.path.parent == builtin)


def create_app(config: dict[str, Any] | None = None, addons: list[str] | None = None) -> Flask:
    """Build a Birga app.

    `config` overrides every other setting (tests, tools); `addons`, when given, is the exact
    set to load instead of the database's enabled set (used to migrate an addon being enabled).
    """
    instance = os.environ.get("BIRGA_INSTANCE_PATH") or (config or {}).get("INSTANCE_PATH")
    app = Flask("core", instance_path=str(Path(instance or PROJECT_ROOT / "instance").resolve()),
                instance_relative_config=True, template_folder=None, static_folder="static")
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    configure(app, config)
    app.config["BIRGA_OVERRIDES"] = dict(config or {})

    db.init_app(app)
    read_requests.init_app(app)  # before any other before_request reads the database
    gc_freeze.init_app(app)  # serving processes: the built app leaves the GC's care
    login_manager.init_app(app)
    csrf.init_app(app)
    for module in CORE_MODEL_MODULES:
        import_models("core", module)

    from .state import read_sequence

    with app.app_context():
        sequence = read_sequence(db.engine)
    paths = [Path(p) for p in app.config["BIRGA_ADDONS_PATHS"]]
    extend_addons_package(paths)
    available = discover(paths, entry_points=app.config["BIRGA_ENTRY_POINTS"])
    addons = resolve(enabled_names(app, available) if addons is None else addons, available)
    registry = Registry()
    app.extensions["birga"] = BirgaState(available, addons, registry, sequence)

    app.jinja_loader = ChoiceLoader(
        [FileSystemLoader(str(Path(app.instance_path) / "templates"))]
        + [FileSystemLoader(str(a.path / "templates")) for a in reversed(addons)]
        + [FileSystemLoader(str(PROJECT_ROOT / "templates"))]
    )
    i18n.init_app(app, [PROJECT_ROOT / "translations"]
                  + [a.path / "translations" for a in addons]
                  + [Path(app.instance_path) / "translations"])
    formatting.init_app(app)
    jobs.init_app(app)
    records.init_app(app)  # timeline, audit log, attachments on any record

    from . import web

    web.init_app(app, registry)
    for addon in addons:
        load_addon(app, addon, registry)
    registry.menu_tree()  # unknown menu parents fail now, at start-up
    return app
