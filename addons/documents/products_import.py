"""CSV import of products (the generator's `products.csv`: id, sku, name, price, currency,
vat_rate, stock).

A product is matched by SKU, so importing the same file twice updates rather than duplicates.
The price becomes a dated price-list row (`valid_from` chosen by the importer), never an edit
of an older row, so offers made at the old price keep their history. The file gives a VAT
*rate*, while products store a *category* (the rate changes by law, the category does not):
0 becomes "zero", a rate equal to the seller country's reduced rate on that date becomes
"reduced", anything else "standard"; a rate that differs from the country's standard rate is
reported so the importer can check it.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import IO

from flask_babel import gettext as _
from sqlalchemy import select

from core.api import RateNotFound, db, vat_rate

from .models import Product, ProductPrice

REQUIRED = ("sku", "name", "price")


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    #: (line number in the file, translated message)
    problems: list[tuple[int, str]] = field(default_factory=list)


def _rate(country: str, category: str, day: date) -> Decimal | None:
    try:
        return vat_rate(country, category, day)
    except RateNotFound:
        return None


def _category(rate: Decimal, country: str, day: date) -> tuple[str, bool]:
    """The category for a file's rate and whether it matched the country's rate."""
    if rate == 0:
        return "zero", True
    if _rate(country, "reduced", day) == rate:
        return "reduced", True
    return "standard", _rate(country, "standard", day) == rate


def _decimal(text: str | None) -> Decimal | None:
    text = (text or "").strip().replace(",", ".")
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def import_products(stream: IO[str] | str, *, valid_from: date,
                    country: str) -> ImportResult:
    """Create or update products from CSV text; the caller commits (or rolls back)."""
    text = stream if isinstance(stream, str) else stream.read()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    result = ImportResult()
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        result.problems.append((1, _("Missing columns: %(columns)s",
                                     columns=", ".join(missing))))
        return result
    existing = {p.sku: p for p in db.session.scalars(select(Product))}
    for number, row in enumerate(reader, start=2):
        sku, name = (row.get("sku") or "").strip(), (row.get("name") or "").strip()
        price = _decimal(row.get("price"))
        if not sku or not name or price is None or price < 0:
            result.problems.append((number, _("Skipped: a SKU, a name and a price are "
                                              "required.")))
            continue
        rate = _decimal(row.get("vat_rate"))
        category, matched = ("standard", True) if rate is None else _category(
            rate, country, valid_from)
        if not matched:
            result.problems.append((number, _("VAT rate %(rate)s %% is not a rate of %(country)s;"
                                              " %(sku)s was given the standard rate.",
                                              rate=str(rate), country=country, sku=sku)))
        product = existing.get(sku)
        if product is None:
            product = Product(sku=sku, name=name, names={}, descriptions={}, unit="pcs",
                              active=True, track_stock=False)
            db.session.add(product)
            existing[sku] = product
            result.created += 1
        else:
            result.updated += 1
        product.name, product.vat_category = name[:300], category
        stock = _decimal(row.get("stock"))
        if stock is not None:
            product.track_stock, product.stock = True, stock
        currency = ((row.get("currency") or "EUR").strip() or "EUR").upper()[:3]
        current = next((p for p in product.prices if p.currency == currency
                        and p.valid_from == valid_from), None)
        if current is None:
            product.prices.append(ProductPrice(currency=currency, price=price,
                                               valid_from=valid_from))
        else:
            current.price = price
    db.session.flush()
    return result
