"""The offer and product list pages: rows, pager, record rule, constant queries. (The fast
formatters they use, `core.formatters`, are tested in tests/test_formatting.py.)"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from flask_babel import force_locale

from addons.contacts.models import Partner
from addons.documents import offers as svc
from addons.documents.models import Offer
from addons.documents.tests.test_offers import make_partner, make_product
from core.api import assign_roles, db
from core.formatting import format_date, format_money
from core.testing import statements

pytestmark = pytest.mark.addons("documents")

D = Decimal


def user_with(make_user, login_name: str, role: str):
    user = make_user(login_name)
    assign_roles(user, role)
    return user


def add_offers(owner, count: int, *, start: int = 0, **fields) -> list[Offer]:
    """Offers inserted directly (the list reads stored columns; the services are tested
    elsewhere), one minute apart so the list order is known: newest first."""
    partner = make_partner(f"Client of {owner.login}", owner_id=owner.id)
    moment = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    offers = []
    for i in range(start, start + count):
        values = {"state": "draft", "revision": 1, **fields}
        offer = Offer(partner_id=partner.id, owner_id=owner.id, currency="EUR", lang="en",
                      seller_country="LV", offer_date=date(2026, 3, 1), is_current=True,
                      amount_untaxed=D("100.00"), amount_tax=D("21.00"),
                      amount_total=D(f"{1000 + i}.50"),
                      created_at=moment + timedelta(minutes=i), **values)
        db.session.add(offer)
        offers.append(offer)
    db.session.commit()
    return offers


def offer_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/documents/offers/(\d+)"', html)]



# -- offers ------------------------------------------------------------------------------------
def test_offer_list_pages_through_own_offers_newest_first(app, client, make_user, login):
    anna = user_with(make_user, "anna", "salesperson")
    other = user_with(make_user, "olga", "salesperson")
    mine = add_offers(anna, 55)
    theirs = add_offers(other, 3)
    login(client, anna)
    first = client.get("/documents/offers").get_data(as_text=True)
    newest = [o.id for o in reversed(mine)]
    assert offer_ids(first) == newest[:50]
    assert "Page 1 of 2" in first
    assert "Client of anna" in first and "€1,054.50" in first and "Mar 1, 2026" in first
    second = client.get("/documents/offers?page=2").get_data(as_text=True)
    assert offer_ids(second) == newest[50:]
    assert "Page 2 of 2" in second
    past = client.get("/documents/offers?page=3").get_data(as_text=True)
    assert offer_ids(past) == [] and "No offers yet." in past and "of 2" in past
    assert not set(offer_ids(first + second)) & {o.id for o in theirs}


def test_sales_manager_sees_the_teams_offers_only(app, client, make_user, login):
    from core.security import Team, TeamMember

    boss = user_with(make_user, "mara", "sales_manager")
    member = user_with(make_user, "sam", "salesperson")
    outsider = user_with(make_user, "sara", "salesperson")
    team = Team(name="North", manager_id=boss.id)
    db.session.add(team)
    db.session.flush()
    db.session.add(TeamMember(team_id=team.id, user_id=member.id))
    db.session.commit()
    own, teams = add_offers(boss, 2), add_offers(member, 3, start=2)
    add_offers(outsider, 4, start=5)
    login(client, boss)
    html = client.get("/documents/offers").get_data(as_text=True)
    assert offer_ids(html) == [o.id for o in reversed(own + teams)]
    assert "Client of sara" not in html


def test_offer_list_filters_by_state_and_names_numbers(app, client, make_user, login):
    anna = user_with(make_user, "anna", "salesperson")
    drafts = add_offers(anna, 2)
    sent = add_offers(anna, 1, start=2, number="OFFER/2026/0007", state="sent")[0]
    revised = add_offers(anna, 1, start=3, number="OFFER/2026/0009", revision=2,
                         state="sent")[0]
    login(client, anna)
    html = client.get("/documents/offers?state=sent").get_data(as_text=True)
    assert offer_ids(html) == [revised.id, sent.id]
    assert "OFFER/2026/0009 rev. 2" in html and "OFFER/2026/0007" in html
    html = client.get("/documents/offers?state=draft").get_data(as_text=True)
    assert offer_ids(html) == [drafts[1].id, drafts[0].id]
    assert f"Draft #{drafts[0].id}" in html
    # An unknown state is no filter at all.
    assert len(offer_ids(client.get("/documents/offers?state=nope").get_data(as_text=True))) == 4


def test_offer_list_is_translated_and_formatted_for_the_user(app, client, make_user, login):
    anna = make_user("anna", locale="ru")
    assign_roles(anna, "salesperson")
    offer = add_offers(anna, 1)[0]
    login(client, anna)
    html = client.get("/documents/offers").get_data(as_text=True)
    with app.test_request_context(), force_locale("ru"):
        assert format_money(offer.amount_total, "EUR") in html
        assert format_date(offer.offer_date) in html
        assert svc.display_number(offer) in html
        assert svc.state_label("draft") in html


def test_offer_list_escapes_client_names(app, client, make_user, login):
    anna = user_with(make_user, "anna", "salesperson")
    offer = add_offers(anna, 1)[0]
    db.session.get(Partner, offer.partner_id).name = "<b>Kalns</b>"
    db.session.commit()
    login(client, anna)
    html = client.get("/documents/offers").get_data(as_text=True)
    assert "&lt;b&gt;Kalns&lt;/b&gt;" in html and "<b>Kalns" not in html


def test_offer_list_runs_the_same_few_queries_for_any_number_of_rows(app, client, make_user,
                                                                      login):
    anna = user_with(make_user, "anna", "salesperson")
    add_offers(anna, 2)
    login(client, anna)
    client.get("/documents/offers")
    with statements() as few:
        client.get("/documents/offers")
    for i, offer in enumerate(add_offers(anna, 40, start=2)):
        if i % 2:  # another client for every other offer: names come in the same query
            offer.partner_id = make_partner(f"P{i}").id
    db.session.commit()
    with statements() as many:
        client.get("/documents/offers")
    assert len(many) == len(few) <= 4


# -- products ----------------------------------------------------------------------------------
def test_product_list_shows_todays_price_stock_and_pages(app, client, make_user, login):
    today = date.today()
    make_product("A-1", prices={today - timedelta(days=400): "8.00",
                                today - timedelta(days=10): "9.50",
                                today + timedelta(days=5): "99.00"}, stock="1234.5")
    make_product("A-2", prices={today + timedelta(days=5): "7.00"})  # not yet priced
    make_product("A-3", prices={today: "0"})
    make_product("A-4", prices={today: "5.00"}, currency="USD")
    for i in range(60):
        make_product(f"B-{i:02d}")
    db.session.commit()
    login(client, user_with(make_user, "mara", "sales_manager"))
    html = client.get("/documents/products").get_data(as_text=True)
    row = re.search(r"A-1</a>.*?</tr>", html, re.S).group(0)
    assert "€9.50" in row and "99.00" not in row and "1,234.5" in row
    row = re.search(r"A-2</a>.*?</tr>", html, re.S).group(0)
    assert "No price" in row and "Not tracked" in row
    assert "€0.00" in re.search(r"A-3</a>.*?</tr>", html, re.S).group(0)
    assert "No price" in re.search(r"A-4</a>.*?</tr>", html, re.S).group(0)
    assert "Page 1 of 2" in html
    assert len(re.findall(r'href="/documents/products/\d+"', html)) == 50
    second = client.get("/documents/products?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second and "B-59" in second and "A-1<" not in second
    found = client.get("/documents/products?q=a-").get_data(as_text=True)
    assert all(f"A-{i}<" in found for i in range(1, 5)) and "B-00" not in found
    assert 'class="pager"' not in found  # one page: no pager
    past = client.get("/documents/products?q=b-&page=4").get_data(as_text=True)
    assert "No products yet." in past and "of 2" in past


def test_product_list_runs_the_same_few_queries_for_any_number_of_rows(app, client, make_user,
                                                                        login):
    make_product("A-1")
    db.session.commit()
    login(client, user_with(make_user, "mara", "sales_manager"))
    client.get("/documents/products")
    with statements() as few:
        client.get("/documents/products")
    for i in range(30):
        make_product(f"B-{i:02d}", prices={date(2020, 1, 1): "1", date(2021, 1, 1): "2"})
    db.session.commit()
    with statements() as many:
        client.get("/documents/products")
    assert len(many) == len(few) <= 4



def test_product_rows_show_every_column_escaped_and_formatted(app, client, make_user, login):
    typed = make_product("<i>X-1</i>", prices={date(2020, 1, 1): "1234.5"}, stock="12.5")
    typed.name, typed.unit = "Bolt & <b>nut</b>", "<kg>"
    priceless = make_product("Y-2", currency="USD")  # no price in the company currency
    priceless.active = False
    db.session.commit()
    login(client, user_with(make_user, "mara", "sales_manager"))
    html = client.get("/documents/products").get_data(as_text=True)
    rows = {re.sub(r"\s+", " ", r).strip() for r in re.findall(r"<tr>(.*?)</tr>", html, re.S)}
    assert (f'<td><a href="/documents/products/{typed.id}">&lt;i&gt;X-1&lt;/i&gt;</a></td> '
            '<td>Bolt &amp; &lt;b&gt;nut&lt;/b&gt;</td><td>&lt;kg&gt;</td> '
            '<td class="num">€1,234.50</td> <td class="num">12.5</td> <td>Yes</td>') in rows
    assert (f'<td><a href="/documents/products/{priceless.id}">Y-2</a></td> '
            '<td>Product Y-2</td><td>pcs</td> <td class="num"><span class="muted">No price'
            '</span></td> <td class="num"><span class="muted">Not tracked</span></td> '
            '<td>No</td>') in rows
    assert "<i>X-1" not in html and "<b>nut" not in html


def test_an_empty_product_list_says_so(app, client, make_user, login):
    login(client, user_with(make_user, "mara", "sales_manager"))
    html = client.get("/documents/products").get_data(as_text=True)
    assert '<td colspan="6" class="muted">No products yet.</td>' in html
