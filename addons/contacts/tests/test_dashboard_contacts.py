"""The start page's "My clients" card: the salesperson's own idle clients (the list's `idle`
filter, linked), birthdays in the coming week, a constant number of queries, and no card for
users who may not see contacts."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from addons.contacts import services
from addons.contacts.dashboard import _month_days, idle_days
from addons.contacts.models import Partner
from core.api import db, utcnow
from core.testing import dashboard_card, grant, statements

pytestmark = pytest.mark.addons("contacts")


def person(name: str, owner, **fields) -> Partner:
    partner = Partner(kind="person", name=name, last_name=name, owner_id=owner.id, **fields)
    services.refresh_search(partner)
    db.session.add(partner)
    return partner


def card(html: str) -> str:
    return dashboard_card(html, "contacts")



def test_card_counts_own_idle_clients_and_links_the_filtered_list(app, client, login, salespeople):
    anna, olga = salespeople["anna"], salespeople["olga"]
    long_ago = utcnow() - timedelta(days=idle_days() + 5)
    person("Quiet", anna, last_contact_at=long_ago)
    person("Never", anna)  # never contacted: idle too
    person("Recent", anna, last_contact_at=utcnow() - timedelta(days=2))
    for number in range(3):
        person(f"Theirs {number}", olga, last_contact_at=long_ago)
    db.session.commit()
    login(client, anna)
    html = card(client.get("/").get_data(as_text=True))
    days = idle_days()
    assert "3 clients" in html and f"2 without contact for {days} days" in html
    link = f'href="/contacts/?owner=me&amp;idle={days}"'
    assert link in html
    listed = client.get(f"/contacts/?owner=me&idle={days}").get_data(as_text=True)
    assert "Quiet" in listed and "Never" in listed and "Recent" not in listed
    assert "Theirs" not in listed and "Theirs" not in html


def test_card_lists_own_birthdays_of_the_coming_week(app, client, login, salespeople):
    anna, olga = salespeople["anna"], salespeople["olga"]
    now = date.today()
    person("Soon", anna, birthday=(now + timedelta(days=3)).replace(year=1980))
    person("Today Born", anna, birthday=now.replace(year=1990))
    person("Later", anna, birthday=(now + timedelta(days=20)).replace(year=1985))
    person("Olgas Client", olga, birthday=(now + timedelta(days=1)).replace(year=1970))
    db.session.commit()
    login(client, anna)
    html = card(client.get("/").get_data(as_text=True))
    assert html.index("Today Born") < html.index("Soon")
    assert "Later" not in html and "Olgas Client" not in html


def test_card_is_kind_when_nothing_is_waiting(app, client, login, salespeople):
    person("Recent", salespeople["anna"], last_contact_at=utcnow())
    db.session.commit()
    login(client, salespeople["anna"])
    html = card(client.get("/").get_data(as_text=True))
    assert "Every client heard from you" in html
    assert "No birthdays in the next 7 days." in html


def test_card_says_so_when_the_user_has_no_clients(app, client, login, salespeople):
    person("Theirs", salespeople["olga"])
    db.session.commit()
    login(client, salespeople["anna"])
    html = card(client.get("/").get_data(as_text=True))
    assert "You have no clients of your own yet." in html and "Theirs" not in html


def test_user_without_contacts_permission_sees_no_card(app, client, login, make_user):
    user = make_user("guest")
    grant(user, "records.annotate")
    db.session.commit()
    login(client, user)
    html = client.get("/").get_data(as_text=True)
    assert 'id="dash-contacts"' not in html


def test_home_page_queries_do_not_grow_with_clients(app, client, login, salespeople):
    anna = salespeople["anna"]
    login(client, anna)
    now = date.today()
    person("First", anna, birthday=now.replace(year=1980))
    db.session.commit()
    client.get("/")
    with statements() as few:
        client.get("/")
    for number in range(30):
        person(f"Client {number}", anna, birthday=now.replace(year=1950 + number))
    db.session.commit()
    with statements() as many:
        html = card(client.get("/").get_data(as_text=True))
    assert "and 26 more" in html
    assert len(many) == len(few)


def test_leap_day_birthdays_are_remembered_on_28_february():
    assert 229 in _month_days(date(2027, 2, 26), 7)
    assert 229 not in _month_days(date(2028, 2, 20), 7)
    assert 229 in _month_days(date(2028, 2, 27), 7)
