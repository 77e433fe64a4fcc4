"""Reference data: dated VAT and exchange rates looked up by date (the day before and after each
change), names from Babel, Decimal money math, idempotent seeding and `birga refdata`."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core.api import (
    Country,
    Currency,
    RateNotFound,
    VatRate,
    convert,
    country_name,
    currency_name,
    rate_on,
    seed_reference_data,
    set_exchange_rate,
    set_vat_rate,
    vat_amount,
    vat_rate,
)
from core.cli import main as cli
from core.extensions import db


@pytest.fixture
def seeded(app):
    seed_reference_data()
    db.session.commit()
    return app


@pytest.mark.parametrize(("country", "day", "expected"), [
    ("RO", date(2025, 7, 31), "19"),
    ("RO", date(2025, 8, 1), "21"),
    ("KZ", date(2025, 12, 31), "12"),
    ("KZ", date(2026, 1, 1), "16"),
    ("RU", date(2025, 12, 31), "20"),
    ("RU", date(2026, 1, 1), "22"),
    ("LV", date(2026, 1, 1), "21"),
    ("MD", date(2026, 1, 1), "20"),
    ("UZ", date(2026, 1, 1), "12"),
])
def test_standard_vat_rate_on_each_side_of_a_change(seeded, country, day, expected):
    rate = vat_rate(country, "standard", day)
    assert isinstance(rate, Decimal)
    assert rate == Decimal(expected)


def test_vat_lookup_accepts_a_datetime_and_lowercase_country(seeded):
    assert vat_rate("ro", "standard", datetime(2025, 8, 1, 9, 30)) == Decimal("21")


def test_zero_rate_is_data_too(seeded):
    assert vat_rate("LV", "zero", date(2026, 1, 1)) == Decimal("0")


def test_missing_vat_rate_raises_a_clear_error(seeded):
    with pytest.raises(RateNotFound, match="reduced"):
        vat_rate("UZ", "reduced", date(2026, 1, 1))
    with pytest.raises(RateNotFound):
        vat_rate("RU", "standard", date(2018, 12, 31))  # before the seeded period


def test_admin_enters_a_reduced_rate_and_a_later_change_closes_it(seeded):
    set_vat_rate("LV", "reduced", "12", date(2025, 1, 1))
    set_vat_rate("LV", "reduced", Decimal("10.5"), date(2026, 7, 1))
    db.session.commit()
    assert vat_rate("LV", "reduced", date(2026, 6, 30)) == Decimal("12")
    assert vat_rate("LV", "reduced", date(2026, 7, 1)) == Decimal("10.5")
    first = db.session.scalar(select(VatRate).where(VatRate.country_code == "LV",
                                                    VatRate.category == "reduced",
                                                    VatRate.valid_from == date(2025, 1, 1)))
    assert first.valid_to == date(2026, 6, 30)


def test_rate_inserted_between_two_periods_ends_where_the_next_starts(seeded):
    set_vat_rate("MD", "reduced", "8", date(2024, 1, 1))
    set_vat_rate("MD", "reduced", "12", date(2026, 1, 1))
    middle = set_vat_rate("MD", "reduced", "10", date(2025, 1, 1))
    assert middle.valid_to == date(2025, 12, 31)
    assert vat_rate("MD", "reduced", date(2024, 12, 31)) == Decimal("8")
    assert vat_rate("MD", "reduced", date(2025, 6, 1)) == Decimal("10")
    assert vat_rate("MD", "reduced", date(2026, 1, 1)) == Decimal("12")


@pytest.mark.parametrize(("category", "rate"), [("luxury", "30"), ("standard", "120")])
def test_invalid_vat_rate_input_is_refused(seeded, category, rate):
    with pytest.raises(ValueError):
        set_vat_rate("LV", category, rate, date(2026, 1, 1))


def test_exchange_rate_is_the_latest_on_or_before_the_date(seeded):
    set_exchange_rate("USD", "0.91", date(2026, 1, 5))
    set_exchange_rate("USD", Decimal("0.93"), date(2026, 1, 9))
    db.session.commit()
    with pytest.raises(RateNotFound):
        rate_on("USD", date(2026, 1, 4))
    assert rate_on("USD", date(2026, 1, 5)) == Decimal("0.91")
    assert rate_on("USD", date(2026, 1, 8)) == Decimal("0.91")  # weekend: no new rate
    assert rate_on("USD", date(2026, 1, 9)) == Decimal("0.93")
    assert rate_on("usd", date(2027, 1, 1)) == Decimal("0.93")


def test_company_currency_rate_is_one(seeded):
    assert rate_on("EUR", date(1999, 1, 1)) == Decimal(1)


def test_conversion_goes_through_the_company_currency_with_decimal_rounding(seeded):
    set_exchange_rate("USD", "0.9", date(2026, 1, 1))
    set_exchange_rate("RON", "0.2", date(2026, 1, 1))
    assert convert(Decimal("100"), "USD", "EUR", date(2026, 1, 2)) == Decimal("90.00")
    assert convert(Decimal("100"), "USD", "RON", date(2026, 1, 2)) == Decimal("450.00")
    assert convert(Decimal("0.10"), "EUR", "USD", date(2026, 1, 2)) == Decimal("0.11")
    # A correction on the same day replaces the rate instead of adding a second one.
    set_exchange_rate("USD", "0.8", date(2026, 1, 1))
    assert convert(Decimal("100"), "USD", "EUR", date(2026, 1, 2)) == Decimal("80.00")


def test_company_currency_comes_from_config(make_app):
    app = make_app(BIRGA_COMPANY_CURRENCY="RON")
    with app.app_context():
        seed_reference_data()
        set_exchange_rate("EUR", "5", date(2026, 1, 1))
        assert rate_on("RON", date(2026, 1, 2)) == Decimal(1)
        assert convert(Decimal("10"), "EUR", "RON", date(2026, 1, 2)) == Decimal("50.00")


def test_vat_amount_rounds_half_up_to_the_currency(seeded):
    assert vat_amount(Decimal("10.05"), vat_rate("LV", "standard", date(2026, 1, 1)),
                      "EUR") == Decimal("2.11")  # 2.1105
    assert vat_amount(Decimal("0.50"), Decimal("21"), "EUR") == Decimal("0.11")  # 0.105 up


def test_names_are_translated_by_babel_not_stored(seeded):
    assert country_name("LV", "lv") == "Latvija"
    assert country_name("LV", "ru") == "Латвия"
    assert currency_name("KZT", "en") == "Kazakhstani Tenge"
    assert db.session.get(Country, "UZ").name == "Uzbekistan"  # default locale: English


def test_currencies_take_their_decimals_from_babel(seeded):
    decimals = dict(db.session.execute(select(Currency.code, Currency.decimals)).all())
    assert set(decimals) == {"EUR", "RUB", "UZS", "KZT", "MDL", "RON", "USD"}
    assert decimals["EUR"] == 2
    assert db.session.get(Country, "KZ").currency_code == "KZT"


def _counts() -> tuple[int, int, int]:
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Country, Currency, VatRate))


def test_seeding_twice_adds_nothing_and_keeps_admin_edits(app):
    first = seed_reference_data()
    db.session.commit()
    counts = _counts()
    assert first == sum(counts) and counts[0] == 6 and counts[1] == 7
    row = db.session.scalar(select(VatRate).where(VatRate.country_code == "LV",
                                                  VatRate.category == "standard"))
    row.rate = Decimal("22")  # an admin's correction
    db.session.commit()
    assert seed_reference_data() == 0
    db.session.commit()
    assert _counts() == counts
    assert vat_rate("LV", "standard", date(2026, 1, 1)) == Decimal("22")


def test_cli_loads_reference_data_idempotently(app):
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["refdata", "load"])
    assert result.exit_code == 0, result.output
    assert "rows added" in result.output
    counts = _counts()
    assert counts[0] == 6
    result = runner.invoke(cli, ["refdata", "load"])
    assert result.exit_code == 0 and "0 rows added" in result.output
    assert _counts() == counts


def test_cli_sets_vat_and_exchange_rates(seeded):
    runner = seeded.test_cli_runner()
    result = runner.invoke(cli, ["refdata", "vat", "RO", "reduced", "11", "--from", "2025-08-01"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["refdata", "rate", "MDL", "0.051", "--date", "2026-01-02"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert vat_rate("RO", "reduced", date(2025, 8, 1)) == Decimal("11")
    assert rate_on("MDL", date(2026, 1, 3)) == Decimal("0.051")
