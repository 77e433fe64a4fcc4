"""Planner statistics: what PostgreSQL's autovacuum does on its own, SQLite needs to be told.

SQLite's query planner chooses between indexes from `sqlite_stat1`, which only `ANALYZE`
writes; a database that never ran it plans every query as if each table held a million rows
spread evenly over every index. With 100k contacts that picked a full index walk for a
manager's deal list (seconds instead of milliseconds). So the statistics are refreshed
where the data changes in bulk: after `birga init` and `birga db upgrade` (new indexes),
after demo data, after a big import (`refresh_statistics(tables=...)`), and every night
(`core.dbstats.refresh_all`, a periodic job). A full `ANALYZE` of 100k contacts with their
1.4M search tokens takes about 0.6 s on SQLite.

PostgreSQL analyses tables by itself once enough rows change (autovacuum); a big import
still analyses its tables at once, so the next page is planned with the new numbers and not
only after autovacuum's next round.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine

from .extensions import db
from .jobs import crontab, periodic_task

__all__ = ["refresh_all", "refresh_statistics"]


def _quoted(connection: Connection, table: str) -> str:
    return connection.dialect.identifier_preparer.quote(table)


def refresh_statistics(tables: Iterable[str] | None = None, *,
                       engine: Engine | None = None) -> None:
    """`ANALYZE` the given tables (every table when None) on SQLite and PostgreSQL, each in a
    short transaction of its own (SQLite's write lock is held for one table at a time)."""
    engine = engine if engine is not None else db.engine
    for name in (list(tables) if tables is not None else [None]):
        with engine.begin() as conn:
            _analyze(conn, None if name is None else [name])


def _analyze(connection: Connection, tables: Iterable[str] | None) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Exact statistics: a limited sample (`analysis_limit`) misjudged the partner
        # table's indexes by a factor of three; the full pass is cheap at this size.
        connection.exec_driver_sql("PRAGMA analysis_limit=0")
    if tables is None and sqlite:
        connection.exec_driver_sql("ANALYZE")
        return
    if tables is None:  # this schema's tables, not every database the server holds
        tables = connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").scalars().all()
    for table in tables:
        connection.exec_driver_sql(f"ANALYZE {_quoted(connection, table)}")


@periodic_task(crontab(minute="41", hour="3"), name="core.dbstats.refresh_all")
def refresh_all() -> str:
    """The nightly refresh: every table on SQLite; nothing on PostgreSQL (autovacuum).
    Returns the engine's name, for the job log."""
    engine: Any = db.engine
    if engine.dialect.name == "sqlite":
        refresh_statistics(engine=engine)
    return str(engine.dialect.name)
