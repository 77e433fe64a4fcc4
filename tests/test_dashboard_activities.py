"""The start page's "My activities" card: the user's own overdue and today's activities (in
their time zone), the first few with their record, a constant number of queries whatever the
number of activities, and kind words when nothing is due."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.activities import ActivityType, activity_types, schedule_activity
from core.extensions import db
from core.security import assign_roles
from core.testing import csrf_token, dashboard_card, statements

RECORD = "fx_records.item"


@pytest.fixture
def people(rec_app, make_user):
    users = {"anna": make_user("anna", timezone="Europe/Riga"),
             "olga": make_user("olga", timezone="Europe/Riga")}
    for user in users.values():
        assign_roles(user, "salesperson")
    db.session.commit()
    return users


def add(assignee, due: str, summary: str, item=None):
    activity_types()
    type_id = db.session.scalar(select(ActivityType.id).where(ActivityType.code == "call"))
    schedule_activity(type_id=type_id, summary=summary,
                      due_at=datetime.fromisoformat(due).replace(tzinfo=UTC),
                      assignee=assignee, creator=assignee,
                      model=RECORD if item else None, record_id=item.id if item else None)
    db.session.commit()


def make_item(owner, name):
    from addons.fx_records.models import Item

    item = Item(name=name, owner_id=owner.id)
    db.session.add(item)
    db.session.commit()
    return item


def sign_in(client, user):
    response = client.post("/login", data={"login": user.login,
                                           "password": "correct horse battery staple",
                                           "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302


def card(html: str) -> str:
    return dashboard_card(html, "activities")


def test_card_counts_own_overdue_and_today_and_links_records(web, people):
    anna, olga = people["anna"], people["olga"]
    acme = make_item(anna, "Acme Ltd")
    add(anna, "2026-11-20T09:00:00", "Send the price list", acme)
    add(anna, "2026-11-23T12:00:00", "Call Acme back", acme)
    add(anna, "2026-11-24T12:00:00", "Tomorrow's meeting")  # upcoming: not on the card
    add(olga, "2026-11-19T09:00:00", "Olga's overdue call")
    add(olga, "2026-11-23T13:00:00", "Olga's call today")
    sign_in(web, anna)
    html = card(web.get("/").get_data(as_text=True))
    assert "1 activity overdue" in html
    assert "1 activity due today" in html
    assert "Send the price list" in html and "Call Acme back" in html
    assert "Tomorrow" not in html and "Olga" not in html
    assert f'<a href="/fx_records/{acme.id}">Acme Ltd</a>' in html  # the record's own page
    assert 'href="/activities/#overdue"' in html and 'href="/activities/#today"' in html


def test_card_says_nothing_is_due_kindly(web, people):
    add(people["olga"], "2026-11-19T09:00:00", "Olga's overdue call")
    sign_in(web, people["anna"])
    html = card(web.get("/").get_data(as_text=True))
    assert "Nothing overdue." in html and "Nothing due today." in html
    assert "Olga" not in html


def test_home_page_queries_do_not_grow_with_activities(web, people):
    anna = people["anna"]
    sign_in(web, anna)
    acme = make_item(anna, "Acme Ltd")
    add(anna, "2026-11-20T09:00:00", "First", acme)
    add(anna, "2026-11-23T12:00:00", "Second", acme)
    web.get("/")
    with statements() as few:
        assert web.get("/").status_code == 200
    for number in range(12):
        item = make_item(anna, f"Client {number}")
        add(anna, f"2026-11-{10 + number % 10:02d}T09:00:00", f"Overdue {number}", item)
        add(anna, "2026-11-23T15:00:00", f"Today {number}", item)
    with statements() as many:
        html = web.get("/").get_data(as_text=True)
    assert "13 activities overdue" in card(html)
    assert len(many) == len(few), many
