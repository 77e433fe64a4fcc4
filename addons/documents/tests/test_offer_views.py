"""Offer pages: record rules (404), CSRF, optimistic locking, totals per VAT rate, hooks."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from markupsafe import Markup

from addons.contacts import services
from addons.contacts.models import Partner
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
    # Marked sent by hand: the PDF the client got is kept, as when it is mailed.
    from core.storage import Attachment

    stored = db.session.get(Attachment, offer.sent_attachment_id)
    assert stored is not None and stored.path.read_bytes().startswith(b"%PDF")


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


# -- review fixes: units, dates, document language, page layout ---------------------------
def test_free_text_line_has_no_unit_and_known_units_print_translated(app, monkeypatch):
    """A service line is not "pcs"; the "pcs" Birga gives products prints in the document's
    language, resolved when shown (the line keeps the code)."""
    from flask_babel import lazy_gettext

    from addons.documents.sandbox import offer_context

    anna_offer = own_offer(make_partner_owner(), lines=1, lang="ru")
    line = anna_offer.lines[0]
    assert line.unit == ""
    product_line = svc.add_line(anna_offer, product=make_product("BOX", prices={
        date(2020, 1, 1): "5.00"}))
    db.session.commit()
    assert product_line.unit == "pcs"
    monkeypatch.setitem(svc.UNIT_LABELS, "pcs", lazy_gettext("Unit"))  # a word ru translates
    units = [row["unit"] for row in offer_context(anna_offer)["lines"]]
    assert units == ["", "Ед. изм."]


def make_partner_owner():
    from core.models import User

    user = User(login="owner", name="Owner")
    db.session.add(user)
    db.session.flush()
    return user


def test_missing_price_message_shows_a_localised_date(app):
    from flask_babel import force_locale

    offer = own_offer(make_partner_owner(), lines=0)
    product = make_product("NOPRICE", prices={date(2020, 1, 1): "5.00"}, currency="USD")
    with app.test_request_context(), force_locale("ru"):
        with pytest.raises(svc.OfferError) as caught:
            svc.add_line(offer, product=product)
    message = str(caught.value)
    assert "2026-03-02" not in message
    assert "мар. 2026" in message and ".." not in message


def selected_lang(html: str) -> str:
    select = html.split('name="lang"', 1)[1].split("</select>", 1)[0]
    return re.search(r'<option[^>]*selected[^>]*value="(\w+)"|<option[^>]*value="(\w+)"'
                     r'[^>]*selected', select).group(0).split('value="')[1].split('"')[0]


def test_new_offer_language_follows_the_client_else_the_user(app, client, make_user, login):
    anna = make_user("anna", locale="lv")
    assign_roles(anna, "salesperson")
    russian = make_partner("ООО Берёза", lang="ru", owner_id=anna.id)
    silent = make_partner("SIA Klusā", lang=None, owner_id=anna.id)
    db.session.commit()
    login(client, anna)
    assert selected_lang(client.get(
        f"/documents/offers/new?partner_id={russian.id}").get_data(as_text=True)) == "ru"
    assert selected_lang(client.get(
        f"/documents/offers/new?partner_id={silent.id}").get_data(as_text=True)) == "lv"
    assert selected_lang(client.get("/documents/offers/new").get_data(as_text=True)) == "lv"


def test_offer_page_names_the_language_and_puts_actions_first(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_offer(anna, lines=2, lang="lv")
    login(client, anna)
    html = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    facts = html.split('<dl class="facts">', 1)[1].split("</dl>", 1)[0]
    assert "<dd>Latviešu</dd>" in facts and "<dd>lv</dd>" not in facts
    assert "documents/static/documents.css" in html
    # Preview, PDF and the state buttons come before the facts, the lines and the history.
    toolbar = html.index('class="offer-toolbar"')
    assert toolbar < html.index("Download PDF") < html.index('data-state="sent"') \
        < html.index('<dl class="facts">') < html.index('class="list offer-lines"')
    # Totals are rows of the lines table, their amounts in the Amount column.
    foot = html.split('<tfoot class="totals">', 1)[1].split("</tfoot>", 1)[0]
    assert foot.count('<th colspan="6">') == 5 and "€24.20" in foot
    css = client.get("/documents/static/documents.css")
    assert css.status_code == 200 and b".facts" in css.data


def _new_offer(client, **fields):
    csrf = csrf_token(client, "/documents/offers/new")
    return client.post("/documents/offers/new", data={
        "csrf_token": csrf, "currency": "EUR", "lang": "lv", "offer_date": "2026-03-02",
        **fields})


def test_the_client_is_found_by_the_typed_name_among_many(app, client, make_user, login):
    """The form used to offer the first 500 contacts by name in a select: a firm's
    Zvaigzne was out of reach. Now a typed name resolves against every contact."""
    anna = salesperson(make_user)
    for n in range(501):
        db.session.add(Partner(kind="company", name=f"SIA Ābele {n:03}", owner_id=anna.id))
    late = make_partner("SIA Zvaigzne", owner_id=anna.id)
    db.session.commit()
    login(client, anna)
    page = client.get("/documents/offers/new").get_data(as_text=True)
    assert "SIA Ābele 000" not in page and 'data-lookup="/contacts/lookup.json"' in page
    assert _new_offer(client, partner_name="sia zvaigzne").status_code == 302
    offer = db.session.scalars(db.select(Offer)).one()
    assert offer.partner_id == late.id


def test_an_ambiguous_or_unknown_client_is_asked_again(app, client, make_user, login):
    anna = salesperson(make_user)
    first = make_partner("SIA Kalns Rīga", owner_id=anna.id)
    second = make_partner("SIA Kalns Liepāja", owner_id=anna.id)
    for partner in (first, second):
        services.refresh_search(partner)  # the contacts search finds them by a word
    db.session.commit()
    login(client, anna)
    page = _new_offer(client, partner_name="Kalns").get_data(as_text=True)
    assert "Several contacts match" in page and f'<option value="{first.id}">' in page
    page = _new_offer(client, partner_name="Nobody Known").get_data(as_text=True)
    assert "No contact named" in page
    assert _new_offer(client, partner_name="").status_code == 200
    assert db.session.scalars(db.select(Offer)).all() == []


def test_a_client_outside_the_record_rules_is_not_found(app, client, make_user, login):
    anna = salesperson(make_user)
    other = salesperson(make_user, "berta")
    hidden = make_partner("SIA Slepenā", owner_id=other.id)
    db.session.commit()
    login(client, anna)
    for fields in ({"partner_name": "SIA Slepenā"}, {"partner_id": str(hidden.id)},
                   {"partner_name": "SIA Slepenā", "partner_id": str(hidden.id)}):
        assert "field-error" in _new_offer(client, **fields).get_data(as_text=True)
    assert db.session.scalars(db.select(Offer)).all() == []
    assert client.get("/contacts/lookup.json?q=slepen").get_json() == []
