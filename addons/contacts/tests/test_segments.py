"""ABC segments by revenue (hand-computed cases), the revenue signal, the periodic job, and
static/dynamic segments other addons target."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.contacts import segments
from addons.contacts.models import Partner
from addons.contacts.segment_models import Segment
from addons.contacts.segments import (
    add_members,
    compute_abc,
    recompute_segments,
    remove_members,
    segment_members,
)
from addons.contacts.services import refresh_search
from addons.contacts.signals import collect_revenue
from core.api import Currency, assign_roles, db, set_exchange_rate
from core.jobs import get_jobs
from core.testing import csrf_token

pytestmark = pytest.mark.addons("contacts")
D = Decimal


def test_abc_follows_the_cumulative_share_before_each_client():
    revenue = {1: D(50), 2: D(30), 3: D(10), 4: D(5), 5: D(3), 6: D(2), 7: D(0), 8: D(-5)}
    # Total 100. Before 1: 0 % -> A; before 2: 50 % -> A; before 3: 80 % -> not under 80 -> B;
    # before 4: 90 % -> B; before 5: 95 % -> not under 95 -> C; before 6: 98 % -> C.
    assert compute_abc(revenue) == {1: "A", 2: "A", 3: "B", 4: "B", 5: "C", 6: "C"}


def test_abc_thresholds_are_configurable():
    revenue = {1: D(50), 2: D(30), 3: D(10), 4: D(5), 5: D(3), 6: D(2)}
    # A = 50 %, B = 30 %: before 2 is 50 % (not under 50) -> B; before 3 is 80 % -> C.
    assert compute_abc(revenue, 50, 30) == {1: "A", 2: "B", 3: "C", 4: "C", 5: "C", 6: "C"}


def test_equal_revenue_shares_the_class_of_the_first_of_the_tie():
    # Before the tie group (2, 3): 60 % < 70 % -> both A, although 3 alone would start at 80 %.
    assert compute_abc({1: D(60), 2: D(20), 3: D(20)}, 70, 20) == {1: "A", 2: "A", 3: "A"}
    # 40/40/20 with A = 50, B = 30: both 40s are A; before 3 is exactly 80 % -> C.
    assert compute_abc({1: D(40), 2: D(40), 3: D(20)}, 50, 30) == {1: "A", 2: "A", 3: "C"}


def test_no_revenue_at_all_gives_no_classes():
    assert compute_abc({1: D(0), 2: D(0)}) == {}
    assert compute_abc({}) == {}


def make(name: str, **fields) -> Partner:
    p = Partner(kind="person", name=name, first_name=name, **fields)
    refresh_search(p)
    return p


@pytest.fixture
def clients(app):
    people = [make(n) for n in ("Alpha", "Bravo", "Charlie", "Delta")]
    people[3].segment = "A"  # an old class: no revenue now, so it must be cleared
    db.session.add(Currency(code="USD", decimals=2))
    db.session.commit()
    return people


def test_recompute_sums_every_receiver_converts_currencies_and_stores_classes(app, clients):
    alpha, bravo, charlie, delta = clients
    set_exchange_rate("USD", "0.5", date(2025, 1, 1))
    db.session.commit()
    seen = []

    def deals(sender, start, end, currency, **_kw):
        seen.append((start, end, currency))
        return {alpha.id: D(600), bravo.id: {"USD": D(400)}}  # 400 USD = 200 EUR

    def loyalty(sender, start, end, currency, **_kw):
        return {charlie.id: D(100), bravo.id: D(100)}

    collect_revenue.connect(deals)
    collect_revenue.connect(loyalty)
    try:
        result = recompute_segments(start=date(2025, 1, 1), end=date(2026, 1, 1))
        db.session.commit()
    finally:
        collect_revenue.disconnect(deals)
        collect_revenue.disconnect(loyalty)
    assert seen == [(date(2025, 1, 1), date(2026, 1, 1), "EUR")]
    # Alpha 600 (0 % before -> A), Bravo 300 (60 % -> A), Charlie 100 (90 % -> B).
    db.session.expire_all()
    assert [p.segment for p in clients] == ["A", "A", "B", None]
    assert (result["A"], result["B"], result["C"], result["total"]) == (2, 1, 0, "1000.00")
    assert result["changed"] == 4
    assert [p.id for p in db.session.scalars(segment_members("a"))] == [alpha.id, bravo.id]


def test_a_currency_without_rate_is_reported_not_guessed(app, clients):
    def receiver(sender, **_kw):
        return {clients[0].id: {"USD": D(10)}, clients[1].id: D(5)}

    collect_revenue.connect(receiver)
    try:
        result = recompute_segments(start=date(2025, 1, 1), end=date(2025, 2, 1))
        db.session.commit()
    finally:
        collect_revenue.disconnect(receiver)
    assert result["missing_rates"] == ["USD"]
    assert clients[0].segment is None and clients[1].segment == "A"


def test_the_periodic_job_is_registered_and_runs(app, clients):
    jobs = get_jobs(app)
    assert segments.JOB_NAME in jobs.registered()
    assert segments.JOB_NAME in jobs.periodic_due(datetime(2026, 3, 1, 2, 30))
    assert segments.JOB_NAME not in jobs.periodic_due(datetime(2026, 3, 1, 3, 30))

    def receiver(sender, **_kw):
        return {clients[2].id: D(1)}

    collect_revenue.connect(receiver)
    try:
        segments.recompute_segments_job()
    finally:
        collect_revenue.disconnect(receiver)
    db.session.expire_all()
    assert [p.segment for p in clients] == [None, None, "A", None]
    assert segments.settings().last_result["A"] == 1


def test_dynamic_segment_membership_follows_the_filter(app):
    riga = make("Līga", city="Rīga", status="client")
    make("Jānis", city="Rīga", status="lead")
    make("Ion", city="Chișinău", status="client")
    db.session.commit()
    vip = Segment(name="Rīga clients", kind="dynamic", query={"city": "rīga",
                                                              "status": ["client"]})
    db.session.add(vip)
    db.session.commit()
    assert [p.name for p in db.session.scalars(segment_members(vip))] == ["Līga"]
    riga.status = "inactive"
    newcomer = make("Anna", city="Rīga", status="client")
    db.session.commit()
    assert [p.id for p in db.session.scalars(segment_members(vip.id))] == [newcomer.id]


def test_dynamic_segment_understands_search_and_tags(app):
    from addons.contacts.models import Tag

    berzins = make("Bērziņš")
    make("Kalniņš")
    tag = Tag(name="vip")
    db.session.add(tag)
    berzins.tags.append(tag)
    db.session.commit()
    by_text = Segment(name="b", kind="dynamic", query={"q": "berzins"})
    by_tag = Segment(name="t", kind="dynamic", query={"tag": tag.id})
    db.session.add_all([by_text, by_tag])
    db.session.commit()
    assert [p.id for p in db.session.scalars(segment_members(by_text))] == [berzins.id]
    assert [p.id for p in db.session.scalars(segment_members(by_tag))] == [berzins.id]


def test_static_segment_holds_the_chosen_contacts(app):
    a, b = make("A"), make("B")
    db.session.commit()
    chosen = Segment(name="Coupon", kind="static")
    db.session.add(chosen)
    db.session.commit()
    assert add_members(chosen, [a.id, b.id, a.id, 999999]) == 2
    assert add_members(chosen, [a.id]) == 0
    assert remove_members(chosen, [b.id]) == 1
    db.session.commit()
    assert [p.id for p in db.session.scalars(segment_members(chosen))] == [a.id]
    with pytest.raises(LookupError):
        segment_members(424242)


def test_segments_page_saves_settings_and_recomputes_on_demand(app, client, make_user, login):
    manager = make_user("manager")
    assign_roles(manager, "sales_manager")
    login(client, manager)
    page = client.get("/contacts/segments")
    assert page.status_code == 200
    token = csrf_token(client, "/contacts/segments")
    bad = client.post("/contacts/segments/settings", data={
        "csrf_token": token, "a_share": "90", "b_share": "20", "period_days": "365"})
    assert bad.status_code == 302
    db.session.expire_all()
    assert segments.settings().a_share == D(80)  # 90 + 20 > 100: refused
    client.post("/contacts/segments/settings", data={
        "csrf_token": token, "a_share": "70,5", "b_share": "20", "period_days": "90"})
    db.session.expire_all()
    config = segments.settings()
    assert (config.a_share, config.b_share, config.period_days) == (D("70.5"), D(20), 90)
    assert client.post("/contacts/segments/recompute",
                       data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert segments.settings().last_run_at is not None
    created = client.post("/contacts/segments/new", data={
        "csrf_token": token, "name": "Leads", "kind": "dynamic", "query": "?status=lead&page=3"})
    assert created.status_code == 302
    assert db.session.scalar(select(Segment.query).where(Segment.name == "Leads")) == {
        "status": "lead"}


def test_a_salesperson_cannot_change_segment_settings(app, client, make_user, login):
    seller = make_user("seller")
    assign_roles(seller, "salesperson")
    login(client, seller)
    assert client.get("/contacts/segments").status_code == 200
    token = csrf_token(client, "/contacts/segments")
    assert client.post("/contacts/segments/recompute",
                       data={"csrf_token": token}).status_code == 404


def test_owner_me_in_a_dynamic_segment_means_its_author(app, make_user):
    author, other = make_user("author"), make_user("other")
    mine = make("Mine", owner_id=author.id)
    make("Theirs", owner_id=other.id)
    db.session.commit()
    segment = Segment(name="My clients", kind="dynamic", query={"owner": "me"},
                      created_by_id=author.id)
    orphan = Segment(name="Nobody's", kind="dynamic", query={"owner": "me"})
    db.session.add_all([segment, orphan])
    db.session.commit()
    assert [p.id for p in db.session.scalars(segment_members(segment))] == [mine.id]
    assert list(db.session.scalars(segment_members(orphan))) == []


def _listed(client, query: str) -> set[str]:
    import re

    html = client.get("/contacts/?" + query).get_data(as_text=True)
    return set(re.findall(r'<tr id="partner-\d+">\s*<td>.*?</td>\s*<td><a href="[^"]+">'
                          r'([^<]+)</a>', html, re.S))


def test_a_manager_fills_a_static_segment_from_the_list_and_filters_by_it(app, client,
                                                                         make_user, login):
    manager = make_user("manager")
    assign_roles(manager, "sales_manager")
    anna, boris, _ = make("Anna"), make("Boris"), make("Chen")
    for person in (anna, boris):
        person.owner_id = manager.id
    coupon = Segment(name="Coupon", kind="static")
    riga = Segment(name="Rīga", kind="dynamic", query={"city": "Rīga"})
    db.session.add_all([coupon, riga])
    db.session.commit()
    login(client, manager)
    html = client.get("/contacts/").get_data(as_text=True)
    assert '<option value="segment">Add to segment</option>' in html
    assert f'<option value="{coupon.id}">Coupon</option>' in html  # static: fillable
    response = client.post("/contacts/bulk", data={
        "csrf_token": csrf_token(client, "/contacts/"), "action": "segment",
        "segment_id": str(coupon.id), "ids": [str(anna.id), str(boris.id)],
        "next": "/contacts/"}, follow_redirects=True)
    assert "2 contacts added to Coupon." in response.get_data(as_text=True)
    assert _listed(client, f"in_segment={coupon.id}") == {"Anna", "Boris"}
    refused = client.post("/contacts/bulk", data={
        "csrf_token": csrf_token(client, "/contacts/"), "action": "segment",
        "segment_id": str(riga.id), "ids": [str(anna.id)], "next": "/contacts/"},
        follow_redirects=True)
    assert "Choose a segment whose members are picked by hand." in refused.get_data(
        as_text=True)
    page = client.get(f"/contacts/segments/{coupon.id}").get_data(as_text=True)
    assert f'href="/contacts/?in_segment={coupon.id}"' in page


def test_a_salesperson_filters_by_a_segment_but_cannot_fill_one(app, client, make_user,
                                                                login):
    seller = make_user("seller")
    assign_roles(seller, "salesperson")  # own contacts only
    mine, theirs = make("Mine"), make("Theirs")
    mine.owner_id = seller.id
    coupon = Segment(name="Coupon", kind="static")
    db.session.add(coupon)
    db.session.commit()
    add_members(coupon, [mine.id, theirs.id])
    db.session.commit()
    login(client, seller)
    html = client.get("/contacts/").get_data(as_text=True)
    assert '<option value="segment">' not in html and 'name="in_segment"' in html
    assert _listed(client, f"in_segment={coupon.id}") == {"Mine"}  # record rules still apply
    response = client.post("/contacts/bulk", data={
        "csrf_token": csrf_token(client, "/contacts/"), "action": "segment",
        "segment_id": str(coupon.id), "ids": [str(mine.id)]})
    assert response.status_code == 404


def test_a_dynamic_segment_may_filter_on_another_segment_but_not_on_itself(app):
    a, b = make("A", city="Rīga"), make("B", city="Rīga")
    db.session.commit()
    coupon = Segment(name="Coupon", kind="static")
    db.session.add(coupon)
    db.session.commit()
    add_members(coupon, [a.id])
    riga_coupon = Segment(name="Rīga coupon", kind="dynamic",
                          query={"city": "Rīga", "in_segment": coupon.id})
    db.session.add(riga_coupon)
    db.session.commit()
    assert [p.id for p in db.session.scalars(segment_members(riga_coupon))] == [a.id]
    loop = Segment(name="Loop", kind="dynamic", query={"city": "Rīga"})
    db.session.add(loop)
    db.session.commit()
    loop.query = {"city": "Rīga", "in_segment": loop.id}
    db.session.commit()
    assert list(db.session.scalars(segment_members(loop))) == []
    assert b.id not in [p.id for p in db.session.scalars(segment_members(riga_coupon))]
