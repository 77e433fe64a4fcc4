"""Per-process caches of rarely changed rows, kept right across workers by one number.

Every list page reads the same small, rarely changed rows again: the custom fields, the
active users for the salesperson filter, the tags, the saved filters. Reading them cost a
statement each (a tenth of the contacts list page). Odoo's answer, kept here: each worker
caches them in memory and, once per request, compares one number in the database, the cache
generation, with the one its entries were made at (Odoo's "cache signaling" sequence).

- A function decorated with `@shared_cache(Model, ...)` is computed once per process and
  arguments until one of its models changes. Any insert, update or delete of such a model
  through the session (flush) or through an ORM bulk statement bumps the generation in the
  same transaction, so a rollback bumps nothing, and every worker on every host sees the
  change at its next request. Writers that bypass the ORM (Core on a table) call
  `invalidate()`.
- The generation is read once per request, in the same query as the signed-in user (see
  `core.security.load_user_with_access`), or on first use.
- Outside a request (jobs, the command line, tests calling functions directly) and for the
  rest of a request that changed a watched model, nothing is cached: the function runs.
- Cached values are shared by every request and thread of the worker: return plain,
  immutable data (tuples, named tuples, frozen dataclasses), never ORM objects.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flask import current_app, g, has_request_context
from sqlalchemy import Integer, event, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from .extensions import db

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["CacheGeneration", "current_generation", "invalidate", "shared_cache"]


class CacheGeneration(db.Model):
    """One row: the number `shared_cache` entries are valid for."""

    __tablename__ = "core_cache_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


_GENERATION = select(CacheGeneration.generation).where(CacheGeneration.id == 1)


def ensure_generation_row(conn: Connection) -> None:
    """Insert the row where the table was made from the models (tests, benchmarks); the
    migration inserts it too. Without the row nothing is cached (`current_generation`)."""
    table = CacheGeneration.__table__
    if conn.execute(select(table.c.id).where(table.c.id == 1)).first() is None:
        conn.execute(table.insert().values(id=1, generation=1))


#: Mapped classes whose changes end every cached entry, and their tables (filled by
#: `shared_cache`).
_watched: set[type] = set()
_watched_tables: set[Any] = set()


class _Store:
    """One app's entries, all made at `generation` (each app has its own database)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.entries: dict[tuple[Hashable, ...], Any] = {}
        self.sizes: dict[Callable[..., Any], int] = {}  # entries per function
        #: Whether the database has the generation table (checked until it has).
        self.table_ready = False


def _store() -> _Store:
    extensions = current_app.extensions
    try:
        return extensions["birga.cache"]
    except KeyError:
        return extensions.setdefault("birga.cache", _Store())


def generation_column() -> Any:
    """The generation as a scalar subquery, for a request's first query to carry along."""
    return _GENERATION.scalar_subquery()


def remember_generation(value: int | None) -> None:
    """Record the generation the request's first query read (`generation_column`)."""
    if has_request_context() and "_birga_generation" not in g:
        g._birga_generation = value


def current_generation() -> int | None:
    """This request's generation, read once; None outside a request, after a change in this
    request, or when the row is missing (then nothing is cached)."""
    if not has_request_context():
        return None
    request_g = g._get_current_object()  # once: each use of the proxy looks it up again
    if getattr(request_g, "_birga_cache_off", False):
        return None
    try:
        return request_g._birga_generation
    except AttributeError:
        generation = request_g._birga_generation = db.session.connection().execute(
            _GENERATION).scalar()
        return generation


def shared_cache(*models: type, key: Callable[..., Hashable | None] | None = None,
                 maxsize: int | None = None) -> Callable[[F], F]:
    """Cache the function's result per process and arguments until one of `models` changes
    anywhere (a generation change ends every entry). Return immutable, plain values (see
    the module docstring).

    `key` maps the arguments to the entry's key (default: the arguments, which must then be
    hashable); a key of None computes without caching. `maxsize` bounds the function's
    entries (for keys per user): past it, its entries are dropped and refilled.
    """
    _watched.update(models)
    _watched_tables.update(model.__table__ for model in models)

    def decorator(function: F) -> F:
        @functools.wraps(function)
        def cached(*args: Any, **kwargs: Any) -> Any:
            generation = current_generation()
            if generation is None:
                return function(*args, **kwargs)
            ident = key(*args, **kwargs) if key is not None else (args, tuple(kwargs.items()))
            if ident is None:
                return function(*args, **kwargs)
            store, entry = _store(), (function, ident)
            if store.generation == generation:
                try:
                    return store.entries[entry]
                except KeyError:
                    pass
            value = function(*args, **kwargs)
            with store.lock:
                if store.generation != generation:
                    store.entries, store.sizes = {}, {}
                    store.generation = generation
                if maxsize is not None and store.sizes.get(function, 0) >= maxsize:
                    store.entries = {k: v for k, v in store.entries.items()
                                     if k[0] is not function}
                    store.sizes[function] = 0
                if entry not in store.entries:
                    store.sizes[function] = store.sizes.get(function, 0) + 1
                store.entries[entry] = value
            return value

        cached.uncached = function  # type: ignore[attr-defined]
        return cached  # type: ignore[return-value]

    return decorator


def invalidate(session: Session | None = None) -> None:
    """End every cached entry when the current transaction commits (for writers that change
    a watched table without the ORM)."""
    session = session or db.session
    conn, store = session.connection(), _store()
    if not store.table_ready:
        if not inspect(conn).has_table(CacheGeneration.__tablename__):
            return  # a database older than the code (before `birga db upgrade`)
        store.table_ready = True
    conn.execute(update(CacheGeneration).where(CacheGeneration.id == 1)
                 .values(generation=CacheGeneration.generation + 1))
    if has_request_context():
        g._birga_cache_off = True


def _touches_watched(session: Session) -> bool:
    if not _watched:
        return False
    for obj in session.new:
        if type(obj) in _watched:
            return True
    for obj in session.deleted:
        if type(obj) in _watched:
            return True
    return any(type(obj) in _watched and session.is_modified(obj, include_collections=False)
               for obj in session.dirty)


@event.listens_for(Session, "before_flush")
def _note_watched_changes(session: Session, _context: Any, _instances: Any) -> None:
    """Before the flush (after it, `session.new` is empty): does it change a watched model?"""
    if _touches_watched(session):
        session.info["birga_bump_generation"] = True


@event.listens_for(Session, "after_flush")
def _bump_after_flush(session: Session, _context: Any) -> None:
    if session.info.pop("birga_bump_generation", False):
        invalidate(session)


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_statements(state: Any) -> None:
    """`update(Model)`, `delete(Model)`, `insert(Model)` and their `Model.__table__` forms run
    through the session."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if table is not None and table in _watched_tables:
        invalidate(state.session)
