"""Prices and totals of offers: the dated price list, the dated VAT rate, the rounding rule.

Rounding rule (one rule, applied the same way on screen, in the PDF and in the stored totals):

1. A line's net amount is `quantity × unit price × (1 − discount / 100)`, computed exactly
   with `Decimal` and rounded **half-up** to the currency's decimals (2 for EUR, 0 for JPY, the
   `core_currency` row or Babel's CLDR data for others).
2. The rounded line nets are summed **per VAT rate**; the VAT of each rate is
   `base × rate / 100`, rounded half-up once per rate (not per line, so 100 lines of 0.05 at
   21 % give 1.05 VAT, not 100 × 0.01).
3. The offer's untaxed amount is the sum of the bases, its tax the sum of the per-rate VAT,
   its total their sum: every printed figure adds up exactly.

Half-up (0.005 → 0.01) is what accountants in our markets expect; Python's default banker's
rounding (0.005 → 0.00) would make printed offers disagree with their calculators.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision
from sqlalchemy import select

from core.api import Currency, company_details, db, vat_rate

from .models import Product, ProductPrice

__all__ = ["LineInput", "Totals", "VatGroup", "company_country", "compute_totals",
           "currency_decimals", "line_net", "price_on", "product_vat_rate", "round_money"]

HUNDRED = Decimal(100)


def company_country() -> str:
    """The seller's country, whose dated VAT rates apply: the admin's company details (which
    fall back to `BIRGA_COMPANY_COUNTRY`, LV), so the VAT and the PDF's seller agree."""
    return company_details()["country"].upper()


def currency_decimals(currency: str) -> int:
    """Decimals of `currency`: the admin's `core_currency` row, else CLDR (JPY 0, EUR 2)."""
    code = currency.upper()
    decimals = db.session.scalar(select(Currency.decimals).where(Currency.code == code))
    return get_currency_precision(code) if decimals is None else int(decimals)


def round_money(amount: Decimal, decimals: int) -> Decimal:
    """Half-up to `decimals` places (see the module notes for why not banker's rounding)."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def price_on(product: Product, currency: str, on_date: date) -> ProductPrice | None:
    """The price row of `product` in `currency` valid on `on_date` (latest `valid_from` on or
    before it), or None when the product has no price in that currency yet."""
    return db.session.scalar(
        select(ProductPrice)
        .where(ProductPrice.product_id == product.id,
               ProductPrice.currency == currency.upper(),
               ProductPrice.valid_from <= on_date)
        .order_by(ProductPrice.valid_from.desc()).limit(1))


def product_vat_rate(product: Product, country: str, on_date: date) -> Decimal:
    """The product's VAT category resolved to the rate in force in `country` on the date
    (raises `core.refdata.RateNotFound` when the rate is not recorded)."""
    return vat_rate(country, product.vat_category or "standard", on_date)


@dataclass(frozen=True)
class LineInput:
    """What the totals need of a line (an `OfferLine` satisfies it too)."""

    quantity: Decimal
    unit_price: Decimal
    discount: Decimal = Decimal(0)
    vat_rate: Decimal = Decimal(0)


@dataclass
class VatGroup:
    rate: Decimal
    base: Decimal
    tax: Decimal


@dataclass
class Totals:
    currency: str
    line_nets: list[Decimal] = field(default_factory=list)
    groups: list[VatGroup] = field(default_factory=list)
    untaxed: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    total: Decimal = Decimal(0)


def line_net(line: LineInput, decimals: int) -> Decimal:
    """Step 1 of the rule: the line's net amount after discount, rounded half-up."""
    gross = Decimal(line.quantity) * Decimal(line.unit_price)
    kept = (HUNDRED - Decimal(line.discount or 0)) / HUNDRED
    return round_money(gross * kept, decimals)


def compute_totals(lines: Iterable[LineInput], currency: str, *,
                   decimals: int | None = None) -> Totals:
    """Line nets, bases and VAT per rate (ascending rate), and the offer's totals."""
    places = currency_decimals(currency) if decimals is None else decimals
    totals = Totals(currency=currency.upper())
    bases: dict[Decimal, Decimal] = {}
    for line in lines:
        net = line_net(line, places)
        totals.line_nets.append(net)
        rate = Decimal(line.vat_rate or 0).normalize()
        bases[rate] = bases.get(rate, Decimal(0)) + net
    for rate in sorted(bases):
        base = round_money(bases[rate], places)
        tax = round_money(base * rate / HUNDRED, places)
        totals.groups.append(VatGroup(rate=rate, base=base, tax=tax))
    zero = round_money(Decimal(0), places)
    totals.untaxed = sum((g.base for g in totals.groups), zero)
    totals.tax = sum((g.tax for g in totals.groups), zero)
    totals.total = totals.untaxed + totals.tax
    return totals
