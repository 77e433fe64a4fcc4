"""Totals, VAT per rate and rounding (the rule in `pricing`), dated prices and dated VAT."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from addons.documents.models import Product, ProductPrice
from addons.documents.pricing import (
    LineInput,
    compute_totals,
    currency_decimals,
    price_on,
    product_vat_rate,
)
from core.api import db, seed_reference_data

pytestmark = pytest.mark.addons("documents")

D = Decimal


def line(qty: str, price: str, discount: str = "0", vat: str = "21") -> LineInput:
    return LineInput(D(qty), D(price), D(discount), D(vat))


def test_half_cent_rounds_up_per_line_not_bankers(app):
    totals = compute_totals([line("1", "0.005"), line("1", "0.015"), line("1", "0.025")], "EUR")
    assert totals.line_nets == [D("0.01"), D("0.02"), D("0.03")]


def test_vat_is_rounded_once_per_rate_not_per_line(app):
    # 100 lines of 0.05 at 21 %: per line VAT would be 0.01 each (1.00); per rate it is 1.05.
    totals = compute_totals([line("1", "0.05")] * 100, "EUR")
    assert totals.untaxed == D("5.00")
    assert totals.tax == D("1.05")
    assert totals.total == D("6.05")


def test_totals_grouped_per_vat_rate_add_up(app):
    lines = [line("3", "19.99", vat="21"), line("2", "10.00", "10", vat="12"),
             line("1", "7.50", vat="0"), line("1", "0.10", vat="21")]
    totals = compute_totals(lines, "EUR")
    by_rate = {g.rate: (g.base, g.tax) for g in totals.groups}
    assert by_rate == {D("0"): (D("7.50"), D("0.00")), D("12"): (D("18.00"), D("2.16")),
                       D("21"): (D("60.07"), D("12.61"))}
    assert [g.rate for g in totals.groups] == [D("0"), D("12"), D("21")]
    assert totals.untaxed == D("85.57")
    assert totals.tax == D("14.77")
    assert totals.total == totals.untaxed + totals.tax


def test_full_discount_makes_a_free_line(app):
    totals = compute_totals([line("5", "99.99", "100"), line("1", "10")], "EUR")
    assert totals.line_nets == [D("0.00"), D("10.00")]
    assert totals.total == D("12.10")


def test_zero_decimal_currency_rounds_to_whole_units(app):
    assert currency_decimals("JPY") == 0
    totals = compute_totals([line("1", "100.5", vat="10"), line("3", "33.3", vat="10")], "JPY")
    assert totals.line_nets == [D("101"), D("100")]
    assert totals.tax == D("20")  # 201 × 10 % = 20.1 → 20
    assert totals.total == D("221")


def test_uzs_large_amounts_keep_exact_sums(app):
    seed_reference_data()
    places = currency_decimals("UZS")
    lines = [line("1000", "12345678.555", vat="12")] * 7
    totals = compute_totals(lines, "UZS")
    step = D(1).scaleb(-places)
    net = (D("12345678555")).quantize(step)
    assert totals.line_nets[0] == net
    assert totals.untaxed == net * 7
    assert totals.tax == (net * 7 * D("0.12")).quantize(step)


def test_many_lines_sum_exactly(app):
    lines = [line("1", "0.333") for _ in range(999)]
    totals = compute_totals(lines, "EUR")
    assert totals.untaxed == D("329.67")  # 999 × 0.33, never 999 × 0.333 rounded at the end
    assert totals.tax == D("69.23")


def make_product(sku: str = "P-1", category: str = "standard") -> Product:
    product = Product(sku=sku, name="Widget", names={}, descriptions={}, unit="pcs",
                      vat_category=category, track_stock=False, active=True)
    db.session.add(product)
    db.session.flush()
    return product


def test_price_valid_on_the_date_is_used(app):
    product = make_product()
    db.session.add_all([
        ProductPrice(product_id=product.id, currency="EUR", price=D("10"),
                     valid_from=date(2025, 1, 1)),
        ProductPrice(product_id=product.id, currency="EUR", price=D("12"),
                     valid_from=date(2026, 1, 1)),
        ProductPrice(product_id=product.id, currency="USD", price=D("11"),
                     valid_from=date(2025, 6, 1))])
    db.session.commit()
    assert price_on(product, "EUR", date(2024, 12, 31)) is None
    assert price_on(product, "EUR", date(2025, 12, 31)).price == D("10")
    assert price_on(product, "EUR", date(2026, 1, 1)).price == D("12")
    assert price_on(product, "usd", date(2026, 3, 1)).price == D("11")


@pytest.mark.parametrize(("country", "day", "rate"), [
    ("RO", date(2025, 7, 31), D("19")), ("RO", date(2025, 8, 1), D("21")),
    ("KZ", date(2025, 12, 31), D("12")), ("KZ", date(2026, 1, 1), D("16")),
])
def test_vat_category_resolves_to_the_dated_rate_of_the_seller(app, country, day, rate):
    seed_reference_data()
    product = make_product()
    assert product_vat_rate(product, country, day) == rate


def test_zero_category_resolves_to_zero(app):
    seed_reference_data()
    product = make_product(category="zero")
    assert product_vat_rate(product, "RO", date(2026, 1, 1)) == D("0")
