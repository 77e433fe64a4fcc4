"""Seed reference data: the countries and currencies Birga's first firms work with, and their
standard VAT rates with the dates they changed.

Data, not constants: `seed_reference_data()` copies these rows into the database once, and from
then on the database is the truth (an admin edits rates there; a re-seed adds only what is
missing). Reduced rates vary by product and change often: the admin enters them.

Names are not stored: Babel's CLDR data translates country and currency names into every locale,
and gives each currency's number of decimals.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

#: ISO 3166-1 alpha-2 country -> ISO 4217 currency.
COUNTRIES: dict[str, str] = {
    "LV": "EUR",
    "RO": "RON",
    "MD": "MDL",
    "KZ": "KZT",
    "UZ": "UZS",
    "RU": "RUB",
}

CURRENCIES: tuple[str, ...] = ("EUR", "RUB", "UZS", "KZT", "MDL", "RON", "USD")

#: (country, category, rate in percent, valid_from, valid_to or None while in force).
#: The first row of each country starts when that rate came into force (Moldova's 20 % dates
#: from before 2000; the seed starts it there).
VAT_RATES: tuple[tuple[str, str, Decimal, date, date | None], ...] = (
    ("LV", "standard", Decimal("21"), date(2012, 7, 1), None),
    ("RO", "standard", Decimal("19"), date(2017, 1, 1), date(2025, 7, 31)),
    ("RO", "standard", Decimal("21"), date(2025, 8, 1), None),
    ("MD", "standard", Decimal("20"), date(2000, 1, 1), None),
    ("KZ", "standard", Decimal("12"), date(2009, 1, 1), date(2025, 12, 31)),
    ("KZ", "standard", Decimal("16"), date(2026, 1, 1), None),
    ("UZ", "standard", Decimal("12"), date(2023, 1, 1), None),
    ("RU", "standard", Decimal("20"), date(2019, 1, 1), date(2025, 12, 31)),
    ("RU", "standard", Decimal("22"), date(2026, 1, 1), None),
    # Exports and other zero-rated supplies: 0 % everywhere, stored so every category is data.
    ("LV", "zero", Decimal("0"), date(2012, 7, 1), None),
    ("RO", "zero", Decimal("0"), date(2017, 1, 1), None),
    ("MD", "zero", Decimal("0"), date(2000, 1, 1), None),
    ("KZ", "zero", Decimal("0"), date(2009, 1, 1), None),
    ("UZ", "zero", Decimal("0"), date(2023, 1, 1), None),
    ("RU", "zero", Decimal("0"), date(2019, 1, 1), None),
)
