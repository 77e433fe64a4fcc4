"""Reading and changing which addons are enabled, in the instance's database.

Every change bumps `core_registry.sequence` in the same transaction; each worker compares that
number before a request and rebuilds its app when it moved (see `core.reloader`).
"""
from __future__ import annotations

from sqlalchemy import inspect, select, update
from sqlalchemy.engine import Connection, Engine

from .models import AddonState, RegistrySequence, utcnow


def state_ready(bind: Engine | Connection) -> bool:
    """True once `birga init` (or a migration) has created the kernel's tables."""
    return inspect(bind).has_table(AddonState.__tablename__)


def read_sequence(bind: Engine | Connection) -> int:
    """The current registry sequence, 0 when the database is not initialised yet."""
    try:
        if isinstance(bind, Engine):
            with bind.connect() as conn:
                value = conn.execute(select(RegistrySequence.sequence)).scalar()
        else:
            value = bind.execute(select(RegistrySequence.sequence)).scalar()
    except Exception:  # noqa: BLE001 - tables not created yet: nothing to compare against
        return 0
    return int(value or 0)


def read_enabled(conn: Connection) -> list[str] | None:
    """Names marked enabled, or None when no state was ever written (fresh database).

    "Written" is told by the registry sequence row, which every write creates: an
    installation that enabled no addon at all is not a fresh one.
    """
    if not state_ready(conn):
        return None
    if conn.execute(select(RegistrySequence.id)).first() is None:
        return None
    rows = conn.execute(select(AddonState.name, AddonState.enabled)).all()
    return sorted(name for name, enabled in rows if enabled)


def write_enabled(conn: Connection, enabled: dict[str, str], disabled: list[str] = ()) -> None:
    """Mark `enabled` (name -> version) on and `disabled` off, then bump the sequence."""
    table = AddonState.__table__
    existing = set(conn.execute(select(table.c.name)).scalars())
    for name, version in enabled.items():
        if name in existing:
            conn.execute(update(table).where(table.c.name == name)
                         .values(enabled=True, version=version, changed_at=utcnow()))
        else:
            conn.execute(table.insert().values(name=name, enabled=True, version=version,
                                               demo_loaded=False, changed_at=utcnow()))
    for name in disabled:
        conn.execute(update(table).where(table.c.name == name)
                     .values(enabled=False, changed_at=utcnow()))
    bump_sequence(conn)


def bump_sequence(conn: Connection) -> int:
    table = RegistrySequence.__table__
    current = conn.execute(select(table.c.sequence).where(table.c.id == 1)).scalar()
    if current is None:
        conn.execute(table.insert().values(id=1, sequence=1, changed_at=utcnow()))
        return 1
    conn.execute(update(table).where(table.c.id == 1)
                 .values(sequence=table.c.sequence + 1, changed_at=utcnow()))
    return int(current) + 1
