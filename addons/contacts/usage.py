"""Which contacts other records still point at, read from the schema's foreign keys (contacts
names no other addon): a delete or an import's revert checks it first, so the user gets a
clear answer instead of a foreign-key error page, and nothing is lost silently."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Column, select

from core.api import addon_enabled, db
from core.loader import owner_of

from .models import Partner

#: Foreign-key rules under which deleting the contact fails (the default is NO ACTION).
BLOCKING = {None, "RESTRICT", "NO ACTION"}
#: Chunk of ids per query (SQLite's bound-parameter limit is 999 on old builds).
CHUNK = 500


def _installed(table_name: str) -> bool:
    owner = owner_of(table_name)
    return owner == "core" or addon_enabled(owner)


def referencing_columns(*, outside_contacts: bool = False,
                        blocking_only: bool = False) -> list[Column]:
    """Columns of installed tables whose foreign key points at a contact: all of them, only
    those outside the contacts addon's own tables (phones, tokens, ...), and/or only those
    that refuse the contact's delete (`RESTRICT`, `NO ACTION`)."""
    target = Partner.__table__.c.id
    found = []
    for table in db.metadata.tables.values():
        if table is Partner.__table__ or not _installed(table.name):
            continue
        if outside_contacts and owner_of(table.name) == "contacts":
            continue
        for column in table.columns:
            for key in column.foreign_keys:
                if key.column is target and (not blocking_only or _blocks(key.ondelete)):
                    found.append(column)
    return found


def _blocks(ondelete: str | None) -> bool:
    return (ondelete.upper() if ondelete else None) in BLOCKING


def partners_in_use(ids: Iterable[int] = (), *, ranges: Iterable[tuple[int, int]] = (),
                    outside_contacts: bool = False, blocking_only: bool = False) -> set[int]:
    """The ids among `ids` and the inclusive id `ranges` (an import's created rows) that
    some row of `referencing_columns(...)` points at: one indexed query per column and chunk
    or range."""
    wanted = sorted(set(ids))
    columns = referencing_columns(outside_contacts=outside_contacts,
                                  blocking_only=blocking_only)
    conditions = [lambda c, chunk=wanted[i:i + CHUNK]: c.in_(chunk)
                  for i in range(0, len(wanted), CHUNK)]
    conditions += [lambda c, r=r: c.between(*r) for r in ranges]
    used: set[int] = set()
    for column in columns:
        for condition in conditions:
            used.update(db.session.scalars(select(column).where(condition(column)).distinct()))
    return used
