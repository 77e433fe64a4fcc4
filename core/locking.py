"""Optimistic locking: two people edit one record, the second save is refused, not lost.

A model opts in with `VersionedMixin`: a `version` column that SQLAlchemy's `version_id_col`
checks and bumps on every UPDATE (`... WHERE id = ? AND version = ?`), so a write based on a
stale copy matches no row and raises `StaleDataError` instead of overwriting. An edit form
carries the version it was rendered with; the view calls `save_or_conflict()`, which either
saves or returns a `Conflict` that names the fields someone else changed meanwhile (old -> new)
with a translated message the form shows above the fields.

No row locks are held while a person types, so nothing blocks and nothing times out; the cost
is that the second editor re-applies their change, which is the honest outcome.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Integer, inspect
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, object_session
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

__all__ = ["Conflict", "ConflictError", "FieldChange", "VersionedMixin", "save_or_conflict",
           "save_or_raise"]

_UNKNOWN: Any = object()


class VersionedMixin:
    """Adds `version` (1 on insert, +1 on each UPDATE) as the mapper's `version_id_col`.

    A model that declares its own `__mapper_args__` must merge
    `{"version_id_col": cls.__table__.c.version}` into it.
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1,
                                         server_default="1")

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - declarative passes the class
        return {"version_id_col": cls.__table__.c.version}


@dataclass(frozen=True)
class FieldChange:
    """One field someone else saved while this editor worked on an older copy."""

    field: str
    label: str
    old: Any  # the value this editor started from; `known_old` is False when not known
    new: Any  # the value saved meanwhile (now in the database)
    yours: Any = None  # what this save wanted to write, None when it did not touch the field
    known_old: bool = True

    def describe(self) -> str:
        if self.known_old:
            return _("%(field)s: %(old)s → %(new)s", field=self.label,
                     old=_show(self.old), new=_show(self.new))
        return _("%(field)s: now %(new)s", field=self.label, new=_show(self.new))


@dataclass(frozen=True)
class Conflict:
    """A refused save: the record moved from `submitted_version` to `current_version`."""

    model: str
    submitted_version: int
    current_version: int | None  # None: the record was deleted meanwhile
    changes: list[FieldChange] = field(default_factory=list)

    @property
    def deleted(self) -> bool:
        return self.current_version is None

    @property
    def fields(self) -> list[str]:
        """Names of the fields changed meanwhile."""
        return [c.field for c in self.changes]

    @property
    def changed(self) -> dict[str, tuple[Any, Any]]:
        """field -> (old, new); old is None when the starting value is not known."""
        return {c.field: (c.old if c.known_old else None, c.new) for c in self.changes}

    @property
    def message(self) -> str:
        """Translated, in the current user's language, for a flash or the form's header."""
        if self.deleted:
            return _("Someone else deleted this record while you were editing it; your "
                     "changes were not saved.")
        if not self.changes:
            return _("Someone else saved this record while you were editing it; nothing was "
                     "overwritten. Reload it and save again.")
        return _("Someone else saved this record while you were editing it; nothing was "
                 "overwritten. Changed meanwhile: %(changes)s. Check the current values and "
                 "save again.", changes="; ".join(c.describe() for c in self.changes))

    def error(self) -> ConflictError:
        return ConflictError(self)


class ConflictError(Exception):
    """Raised by `save_or_raise()`; `str(error)` is the translated message."""

    def __init__(self, conflict: Conflict) -> None:
        self.conflict = conflict
        super().__init__(conflict.message)

    @property
    def message(self) -> str:
        return self.conflict.message

    @property
    def changes(self) -> list[FieldChange]:
        return self.conflict.changes


def _show(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _columns(obj: Any) -> dict[str, Any]:
    """Editable column attributes: key -> Column (primary keys and the version excluded)."""
    mapper = inspect(obj).mapper
    skip = {c.key for c in mapper.primary_key} | {mapper.version_id_col.key}
    return {p.key: p.columns[0] for p in mapper.column_attrs
            if p.key not in skip and p.columns[0].key not in skip}


def _label(column: Any, key: str) -> str:
    label = column.info.get("label") if hasattr(column, "info") else None
    return str(label) if label is not None else key.replace("_", " ").capitalize()


def _loaded_values(obj: Any, keys: list[str]) -> dict[str, Any]:
    """The values the session loaded, ignoring unflushed edits to the object."""
    state, values = inspect(obj), {}
    for key in keys:
        history = state.attrs[key].load_history()
        if history.deleted:
            values[key] = history.deleted[0]
        elif history.unchanged:
            values[key] = history.unchanged[0]
        else:
            values[key] = getattr(obj, key)
    return values


def _conflict(obj: Any, submitted: int, seen: Mapping[str, Any] | None,
              changes: Mapping[str, Any]) -> Conflict:
    columns = _columns(obj)
    name = type(obj).__name__
    try:
        current = {key: getattr(obj, key) for key in columns}
        version = obj.version
    except ObjectDeletedError:
        return Conflict(name, submitted, None)
    found = []
    for key, column in columns.items():
        yours = changes.get(key)
        if seen is not None and key in seen:
            if seen[key] != current[key]:
                found.append(FieldChange(key, _label(column, key), seen[key], current[key],
                                         yours))
        elif key in changes and changes[key] != current[key]:
            # Where this editor started is not known: show what would be overwritten.
            found.append(FieldChange(key, _label(column, key), None, current[key], yours,
                                     known_old=False))
    return Conflict(name, submitted, version, found)


def save_or_conflict(obj: Any, submitted_version: int | str, changes: Mapping[str, Any], *,
                     original: Mapping[str, Any] | None = None) -> Conflict | None:
    """Apply `changes` to `obj` and flush, unless the record moved past `submitted_version`.

    Returns None when saved (the caller commits) or a `Conflict`. `original` is the values the
    editor started from (e.g. carried in the form); without it, they are taken from `obj` when
    it was loaded at `submitted_version`, and otherwise the conflict lists the fields whose
    current value the save would overwrite. On a conflict found at flush time, the session's
    transaction is rolled back (a failed flush leaves nothing usable in it).
    """
    session = object_session(obj)
    if session is None:
        raise ValueError("save_or_conflict() needs an object attached to a session.")
    columns = _columns(obj)
    unknown = set(changes) - set(columns)
    if unknown:
        raise ValueError(f"Not editable fields of {type(obj).__name__}: {sorted(unknown)}")
    submitted = int(submitted_version)
    try:
        loaded_version = obj.version
    except ObjectDeletedError:
        return Conflict(type(obj).__name__, submitted, None)
    if loaded_version != submitted:
        return _conflict(obj, submitted, original, changes)
    seen = dict(original) if original is not None else _loaded_values(obj, list(columns))
    for key, value in changes.items():
        setattr(obj, key, value)
    try:
        session.flush()
    except StaleDataError:
        session.rollback()  # expires `obj`: reading it below loads the current row
        return _conflict(obj, submitted, seen, changes)
    return None


def save_or_raise(obj: Any, submitted_version: int | str, changes: Mapping[str, Any], *,
                  original: Mapping[str, Any] | None = None) -> None:
    """`save_or_conflict()` for code paths that prefer an exception: raises `ConflictError`."""
    conflict = save_or_conflict(obj, submitted_version, changes, original=original)
    if conflict is not None:
        raise conflict.error()
