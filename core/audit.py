"""The audit log: who created, changed, deleted, exported or signed in, and when.

Creates, updates and deletes of registered record models are written by a session listener in
the same transaction as the change (a rolled-back change leaves no row); exports and logins are
written by explicit `audit()` calls. Rows copy the model name, record id and user login instead
of pointing at them with foreign keys that cascade, so the log outlives the record (and keeps
saying who it was after a user is renamed). Only administrators can read it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Flask, abort, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import NO_VALUE

from .extensions import db
from .labels import label_columns, shown_value
from .models import User, utcnow
from .records import (
    current_actor,
    record_model,
    record_name,
    record_ref,
    registered_models,
)
from .registry import Registry

__all__ = ["ACTIONS", "AuditLog", "AuditSubject", "audit", "audit_changes", "audit_subject"]

ACTIONS: dict[str, Any] = {
    "create": _l("Created"), "update": _l("Changed"), "delete": _l("Deleted"),
    "export": _l("Exported"), "login": _l("Signed in"), "login_failed": _l("Sign-in failed"),
    "merge": _l("Merged"), "import": _l("Imported"), "revert": _l("Import reverted"),
    "password_link": _l("Password link issued"), "password_set": _l("Password set"),
}
#: Never copied into the log, whatever the model calls them.
SECRET_WORDS = ("password", "secret", "token")


class AuditLog(db.Model):
    __tablename__ = "core_audit_log"
    __table_args__ = (Index("ix_core_audit_log_record", "model", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    user_login: Mapped[str | None] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(20), index=True)
    model: Mapped[str | None] = mapped_column(String(80))
    record_id: Mapped[int | None] = mapped_column(Integer)
    #: create/delete: {field: value}; update: {field: [old, new]}; others: free-form details.
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    remote_addr: Mapped[str | None] = mapped_column(String(64))

    @property
    def action_label(self) -> Any:
        return ACTIONS.get(self.action, self.action)


def audit(action: str, *, model: str | None = None, record_id: int | None = None,
          record: Any = None, user: User | None = None, login: str | None = None,
          details: dict[str, Any] | None = None) -> AuditLog:
    """Log an explicit event (`export`, `login`, ...) in the current session; the caller
    commits. The user defaults to the signed-in one."""
    if record is not None:
        model, record_id = record_ref(record)
    if user is not None:
        user_id, user_login = user.id, user.login
    else:
        user_id, user_login = current_actor()
    row = AuditLog(action=action, model=model, record_id=record_id, user_id=user_id,
                   user_login=login or user_login, changes=details, remote_addr=_remote_addr())
    db.session.add(row)
    return row


def _remote_addr() -> str | None:
    from flask import has_request_context

    return request.remote_addr if has_request_context() else None


def _audited(obj: Any) -> bool:
    return record_name(obj) is not None and getattr(type(obj), "__audit__", True)


def _columns(obj: Any) -> list[str]:
    return [attr.key for attr in inspect(type(obj)).column_attrs
            if not any(word in attr.key.lower() for word in SECRET_WORDS)]


def snapshot(obj: Any) -> dict[str, Any]:
    """The loaded column values (never a lazy load: this runs inside a flush)."""
    from .timeline import plain

    loaded = inspect(obj).dict
    return {key: plain(loaded[key]) for key in _columns(obj)
            if key in loaded and loaded[key] is not None}


def changed(obj: Any) -> dict[str, list[Any]]:
    from .timeline import plain

    state = inspect(obj)
    result = {}
    for key in _columns(obj):
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old is NO_VALUE:
            old = None
        if plain(old) != plain(new):
            result[key] = [plain(old), plain(new)]
    return result


@event.listens_for(Session, "after_flush")
def _write_audit(session: Session, flush_context: Any) -> None:
    rows = []
    user_id, login = current_actor()
    address = _remote_addr()
    resolved = False

    def add(obj: Any, action: str, changes: dict[str, Any]) -> None:
        nonlocal login, resolved
        if user_id is not None and login is None and not resolved:
            # The user was expired by an earlier commit: read the login on the flush's
            # connection (an ORM load is not allowed in the middle of a flush).
            login = session.connection().execute(
                select(User.login).where(User.id == user_id)).scalar()
            resolved = True
        name, record_id = record_ref(obj)
        rows.append({"action": action, "model": name, "record_id": record_id, "changes": changes,
                     "user_id": user_id, "user_login": login, "remote_addr": address,
                     "at": utcnow()})

    for obj in session.new:
        if _audited(obj):
            add(obj, "create", snapshot(obj))
    for obj in session.dirty:
        if _audited(obj) and session.is_modified(obj, include_collections=False):
            changes = changed(obj)
            if changes:
                add(obj, "update", changes)
    for obj in session.deleted:
        if _audited(obj):
            add(obj, "delete", snapshot(obj))
    if rows:
        session.connection().execute(insert(AuditLog.__table__), rows)


# -- admin page --------------------------------------------------------------------------
bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


@bp.before_request
@login_required
def _admins_only():
    if not current_user.has_permission("core.admin"):
        abort(404)


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.route("/")
def index():
    """Newest first, filtered by model, record, user, action and a date range."""
    args = request.args
    query = select(AuditLog)
    if args.get("model"):
        query = query.where(AuditLog.model == args["model"])
    if args.get("record_id", type=int) is not None:
        query = query.where(AuditLog.record_id == args.get("record_id", type=int))
    if args.get("user"):
        query = query.where(func.lower(AuditLog.user_login) == args["user"].strip().lower())
    if args.get("action"):
        query = query.where(AuditLog.action == args["action"])
    start, end = _day(args.get("from")), _day(args.get("to"))
    if start is not None:
        query = query.where(AuditLog.at >= _utc(start))
    if end is not None:
        # A date means the whole day: everything before the next midnight.
        if end.time() == time(0):
            end += timedelta(days=1)
        query = query.where(AuditLog.at < _utc(end))
    per_page = int(current_app.config.get("BIRGA_AUDIT_PAGE_SIZE", 50))
    page = max(args.get("page", 1, type=int) or 1, 1)
    rows = db.session.scalars(query.order_by(AuditLog.at.desc(), AuditLog.id.desc())
                              .offset((page - 1) * per_page).limit(per_page + 1)).all()
    filters = {k: v for k, v in args.items() if k != "page" and v}
    more, rows = len(rows) > per_page, rows[:per_page]
    models = sorted(((name, model_label(name)) for name in {*registered_models(), *_SUBJECTS}),
                    key=lambda item: item[1].lower())
    return render_template("core/timeline/audit_log.html", rows=rows, details=describe(rows),
                           more=more, page=page, filters=filters,
                           actions=ACTIONS, models=models, model_label=model_label)


#: A record model may name itself for people (`__record_label__ = _l("Contact")`); the log
#: shows that instead of its technical name (`contacts.partner`).
LABEL_ATTR = "__record_label__"


@dataclass(frozen=True)
class AuditSubject:
    """A table the log names and describes although it is no record model (no page, timeline
    or links of its own): the kernel's users, roles, teams and the firm's details.

    `fields` labels its keys (column `info["label"]` is read too); `lists` names the keys
    whose values are lists of another table's ids (a user's roles), shown by those rows'
    `display_name` (or name) when the log is read, so a renamed role reads as it is now."""

    model: type
    label: Any
    fields: Mapping[str, Any] = field(default_factory=dict)
    lists: Mapping[str, type] = field(default_factory=dict)
    #: Stored codes shown as words (a role's "own" scope as "Own records"), per key.
    values: Mapping[str, Mapping[Any, Any]] = field(default_factory=dict)


_SUBJECTS: dict[str, AuditSubject] = {}


def audit_subject(name: str, model: type, label: Any, *, fields: Mapping[str, Any] | None = None,
                  lists: Mapping[str, type] | None = None,
                  values: Mapping[str, Mapping[Any, Any]] | None = None) -> None:
    """Let the log name and describe `name`'s rows (written with `audit()` or
    `audit_changes()`); registering again replaces the entry."""
    _SUBJECTS[name] = AuditSubject(model, label, dict(fields or {}), dict(lists or {}),
                                   dict(values or {}))


def _described_model(name: str | None) -> type | None:
    if not name:
        return None
    model = record_model(name)
    if model is None and name in _SUBJECTS:
        model = _SUBJECTS[name].model
    return model


def model_label(name: str | None) -> str:
    """The translated name a model publishes, else its technical name."""
    model = record_model(name) if name else None
    label = getattr(model, LABEL_ATTR, None) if model is not None else (
        _SUBJECTS[name].label if name in _SUBJECTS else None)
    return str(label) if label else (name or "")


def audit_changes(model: str, record_id: int, before: Mapping[str, Any] | None,
                  after: Mapping[str, Any]) -> AuditLog | None:
    """Log an explicit change of a non-record row (see `audit_subject`): a `create` with
    `after`'s non-empty, non-false values when there was no `before`, else an `update` with
    `[old, new]` for each key whose value changed, and nothing when none did. The caller
    commits."""
    from .timeline import plain

    def shown(value: Any) -> Any:
        return [plain(v) for v in value] if isinstance(value, list | tuple) else plain(value)

    if before is None:
        details = {k: shown(v) for k, v in after.items()
                   if v is not False and v not in (None, "", [], ())}
        return audit("create", model=model, record_id=record_id, details=details)
    details = {k: [shown(before.get(k)), shown(v)] for k, v in after.items()
               if shown(before.get(k)) != shown(v)}
    return audit("update", model=model, record_id=record_id, details=details) \
        if details else None


def _referenced_names(rows: list[AuditLog]) -> dict[tuple[Any, Any], str]:
    """(target id column, id) -> what people call that row, for every foreign-key value on
    the page: one query per referenced table, never one per row."""
    wanted: dict[Any, set[int]] = {}
    for row in rows:
        table = getattr(_described_model(row.model), "__table__", None)
        for key, value in (row.changes or {}).items():
            column = table.c.get(key) if table is not None else None
            if column is None or not column.foreign_keys:
                continue
            target = next(iter(column.foreign_keys)).column
            values = value if row.action == "update" and isinstance(value, list) else [value]
            wanted.setdefault(target, set()).update(v for v in values if isinstance(v, int))
    names: dict[tuple[Any, Any], str] = {}
    for target, ids in wanted.items():
        labels = label_columns(target.table)
        if not labels or not ids:
            continue
        for found in db.session.execute(select(target, *labels).where(target.in_(ids))):
            shown = next((v for v in found[1:] if v), None)
            if shown is not None:
                names[(target, found[0])] = str(shown)
    return names


def _listed_names(rows: list[AuditLog]) -> dict[tuple[type, Any], str]:
    """(model, id) -> the row's name now, for the id lists of subjects' rows on the page: one
    query per listed table."""
    wanted: dict[type, set[int]] = {}
    for row in rows:
        subject = _SUBJECTS.get(row.model or "")
        if subject is None or not subject.lists:
            continue
        for key, value in (row.changes or {}).items():
            of = subject.lists.get(key)
            if of is None or not isinstance(value, list):
                continue
            lists = value if row.action == "update" else [value]
            wanted.setdefault(of, set()).update(
                v for ids in lists if isinstance(ids, list) for v in ids if isinstance(v, int))
    names: dict[tuple[type, Any], str] = {}
    for model, ids in wanted.items():
        for found in db.session.scalars(select(model).where(model.id.in_(ids))):
            shown = getattr(found, "display_name", None) or getattr(found, "name", None)
            names[(model, found.id)] = str(shown or f"#{found.id}")
    return names


def describe(rows: list[AuditLog]) -> dict[int, list[dict[str, Any]]]:
    """Per row id, its changes as people read them: the field's label where the model
    declares one, references by name, dates and yes/no formatted (translated now)."""
    from .timeline import field_label

    names = _referenced_names(rows)
    listed = _listed_names(rows)
    result: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        registered = record_model(row.model) if row.model else None
        # A kernel subject (a role, a team...) where no record model is registered.
        subject = _SUBJECTS.get(row.model or "") if registered is None else None
        model = registered or (subject.model if subject is not None else None)
        table = getattr(model, "__table__", None)
        lines = []
        for key, value in (row.changes or {}).items():
            column = table.c.get(key) if table is not None else None
            target = (next(iter(column.foreign_keys)).column
                      if column is not None and column.foreign_keys else None)
            of = subject.lists.get(key) if subject is not None else None
            words = subject.values.get(key) if subject is not None else None

            def show(raw: Any, column: Any = column, target: Any = target,
                     of: type | None = of, words: Mapping[Any, Any] | None = words) -> str:
                if words is not None and isinstance(raw, str) and raw in words:
                    return str(words[raw])
                if of is not None and isinstance(raw, list):
                    return ", ".join(listed.get((of, v), f"#{v}") for v in raw) or "—"
                if target is not None and raw is not None:
                    return names.get((target, raw), f"#{raw}")
                if isinstance(raw, list):  # a role's permissions: names as they are
                    return ", ".join(str(v) for v in raw) or "—"
                return shown_value(_formatted_value(column, raw))

            pair = row.action == "update" and isinstance(value, list) and len(value) == 2 \
                and (of is None or all(isinstance(v, list) for v in value))
            label = subject.fields.get(key) if subject is not None else None
            lines.append({"label": str(label) if label else (
                              field_label(model, key) if model is not None else key),
                          "old": show(value[0]) if pair else None,
                          "value": show(value[1]) if pair else show(value), "pair": pair})
        result[row.id] = lines
    return result


def _formatted_value(column: Any, value: Any) -> Any:
    """An ISO date or time (as the log stores them) in the reader's format."""
    from flask_babel import format_date, format_datetime
    from sqlalchemy import Date
    from sqlalchemy import DateTime as DateTimeType

    if column is None or not isinstance(value, str):
        return value
    try:
        if isinstance(column.type, DateTimeType):
            return format_datetime(datetime.fromisoformat(value), "short")
        if isinstance(column.type, Date):
            return format_date(datetime.fromisoformat(value).date(), "medium")
    except ValueError:
        pass
    return value


def _utc(value: datetime) -> datetime:
    """A filter date is in the admin's time zone; stored times are UTC."""
    from flask_babel import get_timezone

    if value.tzinfo is None:
        zone = get_timezone()
        localize = getattr(zone, "localize", None)  # pytz zones must localize, not replace
        value = localize(value) if localize else value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def init_app(app: Flask, registry: Registry) -> None:
    app.register_blueprint(bp)
    registry.add_menu("settings.audit", _l("Audit log"), "audit.index", parent="settings",
                      sequence=50, permission="core.admin")
