"""Requests that only read run without a transaction on PostgreSQL.

Under PostgreSQL's default READ COMMITTED level every statement sees its own snapshot anyway,
so wrapping a page's reads in BEGIN ... ROLLBACK buys no consistency; it costs two more round
trips per request (with psycopg, BEGIN goes out before the first query and ROLLBACK when the
connection returns to the pool). On a loopback server here that is about 0.9 ms of a 5-10 ms
list page. So for GET, HEAD and OPTIONS the session's connection is put in autocommit before
its first statement (Django's default for every request); every other method keeps one
transaction, committed or rolled back as a whole. SQLite is left alone: its BEGIN is local.

A GET must not write (reference data comes from `core.seeding`); should one still write, each
statement commits on its own. A GET that streams rows through a server-side cursor
(`execution_options(yield_per=...)`, an export) needs a transaction, as PostgreSQL opens such
cursors only inside one: mark its view `@reads_in_transaction`, right under the route
decorator. `BIRGA_READ_AUTOCOMMIT = False` turns all of this off.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request

from .extensions import db

#: Methods that do not change anything (RFC 9110 "safe" methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MARK = "_birga_reads_in_transaction"
View = TypeVar("View", bound=Callable[..., object])


def reads_in_transaction(view: View) -> View:
    """Keep this GET view's reads in a transaction: it streams rows with a server-side
    cursor (`yield_per`), which PostgreSQL opens only inside one."""
    setattr(view, _MARK, True)
    return view


def init_app(app: Flask) -> None:
    if not app.config.get("BIRGA_READ_AUTOCOMMIT", True):
        return
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return

    @app.before_request
    def _reads_without_transaction() -> None:
        if request.method not in SAFE_METHODS or _static(request.endpoint):
            return  # a static file needs no connection at all
        if getattr(current_app.view_functions.get(request.endpoint), _MARK, False):
            return
        session = db.session()  # this request's session (the scoped registry's)
        if not session.in_transaction():
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _static(endpoint: str | None) -> bool:
    return endpoint is None or endpoint == "static" or endpoint.endswith(".static")
