"""The client card: details, a company's people and a person's company, counters, the
platform's timeline/activities/attachments hooks and the hooks other addons fill."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import Markup
from sqlalchemy import select

from addons.contacts import services
from addons.contacts.models import Partner
from core.activities import ActivityType, mark_done, schedule_activity, seed_activity_types
from core.api import add_note, assign_roles, db

pytestmark = pytest.mark.addons("contacts")
MODEL = "contacts.partner"


def _partner(kind: str, owner, **fields) -> Partner:
    partner = Partner(kind=kind, owner_id=owner.id if owner else None, **fields)
    services.refresh_search(partner)
    return partner


@pytest.fixture
def seller(app, client, make_user, login):
    user = make_user("sam", name="Sam Seller")
    assign_roles(user, "salesperson")
    login(client, user)
    return user


def test_card_shows_details_and_the_company_link(seller, client, make_user):
    company = _partner("company", seller, name="Rīgas Piens AS", country="LV",
                       vat="40003245752")
    person = _partner("person", seller, first_name="Ilze", last_name="Ozola", company=company,
                      job_title="Buyer", city="Rīga", country="LV", status="client")
    services.set_phones(person, ["+371 2000 0001"])
    services.set_emails(person, ["ilze@piens.lv"])
    db.session.commit()
    html = client.get(f"/contacts/{person.id}").get_data(as_text=True)
    assert f'href="/contacts/{company.id}"' in html and "Rīgas Piens AS" in html
    for text in ("Buyer", "ilze@piens.lv", "+371 20 000 001", "Latvia", "Sam Seller",
                 "Client"):
        assert text in html


def test_company_card_lists_only_the_people_the_user_may_see(seller, client, make_user):
    other = make_user("sara")
    company = _partner("company", seller, name="Piens AS")
    _partner("person", seller, last_name="Visible", company=company)
    _partner("person", other, last_name="Hidden", company=company)
    db.session.commit()
    html = client.get(f"/contacts/{company.id}").get_data(as_text=True)
    assert "Visible" in html and "Hidden" not in html


def test_company_outside_the_rules_shows_as_plain_name(seller, client, make_user):
    other = make_user("sara")
    company = _partner("company", other, name="Not Mine SIA")
    person = _partner("person", seller, last_name="Mine", company=company)
    db.session.commit()
    html = client.get(f"/contacts/{person.id}").get_data(as_text=True)
    assert "Not Mine SIA" in html and f'href="/contacts/{company.id}"' not in html


def _counter(html: str, label: str) -> str:
    match = re.search(r'counter-value">([^<]*)</span>(?: <span class="counter-label">| )'
                      + re.escape(label) + "<", html)
    return match.group(1)


def test_counters_count_done_meetings_and_the_last_contact(seller, client):
    seed_activity_types()
    types = {t.code: t.id for t in db.session.scalars(select(ActivityType))}
    company = _partner("company", seller, name="Meet Co")
    person = _partner("person", seller, last_name="Met", company=company)
    db.session.commit()
    due = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def activity(code: str, record: Partner, done: bool) -> None:
        item = schedule_activity(type_id=types[code], summary=code, due_at=due, assignee=seller,
                                 creator=seller, model=MODEL, record_id=record.id)
        if done:
            mark_done(item, by=seller)

    activity("meeting", company, True)
    activity("meeting", person, True)     # a meeting with its staff counts for the company
    activity("meeting", company, False)   # planned, not held
    activity("call", company, True)       # held, but not a meeting
    db.session.commit()

    company_html = client.get(f"/contacts/{company.id}").get_data(as_text=True)
    person_html = client.get(f"/contacts/{person.id}").get_data(as_text=True)
    assert _counter(company_html, "meetings held") == "2"
    assert _counter(person_html, "meeting held") == "1"  # the singular, not "1 meetings"
    db.session.expire_all()
    assert db.session.get(Partner, company.id).last_contact_at is not None
    assert _counter(company_html, "last contact") != "—"


def test_logged_call_sets_last_contact_but_a_note_does_not(seller, client):
    partner = _partner("company", seller, name="Call Co")
    db.session.commit()
    add_note(MODEL, partner.id, "Just a thought", author=seller, kind="note")
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).last_contact_at is None
    add_note(MODEL, partner.id, "Talked about the offer", author=seller, kind="call")
    db.session.commit()
    db.session.expire_all()
    reloaded = db.session.get(Partner, partner.id)
    assert reloaded.last_contact_at is not None
    assert reloaded.version == partner.version  # not an edit: open forms stay valid
    html = client.get("/contacts/?idle=1").get_data(as_text=True)
    assert "Call Co" not in html
    reloaded.last_contact_at = reloaded.last_contact_at - timedelta(days=3)
    db.session.commit()
    assert "Call Co" in client.get("/contacts/?idle=1").get_data(as_text=True)


def test_card_renders_platform_and_addon_hooks(app, seller, client):
    partner = _partner("company", seller, name="Hooked SIA")
    db.session.commit()
    add_note(MODEL, partner.id, "Visited the warehouse", author=seller)
    db.session.commit()
    registry = app.extensions["birga"].registry
    registry.add_hook("contacts.card.sidebar",
                      lambda partner, **_: Markup("<p>loyalty of %s</p>") % partner.name,
                      addon="loyalty")
    registry.add_hook("contacts.card.main", lambda partner, **_: Markup("<p>deals panel</p>"),
                      addon="pipeline")
    registry.add_hook("contacts.card.counters",
                      lambda partner, **_: Markup('<div class="counter">3 open deals</div>'),
                      addon="pipeline")
    html = client.get(f"/contacts/{partner.id}").get_data(as_text=True)
    for text in ("loyalty of Hooked SIA", "deals panel", "3 open deals",
                 "Visited the warehouse"):  # the last one from the record.timeline hook
        assert text in html


def test_unknown_card_is_404(seller, client):
    assert client.get("/contacts/999999").status_code == 404


def test_every_table_on_the_card_scrolls_inside_its_own_wrapper(seller, client):
    """On a phone a bare table widened the whole page; in a .table-wrap only it scrolls."""
    company = _partner("company", seller, name="Wide Co")
    _partner("person", seller, last_name="Staff", company=company)
    db.session.commit()
    html = client.get(f"/contacts/{company.id}").get_data(as_text=True)
    tables = html.count("<table")
    assert tables >= 1
    assert len(re.findall(r'<div class="table-wrap">\s*<table', html)) == tables
