"""Offer pages: record rules (404), CSRF, optimistic locking, totals per VAT rate, hooks."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from markupsafe import Markup

from addons.documents import offers as svc
from addons.documents.models import Offer
from addons.documents.tests.test_offers import make_partner, make_product
from core.api import assign_roles, db, seed_reference_data
from core.testing import csrf_token

pytestmark = pytest.mark.addons("documents")

D = Decimal


def salesperson(make_user, login_name: str = "anna"):
    user = make_user(login_name)
    assign_roles(user, "salesperson")
    return user


def own_offer(user, *, lines: int = 1, **kwargs) -> Offer:
    seed_reference_data()
    partner = make_partner(owner_id=user.id)
    offer = svc.create_offer(partner, user=user, offer_date=date(2026, 3, 2), **kwargs)
    for i in range(lines):
        svc.add_line(offer, description=f"Item {i}", unit_price="10", vat_rate="21")
    db.session.commit()
    return offer


def token(client, offer_id: int) -> str:
    return csrf_token(client, f"/documents/offers/{offer_id}")


def test_another_salespersons_offer_is_a_404_everywhere(app, client, make_user, login):
    anna, boris = salesperson(make_user), salesperson(make_user, "boris")
    mine, theirs = own_offer(anna), own_offer(boris)
    login(client, anna)
    page = client.get("/documents/offers").get_data(as_text=True)
    assert f"/documents/offers/{mine.id}\"" in page
    assert f"/documents/offers/{theirs.id}\"" not in page
    assert client.get(f"/documents/offers/{theirs.id}").status_code == 404
    assert client.get(f"/documents/offers/{theirs.id}/edit").status_code == 404
    csrf = token(client, mine.id)
    response = client.post(f"/documents/offers/{theirs.id}/state/sent",
                           data={"csrf_token": csrf, "version": theirs.version})
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Offer, theirs.id).state == "draft"


def test_user_without_roles_sees_no_offers(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna)
    nobody = make_user("nobody")
    login(client, nobody)
    assert client.get("/documents/offers").status_code == 404
    assert client.get(f"/documents/offers/{offer.id}").status_code == 404


def test_offer_page_shows_totals_per_vat_rate_and_state_buttons(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna, lines=0)
    svc.add_line(offer, description="Consulting", unit_price="100", vat_rate="21")
    svc.add_line(offer, description="Books", unit_price="50", vat_rate="12")
    db.session.commit()
    login(client, anna)
    html = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert html.count('class="vat-group"') == 4  # base and VAT for 12 % and 21 %
    assert "Net at VAT 12 %" in html and "VAT 21 %" in html
    assert "€21.00" in html and "€6.00" in html and "€177.00" in html
    assert re.findall(r'data-state="(\w+)"', html) == ["sent"]


def test_state_button_needs_csrf_and_logs_the_change(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna)
    login(client, anna)
    url = f"/documents/offers/{offer.id}/state/sent"
    assert client.post(url, data={"version": offer.version}).status_code == 400
    response = client.post(url, data={"csrf_token": token(client, offer.id),
                                      "version": offer.version})
    assert response.status_code == 302
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    assert offer.state == "sent"
    assert offer.number == "OFFER/2026/0001"
    html = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert "OFFER/2026/0001" in html
    assert re.findall(r'data-state="(\w+)"', html) == ["accepted", "declined"]


def test_illegal_state_is_refused_with_a_message(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna)
    login(client, anna)
    response = client.post(f"/documents/offers/{offer.id}/state/paid",
                           data={"csrf_token": token(client, offer.id),
                                 "version": offer.version}, follow_redirects=True)
    assert "An offer cannot go from Draft to Paid." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "draft"


def test_stale_version_is_refused_without_overwriting(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna)
    seen = offer.version
    login(client, anna)
    csrf = token(client, offer.id)
    # Someone else adds a line meanwhile: the version moves on.
    svc.add_line(offer, description="Theirs", unit_price="5")
    db.session.commit()
    response = client.post(f"/documents/offers/{offer.id}/lines",
                           data={"csrf_token": csrf, "version": seen, "product_id": "",
                                 "description": "Mine", "quantity": "1",
                                 "unit_price": "7"}, follow_redirects=True)
    assert "Someone else changed this offer meanwhile" in response.get_data(as_text=True)
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    assert [line.description for line in offer.lines] == ["Item 0", "Theirs"]
    response = client.post(f"/documents/offers/{offer.id}/edit",
                           data={"csrf_token": csrf, "version": seen,
                                 "partner_id": offer.partner_id, "currency": "USD",
                                 "lang": "en", "offer_date": "2026-03-02"},
                           follow_redirects=True)
    assert "Someone else changed this offer meanwhile" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).currency == "EUR"


def test_create_offer_and_add_product_line_through_the_pages(app, client, make_user, login):
    seed_reference_data()
    anna = salesperson(make_user)
    partner = make_partner("SIA Egle", lang="lv", owner_id=anna.id)
    product = make_product("SKU-9", prices={date(2020, 1, 1): "19.99"})
    db.session.commit()
    login(client, anna)
    form = client.get(f"/documents/offers/new?partner_id={partner.id}").get_data(as_text=True)
    assert '<option selected value="lv">' in form or 'value="lv" selected' in form
    csrf = csrf_token(client, "/documents/offers/new")
    response = client.post("/documents/offers/new", data={
        "csrf_token": csrf, "partner_id": partner.id, "currency": "EUR", "lang": "lv",
        "offer_date": "2026-03-02", "valid_until": "2026-04-01", "payment_terms": "14 days"})
    assert response.status_code == 302
    offer = db.session.scalars(db.select(Offer).where(Offer.partner_id == partner.id)).one()
    assert offer.owner_id == anna.id and offer.lang == "lv"
    response = client.post(f"/documents/offers/{offer.id}/lines", data={
        "csrf_token": csrf, "version": offer.version, "product_id": str(product.id),
        "quantity": "3", "discount": "10"})
    assert response.status_code == 302
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    assert [(line.unit_price, line.vat_rate) for line in offer.lines] == [(D("19.99"),
                                                                          D("21"))]
    assert offer.amount_untaxed == D("53.97")  # 3 × 19.99 × 0.9 = 53.973
    assert offer.amount_total == D("65.30")  # + 11.33 VAT


def test_stock_shortage_is_flagged_on_the_page(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna, lines=0)
    product = make_product("SKU-S", stock="2")
    svc.add_line(offer, product=product, quantity="3")
    db.session.commit()
    login(client, anna)
    html = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert 'class="flagged"' in html
    assert "Not enough stock for Product SKU-S" in html


def test_hooks_let_colleagues_add_actions_and_panels(app, client, make_user, login):
    registry = app.extensions["birga"].registry
    registry.add_hook("documents.offer.actions",
                      lambda offer, **_: Markup("<a class='x-pdf'>PDF {}</a>").format(offer.id))
    registry.add_hook("documents.offer.sidebar",
                      lambda offer, **_: Markup("<p class='x-link'>Link {}</p>").format(offer.id))
    anna = salesperson(make_user)
    offer = own_offer(anna)
    login(client, anna)
    html = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert f"<a class='x-pdf'>PDF {offer.id}</a>" in html
    assert f"<p class='x-link'>Link {offer.id}</p>" in html


def test_contact_card_lists_the_clients_offers(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna)
    login(client, anna)
    html = client.get(f"/contacts/{offer.partner_id}").get_data(as_text=True)
    assert f"/documents/offers/{offer.id}\"" in html
    assert "partner-offers" in html


def test_revision_page_shows_the_frozen_previous_revision(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna)
    svc.change_state(offer, "sent")
    db.session.commit()
    login(client, anna)
    response = client.post(f"/documents/offers/{offer.id}/revise",
                           data={"csrf_token": token(client, offer.id),
                                 "version": offer.version})
    assert response.status_code == 302
    new_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    html = client.get(f"/documents/offers/{new_id}").get_data(as_text=True)
    assert "OFFER/2026/0001 rev. 2" in html and "Revision 1" in html
    old = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert "replaced by a newer one" in old
    assert "data-state=" not in old


def test_menu_shows_documents_offers_and_products(app, client, make_user, login):
    manager = make_user("mara")
    assign_roles(manager, "sales_manager")
    login(client, manager)
    html = client.get("/documents/offers").get_data(as_text=True)
    for label in ("Documents", "Offers", "Products"):
        assert label in html
    assert 'href="/documents/products"' in html
