"""The start page's "My pipeline" card: the salesperson's own open deals with totals and
weighted amounts per currency (never mixed), deals with nothing planned linked to the list
filtered the same way, unassigned new leads for those who can see them, a constant number of
queries, and no card without `pipeline.read`."""
from __future__ import annotations

import pytest

from addons.pipeline.models import Lead
from addons.pipeline.state import create_deal, seed_defaults
from core.api import assign_roles, db, utcnow
from core.testing import dashboard_card, grant, statements

pytestmark = pytest.mark.addons("pipeline")


def card(html: str) -> str:
    return dashboard_card(html, "pipeline")


@pytest.fixture
def funnel(app):
    pipeline = seed_defaults()
    db.session.commit()
    return pipeline, {s.name: s for s in pipeline.stages}


def deal(funnel, owner, title, amount, currency="EUR", stage="New", planned=False,
         probability=None):
    pipeline, stages = funnel
    found = create_deal(title=title, pipeline=pipeline, stage=stages[stage], user=owner,
                        amount=amount, currency=currency, probability=probability)
    if planned:
        found.next_activity_at = utcnow()
    return found


def test_card_shows_own_open_deals_per_currency_and_links_the_list(app, client, login, salespeople,
                                                                    funnel):
    anna, olga = salespeople["anna"], salespeople["olga"]
    deal(funnel, anna, "Fleet", "1000.00", stage="Proposal", planned=True)  # 50 %
    deal(funnel, anna, "Boxes", "200.00", probability=10)
    deal(funnel, anna, "Dollars", "300.00", currency="USD", stage="Negotiation")  # 75 %
    deal(funnel, anna, "Closed", "9999.00", stage="Won")
    deal(funnel, olga, "Olga's", "5000.00", stage="Proposal")
    db.session.commit()
    login(client, anna)
    html = card(client.get("/").get_data(as_text=True))
    assert "3 open deals" in html
    assert "2 deals without a next activity" in html
    assert "€1,200.00" in html and "€520.00" in html  # 1000 + 200; 500 + 20
    assert "$300.00" in html and "$225.00" in html
    assert "9,999" not in html and "5,000" not in html
    link = f'/pipeline/deals?owner={anna.id}&amp;open=1&amp;no_next=1'
    assert link in html
    listed = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert "Boxes" in listed and "Dollars" in listed
    assert "Fleet" not in listed and "Closed" not in listed and "Olga&#39;s" not in listed


def test_open_filter_keeps_won_and_lost_deals_off_the_list(app, client, login, salespeople, funnel):
    anna = salespeople["anna"]
    deal(funnel, anna, "Running", "10")
    deal(funnel, anna, "Closed", "10", stage="Won")
    db.session.commit()
    login(client, anna)
    listed = client.get(f"/pipeline/deals?owner={anna.id}&open=1").get_data(as_text=True)
    assert "Running" in listed and "Closed" not in listed
    everything = client.get(f"/pipeline/deals?owner={anna.id}").get_data(as_text=True)
    assert "Closed" in everything


def test_unassigned_new_leads_show_for_those_who_see_them(app, client, login, salespeople,
                                                         make_user, funnel):
    db.session.add_all([Lead(name="Walk-in", status="new"), Lead(name="Web", status="new"),
                        Lead(name="Taken", status="new", owner_id=salespeople["olga"].id),
                        Lead(name="Old", status="converted")])
    boss = make_user("boss")
    assign_roles(boss, "administrator")
    db.session.commit()
    login(client, boss)
    html = card(client.get("/").get_data(as_text=True))
    assert "2 new leads waiting for a salesperson" in html
    assert 'href="/pipeline/leads?status=new&amp;owner=none"' in html
    other = app.test_client()
    login(other, salespeople["anna"])  # a salesperson's rules show her own leads only
    html = card(other.get("/").get_data(as_text=True))
    assert "lead" not in html.lower()
    assert "No open deals yet" in html


def test_user_without_pipeline_permission_sees_no_card(app, client, login, make_user):
    user = make_user("guest")
    grant(user, "contacts.read")
    db.session.commit()
    login(client, user)
    assert 'id="dash-pipeline"' not in client.get("/").get_data(as_text=True)


def test_home_page_queries_do_not_grow_with_deals(app, client, login, salespeople, funnel):
    anna = salespeople["anna"]
    deal(funnel, anna, "First", "10")
    db.session.commit()
    login(client, anna)
    client.get("/")
    with statements() as few:
        client.get("/")
    for number in range(40):
        deal(funnel, anna, f"Deal {number}", "10", currency=("EUR", "USD", "GBP")[number % 3],
             stage=("New", "Qualified", "Proposal")[number % 3], planned=number % 2 == 0)
    db.session.add_all([Lead(name=f"Lead {n}", status="new") for n in range(10)])
    db.session.commit()
    with statements() as many:
        html = card(client.get("/").get_data(as_text=True))
    assert "41 open deals" in html
    assert len(many) == len(few)
