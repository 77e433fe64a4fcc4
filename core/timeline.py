"""The history of any record: notes, calls, meetings, e-mails, tracked field changes.

A model opts in with `TimelineMixin` and lists the fields worth a line in its history in
`__tracked__`; a session listener writes "who changed what, old -> new" in the same transaction
as the change, so a rolled-back edit leaves no ghost entry. Notes are rich text cleaned by
`nh3` (an allow-list sanitiser) both when stored and when shown. `@login` in a note notifies
that user. Sent e-mails arrive through the `mail_sent` signal. Pages show the timeline with
`{{ hook("record.timeline", model="contacts.partner", record_id=partner.id) }}`.
"""
from __future__ import annotations

import html
import logging
import re
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import nh3
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale, lazy_pgettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.orm import Mapped, Mapper, Session, mapped_column

from .extensions import db
from .labels import label_columns, shown_value
from .messages import MessageError, day, encode, is_message, localized, money, render
from .models import User, utcnow
from .records import can_annotate, can_read, current_actor, get_record, record_name, record_ref
from .records import register_record_model as _register
from .registry import Registry

__all__ = ["KINDS", "Notification", "TimelineEntry", "TimelineMixin", "add_note", "day",
           "localized", "log_entry", "money", "notify", "sanitize", "timeline_page"]

log = logging.getLogger(__name__)

#: Entry kinds and their labels; people log the first three by hand.
KINDS: dict[str, Any] = {
    "note": _l("Note"), "call": _l("Call"), "meeting": _l("Meeting"), "email": _l("E-mail"),
    "change": lazy_pgettext("timeline entry kind", "Change"), "system": _l("System"),
}
MANUAL_KINDS = ("note", "call", "meeting")

ALLOWED_TAGS = {"p", "br", "strong", "b", "em", "i", "u", "s", "ul", "ol", "li", "a",
                "blockquote", "code", "pre", "h3", "h4"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
#: `@login` after a start, space or opening punctuation: not the middle of an e-mail address.
MENTION = re.compile(r"(?<![\w@.])@([\w.\-]+)", re.UNICODE)


class TimelineEntry(db.Model):
    """One line in a record's history; `model`/`record_id` is the generic link."""

    __tablename__ = "core_timeline_entry"
    __table_args__ = (Index("ix_core_timeline_entry_record", "model", "record_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(80))
    record_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20), default="note")
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")  # sanitised HTML
    #: Tracked changes: [{"field": name, "old": value, "new": value}, ...]
    changes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    #: The messages behind `subject`/`body`, shown in the reader's language (core.messages):
    #: {"subject": spec, "body": [spec or sanitised HTML, ...]}; None for user text only.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    author: Mapped[User | None] = db.relationship(lazy="joined")

    @property
    def shown_subject(self) -> str | None:
        """The subject in the reader's language; the stored text for rows without a message."""
        spec = (self.message or {}).get("subject")
        if spec:
            try:
                return render(spec)
            except MessageError:
                log.warning("timeline entry %s: subject shown as stored", self.id, exc_info=True)
        return self.subject

    @property
    def body_html(self) -> Markup:
        """Cleaned again when shown: a row written by other code is never trusted blindly."""
        parts = (self.message or {}).get("body")
        html_text = self.body or ""
        if parts:
            try:
                html_text = _parts_html(parts, html_text)
            except MessageError:
                log.warning("timeline entry %s: body shown as stored", self.id, exc_info=True)
        return Markup(sanitize(html_text))  # noqa: S704 - nh3 output is safe HTML

    @property
    def kind_label(self) -> Any:
        return KINDS.get(self.kind, self.kind)

    def change_lines(self) -> list[dict[str, Any]]:
        """Changes with the field's label as the model declares it (translated now)."""
        model = _model_class(self.model)
        lines = []
        for change in self.changes or []:
            lines.append({"label": field_label(model, change["field"]),
                          "old": shown_value(change.get("old")),
                          "new": shown_value(change.get("new"))})
        return lines


class Notification(db.Model):
    """Something a user should see: a mention, a reminder. `link` opens the context."""

    __tablename__ = "core_notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         index=True)
    text: Mapped[str] = mapped_column(String(500))
    link: Mapped[str | None] = mapped_column(String(500))
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TimelineMixin:
    """Gives a model a timeline, an audit trail and attachments.

    Class attributes: `__tracked__ = ("stage", "amount")` lists fields whose changes go on the
    timeline (label from the column's `info={"label": _l("Stage")}`); `__record_model__`
    overrides the link name, which defaults to the table name with its owner prefix as a
    namespace (`contacts_partner` -> `contacts.partner`).
    """

    __tracked__: tuple[str, ...] = ()


@event.listens_for(TimelineMixin, "after_mapper_constructed", propagate=True)
def _register_mapped(mapper: Mapper, cls: type) -> None:
    _register(cls.__dict__.get("__record_model__"), cls)


def _model_class(name: str) -> type | None:
    from .records import record_model

    return record_model(name)


def field_label(model: type | None, field: str) -> str:
    column = getattr(getattr(model, "__table__", None), "c", {}).get(field) \
        if model is not None else None
    label = column.info.get("label") if column is not None else None
    return str(label) if label else field.replace("_", " ").capitalize()


def plain(value: Any) -> Any:
    """A JSON-safe form of a column value for history and audit rows."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return plain(value.value)
    for attr in ("display_name", "name", "title"):
        shown = getattr(value, attr, None)
        if isinstance(shown, str):
            return shown
    return str(value)


# -- rich text ---------------------------------------------------------------------------
def sanitize(text: str) -> str:
    """Keep formatting and safe links, drop scripts, styles, handlers and unknown tags."""
    return nh3.clean(text, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


def to_html(text: str) -> str:
    """Typed plain text becomes paragraphs; HTML from an editor is sanitised as it is."""
    text = (text or "").strip()
    return sanitize(text if "<" in text else paragraphs(text))


def paragraphs(text: str) -> str:
    """Plain text as escaped HTML paragraphs, single line breaks kept."""
    parts = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join("<p>" + str(escape(p.strip())).replace("\n", "<br>") + "</p>" for p in parts)


def text_of(fragment: str) -> str:
    """The visible text of sanitised HTML (for mentions and notification excerpts)."""
    spaced = re.sub(r"<(br|/p|/li|/h\d)\s*/?>", " ", fragment)
    return html.unescape(nh3.clean(spaced, tags=set())).strip()


# -- writing -----------------------------------------------------------------------------
#: What `log_entry` takes as a body: user text/HTML, a lazy message, or a list of both.
Body = Any


def _part_html(part: Any, stored: str = "") -> str:
    """One body part as HTML: a message as escaped text in the current language; the user's
    own part as the stretch of the stored body it occupies (`{"$stored": [start, end]}`:
    kept once, not copied into the message; an inbound mail may be 100 KB)."""
    if isinstance(part, dict):
        span = part.get("$stored")
        return stored[span[0]:span[1]] if span else paragraphs(render(part))
    return to_html(str(part or ""))


def _parts_html(parts: list[Any], stored: str = "") -> str:
    return "".join(_part_html(part, stored) for part in parts)


def compose(subject: Any, body: Body) -> tuple[str | None, str, dict[str, Any] | None]:
    """(subject text, body HTML, message) for a timeline row.

    Lazy messages (`_l(...)`) are kept as specs and the texts are rendered in the
    installation's language (BABEL_DEFAULT_LOCALE), for search, exports and old readers; plain
    strings are user data and stored as they are (a body's text becomes sanitised HTML).
    """
    parts = list(body) if isinstance(body, list | tuple) else [body]
    stored: list[Any] = [encode(p) if is_message(p) else to_html(str(p or "")) for p in parts]
    stored = [p for p in stored if p]
    message: dict[str, Any] = {}
    if is_message(subject):
        message["subject"] = encode(subject)
    if any(isinstance(p, dict) for p in stored):
        message["body"] = stored
    locale = str(current_app.config.get("BABEL_DEFAULT_LOCALE") or "en")
    with force_locale(locale):
        subject_text = render(message["subject"]) if "subject" in message else (
            str(subject) if subject is not None else None)
        pieces = [paragraphs(render(p)) if isinstance(p, dict) else p for p in stored]
    if "body" in message:  # the user's parts point into the body instead of repeating it
        spans, start = [], 0
        for part, piece in zip(stored, pieces, strict=True):
            spans.append(part if isinstance(part, dict)
                         else {"$stored": [start, start + len(piece)]})
            start += len(piece)
        message["body"] = spans
    return (subject_text[:300] if subject_text is not None else None, "".join(pieces),
            message or None)


def log_entry(model: str, record_id: int, kind: str, body: Body = "", *,
              subject: Any = None, author: User | None = None,
              changes: list[dict[str, Any]] | None = None) -> TimelineEntry:
    """Add an entry to the session (the caller commits).

    Pass what the system says as lazy messages, `_l("Won: %(amount)s", amount=money(...))`,
    so every reader sees it in her own language; plain strings are user data (a note, an
    e-mail's subject) kept as typed. `body` is text, sanitised HTML, a message, or a list of
    them (a message followed by the user's note). The subject is cut at 300 characters.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown timeline entry kind '{kind}'.")
    subject_text, body_html, message = compose(subject, body)
    entry = TimelineEntry(model=model, record_id=record_id, kind=kind, subject=subject_text,
                          body=body_html, changes=changes, message=message,
                          author_id=author.id if author is not None else None)
    db.session.add(entry)
    return entry


def add_note(model: str, record_id: int, body: Body, *, author: User | None,
             kind: str = "note", subject: Any = None) -> TimelineEntry:
    """A note (or logged call/meeting); `@login` mentions notify those users."""
    entry = log_entry(model, record_id, kind, body, subject=subject, author=author)
    text = text_of(entry.body)
    logins = {m.rstrip(".-").lower() for m in MENTION.findall(text)}
    if logins:
        users = db.session.scalars(select(User).where(func.lower(User.login).in_(logins),
                                                      User.active.is_(True))).all()
        link = record_link(model, record_id)
        who = author.display_name if author is not None else _("Someone")
        for user in users:
            if author is not None and user.id == author.id:
                continue
            with force_locale(user.locale or current_app.config.get("BABEL_DEFAULT_LOCALE",
                                                                     "en")):
                message = _("%(author)s mentioned you: %(excerpt)s", author=who,
                            excerpt=_excerpt(text))
            notify(user, message, link)
    return entry


def notify(user: User, text: str, link: str | None = None) -> Notification:
    """Queue an in-app notification for `user` in the current session."""
    row = Notification(user_id=user.id, text=text[:500], link=link)
    db.session.add(row)
    return row


def _excerpt(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_link(model: str, record_id: int) -> str:
    """The record's own page when the model offers `url` / `get_url()`, else its timeline."""
    record = get_record(model, record_id)
    url = getattr(record, "get_url", None)
    if callable(url):
        return str(url())
    if isinstance(getattr(record, "url", None), str):
        return record.url
    values = {"model": model, "record_id": record_id}
    if has_request_context():
        return url_for("timeline.show", **values)
    # A job has no request to build against; a path is all a notification needs.
    return current_app.url_map.bind("").build("timeline.show", values)


# -- reading -----------------------------------------------------------------------------
def timeline_page(model: str, record_id: int, page: int = 1,
                  per_page: int | None = None) -> tuple[list[TimelineEntry], bool]:
    """Entries newest first, and whether an older page exists."""
    per_page = per_page or int(current_app.config.get("BIRGA_TIMELINE_PAGE_SIZE", 20))
    page = max(page, 1)
    rows = db.session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.model == model, TimelineEntry.record_id == record_id)
        .order_by(TimelineEntry.created_at.desc(), TimelineEntry.id.desc())
        .offset((page - 1) * per_page).limit(per_page + 1)).unique().all()
    return list(rows[:per_page]), len(rows) > per_page


def render_timeline(model: str | None = None, record_id: int | None = None, *,
                    record: Any = None, **_ctx: Any) -> Markup:
    """The `record.timeline` hook: nothing at all for a record the user may not read."""
    if record is not None:
        model, record_id = record_ref(record)
    if model is None or record_id is None or not can_read(model, int(record_id)):
        return Markup("")
    page = request.args.get("timeline_page", 1, type=int) or 1
    entries, older = timeline_page(model, int(record_id), page)
    args = {k: v for k, v in request.args.items() if k != "timeline_page"}

    def page_url(number: int) -> str:
        return url_for(request.endpoint or "web.index", **(request.view_args or {}), **args,
                       timeline_page=number)

    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "core/timeline/timeline.html", model=model, record_id=int(record_id), entries=entries,
        page=page, older=older, page_url=page_url, kinds=[(k, KINDS[k]) for k in MANUAL_KINDS],
        next_url=request.full_path.rstrip("?"), can_annotate=can_annotate(model, int(record_id))))


# -- automatic entries -------------------------------------------------------------------
def _referenced_label(obj: Any, field: str, value: Any) -> Any:
    """For a foreign key, what people call the row it points at ("Proposal", not 3)."""
    column = getattr(type(obj), "__table__", None)
    column = column.c.get(field) if column is not None else None
    if value is None or column is None or not column.foreign_keys:
        return value
    target = next(iter(column.foreign_keys)).column
    labels = label_columns(target.table)
    if not labels:
        return value
    row = inspect(obj).session.connection().execute(
        select(*labels).where(target == value)).first()
    shown = next((v for v in row or () if v), None)
    return shown if shown is not None else value


def tracked_changes(obj: Any) -> list[dict[str, Any]]:
    """Changes to `__tracked__` fields pending in the session (call before the flush ends).

    Foreign keys are written as the referenced row's name, so the timeline reads
    "Salesperson: Anna → Jānis", and stays readable after that row is renamed or deleted.
    """
    state = inspect(obj)
    changes = []
    for field in getattr(type(obj), "__tracked__", ()):
        history = state.attrs[field].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        old = plain(_referenced_label(obj, field, old))
        new = plain(_referenced_label(obj, field, new))
        if old != new:
            changes.append({"field": field, "old": old, "new": new})
    return changes


@event.listens_for(Session, "after_flush")
def _write_history(session: Session, flush_context: Any) -> None:
    """Tracked changes of updated records; a deleted record's timeline goes with it."""
    rows = []
    author_id, _login = current_actor()
    for obj in session.dirty:
        if record_name(obj) is None or not getattr(type(obj), "__tracked__", ()):
            continue
        if not session.is_modified(obj, include_collections=False):
            continue
        changes = tracked_changes(obj)
        if changes:
            name, record_id = record_ref(obj)
            rows.append({"model": name, "record_id": record_id, "kind": "change",
                         "changes": changes, "author_id": author_id, "body": "",
                         "created_at": utcnow()})
    connection = None
    if rows:
        connection = session.connection()
        connection.execute(insert(TimelineEntry.__table__), rows)
    for obj in session.deleted:
        if record_name(obj) is None:
            continue
        name, record_id = record_ref(obj)
        connection = connection or session.connection()
        connection.execute(delete(TimelineEntry.__table__).where(
            TimelineEntry.model == name, TimelineEntry.record_id == record_id))


def _on_mail_sent(app: Flask, *, message: Any, recipients: list[str],
                  record: tuple[str, int] | None = None, **_kw: Any) -> None:
    """Put a sent mail on its record's timeline, in its own transaction (it left already)."""
    if not record:
        return
    model, record_id = record
    body = _mail_body(message)
    subject = str(message.get("Subject", "") or "")[:300]
    shown = _l("To: %(recipients)s", recipients=", ".join(recipients))
    try:
        with app.app_context(), db.engine.begin() as conn:
            _subject, body_html, spec = compose(None, [shown, body])
            conn.execute(insert(TimelineEntry.__table__).values(
                model=model, record_id=int(record_id), kind="email", subject=subject,
                body=body_html, message=spec, created_at=utcnow()))
    except Exception:  # the mail is out; a history hiccup must not turn it into an error
        log.exception("could not log the e-mail to %s #%s on its timeline", model, record_id)


def _mail_body(message: Any) -> str:
    part = message.get_body(preferencelist=("html", "plain")) \
        if hasattr(message, "get_body") else None
    if part is None:
        return ""
    content = part.get_content()
    if part.get_content_subtype() == "html":
        return sanitize(content)
    return sanitize(paragraphs(content))


# -- web ---------------------------------------------------------------------------------
bp = Blueprint("timeline", __name__, url_prefix="/records")


@bp.route("/<model>/<int:record_id>/timeline")
@login_required
def show(model: str, record_id: int):
    """The timeline on its own page: where notifications lead for models without a page."""
    if not can_read(model, record_id):
        abort(404)
    return render_template("core/timeline/page.html", model=model, record_id=record_id)


@bp.route("/<model>/<int:record_id>/notes", methods=["POST"])
@login_required
def post_note(model: str, record_id: int):
    if not can_read(model, record_id):
        abort(404)
    if not can_annotate(model, record_id):
        abort(403)
    kind = request.form.get("kind", "note")
    body = request.form.get("body", "")
    subject = (request.form.get("subject") or "").strip()[:300] or None
    from .auth import _safe_next

    target = _safe_next(request.form.get("next") or url_for(".show", model=model,
                                                             record_id=record_id))
    if kind not in MANUAL_KINDS:
        abort(400)
    if not text_of(to_html(body)):
        flash(_("Write something before saving the note."), "error")
        return redirect(target)
    add_note(model, record_id, body, author=current_user, kind=kind, subject=subject)
    db.session.commit()
    flash(_("Saved to the timeline."), "success")
    return redirect(target)


def init_app(app: Flask, registry: Registry) -> None:
    from .signals import mail_sent

    app.register_blueprint(bp)
    registry.add_hook("record.timeline", render_timeline)
    mail_sent.connect(_on_mail_sent, weak=False)
