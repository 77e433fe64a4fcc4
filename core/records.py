"""Generic links to "any record": a `(model name, record id)` pair and the models behind names.

Timeline entries, audit rows and attachments point at records of models they do not know (a
partner's, a deal's, a partner addon's) without a foreign key per model. A model opts in with
`TimelineMixin` (which registers it) or `register_record_model("contacts.partner", Partner)`;
the name maps back to the class here, and `can_read()` is the single place that decides
whether the signed-in user may see what hangs off a record.

The name -> class map is process-wide on purpose: SQLAlchemy's mappers are process-wide too.
What is per app is whether the model's owner is enabled, which `record_model()` checks, so an
app without the `contacts` addon resolves no `contacts.*` name even when another app in the same
process imported it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, has_app_context, has_request_context
from flask_login import current_user
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import InstrumentedAttribute
from werkzeug.exceptions import HTTPException

from .extensions import db
from .loader import owner_of

__all__ = ["ANNOTATE", "can_annotate", "can_read", "get_record", "init_app", "record_model",
           "record_name", "record_ref", "register_record_model", "register_record_reader",
           "registered_models"]

_MODELS: dict[str, type] = {}
#: Per record name: `clause(user)`, more rows the user may read besides the record rules.
_READERS: dict[str, Callable[[Any], Any]] = {}
#: Set on every registered class: its record name, read by the session listeners.
NAME_ATTR = "__record_name__"


class RecordModelError(ValueError):
    """A record name is malformed or already taken by another class."""


def default_name(model: type) -> str:
    """`contacts_partner` -> `contacts.partner`: the owner prefix becomes the namespace."""
    table = str(getattr(model, "__tablename__", None) or model.__table__.name)  # type: ignore[attr-defined]
    # The owner is the addon the class lives in (`addons.mail_probe.models` -> `mail_probe`),
    # so addon names with an underscore split right; tables carry that prefix (the loader checks).
    parts = model.__module__.split(".")
    owner = parts[1] if parts[0] == "addons" and len(parts) > 1 else parts[0]
    if table.startswith(owner + "_"):
        return f"{owner}.{table[len(owner) + 1:]}"
    owner, _sep, rest = table.partition("_")
    return f"{owner}.{rest}" if rest else owner


def register_record_model(name: str | None, model: type, *, audit: bool = True) -> str:
    """Make `model` reachable by `name` for timeline, audit and attachment links.

    `audit=False` keeps its creates/updates/deletes out of the audit log (a high-volume table).
    Registering the same class again (a re-import) is allowed; another class under a taken name
    is an error, since links would silently point at the wrong table.
    """
    name = name or default_name(model)
    if "." not in name or not all(part for part in name.split(".")):
        raise RecordModelError(f"Record model name '{name}' must read '<owner>.<model>'.")
    existing = _MODELS.get(name)
    if existing is not None and existing is not model and (
            existing.__module__, existing.__qualname__) != (model.__module__, model.__qualname__):
        raise RecordModelError(f"Record model name '{name}' is taken by "
                               f"{existing.__module__}.{existing.__qualname__}.")
    _MODELS[name] = model
    setattr(model, NAME_ATTR, name)
    if not audit:
        model.__audit__ = False  # type: ignore[attr-defined]
    _remember_old_values(model)
    return name


def _keep(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
    return value


def _remember_old_values(model: type) -> None:
    """History needs the value before a change even when the row was expired by a commit:
    `active_history` loads it on assignment (one SELECT for all expired columns)."""
    if model.__dict__.get("_birga_old_values"):
        return
    audited = getattr(model, "__audit__", True)
    tracked = set(getattr(model, "__tracked__", ()))
    # Walk the table, not `inspect(model).column_attrs`: that would configure every mapper
    # now, before classes named in this model's relationships are even defined.
    for column in model.__table__.columns:  # type: ignore[attr-defined]
        attribute = getattr(model, column.key, None)
        if isinstance(attribute, InstrumentedAttribute) and (audited or column.key in tracked):
            event.listen(attribute, "set", _keep, active_history=True, retval=True)
    model._birga_old_values = True  # type: ignore[attr-defined]


def registered_models() -> dict[str, type]:
    """Every registered name and class (for admin filters), enabled or not."""
    return dict(_MODELS)


def _owner_enabled(model: type) -> bool:
    table = getattr(model, "__table__", None)
    owner = owner_of(table.name) if table is not None else None
    if owner is None or owner == "core" or not has_app_context():
        return True  # core's own and ad-hoc (test) models belong to every app
    return owner in current_app.extensions["birga"].addons_by_name


def record_model(name: str) -> type | None:
    """The class registered under `name`, or None (unknown, or its addon is not enabled)."""
    model = _MODELS.get(name)
    return model if model is not None and _owner_enabled(model) else None


def record_name(obj: Any) -> str | None:
    """The record name of a registered instance or class, None for anything else."""
    return getattr(obj, NAME_ATTR, None)


def record_ref(obj: Any) -> tuple[str, int]:
    """`(name, id)` of a registered, flushed record: what links store."""
    name = record_name(obj)
    if name is None:
        raise RecordModelError(f"{type(obj).__name__} is not a registered record model.")
    state = inspect(obj)
    # Inside a flush a just-inserted row has its key in the attributes, not yet an identity.
    identity = state.identity or state.mapper.primary_key_from_instance(obj)
    if not identity or identity[0] is None:
        raise RecordModelError(f"{type(obj).__name__} has no id yet; flush it first.")
    return name, int(identity[0])


def get_record(name: str, record_id: int) -> Any | None:
    """Load the record a link points at, without any permission check."""
    model = record_model(name)
    return db.session.get(model, record_id) if model is not None else None


def can_read(model_name: str, record_id: int) -> bool:
    """May the signed-in user see this record (and so its timeline and attachments)?

    The one integration point with `core.security`: when it offers the record gateway
    (`get_or_404(Model, id)` or `visible(Model)` returning a select), the record rules decide;
    until then any signed-in user may read any existing record.
    """
    if not current_user or not current_user.is_authenticated:
        return False
    # A card asks for its own record once per panel (timeline, activities, files): answered
    # once per request, and forgotten at the next flush (an edit may change the owner).
    if not has_request_context():
        return _can_read(model_name, record_id)
    key = (model_name, record_id)
    known = g.get("_birga_can_read")
    if known is not None and key in known:
        return known[key]
    answer = _can_read(model_name, record_id)  # its query may flush, forgetting the others
    g.setdefault("_birga_can_read", {})[key] = answer
    return answer


@event.listens_for(Session, "after_flush")
def _forget_reads(session: Session, _context: Any) -> None:
    if has_request_context():
        g.pop("_birga_can_read", None)


def register_record_reader(name: str, clause: Callable[[Any], Any]) -> None:
    """Let more users read records of `name` (their timeline, files and activities) than the
    record rules let through: `clause(user)` returns a SQL condition on the model, or None.

    For records a model shows beyond its rules, e.g. the pipeline's pool of unassigned leads,
    which whoever may take one sees with its history before taking it.
    """
    _READERS[name] = clause


def _can_read(model_name: str, record_id: int) -> bool:
    model = record_model(model_name)
    if model is None:
        return False
    if _readable_by_rules(model, record_id):
        return True
    widen = _READERS.get(model_name)
    condition = widen(current_user) if widen is not None else None
    if condition is None:
        return False
    key = inspect(model).primary_key[0]
    return db.session.scalar(select(key).where(key == record_id, condition)) is not None


def _readable_by_rules(model: type, record_id: int) -> bool:
    try:
        from . import security  # type: ignore[attr-defined]
    except ImportError:
        security = None
    gateway = getattr(security, "get_or_404", None)
    if callable(gateway):
        try:
            return gateway(model, record_id) is not None
        except HTTPException:
            return False
    visible = getattr(security, "visible", None)
    if callable(visible):
        key = inspect(model).primary_key[0]
        return db.session.scalar(visible(model).where(key == record_id).limit(1)) is not None
    return db.session.get(model, record_id) is not None


#: Notes and files on any record the user may see, without the right to edit the record
#: itself (support agents log calls on a client's card; auditors only read).
ANNOTATE = "records.annotate"


def can_annotate(model_name: str, record_id: int) -> bool:
    """May the signed-in user add notes and files to this record?

    Reading is not enough: they must also be allowed to edit records of the model's addon
    (`<owner>.write`, e.g. `contacts.write`) or hold `records.annotate`.
    """
    if not can_read(model_name, record_id):
        return False
    owner = model_name.split(".", 1)[0]
    return bool(current_user.has_permission(f"{owner}.write")
                or current_user.has_permission(ANNOTATE))


def current_actor() -> tuple[int | None, str | None]:
    """`(user id, login)` of the signed-in user as already loaded for this request, or Nones.

    Session listeners call this in the middle of a flush, where loading the user (a query on
    the flushing session) is not allowed; Flask-Login keeps the loaded user in `g`.
    """
    if not has_request_context():
        return None, None
    user = g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    state = inspect(user, raiseerr=False)
    ident = state.identity if state is not None else None
    if ident is None:
        return None, None
    login = state.dict.get("login")
    return int(ident[0]), login


def init_app(app: Flask) -> None:
    """Wire the services that hang off records: timeline, audit log, attachments."""
    from . import audit, storage, timeline

    registry = app.extensions["birga"].registry
    timeline.init_app(app, registry)
    audit.init_app(app, registry)
    storage.init_app(app, registry)
