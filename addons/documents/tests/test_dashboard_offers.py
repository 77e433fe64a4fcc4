"""The start page's "Offers" card: the salesperson's own sent offers awaiting an answer and
those whose validity ends within a week, linked to the offer list with the same filters
(`owner=me`, `expiring=N`), a constant number of queries, no card without `documents.read`."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.documents import offers as svc
from addons.documents.models import Offer
from addons.documents.tests.test_offers import make_partner
from core.api import User, assign_roles, db
from core.testing import dashboard_card, grant, statements

pytestmark = pytest.mark.addons("documents")


def card(html: str) -> str:
    return dashboard_card(html, "offers")


_numbers = iter(range(1, 10_000))


def offer(owner, *, state="sent", valid_in: int | None = 30, client="Acme") -> Offer:
    partner = make_partner(f"{client} {next(_numbers)}", owner_id=owner.id)
    today = svc.local_today()
    found = Offer(partner_id=partner.id, owner_id=owner.id, currency="EUR", lang="en",
                  seller_country="LV", offer_date=today - timedelta(days=3), is_current=True,
                  state=state, revision=1, number=f"OF-{next(_numbers)}",
                  valid_until=None if valid_in is None else today + timedelta(days=valid_in),
                  amount_untaxed=Decimal("100.00"), amount_tax=Decimal("21.00"),
                  amount_total=Decimal("121.00"), created_at=datetime.now(UTC))
    db.session.add(found)
    db.session.commit()
    return found


def listed(client, url: str) -> list[int]:
    html = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
    return [int(i) for i in re.findall(r'href="/documents/offers/(\d+)"', html)]


def test_card_counts_own_waiting_offers_and_those_ending_soon(app, client, login, salespeople):
    anna, olga = salespeople["anna"], salespeople["olga"]
    later = offer(anna, valid_in=30)
    soon = offer(anna, valid_in=2, client="Soon Ltd")
    today = offer(anna, valid_in=0, client="Today Ltd")
    offer(anna, valid_in=-1)  # already ended: waiting, not "ending"
    offer(anna, state="draft", valid_in=1)  # not sent
    offer(anna, state="accepted", valid_in=1)  # answered
    theirs = offer(olga, valid_in=1, client="Theirs")
    login(client, anna)
    html = card(client.get("/").get_data(as_text=True))
    assert "4 sent offers awaiting an answer" in html
    assert "2 end their validity within 7 days" in html
    assert html.index("Today Ltd") < html.index("Soon Ltd")
    assert "Theirs" not in html
    sent_url = re.search(r'href="(/documents/offers\?state=sent&amp;owner=me)"', html).group(1)
    soon_url = re.search(r'href="(/documents/offers\?state=sent&amp;owner=me&amp;'
                         r'expiring=7)"', html).group(1)
    assert later.id in listed(client, sent_url) and theirs.id not in listed(client, sent_url)
    assert len(listed(client, sent_url)) == 4
    assert sorted(listed(client, soon_url)) == sorted([soon.id, today.id])


def test_offer_list_filters_by_owner_and_ending_validity_for_a_manager(app, client, login,
                                                                      salespeople, make_user):
    boss = make_user("boss")
    assign_roles(boss, "administrator")
    db.session.commit()
    mine = offer(boss, valid_in=3)
    theirs = offer(salespeople["anna"], valid_in=3)
    far = offer(boss, valid_in=20)
    login(client, boss)
    assert sorted(listed(client, "/documents/offers?state=sent")) == sorted(
        [mine.id, theirs.id, far.id])
    assert sorted(listed(client, "/documents/offers?owner=me")) == sorted([mine.id, far.id])
    assert listed(client, "/documents/offers?owner=me&expiring=7") == [mine.id]
    page = client.get("/documents/offers?owner=me&expiring=7").get_data(as_text=True)
    assert "Only my offers." in page  # the state links keep the filters
    assert 'href="/documents/offers?state=sent&amp;owner=me&amp;expiring=7"' in page


def test_card_is_kind_when_nothing_waits(app, client, login, salespeople):
    offer(salespeople["olga"], valid_in=1)
    login(client, salespeople["anna"])
    html = card(client.get("/").get_data(as_text=True))
    assert "No offers waiting for an answer." in html


def test_user_without_documents_permission_sees_no_card(app, client, login, make_user):
    user = make_user("guest")
    grant(user, "contacts.read")
    db.session.commit()
    login(client, user)
    assert 'id="dash-offers"' not in client.get("/").get_data(as_text=True)


def test_home_page_queries_do_not_grow_with_offers(app, client, login, salespeople):
    anna = salespeople["anna"]
    offer(anna, valid_in=1)
    login(client, anna)
    client.get("/")
    with statements() as few:
        client.get("/")
    for number in range(25):
        offer(anna, valid_in=number % 9)
    with statements() as many:
        html = card(client.get("/").get_data(as_text=True))
    assert "26 sent offers awaiting an answer" in html
    assert len(many) == len(few)


def test_expiring_filter_ignores_nonsense(app, client, login, salespeople):
    anna = salespeople["anna"]
    found = offer(anna, valid_in=100)
    login(client, anna)
    assert listed(client, "/documents/offers?expiring=abc") == [found.id]
    assert listed(client, "/documents/offers?expiring=-3") == [found.id]


def test_demo_gives_every_card_something_to_show(demo_app, login):
    with demo_app.app_context():
        client = demo_app.test_client()
        login(client, db.session.scalar(select(User).where(User.login == "admin")))
        html = client.get("/").get_data(as_text=True)
    assert "1 activity overdue" in html and "2 activities due today" in html
    assert "new leads waiting for a salesperson" in html
    assert "open deal" in html
    assert "1 ends its validity within 7 days" in html
