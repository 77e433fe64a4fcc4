"""Offer services: lines and totals, dated prices and VAT, states, numbers, revisions, stock.

The helpers at the top are shared by the other offers tests (imported from this module).
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.documents import offers as svc
from addons.documents.models import Offer, OfferLine, Product, ProductPrice
from core.api import TimelineEntry, db, seed_reference_data

pytestmark = pytest.mark.addons("documents")

D = Decimal


# -- shared builders -------------------------------------------------------------------------
def make_partner(name: str = "SIA Kalns", *, lang: str | None = "lv", kind: str = "company",
                 owner_id: int | None = None) -> Partner:
    partner = Partner(kind=kind, name=name, lang=lang, country="LV", owner_id=owner_id)
    db.session.add(partner)
    db.session.flush()
    return partner


def make_product(sku: str = "SKU-1", *, prices: dict[date, str] | None = None,
                 currency: str = "EUR", stock: str | None = None,
                 category: str = "standard", names: dict | None = None) -> Product:
    product = Product(sku=sku, name=f"Product {sku}", names=names or {}, descriptions={},
                      unit="pcs", vat_category=category, track_stock=stock is not None,
                      stock=D(stock) if stock is not None else None, active=True)
    db.session.add(product)
    db.session.flush()
    for day, price in (prices or {date(2020, 1, 1): "100.00"}).items():
        db.session.add(ProductPrice(product_id=product.id, currency=currency,
                                    price=D(price), valid_from=day))
    db.session.flush()
    return product


def draft(partner: Partner | None = None, **kwargs) -> Offer:
    """A draft offer with the reference data (VAT rates) seeded."""
    seed_reference_data()
    return svc.create_offer(partner or make_partner(), **kwargs)


def timeline_subjects(offer: Offer) -> list[str]:
    return list(db.session.scalars(
        select(TimelineEntry.subject).where(TimelineEntry.model == svc.MODEL,
                                            TimelineEntry.record_id == offer.id,
                                            TimelineEntry.kind == "system")
        .order_by(TimelineEntry.id)))


# -- creating, lines, totals -----------------------------------------------------------------
def test_new_offer_takes_the_clients_language_and_has_no_number(app):
    offer = draft(make_partner(lang="ru"))
    db.session.commit()
    assert offer.lang == "ru"
    assert offer.number is None
    assert offer.state == "draft"
    assert timeline_subjects(offer) == ["Offer created"]


def test_product_line_uses_the_price_valid_on_the_offer_date(app):
    product = make_product(prices={date(2025, 1, 1): "10.00", date(2026, 1, 1): "12.00"})
    offer = draft(offer_date=date(2025, 12, 31))
    line = svc.add_line(offer, product=product, quantity="3")
    assert line.unit_price == D("10.00")
    assert line.price_date == date(2025, 1, 1)
    later = draft(offer_date=date(2026, 1, 1))
    assert svc.add_line(later, product=product).unit_price == D("12.00")


def test_a_drafts_new_currency_or_date_reprices_its_price_list_lines(app):
    product = make_product(prices={date(2020, 1, 1): "100.00", date(2026, 6, 1): "120.00"})
    db.session.add(ProductPrice(product_id=product.id, currency="USD", price=D("110.00"),
                                valid_from=date(2020, 1, 1)))
    offer = draft(offer_date=date(2026, 3, 1), currency="EUR")
    line = svc.add_line(offer, product=product)
    typed = svc.add_line(offer, product=product, unit_price="90.00")  # a price given by hand
    svc.update_offer(offer, currency="USD")
    assert (line.unit_price, typed.unit_price) == (D("110.00"), D("90.00"))
    svc.update_offer(offer, currency="EUR", offer_date=date(2026, 7, 1))
    assert (line.unit_price, line.price_date) == (D("120.00"), date(2026, 6, 1))
    assert offer.amount_untaxed == D("210.00")
    with pytest.raises(svc.OfferError, match="has no price in GBP"):
        svc.update_offer(offer, currency="GBP")


def test_a_drafts_new_date_takes_the_vat_rate_in_force_unless_typed_by_hand(app):
    product = make_product()
    offer = draft(offer_date=date(2025, 12, 15), seller_country="KZ")
    line = svc.add_line(offer, product=product)
    zero = svc.add_line(offer, product=product, vat_rate="0")
    assert (line.vat_rate, zero.vat_rate) == (D("12"), D("0"))
    svc.update_offer(offer, offer_date=date(2026, 1, 10))
    assert (line.vat_rate, zero.vat_rate) == (D("16"), D("0"))


def test_product_line_in_a_currency_without_price_is_refused(app):
    product = make_product()
    offer = draft(currency="USD", offer_date=date(2026, 1, 1))
    with pytest.raises(svc.OfferError, match="no price in USD"):
        svc.add_line(offer, product=product)


@pytest.mark.parametrize(("country", "day", "rate", "tax"), [
    ("RO", date(2025, 7, 31), D("19"), D("19.00")),
    ("RO", date(2025, 8, 1), D("21"), D("21.00")),
    ("KZ", date(2025, 12, 31), D("12"), D("12.00")),
    ("KZ", date(2026, 1, 1), D("16"), D("16.00")),
])
def test_line_vat_is_the_sellers_rate_on_the_offer_date(app, country, day, rate, tax):
    product = make_product()
    offer = draft(seller_country=country, offer_date=day)
    line = svc.add_line(offer, product=product)
    assert line.vat_rate == rate
    assert offer.amount_tax == tax
    assert offer.amount_total == D("100.00") + tax


def test_totals_are_stored_per_the_rounding_rule(app):
    offer = draft(offer_date=date(2026, 3, 1))
    svc.add_line(offer, description="Consulting", quantity="1", unit_price="0.005",
                 vat_rate="21")
    svc.add_line(offer, description="Setup", quantity="2", unit_price="10.00", discount="100",
                 vat_rate="21")
    svc.add_line(offer, description="Books", quantity="3", unit_price="3.335", vat_rate="12")
    db.session.commit()
    nets = [line.amount_untaxed for line in offer.lines]
    assert nets == [D("0.01"), D("0.00"), D("10.01")]  # 10.005 → 10.01 (half-up)
    groups = {g.rate: (g.base, g.tax) for g in svc.totals_of(offer).groups}
    assert groups == {D("12"): (D("10.01"), D("1.20")), D("21"): (D("0.01"), D("0.00"))}
    assert (offer.amount_untaxed, offer.amount_tax, offer.amount_total) == (
        D("10.02"), D("1.20"), D("11.22"))


def test_free_text_line_needs_description_and_price(app):
    offer = draft()
    with pytest.raises(svc.OfferError):
        svc.add_line(offer, description="", unit_price="1")
    with pytest.raises(svc.OfferError):
        svc.add_line(offer, description="Travel")
    line = svc.add_line(offer, description="Travel", unit_price="50")
    assert line.product_id is None
    assert line.vat_rate == D("21")  # LV standard rate by default


@pytest.mark.parametrize("bad", [{"quantity": "0"}, {"discount": "101"}, {"discount": "-1"},
                                 {"unit_price": "-5"}, {"vat_rate": "120"},
                                 {"quantity": "abc"}])
def test_invalid_line_values_are_refused(app, bad):
    offer = draft()
    values = {"description": "Item", "unit_price": "10", **bad}
    with pytest.raises(svc.OfferError):
        svc.add_line(offer, **values)


def test_line_uses_product_name_in_the_document_language(app):
    product = make_product(names={"lv": "Logs", "ru": "Окно"})
    offer = draft(make_partner(lang="ru"))
    assert svc.add_line(offer, product=product).description == "Окно"


# -- price changes ---------------------------------------------------------------------------
def test_new_price_never_changes_a_sent_offer(app):
    product = make_product(prices={date(2025, 1, 1): "100.00"})
    offer = draft(offer_date=date(2026, 2, 1))
    svc.add_line(offer, product=product)
    svc.change_state(offer, "sent")
    db.session.commit()
    db.session.add(ProductPrice(product_id=product.id, currency="EUR", price=D("150"),
                                valid_from=date(2026, 1, 15)))
    db.session.commit()
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    assert offer.lines[0].unit_price == D("100.00")
    assert offer.amount_untaxed == D("100.00")
    assert svc.outdated_prices(offer, today=date(2026, 2, 1)) == []  # only drafts warn
    with pytest.raises(svc.OfferError):
        svc.add_line(offer, description="Extra", unit_price="1")


def test_draft_warns_when_a_line_price_is_older_than_the_current_price(app):
    product = make_product(prices={date(2025, 1, 1): "100.00"})
    other = make_product("SKU-2")
    offer = draft(offer_date=date(2026, 2, 1))
    line = svc.add_line(offer, product=product)
    svc.add_line(offer, product=other)
    assert svc.outdated_prices(offer, today=date(2026, 2, 1)) == []
    db.session.add(ProductPrice(product_id=product.id, currency="EUR", price=D("120"),
                                valid_from=date(2026, 2, 1)))
    db.session.flush()
    warnings = svc.outdated_prices(offer, today=date(2026, 2, 1))
    assert [(w.line.id, w.current_price, w.current_from) for w in warnings] == [
        (line.id, D("120"), date(2026, 2, 1))]
    assert line.unit_price == D("100.00")  # a warning, not a silent change
    svc.refresh_price(offer, line, today=date(2026, 2, 1))
    assert line.unit_price == D("120")
    assert svc.outdated_prices(offer, today=date(2026, 2, 1)) == []


# -- states ----------------------------------------------------------------------------------
def test_every_state_change_is_logged_on_the_timeline(app):
    offer = draft()
    svc.add_line(offer, description="Item", unit_price="10")
    for state in ("sent", "accepted", "placed", "paid", "delivered"):
        svc.change_state(offer, state)
    db.session.commit()
    assert offer.state == "delivered"
    assert timeline_subjects(offer) == [
        "Offer created", "State: Draft → Sent", "State: Sent → Accepted",
        "State: Accepted → Order placed", "State: Order placed → Paid",
        "State: Paid → Delivered"]


def test_declined_is_final(app):
    offer = draft()
    svc.add_line(offer, description="Item", unit_price="10")
    svc.change_state(offer, "sent")
    svc.change_state(offer, "declined")
    assert svc.allowed_states(offer) == ()
    with pytest.raises(svc.OfferError, match="cannot go from Declined to Accepted"):
        svc.change_state(offer, "accepted")


@pytest.mark.parametrize(("path", "illegal"), [
    ((), "accepted"), ((), "paid"), (("sent",), "placed"), (("sent",), "draft"),
    (("sent", "accepted"), "delivered"), (("sent", "accepted"), "declined"),
    (("sent", "accepted", "placed"), "sent"), ((), "nonsense"),
])
def test_illegal_transitions_are_refused(app, path, illegal):
    offer = draft()
    svc.add_line(offer, description="Item", unit_price="10")
    for state in path:
        svc.change_state(offer, state)
    before = offer.state
    with pytest.raises(svc.OfferError, match="An offer cannot go from"):
        svc.change_state(offer, illegal)
    assert offer.state == before


def test_an_empty_offer_cannot_be_sent(app):
    offer = draft()
    with pytest.raises(svc.OfferError, match="at least one line"):
        svc.change_state(offer, "sent")
    assert offer.number is None


def test_refusal_message_goes_through_gettext(app, monkeypatch):
    """A pseudo-translation (every gettext'd text wrapped in «») reaches the user whole."""
    def pseudo(text, **values):
        return "«" + (text % values if values else text) + "»"

    monkeypatch.setattr(svc, "_", pseudo)
    offer = draft()
    with pytest.raises(svc.OfferError) as caught:
        svc.change_state(offer, "paid")
    assert str(caught.value) == "«An offer cannot go from Draft to Paid.»"


# -- numbers ---------------------------------------------------------------------------------
def send(offer: Offer) -> Offer:
    if not offer.lines:
        svc.add_line(offer, description="Item", unit_price="10")
    return svc.change_state(offer, "sent")


def test_numbers_are_given_when_sent_and_abandoned_drafts_leave_no_gap(app):
    first = draft(offer_date=date(2026, 3, 1))
    abandoned = draft(offer_date=date(2026, 3, 1))
    third = draft(offer_date=date(2026, 3, 2))
    db.session.commit()
    send(third)
    db.session.commit()
    db.session.delete(abandoned)
    db.session.commit()
    send(first)
    db.session.commit()
    assert (third.number, first.number) == ("OFFER/2026/0001", "OFFER/2026/0002")


def test_a_rolled_back_send_gives_its_number_back(app):
    offer = draft(offer_date=date(2026, 3, 1))
    other = draft(offer_date=date(2026, 3, 1))
    db.session.commit()
    send(offer)
    assert offer.number == "OFFER/2026/0001"
    db.session.rollback()
    offer = db.session.get(Offer, other.id)
    send(offer)
    db.session.commit()
    assert offer.number == "OFFER/2026/0001"


def test_numbers_follow_the_offer_year(app):
    a = send(draft(offer_date=date(2025, 12, 31)))
    b = send(draft(offer_date=date(2026, 1, 1)))
    assert (a.number, b.number) == ("OFFER/2025/0001", "OFFER/2026/0001")


# -- revisions -------------------------------------------------------------------------------
def test_reissuing_creates_a_revision_with_the_same_number(app):
    offer = send(draft(offer_date=date(2026, 3, 1)))
    db.session.commit()
    new = svc.revise(offer)
    svc.add_line(new, description="Extra", unit_price="5")
    db.session.commit()
    assert (new.number, new.revision, new.previous_id) == (offer.number, 2, offer.id)
    assert new.state == "draft" and new.is_current
    assert not offer.is_current and offer.state == "sent"
    assert [line.description for line in offer.lines] == ["Item"]  # frozen, readable
    assert offer.amount_untaxed == D("10.00")
    assert new.amount_untaxed == D("15.00")
    with pytest.raises(svc.OfferError):
        svc.add_line(offer, description="Late", unit_price="1")
    assert svc.allowed_states(offer) == ()
    svc.change_state(new, "sent")
    db.session.commit()
    assert new.number == offer.number  # no new number for a revision
    assert [o.revision for o in svc.revisions(new)] == [1, 2]
    assert svc.display_number(new) == f"{offer.number} rev. 2"


def test_only_a_current_sent_or_declined_offer_can_be_reissued(app):
    offer = draft()
    with pytest.raises(svc.OfferError):
        svc.revise(offer)
    send(offer)
    svc.revise(offer)
    with pytest.raises(svc.OfferError):
        svc.revise(offer)  # already replaced


# -- stock -----------------------------------------------------------------------------------
def test_confirming_an_order_beyond_stock_is_refused_until_resolved(app):
    tracked = make_product("SKU-T", stock="5")
    untracked = make_product("SKU-U")
    offer = draft()
    line = svc.add_line(offer, product=tracked, quantity="4")
    svc.add_line(offer, product=tracked, quantity="2")
    svc.add_line(offer, product=untracked, quantity="1000")
    issues = svc.stock_issues(offer)
    assert [(i.product.sku, i.requested, i.available) for i in issues] == [
        ("SKU-T", D("6"), D("5"))]
    db.session.flush()
    assert svc.flagged_line_ids(offer) == {line.id, offer.lines[1].id}
    send(offer)
    svc.change_state(offer, "accepted")
    with pytest.raises(svc.OfferError, match="Not enough stock"):
        svc.change_state(offer, "placed")
    assert offer.state == "accepted"
    tracked.stock = D("10")
    svc.change_state(offer, "placed")
    assert offer.state == "placed"
    assert tracked.stock == D("4")  # the order takes its quantities from stock


def test_update_refuses_expiry_before_the_offer_date(app):
    offer = draft(offer_date=date(2026, 3, 1))
    with pytest.raises(svc.OfferError):
        svc.update_offer(offer, valid_until=date(2026, 3, 1) - timedelta(days=1))


def test_removing_a_line_recomputes_totals(app):
    offer = draft()
    svc.add_line(offer, description="A", unit_price="10")
    line = svc.add_line(offer, description="B", unit_price="20")
    svc.remove_line(offer, line)
    db.session.commit()
    assert offer.amount_untaxed == D("10.00")
    assert db.session.scalar(select(OfferLine).where(OfferLine.id == line.id)) is None


def test_concurrent_sends_get_distinct_consecutive_numbers(app):
    """Five requests send five drafts at once: each waits for the sequence row, none
    shares or skips a number (the platform's gap-free sequence, inside each transaction)."""
    import threading

    ids = []
    for _ in range(5):
        offer = draft(offer_date=date(2026, 5, 1))
        svc.add_line(offer, description="Item", unit_price="10")
        ids.append(offer.id)
    db.session.commit()
    barrier = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def worker(offer_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                svc.change_state(db.session.get(Offer, offer_id), "sent")
                db.session.commit()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db.session.expire_all()
    numbers = sorted(db.session.scalars(select(Offer.number).where(Offer.id.in_(ids))))
    assert numbers == [f"OFFER/2026/{n:04d}" for n in range(1, 6)]
