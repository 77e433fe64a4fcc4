"""Pytest plugin for Birga and partner addons (registered through the `pytest11` entry point).

Fixtures:
- `make_app(addons=[...], **config)`: a fresh app on a fresh database with exactly those addons
  enabled (and their dependencies), schema created from the models.
- `app`, `client`: the same with the addons named by `@pytest.mark.addons("a", "b")`.
- `make_user(login, password=..., is_admin=False)` and `login(client, user)`.
- `smtp_inbox`: a real SMTP server on loopback keeping what the app sends (`SmtpInbox`).
- `chromium`: a headless Chromium (Debian's binary, driven by Playwright); `browser_page(chromium,
  app, login=...)` serves the app and opens a signed-in page that collects script errors and
  failed requests (`LivePage.problems`).

The database is SQLite in the test's temporary folder, or PostgreSQL when
`BIRGA_TEST_DATABASE_URL` is set: every app gets its own schema there, dropped afterwards.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

TEST_PASSWORD = "correct horse battery staple"  # noqa: S105 - a test fixture's password


def database_url() -> str | None:
    """PostgreSQL URL for this run, or None for SQLite."""
    return os.environ.get("BIRGA_TEST_DATABASE_URL") or None


class SchemaPool:
    """Private PostgreSQL schemas, one per test app, reused by later tests with the same addons.

    Creating some eighty tables per test cost about 0.3 s; emptying them with one
    `TRUNCATE ... RESTART IDENTITY` costs a fraction, so a schema goes back to the pool emptied
    (tables a test made itself are dropped) and the next app with the same addons takes it.
    """

    def __init__(self) -> None:
        self.free: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self.engines: dict[str, Any] = {}
        self.made: list[tuple[str, str]] = []

    def admin(self, url: str) -> Any:
        import sqlalchemy as sa

        if url not in self.engines:
            self.engines[url] = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        return self.engines[url]

    def take(self, url: str, key: tuple[str, ...] | None) -> tuple[str, bool]:
        """(schema, reused); `key` None means a fresh schema that is never reused."""
        import sqlalchemy as sa

        if key is not None and self.free.get((url, key)):
            return self.free[(url, key)].pop(), True
        schema = "t_" + uuid.uuid4().hex[:12]
        with self.admin(url).connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        self.made.append((url, schema))
        return schema, False

    def give_back(self, url: str, key: tuple[str, ...] | None, schema: str,
                  expected: set[str]) -> None:
        import sqlalchemy as sa

        with self.admin(url).connect() as conn:
            if key is not None:
                try:
                    tables = set(conn.execute(sa.text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                        {"s": schema}).scalars())
                    for extra in sorted(tables - expected):
                        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{schema}"."{extra}" CASCADE'))
                    keep = sorted(tables & expected)
                    if keep:
                        names = ", ".join(f'"{schema}"."{t}"' for t in keep)
                        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                except Exception as exc:  # noqa: BLE001 - a schema we cannot empty is dropped
                    logging.getLogger(__name__).info("dropping test schema %s: %s", schema, exc)
                else:
                    self.free.setdefault((url, key), []).append(schema)
                    return
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    def drop_all(self) -> None:
        import sqlalchemy as sa

        for url, schema in self.made:
            with self.admin(url).connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.made.clear()
        self.free.clear()
        for engine in self.engines.values():
            engine.dispose()
        self.engines.clear()


SCHEMAS = SchemaPool()


class SqliteTemplates:
    """Empty SQLite databases, one per set of tables and enabled addons, made once per run and
    copied for each test: creating some seventy tables with their indexes and triggers cost
    0.2-0.4 s per test, a copy about ten milliseconds. What a copy holds is exactly what
    `create_schema` writes (tables, the enabled addons, sequence 1, the cache generation)."""

    def __init__(self) -> None:
        self.files: dict[Any, Path] = {}
        self.folder: Path | None = None

    def restore(self, key: Any, target: Path) -> bool:
        template = self.files.get(key)
        if template is None:
            return False
        _copy_sqlite(template, target)
        return True

    def keep(self, key: Any, source: Path) -> None:
        if key in self.files:
            return
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="birga-test-templates-"))
        path = self.folder / f"{len(self.files)}.sqlite"
        _copy_sqlite(source, path)
        self.files[key] = path

    def drop_all(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
        self.files.clear()


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy whatever journal mode the file is in."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


SQLITE_TEMPLATES = SqliteTemplates()


def expected_tables(app: Flask) -> set[str]:
    """Tables of core and the app's enabled addons."""
    from .loader import owned_tables

    names: set[str] = owned_tables("core")
    for addon in app.extensions["birga"].addons:
        names |= owned_tables(addon.name)
    return names


def create_schema(app: Flask, *, tables_exist: bool = False) -> None:
    """Create core's and the enabled addons' tables from the models (fast; the migration test
    proves the migrations give the same schema) and record the enabled set."""
    from .cache import ensure_generation_row
    from .extensions import db
    from .state import write_enabled

    state = app.extensions["birga"]
    names = expected_tables(app)
    with app.app_context():
        if not tables_exist:
            tables = [t for n, t in db.metadata.tables.items() if n in names]
            db.metadata.create_all(db.engine, tables=tables)
        with db.engine.begin() as conn:
            write_enabled(conn, {a.name: a.version for a in state.addons})
            ensure_generation_row(conn)
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
        reused = False
        pooled: tuple[str, str, tuple[str, ...] | None] | None = None
        if database_uri:
            settings["SQLALCHEMY_DATABASE_URI"] = database_uri
        elif url:
            key = None if migrate else tuple(sorted(addons))
            schema, reused = SCHEMAS.take(url, key)
            pooled = (url, schema, key)
            settings["SQLALCHEMY_DATABASE_URI"] = url
            settings["SQLALCHEMY_ENGINE_OPTIONS"] = {
                "connect_args": {"options": f"-csearch_path={schema}"}, "pool_pre_ping": True}
        else:
            settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'test.sqlite'}"
        own_sqlite = settings["SQLALCHEMY_DATABASE_URI"] if not url else None
        settings.update(config)
        app = create_app(settings, addons=list(addons))
        app.test_client_class = IsolatedClient
        apps.append(app)
        if pooled is not None:
            p_url, p_schema, p_key = pooled
            expected = expected_tables(app)
            cleanups.append(lambda: SCHEMAS.give_back(p_url, p_key, p_schema, expected))
        if migrate:
            from . import migrate as migrations
            from .state import write_enabled

            migrations.upgrade(app)
            with app.app_context(), db.engine.begin() as conn:
                write_enabled(conn, {a.name: a.version for a in app.extensions["birga"].addons})
            app.extensions["birga"].sequence = 1
        elif own_sqlite and settings["SQLALCHEMY_DATABASE_URI"] == own_sqlite:
            _sqlite_schema(app, instance / "test.sqlite")
        else:
            create_schema(app, tables_exist=reused)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    for cleanup in reversed(cleanups):
        cleanup()


def _sqlite_schema(app: Flask, database: Path) -> None:
    """`create_schema` on a fresh SQLite file, or a copy of the run's template for the same
    tables and addons (see `SqliteTemplates`)."""
    from .extensions import db

    state = app.extensions["birga"]
    key = (frozenset(expected_tables(app)), tuple(sorted((a.name, a.version)
                                                         for a in state.addons)))
    with app.app_context():
        db.engine.dispose()  # create_app may have opened the file: copy over a closed one
    if SQLITE_TEMPLATES.restore(key, database):
        state.sequence = 1
        return
    create_schema(app)
    with app.app_context():
        db.engine.dispose()
    SQLITE_TEMPLATES.keep(key, database)


@pytest.fixture
def app(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> Iterator[Flask]:
    marker = request.node.get_closest_marker("addons")
    application = make_app(list(marker.args) if marker else [])
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


#: Test users' password hashes: real scrypt (the login form checks them as in production),
#: at a cost of 2**10 instead of werkzeug's 2**15. Hashing and each sign-in then take ~2 ms
#: instead of ~90 ms, which the suite paid thousands of times. `User.set_password` itself,
#: and its own tests, keep the production cost.
TEST_HASH_METHOD = "scrypt:1024:8:1"


@functools.lru_cache(maxsize=32)
def hashed_test_password(password: str) -> str:
    """One hash per password for the whole run (the salt is shared: these are test users)."""
    return generate_password_hash(password, method=TEST_HASH_METHOD)


@pytest.fixture
def make_user() -> Callable[..., Any]:
    """Creates a user in the app whose context is active (the `app` fixture pushes one)."""
    from .extensions import db
    from .models import User

    def factory(login: str = "user", *, password: str = TEST_PASSWORD, is_admin: bool = False,
                **fields: Any) -> User:
        user = User(login=login, name=fields.pop("name", login.title()), is_admin=is_admin,
                    **fields)
        user.password_hash = hashed_test_password(password)
        db.session.add(user)
        db.session.commit()
        return user

    return factory


@pytest.fixture
def salespeople(app: Flask, make_user: Callable[..., Any]) -> dict[str, Any]:
    """Two users with the default `salesperson` role, `anna` and `olga` (by login): the
    record rules let each one see her own records only."""
    from .extensions import db
    from .security import assign_roles

    users = {login: make_user(login) for login in ("anna", "olga")}
    for user in users.values():
        assign_roles(user, "salesperson")
    db.session.commit()
    return users


@contextmanager
def acting_as(app: Flask, user: Any) -> Iterator[None]:
    """A request context in which `user` is signed in, as a view would see it: for testing
    services that read `current_user` (audit, timeline, record rules) without a client."""
    from flask import g
    from flask_login import login_user

    with app.test_request_context():
        login_user(user)
        try:
            yield
        finally:
            g.pop("_login_user", None)


def grant(user: Any, *permissions: str) -> None:
    """Give `user` (besides their roles) a role holding exactly `permissions`, and commit."""
    from sqlalchemy import select

    from .extensions import db
    from .security import Role, UserRole

    code = "test:" + ",".join(sorted(permissions))
    role = db.session.scalar(select(Role).where(Role.code == code))
    if role is None:
        role = Role(code=code, name=code)
        role.permissions = set(permissions)
        db.session.add(role)
        db.session.flush()
    db.session.add(UserRole(user_id=user.id, role_id=role.id))
    db.session.commit()


def birga_command(app: Flask, *args: str) -> Any:
    """Run `birga ARGS...` (the real Click command line) against `app`; returns Click's
    result (`exit_code`, `output`)."""
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from .cli import main

    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


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


# -- a real SMTP server on loopback --------------------------------------------------------
#: The sender address `SmtpInbox.config()` sets unless told otherwise.
TEST_SENDER = "Birga CRM <crm@birga.test>"


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements sent inside the block (for "a constant number of queries" tests)."""
    from sqlalchemy import event

    from .extensions import db

    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def dashboard_card(html: str, card_id: str) -> str:
    """The home page's card `<section id="dash-<card_id>">`, failing when it is absent."""
    found = re.search(rf'<section class="dash-card" id="dash-{card_id}">.*?</section>', html,
                      re.S)
    assert found, f"no {card_id} card on the page"
    return found.group(0)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Delivery:
    """One message as the SMTP server accepted it: the envelope, the bytes, the parsed mail."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class SmtpInbox:
    """An aiosmtpd handler keeping every message it accepts and every login it saw.

    Mail is read back as sent over the wire, so a test checks what a recipient would get.
    Messages arrive on aiosmtpd's thread; `send_mail` returns only after the server accepted,
    but a job or a request in another thread may not have sent yet, hence `wait_for`.
    """

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self.deliveries: list[Delivery] = []
        self.logins: list[tuple[str, str]] = []

    @property
    def messages(self) -> list[EmailMessage]:
        """The parsed messages, oldest first."""
        return [d.message for d in self.deliveries]

    def config(self, sender: str | None = TEST_SENDER) -> dict[str, Any]:
        """`make_app(..., **inbox.config())`: the app's mail settings pointing here."""
        settings: dict[str, Any] = {"BIRGA_MAIL_SERVER": self.host, "BIRGA_MAIL_PORT": self.port}
        if sender is not None:
            settings["BIRGA_MAIL_FROM"] = sender
        return settings

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        """The messages once `count` have arrived (or `timeout` seconds passed: a ceiling on a
        shared machine, not a speed assertion; the caller's unpacking then fails)."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    async def handle_DATA(  # noqa: N802 - aiosmtpd's API
            self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        raw = envelope.original_content or envelope.content
        self.deliveries.append(Delivery(envelope.mail_from, list(envelope.rcpt_tos), raw,
                                        message_from_bytes(raw, policy=policy.default)))
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> Any:
        """Accepts any login (AUTH over plain SMTP) and records it."""
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


@pytest.fixture
def smtp_inbox() -> Iterator[SmtpInbox]:
    """A loopback SMTP server (aiosmtpd, a test extra) for this test; see `SmtpInbox`."""
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox()
    controller = Controller(inbox, hostname=inbox.host, port=free_port(),
                            authenticator=inbox.authenticate, auth_require_tls=False)
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()


# -- real browser tests -------------------------------------------------------------------
#: Debian's Chromium (package `chromium`); a test never downloads a browser of its own.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: A ceiling for waits on a shared machine, not an assertion about speed.
BROWSER_TIMEOUT_MS = 30_000
requires_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                   "(run `bash scripts/check-system.sh --test` as root)")


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port in a background thread; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="birga-live-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by Playwright, launched from Debian's binary."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def collect_problems(page: Any) -> list[str]:
    """A list that fills with what `page` reports going wrong: console errors, uncaught script
    errors (CSP violations among them) and responses with HTTP status 400 or more.

    The favicon's 404 is left out (the app has none), and so is the console's "Failed to load
    resource", which only repeats a response already listed with its URL. Assert the list
    empty at the end: a test then fails on a broken script even when its own checks passed.
    """
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    return problems


@dataclass(frozen=True)
class LivePage:
    """What `browser_page` yields: the app's base URL, the page, and its `collect_problems`."""

    base_url: str
    page: Any
    problems: list[str]


@contextmanager
def browser_page(browser: Any, app: Flask, *, login: str | None = None,
                 password: str = TEST_PASSWORD, **context_options: Any) -> Iterator[LivePage]:
    """Serve `app` (`live_server`) and open one page on it in `browser` (the `chromium`
    fixture), signed in through the real /login form when `login` is given.

    The browser context gets the server as its base URL (`page.goto("/contacts/")`), waits of
    `BROWSER_TIMEOUT_MS`, and `context_options` for Playwright's `new_context` (defaults:
    `locale="en-US"`, a 1280x900 viewport). The context closes, and the server stops, on exit.
    """
    with live_server(app) as base_url:
        options = {"locale": "en-US", "viewport": {"width": 1280, "height": 900},
                   **context_options}
        context = browser.new_context(base_url=base_url, **options)
        try:
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            page = context.new_page()
            problems = collect_problems(page)
            if login is not None:
                page.goto("/login")
                page.fill("#login", login)
                page.fill("#password", password)
                with page.expect_navigation():
                    page.click("button.primary")
            yield LivePage(base_url, page, problems)
        finally:
            context.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    SCHEMAS.drop_all()
    SQLITE_TEMPLATES.drop_all()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "addons(*names): addons enabled for the `app` fixture")
    config.addinivalue_line("markers", "browser: drives a real headless Chromium")
