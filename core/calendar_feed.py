"""Activities as a calendar: the week/month grid of the calendar page and an iCalendar feed.

The feed lets a phone or desktop calendar subscribe to a user's activities. Calendar apps
cannot sign in, so the feed lives at a secret URL: a random token per user, of which only a
SHA-256 hash is stored (a leaked database does not leak working URLs). Issuing a new token
revokes the old one; revoking removes it. The file is written by the `icalendar` package, which
gets folding (75 octets per line) and escaping (`,` `;` `\\` and newlines) right.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import pytz
from flask_babel import gettext as _
from icalendar import Calendar, Event
from sqlalchemy import DateTime, ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from .activities import Activity, as_utc, local_midnight
from .extensions import db
from .models import User, utcnow

__all__ = ["CalendarToken", "build_feed", "feed_activities", "grid", "has_token",
           "issue_token", "revoke_token", "user_for_token"]

#: How long an activity lasts in a calendar app (activities have a moment, not a span).
EVENT_MINUTES = 30
PRODID = "-//Birga//Activities//EN"


class CalendarToken(db.Model):
    """The hash of a user's secret feed token (one per user)."""

    __tablename__ = "core_calendar_token"

    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"),
                                         primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(user: User) -> str:
    """A new secret for `user`'s feed, replacing (so revoking) the old one; caller commits.
    The token itself is returned once and never stored."""
    token = secrets.token_urlsafe(32)
    db.session.execute(delete(CalendarToken).where(CalendarToken.user_id == user.id))
    db.session.add(CalendarToken(user_id=user.id, token_hash=_hash(token)))
    return token


def revoke_token(user: User) -> None:
    db.session.execute(delete(CalendarToken).where(CalendarToken.user_id == user.id))


def has_token(user: User) -> bool:
    return db.session.get(CalendarToken, user.id) is not None


def user_for_token(token: str) -> User | None:
    """The active user whose feed `token` opens, or None."""
    if not token or len(token) > 200:
        return None
    row = db.session.scalar(select(CalendarToken).where(CalendarToken.token_hash ==
                                                        _hash(token)))
    if row is None:
        return None
    user = db.session.get(User, row.user_id)
    return user if user is not None and user.active else None


def feed_activities(user: User, moment: datetime) -> list[Activity]:
    """The user's own activities from 90 days back to a year ahead (open and done)."""
    query = select(Activity).where(
        Activity.assignee_id == user.id,
        Activity.due_at >= moment - timedelta(days=90),
        Activity.due_at < moment + timedelta(days=366)).order_by(Activity.due_at, Activity.id)
    return list(db.session.scalars(query).unique())


def build_feed(user: User, activities: Iterable[Activity], *, domain: str,
               link: Any = None) -> bytes:
    """The iCalendar file: one VEVENT per activity, times in UTC, translated texts in the
    current locale. `link(activity)` gives each event's URL (or None)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", _("Activities of %(name)s", name=user.display_name))
    for activity in activities:
        start = activity.due_utc
        event = Event()
        event.add("uid", f"activity-{activity.id}@{domain}")
        event.add("dtstamp", as_utc(activity.updated_at or activity.created_at))
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=EVENT_MINUTES))
        title = _("%(type)s: %(summary)s", type=activity.type.display_name,
                  summary=activity.summary)
        if activity.is_done:
            title = _("Done: %(title)s", title=title)
        event.add("summary", title)
        description = [activity.note] if activity.note else []
        label = activity.record_label()
        if label:
            description.append(_("Record: %(name)s", name=label))
        if activity.outcome:
            description.append(_("Outcome: %(text)s", text=activity.outcome))
        if description:
            event.add("description", "\n\n".join(description))
        event.add("categories", [activity.type.display_name])
        event.add("status", "CONFIRMED")
        url = link(activity) if link is not None else None
        if url:
            event.add("url", url)
        cal.add_component(event)
    return cal.to_ical()


# -- the calendar page ---------------------------------------------------------------------
def grid(view: str, anchor: date, first_weekday: int) -> list[list[date]]:
    """Weeks of days to show: one week, or the weeks covering `anchor`'s month.

    `first_weekday` is 0 for Monday (Babel's `Locale.first_week_day`).
    """
    def week_start(day: date) -> date:
        return day - timedelta(days=(day.weekday() - first_weekday) % 7)

    if view == "week":
        start = week_start(anchor)
        return [[start + timedelta(days=i) for i in range(7)]]
    first = anchor.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    start = week_start(first)
    weeks = []
    while start <= last:
        weeks.append([start + timedelta(days=i) for i in range(7)])
        start += timedelta(days=7)
    return weeks


def span(weeks: list[list[date]], tz: pytz.BaseTzInfo) -> tuple[datetime, datetime]:
    """UTC bounds of the shown days in the user's zone."""
    return (local_midnight(tz, weeks[0][0]),
            local_midnight(tz, weeks[-1][-1] + timedelta(days=1)))


def by_day(activities: Iterable[Activity], tz: pytz.BaseTzInfo) -> dict[date, list[Activity]]:
    """Activities keyed by their local day."""
    days: dict[date, list[Activity]] = {}
    for activity in activities:
        days.setdefault(activity.due_utc.astimezone(tz).date(), []).append(activity)
    return days
