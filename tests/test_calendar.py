"""The activity calendar: week and month grids in the user's zone (plain HTML, no JavaScript)
and the iCalendar feed at a secret, revocable URL, checked by parsing it with `icalendar`."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import pytz
from babel.dates import format_time
from icalendar import Calendar
from sqlalchemy import select

from core.activities import ActivityType, activity_types, schedule_activity
from core.calendar_feed import CalendarToken, grid
from core.extensions import db
from core.testing import TEST_PASSWORD, csrf_token

RECORD = "fx_records.item"


@pytest.fixture
def cal_app(fx_app):
    app = fx_app(["fx_records"], BIRGA_FAKE_NOW="2026-11-23T08:00:00+00:00")
    with app.app_context():
        yield app


@pytest.fixture
def anna(cal_app, make_user):
    return make_user("anna", timezone="Asia/Tashkent", locale="en")


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add(user, due, summary, code="call", note="", item=None):
    activity_types()
    kind = db.session.scalar(select(ActivityType.id).where(ActivityType.code == code))
    activity = schedule_activity(type_id=kind, summary=summary, due_at=at(due), assignee=user,
                                 creator=user, note=note, model=RECORD if item else None,
                                 record_id=item.id if item else None)
    db.session.commit()
    return activity


def signed_in(app, user):
    client = app.test_client()
    client.post("/login", data={"login": user.login, "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(client)})
    return client


def cell(html, day):
    match = re.search(rf'<td data-day="{day}"[^>]*>(.*?)</td>', html, re.S)
    assert match, f"no cell for {day}"
    return match.group(1)


def test_the_month_grid_covers_whole_weeks_from_the_locales_first_weekday():
    weeks = grid("month", date(2026, 2, 10), first_weekday=0)  # Monday first
    days = [d for week in weeks for d in week]
    assert days[0] == date(2026, 1, 26) and days[0].weekday() == 0
    assert all(len(week) == 7 for week in weeks)
    assert {d for d in days if d.month == 2} == {date(2026, 2, 1) + timedelta(days=i)
                                                 for i in range(28)}
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
    sunday_first = grid("week", date(2026, 2, 10), first_weekday=6)
    assert sunday_first[0][0] == date(2026, 2, 8) and sunday_first[0][0].weekday() == 6


def test_the_month_view_puts_activities_on_the_users_local_day(cal_app, anna, make_user):
    add(anna, "2026-11-23T21:00:00", "Early call")  # Tashkent: the 24th, 02:00
    add(anna, "2026-12-02T09:00:00", "December meeting", "meeting")
    add(make_user("boris"), "2026-11-24T09:00:00", "Not hers")
    client = signed_in(cal_app, anna)
    html = client.get("/activities/calendar?view=month&day=2026-11-10").get_data(as_text=True)
    assert "Early call" in cell(html, "2026-11-24") and "Early call" not in cell(
        html, "2026-11-23")
    local = format_time(at("2026-11-23T21:00:00"), "short", tzinfo=pytz.timezone(
        "Asia/Tashkent"), locale="en")
    assert f">{local}</time>" in cell(html, "2026-11-24")
    assert "December meeting" in cell(html, "2026-12-02")  # the trailing week is shown
    assert "Not hers" not in html
    assert 'href="/activities/calendar?view=month&amp;day=2026-12-01"' in html  # next month
    assert "<script" not in html.split("<main", 1)[1]  # server-rendered, no script needed


def test_the_week_view_shows_seven_days_and_only_that_week(cal_app, anna):
    add(anna, "2026-11-25T06:00:00", "This week")
    add(anna, "2026-12-02T06:00:00", "Next week")
    client = signed_in(cal_app, anna)
    html = client.get("/activities/calendar?view=week&day=2026-11-25").get_data(as_text=True)
    days = re.findall(r'<td data-day="([\d-]+)"', html)
    assert len(days) == 7 and "2026-11-25" in days
    assert "This week" in cell(html, "2026-11-25") and "Next week" not in html
    assert "view=week&amp;day=2026-12-02" in html


def feed_url(client):
    page = client.post("/activities/feed", data={"csrf_token": csrf_token(
        client, "/activities/feed")}).get_data(as_text=True)
    url = re.search(r'id="feed-url"[^>]*value="([^"]+)"', page).group(1)
    assert url.startswith("http://localhost/activities/ical/") and url.endswith(".ics")
    return url.removeprefix("http://localhost")


def test_the_feed_is_valid_icalendar_with_one_event_per_activity(cal_app, anna, make_user):
    from addons.fx_records.models import Item

    item = Item(name="Acme; Ltd, Riga", owner_id=anna.id)
    db.session.add(item)
    db.session.commit()
    long_summary = "Call back about the offer, the price; and \\ the terms " + "x" * 80
    first = add(anna, "2026-11-24T05:30:00", long_summary, note="Line one\nLine two, end",
                item=item)
    second = add(anna, "2026-11-25T10:00:00", "Встреча с клиентом", "meeting")
    add(make_user("boris"), "2026-11-24T09:00:00", "Boris only")
    url = feed_url(signed_in(cal_app, anna))

    response = cal_app.test_client().get(url)  # a calendar app: no session at all
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    raw = response.get_data()
    assert all(len(line) <= 75 for line in raw.split(b"\r\n")), "lines must be folded"
    assert b"\\;" in raw and b"\\," in raw and b"\\\\" in raw and b"\\n" in raw
    calendar = Calendar.from_ical(raw)
    assert str(calendar["VERSION"]) == "2.0" and "PRODID" in calendar
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {f"activity-{first.id}@localhost", f"activity-{second.id}@localhost"}
    one = events[f"activity-{first.id}@localhost"]
    start = one.decoded("DTSTART")
    assert start == at("2026-11-24T05:30:00") and start.utcoffset() == timedelta(0)
    assert one["DTSTART"].to_ical() == b"20261124T053000Z"
    assert str(one["SUMMARY"]) == f"Call: {long_summary}"
    description = str(one["DESCRIPTION"])
    assert "Line one\nLine two, end" in description and "Acme; Ltd, Riga" in description
    assert one.decoded("DTEND") > start
    assert str(events[f"activity-{second.id}@localhost"]["SUMMARY"]) == \
        "Meeting: Встреча с клиентом"
    assert b"Boris only" not in raw


def test_a_new_address_revokes_the_old_and_revoking_stops_it(cal_app, anna):
    client = signed_in(cal_app, anna)
    old = feed_url(client)
    anonymous = cal_app.test_client()
    assert anonymous.get(old).status_code == 200
    new = feed_url(client)
    assert new != old
    assert anonymous.get(old).status_code == 404 and anonymous.get(new).status_code == 200
    stored = db.session.scalar(select(CalendarToken.token_hash))
    assert stored not in new  # only a hash is kept
    response = client.post("/activities/feed/revoke",
                           data={"csrf_token": csrf_token(client, "/activities/feed")})
    assert response.status_code == 302
    assert anonymous.get(new).status_code == 404
    assert anonymous.get("/activities/ical/not-a-token.ics").status_code == 404


def test_a_deactivated_users_feed_stops(cal_app, anna):
    url = feed_url(signed_in(cal_app, anna))
    anna.active = False
    db.session.commit()
    assert cal_app.test_client().get(url).status_code == 404


def test_making_a_feed_address_needs_the_csrf_token(cal_app, anna):
    client = signed_in(cal_app, anna)
    assert client.post("/activities/feed").status_code == 400
    assert client.post("/activities/feed/revoke").status_code == 400
    assert db.session.scalar(select(CalendarToken)) is None
