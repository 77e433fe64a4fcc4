"""Pytest plugin for Birga and partner addons (registered through the `pytest11` entry point).

Fixtures:
- `make_app(addons=[...], **config)`: a fresh app on a fresh database with exactly those addons
  enabled (and their dependencies), schema created from the models.
- `app`, `client`: the same with the addons named by `@pytest.mark.addons("a", "b")`.
- `make_user(login, password=..., is_admin=False)` and `login(client, user)`.

The database is SQLite in the test's temporary folder, or PostgreSQL when
`BIRGA_TEST_DATABASE_URL` is set: every app gets its own schema there, dropped afterwards.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

TEST_PASSWORD = "correct horse battery staple"  # noqa: S105 - a test fixture's password


def database_url() -> str | None:
    """PostgreSQL URL for this run, or None for SQLite."""
    return os.environ.get("BIRGA_TEST_DATABASE_URL") or None


def _pg_schema_options(url: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
    """A private schema for one app; returns engine options and a drop function."""
    import sqlalchemy as sa

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    options = {"connect_args": {"options": f"-csearch_path={schema}"}, "pool_pre_ping": True}
    return schema, options, drop


def create_schema(app: Flask) -> None:
    """Create core's and the enabled addons' tables from the models (fast; the migration test
    proves the migrations give the same schema) and record the enabled set."""
    from .extensions import db
    from .loader import owned_tables
    from .state import write_enabled

    state = app.extensions["birga"]
    names: set[str] = owned_tables("core")
    for addon in state.addons:
        names |= owned_tables(addon.name)
    with app.app_context():
        tables = [t for n, t in db.metadata.tables.items() if n in names]
        db.metadata.create_all(db.engine, tables=tables)
        with db.engine.begin() as conn:
            write_enabled(conn, {a.name: a.version for a in state.addons})
        state.sequence = 1


class IsolatedClient(FlaskClient):
    """A test client whose every request gets its own app context, as in production.

    Flask reuses an app context a test has pushed, so `g` (Flask-Login's user, Flask-Babel's
    locale) would leak from one request into the next and hide real bugs.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        from flask.globals import _cv_app

        token = _cv_app.set(None)  # type: ignore[arg-type]
        try:
            return super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    from . import create_app
    from .extensions import db

    cleanups: list[Callable[[], None]] = []
    apps: list[Flask] = []

    def factory(addons: list[str] | tuple[str, ...] = (), *, migrate: bool = False,
                database_uri: str | None = None, **config: Any) -> Flask:
        instance = tmp_path / f"instance{len(apps)}"
        instance.mkdir(exist_ok=True)
        settings: dict[str, Any] = {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "REMEMBER_COOKIE_SECURE": False,
            "INSTANCE_PATH": str(instance),
            "BIRGA_ADDONS": list(addons),
        }
        url = database_uri or database_url()
        if database_uri:
            settings["SQLALCHEMY_DATABASE_URI"] = database_uri
        elif url:
            _schema, options, drop = _pg_schema_options(url)
            settings["SQLALCHEMY_DATABASE_URI"] = url
            settings["SQLALCHEMY_ENGINE_OPTIONS"] = options
            cleanups.append(drop)
        else:
            settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'test.sqlite'}"
        settings.update(config)
        app = create_app(settings, addons=list(addons))
        app.test_client_class = IsolatedClient
        apps.append(app)
        if migrate:
            from . import migrate as migrations
            from .state import write_enabled

            migrations.upgrade(app)
            with app.app_context(), db.engine.begin() as conn:
                write_enabled(conn, {a.name: a.version for a in app.extensions["birga"].addons})
            app.extensions["birga"].sequence = 1
        else:
            create_schema(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def app(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Iterator[Flask]:
    marker = request.node.get_closest_marker("addons")
    application = make_app(list(marker.args) if marker else [])
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user() -> Callable[..., Any]:
    """Creates a user in the app whose context is active (the `app` fixture pushes one)."""
    from .extensions import db
    from .models import User

    def factory(login: str = "user", *, password: str = TEST_PASSWORD, is_admin: bool = False,
                **fields: Any) -> User:
        user = User(login=login, name=fields.pop("name", login.title()), is_admin=is_admin,
                    **fields)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user

    return factory


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a page hands out (tests keep CSRF on, as production does)."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    if match is None:
        raise AssertionError(f"no CSRF token on {path}")
    return match.group(1)


@pytest.fixture
def login() -> Callable[..., Any]:
    def do_login(client: FlaskClient, user: Any, password: str = TEST_PASSWORD) -> Any:
        token = csrf_token(client, "/login")
        return client.post("/login", data={"login": user.login, "password": password,
                                           "csrf_token": token})

    return do_login


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "addons(*names): addons enabled for the `app` fixture")
