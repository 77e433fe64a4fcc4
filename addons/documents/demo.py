"""Demo data (`birga demo`): a few products with dated prices and offers in several states.

Uses the contacts the contacts addon's demo created (a few companies of its own on an empty
installation). Every offer goes through the services in `offers`, so numbers, totals and the
timeline look exactly as real ones would. Products are matched by SKU, so a second run adds
nothing twice.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from addons.contacts.models import Partner
from core.api import User, db, seed_reference_data

from . import offers as svc
from .models import Offer, Product, ProductPrice

#: (sku, English name, {lang: name}, unit, VAT category, EUR price, stock or None)
PRODUCTS = (
    ("DESK-120", "Office desk 120 cm", {"lv": "Biroja galds 120 cm", "ru": "Офисный стол 120 см",
                                        "ro": "Birou de 120 cm"}, "pcs", "standard", "249.00",
     "25"),
    ("CHAIR-ERG", "Ergonomic chair", {"lv": "Ergonomisks krēsls", "ru": "Эргономичное кресло",
                                      "kk": "Эргономикалық орындық"}, "pcs", "standard",
     "189.90", "40"),
    ("INSTALL-H", "Installation work", {"lv": "Uzstādīšanas darbi", "ru": "Монтажные работы",
                                        "uz": "Oʻrnatish ishlari"}, "h", "standard", "35.00",
     None),
    ("MANUAL", "Printed user manual", {"lv": "Drukāta lietošanas instrukcija"}, "pcs", "zero",
     "12.50", "100"),
)


def _partners() -> list[Partner]:
    rows = list(db.session.scalars(select(Partner).where(Partner.kind == "company",
                                                         Partner.active.is_(True))
                                   .order_by(Partner.id).limit(4)))
    if rows:
        return rows
    for name, lang in (("SIA Meža Mājas", "lv"), ("ООО «Вектор»", "ru")):
        partner = Partner(kind="company", name=name, lang=lang, country="LV")
        db.session.add(partner)
        rows.append(partner)
    db.session.flush()
    return rows


def _products(today: date) -> list[Product]:
    products = []
    for sku, name, names, unit, category, price, stock in PRODUCTS:
        product = db.session.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            product = Product(sku=sku, name=name, names={"en": name, **names},
                              descriptions={}, unit=unit, vat_category=category,
                              track_stock=stock is not None,
                              stock=Decimal(stock) if stock else None, active=True)
            # Last year's price and today's: the price list is dated.
            product.prices = [
                ProductPrice(currency="EUR", price=(Decimal(price) * Decimal("0.9"))
                             .quantize(Decimal("0.01")), valid_from=date(today.year - 1, 1, 1)),
                ProductPrice(currency="EUR", price=Decimal(price),
                             valid_from=date(today.year, 1, 1))]
            db.session.add(product)
        products.append(product)
    db.session.flush()
    return products


def load() -> None:
    """Create the demo products and offers; `birga demo` runs it once per installation."""
    seed_reference_data()
    today = svc.local_today()
    products = _products(today)
    if db.session.scalar(select(Offer.id).limit(1)) is not None:
        db.session.commit()
        return
    users = list(db.session.scalars(select(User).where(User.active.is_(True))
                                    .order_by(User.id)))
    partners = _partners()
    # (client index, [(product index, quantity, discount)], states to go through)
    plans = (
        (0, [(0, "4", "0"), (1, "4", "5"), (2, "6", "0")], ()),
        (1, [(1, "10", "10"), (3, "10", "0")], ("sent",)),
        (2, [(0, "2", "0"), (2, "3", "0")], ("sent", "accepted")),
        (3, [(1, "1", "0")], ("sent", "declined")),
        (0, [(0, "1", "0"), (3, "1", "100")], ("sent", "accepted", "placed", "paid")),
    )
    for index, (client, lines, states) in enumerate(plans):
        owner = users[index % len(users)] if users else None
        offer = svc.create_offer(partners[client % len(partners)], user=owner,
                                 currency="EUR", offer_date=today - timedelta(days=10 - index),
                                 valid_until=today + timedelta(days=30),
                                 payment_terms="14 days net")
        for product_index, quantity, discount in lines:
            svc.add_line(offer, product=products[product_index], quantity=quantity,
                         discount=discount)
        for state in states:
            svc.change_state(offer, state, user=owner)
    # Sent offers whose validity ends in a few days, for the first users' start pages.
    for index, owner in enumerate(users[:2]):
        offer = svc.create_offer(partners[(index + 1) % len(partners)], user=owner,
                                 currency="EUR", offer_date=today - timedelta(days=25),
                                 valid_until=today + timedelta(days=3 + index),
                                 payment_terms="14 days net")
        svc.add_line(offer, product=products[0], quantity="3", discount="0")
        svc.change_state(offer, "sent", user=owner)
    db.session.commit()
