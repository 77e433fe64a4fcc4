"""Gap-free document numbers (`OFFER/2026/0001`), safe under concurrent requests.

Why not a database SEQUENCE or an autoincrement: those hand out numbers outside the transaction,
so a rolled-back document burns its number and leaves a gap, which tax rules forbid for
invoices. Here the counter row is incremented *inside the caller's transaction*: a rollback gives
the number back, and a concurrent request waits until the holder commits or rolls back.

The allocation is one statement, an upsert that increments the year's counter row and returns
the new value:

- PostgreSQL: `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` locks the counter row until the
  transaction ends, so concurrent allocations queue on that row (and the first allocation of a
  year waits on the other transaction's insert instead of failing on the unique key).
- SQLite: the statement is a write, so it takes the database's write lock first (the effect of
  `BEGIN IMMEDIATE`), waiting up to `busy_timeout`; it reads the counter only once it holds the
  lock. Python's sqlite3 starts the transaction at the first write, so earlier reads in the same
  request do not pin an old snapshot. Call `next_number()` before other writes where you can,
  so the lock is held for as short a time as possible.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Boolean, ForeignKey, Integer, String, Table, case, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from .extensions import db

__all__ = ["NumberSequence", "SequenceCounter", "UnknownSequence", "define_sequence",
           "format_document_number", "next_number"]

_PLACEHOLDERS = re.compile(r"%\((?:year|y)\)s|%%")


class UnknownSequence(LookupError):
    """`next_number()` was asked for a code nobody defined (a programming error, caught early)."""


class NumberSequence(db.Model):
    """How one kind of document is numbered: `prefix % {"year": 2026}` + a zero-padded counter."""

    __tablename__ = "core_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: e.g. "OFFER/%(year)s/"; `%(y)s` gives the two-digit year.
    prefix: Mapped[str] = mapped_column(String(100), default="")
    padding: Mapped[int] = mapped_column(Integer, default=4)
    #: True: the counter restarts on 1 January (one counter row per year).
    yearly: Mapped[bool] = mapped_column(Boolean, default=True)


class SequenceCounter(db.Model):
    """The last number handed out for one sequence in one year (year 0 when not yearly)."""

    __tablename__ = "core_sequence_counter"

    sequence_id: Mapped[int] = mapped_column(
        ForeignKey("core_sequence.id", ondelete="CASCADE"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


def format_document_number(prefix: str, padding: int, year: int, value: int) -> str:
    """`("OFFER/%(year)s/", 4, 2026, 7)` -> `"OFFER/2026/0007"`."""
    return prefix % {"year": f"{year:04d}", "y": f"{year % 100:02d}"} + str(value).zfill(padding)


def _session(session: Session | None) -> Session:
    return session if session is not None else db.session


def _dialect_insert(session: Session, table: Table) -> Any:
    """PostgreSQL's or SQLite's INSERT, the two that offer ON CONFLICT (upsert)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"Sequences need PostgreSQL or SQLite, not {name}.")


def define_sequence(code: str, prefix: str, *, padding: int = 4, name: str = "",
                    yearly: bool = True, session: Session | None = None) -> NumberSequence:
    """Create the sequence `code` unless it exists (an admin may have changed its prefix since:
    that change is kept). Safe to call at every start-up and from concurrent workers."""
    if "%" in _PLACEHOLDERS.sub("", prefix) or padding < 1:
        raise ValueError(_("Invalid number prefix %(prefix)s: use %%(year)s or %%(y)s for the "
                           "year.", prefix=prefix))
    s = _session(session)
    table = NumberSequence.__table__
    stmt = _dialect_insert(s, table).values(code=code, name=name, prefix=prefix,
                                            padding=padding, yearly=yearly)
    s.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.code]))
    return s.scalars(select(NumberSequence).where(NumberSequence.code == code)).one()


def _year(when: date | datetime | None) -> int:
    if when is None:
        zone = ZoneInfo(current_app.config.get("BIRGA_DEFAULT_TIMEZONE") or "UTC")
        return datetime.now(zone).year
    if isinstance(when, datetime) and when.tzinfo is not None:
        zone = ZoneInfo(current_app.config.get("BIRGA_DEFAULT_TIMEZONE") or "UTC")
        return when.astimezone(zone).year
    return when.year


def next_number(code: str, *, when: date | datetime | None = None,
                session: Session | None = None) -> str:
    """Allocate the next number of sequence `code` for the year of `when` (default: today in
    the company's time zone) inside the current transaction.

    Commit the transaction that stores the document to keep the number; roll it back and the
    number is handed out again. Concurrent callers wait for each other (see the module notes).
    """
    s = _session(session)
    year = _year(when)
    seq, counter = NumberSequence.__table__, SequenceCounter.__table__
    source = (select(seq.c.id, case((seq.c.yearly, literal(year)), else_=literal(0)),
                     literal(1))
              .where(seq.c.code == code))
    stmt = (_dialect_insert(s, counter)
            .from_select(["sequence_id", "year", "last_value"], source)
            .on_conflict_do_update(index_elements=[counter.c.sequence_id, counter.c.year],
                                   set_={"last_value": counter.c.last_value + 1})
            .returning(counter.c.sequence_id, counter.c.last_value))
    row = s.execute(stmt).first()
    if row is None:
        raise UnknownSequence(_("No number sequence with the code %(code)s.", code=code))
    prefix, padding = s.execute(select(seq.c.prefix, seq.c.padding)
                                .where(seq.c.id == row.sequence_id)).one()
    return format_document_number(prefix, padding, year, row.last_value)
