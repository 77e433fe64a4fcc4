"""The start page's "My clients" card (hook `core.dashboard`): clients nobody has been in
touch with for a while, and birthdays coming up. Two queries whatever the number of clients;
the numbers are the contact list's own filters (`listing`), so the card links to the list
behind them.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app, render_template, url_for
from flask_babel import get_timezone
from markupsafe import Markup
from sqlalchemy import and_, case, extract, func, select

from core.api import current_user, db, read, scoped, url_pattern

from . import listing
from .models import Partner

#: Without a contact for this many days a client counts as idle (`BIRGA_CONTACTS_IDLE_DAYS`).
IDLE_DAYS = 30
#: Birthdays this many days ahead (today included).
BIRTHDAY_DAYS = 7
#: How many birthdays the card names.
BIRTHDAY_ITEMS = 5
#: A bound on the birthdays read (a card, not a report): more are shown as "and N more".
BIRTHDAY_LIMIT = 200


def idle_days() -> int:
    """How long without a call, meeting or e-mail makes a client idle on the dashboard."""
    try:
        days = int(current_app.config.get("BIRGA_CONTACTS_IDLE_DAYS") or IDLE_DAYS)
    except (TypeError, ValueError):
        days = IDLE_DAYS
    return days if days > 0 else IDLE_DAYS


def idle_condition(days: int, user: Any) -> list[Any]:
    """The contact list's `idle` filter alone (`?idle=N`), so the card counts what its link
    lists."""
    return listing.conditions(listing.ListParams(idle=days), [], user)[1:]  # after `active`


def _month_days(today: date, days: int) -> list[int]:
    """`month * 100 + day` of the next `days` days; 29 February counts on the 28th in a
    year without it, so nobody's birthday is skipped for three years."""
    found = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        found.append(day.month * 100 + day.day)
        if day.month == 2 and day.day == 28 and (day + timedelta(days=1)).month == 3:
            found.append(229)
    return found


def _next_birthday(birthday: date, today: date) -> date:
    for year in (today.year, today.year + 1):
        try:
            candidate = birthday.replace(year=year)
        except ValueError:  # 29 February in a year without it
            candidate = date(year, 2, 28)
        if candidate >= today:
            return candidate
    return today  # unreachable: a birthday comes within a year


def _month_day_in(column: Any, month_days: list[int]) -> Any:
    """`column`'s month and day among `month_days` (`month * 100 + day`), in a form each
    engine evaluates cheaply on index entries: SQLite stores a date as ISO text, where a
    substring is ten times cheaper than `strftime`; PostgreSQL extracts from its date type."""
    if db.engine.dialect.name == "sqlite":
        return func.substr(column, 6, 5).in_([f"{md // 100:02d}-{md % 100:02d}"
                                              for md in month_days])
    return (extract("month", column) * 100 + extract("day", column)).in_(month_days)


def upcoming_birthdays(user: Any, today: date) -> list[dict[str, Any]]:
    """The user's own people whose birthday falls in the next `BIRTHDAY_DAYS` days, soonest
    first, within the record rules (one query).

    The ids are picked from the owner index alone (`ix_contacts_partner_owner_contact` holds
    the birthday and the id), then only those rows are read: selecting the names directly
    made SQLite walk a name index and read every one of the salesperson's rows (40 ms for
    5,000 clients; now 4 ms)."""
    ids = scoped(select(Partner.id).where(
        Partner.active.is_(True), Partner.owner_id == user.id, Partner.birthday.is_not(None),
        _month_day_in(Partner.birthday, _month_days(today, BIRTHDAY_DAYS))),
        user, model=Partner).order_by(Partner.id).limit(BIRTHDAY_LIMIT)
    rows = read(select(Partner.id, Partner.name, Partner.birthday)
                .where(Partner.id.in_(ids)).order_by(Partner.id)).all()
    found = [{"id": r.id, "name": r.name, "on": _next_birthday(r.birthday, today)}
             for r in rows]
    found.sort(key=lambda b: (b["on"], b["name"], b["id"]))
    return found


def render_dashboard(**_ctx: Any) -> Markup:
    """`core.dashboard`: for users who may see contacts."""
    if not current_user.is_authenticated or not current_user.has_permission("contacts.read"):
        return Markup("")
    user = current_user._get_current_object()
    days = idle_days()
    params = listing.ListParams(owner="me", idle=days)
    mine, idle = read(select(
        func.count(Partner.id),
        func.coalesce(func.sum(case((and_(*idle_condition(days, user)), 1), else_=0)), 0))
        .where(listing.where_clause(listing.ListParams(owner="me"), [], user))).one()
    today = datetime.now(get_timezone()).date()
    birthdays = upcoming_birthdays(user, today)
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "contacts/_dashboard.html", mine=int(mine), idle=int(idle), days=days, today=today,
        idle_url=params.url(url_for("contacts.index")),
        mine_url=listing.ListParams(owner="me").url(url_for("contacts.index")),
        birthdays=birthdays[:BIRTHDAY_ITEMS], more_birthdays=max(
            len(birthdays) - BIRTHDAY_ITEMS, 0),
        card_url=url_pattern("contacts.card", "partner_id")))
