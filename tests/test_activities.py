"""Activities on any record: types, scheduling in the user's time zone, marking done onto the
timeline, "My activities" by local day, managers and their team, and 404 for everyone else
(SQLite and PostgreSQL)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from core.activities import (
    Activity,
    ActivityType,
    activity_types,
    bucket,
    day_bounds,
    mark_done,
    schedule_activity,
    seed_activity_types,
    user_timezone,
)
from core.extensions import db
from core.i18n import merge_catalogs
from core.security import Team, assign_roles, set_user_teams
from core.testing import csrf_token
from core.timeline import Notification, TimelineEntry

RECORD = "fx_records.item"


@pytest.fixture
def people(rec_app, make_user):
    """anna and boris in boss's team; olga outside it. All salespeople (scope: own)."""
    users = {
        "anna": make_user("anna", timezone="Asia/Tashkent"),
        "boris": make_user("boris", timezone="Europe/Riga"),
        "boss": make_user("boss", timezone="Europe/Riga"),
        "olga": make_user("olga"),
    }
    for user in users.values():
        assign_roles(user, "salesperson")
    team = Team(name="Riga sales", manager_id=users["boss"].id)
    db.session.add(team)
    db.session.flush()
    for login in ("anna", "boris"):
        set_user_teams(users[login], [team.id])
    db.session.commit()
    return users


def make_item(owner, name="Acme Ltd"):
    from addons.fx_records.models import Item

    item = Item(name=name, owner_id=owner.id)
    db.session.add(item)
    db.session.commit()
    return item


def type_id(code):
    activity_types()
    return db.session.scalar(select(ActivityType.id).where(ActivityType.code == code))


def add_activity(assignee, due, summary="Call back", *, creator=None, item=None, code="call"):
    activity = schedule_activity(type_id=type_id(code), summary=summary, due_at=due,
                                 assignee=assignee, creator=creator or assignee,
                                 model=RECORD if item else None,
                                 record_id=item.id if item else None)
    db.session.commit()
    return activity


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sign_in(client, user):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"login": user.login, "password":
                                           "correct horse battery staple",
                                           "csrf_token": token})
    assert response.status_code == 302


def section(html, key):
    match = re.search(rf'<section class="activity-section" id="{key}">(.*?)</section>', html,
                      re.S)
    assert match, f"no section {key}"
    return match.group(1)


def test_default_types_are_seeded_once_and_named_in_the_users_language(rec_app):
    assert sorted(seed_activity_types()) == ["call", "email", "meeting", "task"]
    assert seed_activity_types() == []
    assert db.session.scalar(select(func.count(ActivityType.id))) == 4
    russian = merge_catalogs(rec_app.extensions["birga.i18n"].directories, "ru")
    call = db.session.scalar(select(ActivityType).where(ActivityType.code == "call"))
    with rec_app.test_request_context(), force_locale("ru"):
        assert call.display_name == russian.gettext("Call")
        call.name = "Phone call"
        assert call.display_name == "Phone call"  # an admin's own name is shown as written


def test_scheduling_on_a_record_stores_utc_and_shows_the_users_local_time(rec_app, web,
                                                                          people):
    anna = people["anna"]  # Asia/Tashkent, UTC+5
    item = make_item(anna)
    sign_in(web, anna)
    page = f"/fx_records/{item.id}"
    html = web.get(page).get_data(as_text=True)
    assert 'value="2026-11-23"' in html  # today, in her zone, pre-filled
    response = web.post("/activities/schedule", data={
        "csrf_token": csrf_token(web, page), "next": page, "model": RECORD,
        "record_id": item.id, "type_id": type_id("meeting"), "summary": "Demo of the offer",
        "due_date": "2026-11-24", "due_time": "10:00", "note": "Bring the price list"})
    assert response.status_code == 302 and response.location == page
    activity = db.session.scalar(select(Activity))
    assert activity.due_utc == at("2026-11-24T05:00:00")
    assert (activity.model, activity.record_id, activity.assignee_id, activity.creator_id) == (
        RECORD, item.id, anna.id, anna.id)
    html = web.get(page).get_data(as_text=True)
    listed = html[html.index('id="activities"'):html.index('id="timeline"')]
    assert "Demo of the offer" in listed and "Bring the price list" in listed
    assert 'datetime="2026-11-24T05:00:00+00:00"' in listed and "10:00" in listed


def test_every_post_needs_the_csrf_token(rec_app, web, people):
    anna = people["anna"]
    activity = add_activity(anna, at("2026-11-23T09:00:00"))
    sign_in(web, anna)
    for url, data in [("/activities/schedule", {"summary": "x", "due_date": "2026-11-24"}),
                      (f"/activities/{activity.id}/done", {"outcome": "x"}),
                      (f"/activities/{activity.id}/reassign", {"assignee_id": anna.id}),
                      ("/activities/feed", {})]:
        assert web.post(url, data=data).status_code == 400, url
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Activity.id))) == 1
    assert db.session.get(Activity, activity.id).done_at is None


def test_marking_done_with_an_outcome_puts_it_on_the_records_timeline(rec_app, web, people):
    anna = people["anna"]
    item = make_item(anna)
    activity = add_activity(anna, at("2026-11-23T09:00:00"), "Call about renewal", item=item)
    sign_in(web, anna)
    page = f"/fx_records/{item.id}"
    response = web.post(f"/activities/{activity.id}/done", data={
        "csrf_token": csrf_token(web, page), "next": page,
        "outcome": "They renew for <b>two</b> years"})
    assert response.status_code == 302
    db.session.expire_all()
    done = db.session.get(Activity, activity.id)
    assert done.done_at is not None and done.outcome == "They renew for <b>two</b> years"
    [entry] = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == RECORD, TimelineEntry.record_id == item.id)).all()
    assert entry.kind == "call" and entry.author_id == anna.id
    assert "Call about renewal" in entry.subject
    assert "&lt;b&gt;two&lt;/b&gt;" in entry.body  # typed text stays text
    html = web.get(page).get_data(as_text=True)
    planned = html[html.index('id="activities"'):html.index('id="timeline"')]
    history = html[html.index('id="timeline"'):]
    assert "Call about renewal" not in planned
    assert "They renew for &lt;b&gt;two&lt;/b&gt; years" in history
    again = web.post(f"/activities/{activity.id}/done", data={
        "csrf_token": csrf_token(web, page), "outcome": "twice"})
    assert again.status_code == 302
    assert db.session.scalar(select(func.count(TimelineEntry.id))) == 1


def test_my_activities_split_by_the_users_own_day(rec_app, web, people):
    rec_app.config["BIRGA_FAKE_NOW"] = "2026-11-23T20:00:00+00:00"  # Tashkent: 24th, 01:00
    anna = people["anna"]
    add_activity(anna, at("2026-11-23T18:00:00"), "Late call")  # Tashkent: 23rd 23:00
    add_activity(anna, at("2026-11-24T10:00:00"), "Lunch meeting")  # Tashkent: 24th 15:00
    add_activity(anna, at("2026-11-24T20:00:00"), "Next day task")  # Tashkent: 25th 01:00
    add_activity(anna, at("2026-11-20T08:00:00"), "Done long ago")
    old = db.session.scalar(select(Activity).where(Activity.summary == "Done long ago"))
    old.done_at = at("2026-11-20T09:00:00")
    add_activity(people["boris"], at("2026-11-23T18:00:00"), "Boris task call")
    db.session.commit()

    sign_in(web, anna)
    html = web.get("/activities/").get_data(as_text=True)
    assert "Late call" in section(html, "overdue")
    assert "Lunch meeting" in section(html, "today")
    assert "Next day task" in section(html, "upcoming")
    assert "Done long ago" not in html and "Boris task call" not in html

    # The same moments for someone in UTC: it is still the 23rd there.
    with rec_app.test_request_context():
        rows = db.session.scalars(select(Activity).where(Activity.assignee_id == anna.id,
                                                         Activity.done_at.is_(None))).all()
        utc = bucket(rows, user_timezone(people["olga"]))
        assert [a.summary for a in utc.today] == ["Late call"]
        assert [a.summary for a in utc.upcoming] == ["Lunch meeting", "Next day task"]
        start, end, day = day_bounds(user_timezone(anna), at("2026-11-23T20:00:00"))
        assert (start, end, day.isoformat()) == (at("2026-11-23T19:00:00"),
                                                 at("2026-11-24T19:00:00"), "2026-11-24")


def test_a_manager_sees_the_teams_activities_and_reassigns_them(rec_app, web, people):
    anna, boris, boss = people["anna"], people["boris"], people["boss"]
    task = add_activity(anna, at("2026-11-22T09:00:00"), "Anna overdue call")
    add_activity(people["olga"], at("2026-11-22T09:00:00"), "Olga call")
    sign_in(web, boss)
    team = web.get("/activities/?who=team").get_data(as_text=True)
    assert "Anna overdue call" in section(team, "overdue") and "Olga call" not in team
    assert web.get(f"/activities/{task.id}").status_code == 200
    response = web.post(f"/activities/{task.id}/reassign", data={
        "csrf_token": csrf_token(web, "/activities/?who=team"), "assignee_id": boris.id,
        "next": "/activities/?who=team"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Activity, task.id).assignee_id == boris.id
    [note] = db.session.scalars(select(Notification).where(Notification.user_id == boris.id))
    assert "Anna overdue call" in note.text and note.link == f"/activities/{task.id}"
    # Handing work to someone outside the team is refused.
    refused = web.post(f"/activities/{task.id}/reassign", data={
        "csrf_token": csrf_token(web, "/activities/"), "assignee_id": people["olga"].id})
    assert refused.status_code == 404
    db.session.expire_all()
    assert db.session.get(Activity, task.id).assignee_id == boris.id


def test_others_get_404_on_activities_they_may_not_see(rec_app, web, people):
    anna, olga = people["anna"], people["olga"]
    task = add_activity(anna, at("2026-11-24T09:00:00"), "Anna private call",
                        item=make_item(anna))
    sign_in(web, olga)
    token = csrf_token(web, "/activities/")
    assert web.get(f"/activities/{task.id}").status_code == 404
    assert web.post(f"/activities/{task.id}/done",
                    data={"csrf_token": token, "outcome": "x"}).status_code == 404
    assert web.post(f"/activities/{task.id}/reassign",
                    data={"csrf_token": token, "assignee_id": olga.id}).status_code == 404
    assert web.get("/activities/?who=team").status_code == 404  # not a manager
    assert "Anna private call" not in web.get("/activities/").get_data(as_text=True)
    assert web.get("/activities/calendar?day=2026-11-24").get_data(
        as_text=True).count("Anna private call") == 0
    # Nor can she schedule on a record she may not read, or for someone not in her team.
    assert web.post("/activities/schedule", data={
        "csrf_token": token, "model": RECORD, "record_id": task.record_id,
        "type_id": type_id("call"), "summary": "sneaky", "due_date": "2026-11-24"}
    ).status_code == 404
    assert web.post("/activities/schedule", data={
        "csrf_token": token, "assignee_id": anna.id, "type_id": type_id("call"),
        "summary": "work for anna", "due_date": "2026-11-24"}).status_code == 404
    assert web.get(f"/fx_records/{task.record_id}").status_code == 404
    db.session.expire_all()
    assert db.session.get(Activity, task.id).done_at is None
    assert db.session.scalar(select(func.count(Activity.id))) == 1


def test_a_team_member_cannot_reassign_but_can_finish_her_own(rec_app, web, people):
    anna, boris = people["anna"], people["boris"]
    mine = add_activity(anna, at("2026-11-23T09:00:00"), "Mine")
    theirs = add_activity(boris, at("2026-11-23T09:00:00"), "Boris task")
    sign_in(web, anna)
    token = csrf_token(web, "/activities/")
    assert web.post(f"/activities/{mine.id}/reassign",
                    data={"csrf_token": token, "assignee_id": boris.id}).status_code == 404
    assert web.get(f"/activities/{theirs.id}").status_code == 404
    assert web.post(f"/activities/{mine.id}/done",
                    data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Activity, mine.id).done_at is not None
    assert db.session.get(Activity, mine.id).assignee_id == anna.id


def test_a_manager_schedules_for_a_team_member_who_is_notified(rec_app, web, people):
    anna, boss = people["anna"], people["boss"]
    sign_in(web, boss)
    page = "/activities/"
    html = web.get(page).get_data(as_text=True)
    choices = re.search(r'name="assignee_id">(.*?)</select>', html, re.S).group(1)
    assert f'<option value="{anna.id}"' in choices  # his team is in the assignee list
    assert f'<option value="{people["olga"].id}"' not in choices
    response = web.post("/activities/schedule", data={
        "csrf_token": csrf_token(web, page), "assignee_id": anna.id, "summary": "Visit Acme",
        "type_id": type_id("task"), "due_date": "2026-11-25", "due_time": ""})
    assert response.status_code == 302
    activity = db.session.scalar(select(Activity))
    assert (activity.assignee_id, activity.creator_id) == (anna.id, boss.id)
    assert activity.due_utc == at("2026-11-25T07:00:00")  # the default 09:00, his Riga time
    assert db.session.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == anna.id)) == 1


def test_an_admin_configures_activity_types(rec_app, web, people, make_user):
    admin = make_user("admin", is_admin=True)
    sign_in(web, people["anna"])
    assert web.get("/activities/types").status_code == 404
    web.post("/logout", data={"csrf_token": csrf_token(web, "/")})
    sign_in(web, admin)
    page = "/activities/types"
    response = web.post(page, data={"csrf_token": csrf_token(web, page), "name": "Site visit",
                                    "icon": "🚗", "sequence": "5", "active": "1"})
    assert response.status_code == 302
    visit = db.session.scalar(select(ActivityType).where(ActivityType.name == "Site visit"))
    assert visit.code is None and visit.icon == "🚗" and visit.active
    task = db.session.scalar(select(ActivityType).where(ActivityType.code == "task"))
    web.post(page, data={"csrf_token": csrf_token(web, page), "type_id": task.id,
                         "name": "", "icon": task.icon, "sequence": "50"})  # unticked: off
    html = web.get("/activities/").get_data(as_text=True)
    form = html[html.index('name="type_id"'):]
    assert "Site visit" in form and ">✔ Task<" not in form
    # Ordered by sequence: call 0, the new type 5, meeting 10.
    assert form.index("Call") < form.index("Site visit") < form.index("Meeting")


def test_my_activities_is_in_the_menu(rec_app, web, people):
    sign_in(web, people["olga"])
    html = web.get("/").get_data(as_text=True)
    assert 'data-menu="activities"' in html and "My activities" in html


def test_deleting_a_record_takes_its_activities_along(rec_app, people):
    anna = people["anna"]
    item, other = make_item(anna), make_item(anna, "Other Ltd")
    add_activity(anna, at("2026-11-24T09:00:00"), "About the deleted one", item=item)
    kept = add_activity(anna, at("2026-11-24T09:00:00"), "About the other one", item=other)
    db.session.delete(item)
    db.session.commit()
    assert db.session.scalars(select(Activity.id)).all() == [kept.id]


def test_a_done_activity_is_titled_in_each_readers_language(rec_app, web, people):
    anna, boss = people["anna"], people["boss"]
    anna.locale, boss.locale = "ru", "lv"
    boss.is_admin = True  # sees every record
    db.session.commit()
    item = make_item(anna)
    activity = add_activity(anna, at("2026-11-23T09:00:00"), "Call about renewal", item=item)
    with rec_app.test_request_context(), force_locale("ru"):
        mark_done(activity, by=anna, outcome="Renewed")
        db.session.commit()
    [entry] = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == RECORD, TimelineEntry.record_id == item.id)).all()
    assert entry.subject == "Call done: Call about renewal"  # the installation's language
    sign_in(web, boss)
    page = web.get(f"/fx_records/{item.id}")
    assert page.status_code == 200
    history = page.get_data(as_text=True)
    history = history[history.index('id="timeline"'):]
    assert "Aktivitāte paveikta (Zvans): Call about renewal" in history
