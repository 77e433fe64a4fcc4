"""Scheduled calls, meetings, e-mails and tasks on any record, and the reminders about them.

Why it works this way:

- **An activity links to any record** through the same `(model, record_id)` pair as the timeline
  (`core.records`), so contacts, deals or a partner's models get activities without a foreign key
  each. Marking one done writes a timeline entry on that record, so the history shows what
  happened and the open list shows what is planned.
- **Due moments are stored in UTC** and entered and shown in the user's time zone; "today" and
  "overdue" are days in *that user's* zone (a Tashkent manager's today starts five hours before
  a Lisbon one's), both in the pages and in the reminder digests.
- **Who sees an activity**: its assignee and creator, the manager of a team the assignee belongs
  to (the seeds' "managing another manager's tasks": a head of sales sees and reassigns the
  tasks of the managers in her team), and whoever the record rules of `core.security` let see
  the assignee's records (a support agent with scope "all"). Anything else is a 404.
- **"Now" is injectable** (`now()`, or the `BIRGA_FAKE_NOW` setting), so tests and demos move the
  clock without touching the system time.
- **Reminders are a periodic job** that is safe to run as often as the scheduler likes: each
  digest is claimed with `once()` per user and local day before it is sent, so two workers or a
  rerun never send it twice.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from datetime import date as date_type
from typing import Any

import pytz
from flask import Flask, current_app, has_app_context, has_request_context
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jinja2 import TemplateNotFound
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    delete,
    event,
    exists,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .extensions import db
from .i18n import LANGUAGES
from .jobs import crontab, once, periodic_task
from .models import User, utcnow
from .records import get_record, record_name, record_ref
from .security import Team, TeamMember, rule_clause
from .timeline import add_note, notify, paragraphs, plain

__all__ = [
    "DEFAULT_TYPES", "DIGEST_JOB", "Activity", "ActivityType", "Buckets", "activity_types",
    "as_utc", "assignable_users", "bucket", "can_act", "can_reassign", "day_bounds",
    "is_manager", "managed_member_ids", "mark_done", "now", "open_activities_for_record",
    "reassign", "schedule_activity", "seed_activity_types", "send_reminders",
    "user_timezone", "visible_activities",
]

log = logging.getLogger(__name__)

#: Seeded types: name (translated when shown, as long as an admin did not rename it), icon.
DEFAULT_TYPES: dict[str, tuple[Any, str]] = {
    "call": (_l("Call"), "☎"),
    "meeting": (_l("Meeting"), "⚑"),
    "email": (_l("E-mail"), "✉"),
    "task": (_l("Task"), "✔"),
}
#: Timeline entry kind written when an activity of that type is done.
TIMELINE_KINDS = {"call": "call", "meeting": "meeting", "email": "email"}
DIGEST_JOB = "core.activities.send_reminders"


# -- tables --------------------------------------------------------------------------------
class ActivityType(db.Model):
    """A kind of activity. Seeded ones keep an empty name and show their translated title."""

    __tablename__ = "core_activity_type"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    icon: Mapped[str] = mapped_column(String(16), default="")
    sequence: Mapped[int] = mapped_column(Integer, default=100)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        default = DEFAULT_TYPES.get(self.code or "")
        return str(default[0]) if default else (self.code or "?")


class Activity(db.Model):
    """Something someone should do about a record, by a moment (UTC)."""

    __tablename__ = "core_activity"
    __table_args__ = (
        Index("ix_core_activity_record", "model", "record_id"),
        Index("ix_core_activity_assignee_open", "assignee_id", "done_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("core_activity_type.id"), index=True)
    summary: Mapped[str] = mapped_column(String(300))
    note: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assignee_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"))
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"), index=True)
    #: The generic link (None for a to-do on no record).
    model: Mapped[str | None] = mapped_column(String(80))
    record_id: Mapped[int | None] = mapped_column(Integer)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)

    type: Mapped[ActivityType] = relationship(lazy="joined")
    assignee: Mapped[User] = relationship(foreign_keys=[assignee_id], lazy="joined")
    creator: Mapped[User | None] = relationship(foreign_keys=[creator_id], lazy="joined")

    @property
    def due_utc(self) -> datetime:
        return as_utc(self.due_at)

    @property
    def is_done(self) -> bool:
        return self.done_at is not None

    def record_label(self) -> str:
        """The linked record's name (`display_name`, `name` or `title`), or ''."""
        if not self.model or self.record_id is None:
            return ""
        record = get_record(self.model, self.record_id)
        return "" if record is None else str(plain(record))


# -- time ----------------------------------------------------------------------------------
def now() -> datetime:
    """The current moment in UTC; `BIRGA_FAKE_NOW` (ISO 8601) pins it for tests and demos."""
    fake = current_app.config.get("BIRGA_FAKE_NOW") if has_app_context() else None
    if fake:
        moment = fake if isinstance(fake, datetime) else datetime.fromisoformat(str(fake))
        return as_utc(moment)
    return utcnow()


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; SQLite hands stored moments back naive (they were stored as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def user_timezone(user: User | None) -> pytz.BaseTzInfo:
    """The user's zone, else the installation's default (`BIRGA_DEFAULT_TIMEZONE`)."""
    for name in (getattr(user, "timezone", None),
                 current_app.config.get("BIRGA_DEFAULT_TIMEZONE"), "UTC"):
        if name:
            try:
                return pytz.timezone(name)
            except pytz.UnknownTimeZoneError:
                log.warning("unknown time zone %r", name)
    return pytz.utc


def day_bounds(tz: pytz.BaseTzInfo, moment: datetime) -> tuple[datetime, datetime, date_type]:
    """Start and end (UTC) of the local day containing `moment` in `tz`, and that day."""
    day = as_utc(moment).astimezone(tz).date()
    return local_midnight(tz, day), local_midnight(tz, day + timedelta(days=1)), day


def local_midnight(tz: pytz.BaseTzInfo, day: date_type) -> datetime:
    """00:00 of `day` in `tz`, as UTC (DST-aware)."""
    return tz.localize(datetime.combine(day, time.min)).astimezone(UTC)


# -- types ---------------------------------------------------------------------------------
def seed_activity_types() -> list[str]:
    """Create the default types that are missing (never touches edited ones); commits.

    Idempotent, so any start-up, page or test may call it. Returns the codes it created.
    """
    have = set(db.session.scalars(select(ActivityType.code)))
    created = []
    for sequence, (code, (_title, icon)) in enumerate(DEFAULT_TYPES.items()):
        if code not in have:
            db.session.add(ActivityType(code=code, name="", icon=icon, sequence=10 * sequence))
            created.append(code)
    if created:
        db.session.commit()
    return created


def activity_types(*, include_inactive: bool = False) -> list[ActivityType]:
    """The types to choose from, seeding the defaults on a fresh database."""
    if db.session.scalar(select(ActivityType.id).limit(1)) is None:
        seed_activity_types()
    query = select(ActivityType).order_by(ActivityType.sequence, ActivityType.id)
    if not include_inactive:
        query = query.where(ActivityType.active.is_(True))
    return list(db.session.scalars(query))


# -- who sees what -------------------------------------------------------------------------
def managed_member_ids(user_id: int) -> Select:
    """Ids of the members of the teams `user_id` manages (a subquery)."""
    managed = select(Team.id).where(Team.manager_id == user_id)
    return select(TeamMember.user_id).where(TeamMember.team_id.in_(managed))


def is_manager(user: User) -> bool:
    return user.has_permission("core.admin") or db.session.scalar(
        select(exists().where(Team.manager_id == user.id))) is True


def _manages(manager: User, user_id: int) -> bool:
    return db.session.scalar(select(exists().where(
        TeamMember.user_id == user_id,
        TeamMember.team_id.in_(select(Team.id).where(Team.manager_id == manager.id))))) is True


def visible_activities(user: User) -> Select:
    """`select(Activity)` narrowed to what `user` may see (one query, no id lists)."""
    query = select(Activity)
    if user.has_permission("core.admin"):
        return query
    rule = rule_clause(Activity, user)
    if rule is None:  # the user's role sees every assignee's records
        return query
    return query.where(or_(Activity.assignee_id == user.id, Activity.creator_id == user.id,
                           Activity.assignee_id.in_(managed_member_ids(user.id)), rule))


def can_act(activity: Activity, user: User) -> bool:
    """Mark done or edit: the assignee, the creator, the assignee's manager, an admin."""
    return (user.has_permission("core.admin")
            or user.id in (activity.assignee_id, activity.creator_id)
            or _manages(user, activity.assignee_id))


def can_reassign(activity: Activity, user: User, new_assignee: User | None = None) -> bool:
    """Managers move their team's activities between themselves and their team's members."""
    if user.has_permission("core.admin"):
        return new_assignee is None or new_assignee.active
    if activity.assignee_id != user.id and not _manages(user, activity.assignee_id):
        return False
    if new_assignee is None:
        return is_manager(user)
    return new_assignee.active and (new_assignee.id == user.id
                                    or _manages(user, new_assignee.id))


def assignable_users(user: User) -> list[User]:
    """Whom `user` may give an activity to: self, the teams they manage; admins anyone."""
    query = select(User).where(User.active.is_(True))
    if not user.has_permission("core.admin"):
        query = query.where(or_(User.id == user.id, User.id.in_(managed_member_ids(user.id))))
    return list(db.session.scalars(query.order_by(User.name, User.login)))


# -- changing ------------------------------------------------------------------------------
class ActivityError(ValueError):
    """A schedule or reassignment that is not allowed; the message is translated."""


def schedule_activity(*, type_id: int, summary: str, due_at: datetime, assignee: User,
                      creator: User | None, model: str | None = None,
                      record_id: int | None = None, note: str = "") -> Activity:
    """Add an activity to the session (the caller commits); notifies another assignee."""
    summary = " ".join((summary or "").split())[:300]
    if not summary:
        raise ActivityError(_("Say what to do."))
    kind = db.session.get(ActivityType, type_id)
    if kind is None or not kind.active:
        raise ActivityError(_("Choose an activity type."))
    if due_at.tzinfo is None:
        raise ValueError("due_at must be an aware datetime (UTC)")  # a programming error
    activity = Activity(type_id=kind.id, summary=summary, note=(note or "").strip(),
                        due_at=as_utc(due_at), assignee_id=assignee.id,
                        creator_id=creator.id if creator is not None else None,
                        model=model, record_id=record_id)
    db.session.add(activity)
    db.session.flush()
    if creator is not None and assignee.id != creator.id:
        _notify_assigned(activity, assignee, creator)
    return activity


def _notify_assigned(activity: Activity, assignee: User, by: User) -> None:
    with force_locale(assignee.locale or _default_language()):
        text = _("%(author)s gave you an activity: %(summary)s", author=by.display_name,
                 summary=activity.summary)
    notify(assignee, text, _path("activities.detail", activity_id=activity.id))


def mark_done(activity: Activity, *, by: User | None, outcome: str = "") -> None:
    """Close the activity and put it, with its outcome, on the record's timeline."""
    if activity.done_at is not None:
        raise ActivityError(_("This activity is already done."))
    activity.done_at = now()
    activity.outcome = (outcome or "").strip()
    if activity.model and activity.record_id is not None:
        kind = TIMELINE_KINDS.get(activity.type.code or "", "note")
        # Lazy: the type's name is shown in each reader's language (a typed name as typed).
        default = DEFAULT_TYPES.get(activity.type.code or "")
        type_name = activity.type.name or (default[0] if default else activity.type.display_name)
        subject = _l("%(type)s done: %(summary)s", type=type_name, summary=activity.summary)
        # The outcome is typed plain text: escaped into paragraphs, never read as HTML.
        add_note(activity.model, activity.record_id, paragraphs(activity.outcome), author=by,
                 kind=kind, subject=subject)


def reassign(activity: Activity, new_assignee: User, *, by: User) -> None:
    """Give the activity to someone else (the caller checked `can_reassign` and commits)."""
    if activity.assignee_id == new_assignee.id:
        return
    activity.assignee_id = new_assignee.id
    activity.assignee = new_assignee
    if new_assignee.id != by.id:
        _notify_assigned(activity, new_assignee, by)


@event.listens_for(Session, "after_flush")
def _drop_with_record(session: Session, flush_context: Any) -> None:
    """A deleted record takes its activities along, in the same transaction (as its
    timeline does): nobody should be reminded to call about a record that is gone."""
    gone = [record_ref(obj) for obj in session.deleted if record_name(obj) is not None]
    if not gone:
        return
    connection = session.connection()
    for model, record_id in gone:
        connection.execute(delete(Activity.__table__).where(
            Activity.model == model, Activity.record_id == record_id))


# -- reading -------------------------------------------------------------------------------
@dataclass
class Buckets:
    """Open activities split by the user's local day."""

    overdue: list[Activity]
    today: list[Activity]
    upcoming: list[Activity]
    day: date_type


def bucket(activities: Iterable[Activity], tz: pytz.BaseTzInfo,
           moment: datetime | None = None) -> Buckets:
    """Overdue (due before today), today, upcoming, with today taken in `tz`."""
    start, end, day = day_bounds(tz, moment or now())
    result = Buckets([], [], [], day)
    for activity in sorted(activities, key=lambda a: (a.due_utc, a.id)):
        due = activity.due_utc
        target = result.overdue if due < start else result.today if due < end \
            else result.upcoming
        target.append(activity)
    return result


def open_activities_for_record(model: str, record_id: int, user: User) -> list[Activity]:
    query = visible_activities(user).where(
        Activity.model == model, Activity.record_id == record_id, Activity.done_at.is_(None))
    return list(db.session.scalars(query.order_by(Activity.due_at, Activity.id)).unique())


# -- reminders -----------------------------------------------------------------------------
def _default_language() -> str:
    return str(current_app.config.get("BABEL_DEFAULT_LOCALE") or "en")


def _language(user: User) -> str:
    return user.locale if user.locale in LANGUAGES else _default_language()


def _path(endpoint: str, **values: Any) -> str:
    """A URL path that works inside and outside a request (jobs have none)."""
    if has_request_context():
        from flask import url_for

        return url_for(endpoint, **values)
    adapter = current_app.url_map.bind("localhost", script_name="/")
    return adapter.build(endpoint, values)


def _external(path: str) -> str:
    """An absolute link for e-mails when `BIRGA_BASE_URL` is set, else ''."""
    base = str(current_app.config.get("BIRGA_BASE_URL") or "").rstrip("/")
    return base + path if base else ""


def mail_template(name: str) -> dict[str, str]:
    """`{language: source}` of `core/activities/mail/<lang>/<name>` through the app's loader,
    so an instance or addon can override or translate a digest; English is required."""
    app = current_app._get_current_object()
    sources = {}
    for code in LANGUAGES:
        try:
            source, _file, _uptodate = app.jinja_loader.get_source(
                app.jinja_env, f"core/activities/mail/{code}/{name}")
        except TemplateNotFound:
            continue
        sources[code] = source
    if "en" not in sources:
        raise TemplateNotFound(f"core/activities/mail/en/{name}")
    return sources


def _item(activity: Activity) -> dict[str, Any]:
    """Plain data for a mail template (the sandbox refuses ORM objects)."""
    return {"summary": activity.summary, "type": activity.type.display_name,
            "icon": activity.type.icon, "due": activity.due_utc,
            "record": activity.record_label(),
            "link": _external(_path("activities.detail", activity_id=activity.id))}


def _candidates(moment: datetime) -> Select:
    """Active users with open activities due before any zone's end of today."""
    horizon = moment + timedelta(days=2)  # every zone's "today" ends within 2 days
    return select(User).where(User.active.is_(True), User.id.in_(
        select(Activity.assignee_id).where(Activity.done_at.is_(None),
                                           Activity.due_at < horizon))).order_by(User.id)


def _digest_hour() -> int:
    return int(current_app.config.get("BIRGA_ACTIVITY_DIGEST_HOUR", 7))


def _send(user: User, kind: str, context: dict[str, Any]) -> None:
    from .mail import send_mail

    send_mail(user.email or "", mail_template(f"{kind}.subject.txt"),
              mail_template(f"{kind}.html"), context, language=_language(user),
              timezone=user_timezone(user).zone)


def send_digest(user: User, moment: datetime) -> bool:
    """Today's and overdue activities of `user`, once per local day. True if sent now."""
    tz = user_timezone(user)
    start, end, day = day_bounds(tz, moment)
    due = db.session.scalars(select(Activity).where(
        Activity.assignee_id == user.id, Activity.done_at.is_(None), Activity.due_at < end)
        .order_by(Activity.due_at, Activity.id)).unique().all()
    if not due:
        return False
    parts = bucket(due, tz, moment)
    with once(f"digest:{user.id}:{day.isoformat()}", job=DIGEST_JOB) as first:
        if not first:
            return False
        with force_locale(_language(user)):
            context = {"name": user.display_name, "day": day,
                       "overdue": [_item(a) for a in parts.overdue],
                       "today": [_item(a) for a in parts.today],
                       "link": _external(_path("activities.index"))}
            text = _("Activities: %(overdue)s, %(today)s.",
                     overdue=ngettext("%(num)d overdue", "%(num)d overdue", len(parts.overdue)),
                     today=ngettext("%(num)d due today", "%(num)d due today",
                                    len(parts.today)))
        if user.email:
            _send(user, "digest", context)
        notify(user, text, _path("activities.index"))
        db.session.commit()
    return True


def send_supervisor_digest(manager: User, moment: datetime) -> bool:
    """Each team member's overdue "tails" to the team's manager, once per local day."""
    tz = user_timezone(manager)
    start, _end, day = day_bounds(tz, moment)
    rows = db.session.scalars(select(Activity).where(
        Activity.assignee_id.in_(managed_member_ids(manager.id)),
        Activity.assignee_id != manager.id, Activity.done_at.is_(None),
        Activity.due_at < start).order_by(Activity.assignee_id, Activity.due_at,
                                          Activity.id)).unique().all()
    if not rows or not manager.email:
        return False
    with once(f"supervisor:{manager.id}:{day.isoformat()}", job=DIGEST_JOB) as first:
        if not first:
            return False
        with force_locale(_language(manager)):
            members: dict[int, dict[str, Any]] = {}
            for activity in rows:
                member = members.setdefault(activity.assignee_id, {
                    "name": activity.assignee.display_name, "activities": []})
                member["activities"].append(_item(activity))
            context = {"name": manager.display_name, "day": day,
                       "members": sorted(members.values(), key=lambda m: m["name"]),
                       "link": _external(_path("activities.index", who="team"))}
        _send(manager, "supervisor", context)
    return True


@periodic_task(crontab(minute="*/15"), name=DIGEST_JOB)
def send_reminders() -> dict[str, int]:
    """Every quarter hour: digests to everyone whose local morning has come (once a day).

    One user's failure (a bad address, SMTP down) is logged and does not stop the others; its
    claim is released, so the next run tries again.
    """
    moment = now()
    hour = _digest_hour()
    sent = {"digests": 0, "supervisor": 0}
    users = list(db.session.scalars(_candidates(moment)))
    managers = list(db.session.scalars(select(User).where(
        User.active.is_(True), User.id.in_(select(Team.manager_id))).order_by(User.id)))
    for kind, people, func in (("digests", users, send_digest),
                               ("supervisor", managers, send_supervisor_digest)):
        for person in people:
            if as_utc(moment).astimezone(user_timezone(person)).hour < hour:
                continue
            try:
                sent[kind] += int(func(person, moment))
            except Exception:
                db.session.rollback()
                log.exception("activity %s for user %s failed", kind, person.id)
    return sent


def init_app(app: Flask) -> None:
    """Put activities under record rules (scope by assignee); the web part registers itself."""
    from .security import register_record_rule

    register_record_rule(Activity, owner_attr="assignee_id", title=_l("Activities"), app=app)
