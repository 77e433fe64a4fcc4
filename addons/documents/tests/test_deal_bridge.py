"""The deal bridge: accepted offers feed the deal's amount and move it to Won through the
pipeline's state machine, only when pipeline is enabled (no hard dependency)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.documents import offers as svc
from addons.documents.tests.test_offers import make_partner
from core.api import TimelineEntry, assign_roles, db, seed_reference_data
from core.testing import csrf_token

D = Decimal


@pytest.fixture
def both(make_app):
    app = make_app(["documents", "pipeline"])
    with app.app_context():
        yield app


def deal_and_offer(user=None, *, lines=(("Consulting", "1000", "21"), ("Books", "50", "12"))):
    from addons.pipeline.state import create_deal, seed_defaults

    seed_reference_data()
    seed_defaults()
    partner = make_partner(owner_id=user.id if user else None)
    deal = create_deal(title="Windows for SIA Kalns", partner_id=partner.id, amount="10",
                       currency="EUR", owner_id=user.id if user else None)
    offer = svc.create_offer(partner, user=user, currency="USD", deal_id=deal.id,
                             offer_date=date(2026, 3, 2))
    for description, price, rate in lines:
        svc.add_line(offer, description=description, unit_price=price, vat_rate=rate)
    svc.change_state(offer, "sent", user=user)
    db.session.commit()
    return deal, offer


def test_accepting_an_offer_wins_the_deal_with_its_amount(both):
    deal, offer = deal_and_offer()
    svc.change_state(offer, "accepted")
    db.session.commit()
    db.session.expire_all()
    assert deal.stage.kind == "won"
    assert deal.won_at is not None
    assert (deal.amount, deal.currency) == (D("1050.00"), "USD")  # untaxed, offer currency
    moves = db.session.scalars(select(TimelineEntry.subject).where(
        TimelineEntry.model == "pipeline.deal", TimelineEntry.record_id == deal.id,
        TimelineEntry.kind == "system")).all()
    assert any("→" in subject for subject in moves)


def test_accepting_a_free_offer_leaves_a_deal_without_amount_open(both):
    deal, offer = deal_and_offer(lines=(("Free audit", "0", "21"),))
    deal.amount = D("0")  # Won needs an amount: a free offer cannot give it one
    db.session.commit()
    svc.change_state(offer, "accepted")
    db.session.commit()
    db.session.expire_all()
    assert offer.state == "accepted" and deal.stage.kind == "open" and deal.won_at is None


def test_declining_leaves_the_deal_open(both):
    deal, offer = deal_and_offer()
    svc.change_state(offer, "declined")
    db.session.commit()
    db.session.expire_all()
    assert deal.stage.kind == "open" and deal.amount == D("10")


def test_a_lost_deal_is_not_reopened_by_a_late_acceptance(both):
    from addons.pipeline.models import LostReason, Stage
    from addons.pipeline.state import move_deal

    deal, offer = deal_and_offer()
    lost = db.session.scalars(select(Stage).where(Stage.pipeline_id == deal.pipeline_id,
                                                  Stage.kind == "lost")).first()
    move_deal(deal, lost, lost_reason=db.session.scalars(select(LostReason)).first())
    db.session.commit()
    svc.change_state(offer, "accepted")
    db.session.commit()
    assert offer.state == "accepted"
    assert deal.stage.kind == "lost"


def test_deal_page_lists_its_offers(both, make_user, login):
    client = both.test_client()
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    deal, offer = deal_and_offer(user)
    login(client, user)
    html = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert "deal-offers" in html
    assert f"/documents/offers/{offer.id}\"" in html
    assert f"/documents/offers/new?deal_id={deal.id}" in html


@pytest.mark.addons("documents")
def test_without_pipeline_an_offer_with_a_deal_id_is_inert(app, make_user, login):
    seed_reference_data()
    offer = svc.create_offer(make_partner(), deal_id=42, offer_date=date(2026, 3, 2))
    svc.add_line(offer, description="Item", unit_price="10")
    svc.change_state(offer, "sent")
    svc.change_state(offer, "accepted")
    db.session.commit()
    assert not svc.pipeline_enabled()
    assert offer.state == "accepted"
    assert svc.feed_deal(offer) is False
    assert "pipeline.deal.main" not in app.extensions["birga"].registry.hooks


@pytest.mark.addons("documents")
def test_without_pipeline_the_offer_form_refuses_a_deal(app, make_user, login):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    partner = make_partner(owner_id=user.id)  # hers: only the deal can be refused
    db.session.commit()
    client = app.test_client()
    login(client, user)
    csrf = csrf_token(client, "/documents/offers/new")
    response = client.post("/documents/offers/new", data={
        "csrf_token": csrf, "partner_id": partner.id, "deal_id": "7", "currency": "EUR",
        "lang": "lv", "offer_date": "2026-03-02"})
    assert response.status_code == 404



def test_the_offer_form_offers_the_clients_deals(both, make_user, login):
    from addons.pipeline.state import create_deal

    user = make_user("mara")
    assign_roles(user, "sales_manager")
    deal, offer = deal_and_offer(user)
    other = make_partner("SIA Cits", owner_id=user.id)
    create_deal(title="Roof for SIA Cits", partner_id=other.id, owner_id=user.id)
    offer.state = "draft"
    db.session.commit()
    client = both.test_client()
    login(client, user)
    page = client.get(f"/documents/offers/{offer.id}/edit").get_data(as_text=True)
    assert f'<option selected value="{deal.id}">Windows for SIA Kalns' in page
    assert "Roof for SIA Cits" not in page
    page = client.get(f"/documents/offers/new?partner_id={other.id}").get_data(as_text=True)
    assert "Roof for SIA Cits" in page and "Windows for SIA Kalns" not in page
