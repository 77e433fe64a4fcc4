"""Dates, numbers and money follow the user's locale and time zone (Babel/CLDR)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from flask import render_template_string
from flask_babel import force_locale

from core.formatting import format_date, format_datetime, format_money, format_number

NBSP = "\xa0"
EVENING_UTC = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)


@pytest.mark.parametrize(("locale", "money", "number"), [
    ("en", "€1,234.50", "1,234.5"),
    ("lv", f"1{NBSP}234,50{NBSP}€", f"1{NBSP}234,5"),
    ("ru", f"1{NBSP}234,50{NBSP}€", f"1{NBSP}234,5"),
    ("uz", f"1{NBSP}234,50{NBSP}€", f"1{NBSP}234,5"),
    ("kk", f"1{NBSP}234,50{NBSP}€", f"1{NBSP}234,5"),
    ("ro", f"1.234,50{NBSP}EUR", "1.234,5"),
])
def test_money_and_numbers_use_the_locale_conventions(app, locale, money, number):
    with app.test_request_context(), force_locale(locale):
        assert format_money(Decimal("1234.50"), "EUR") == money
        assert format_number(1234.5) == number


def test_currency_decimals_come_from_the_currency(app):
    with app.test_request_context(), force_locale("uz"):
        assert format_money(Decimal("1234567"), "UZS") == f"1{NBSP}234{NBSP}567,00{NBSP}soʻm"
        assert format_money(Decimal("1500"), "JPY").startswith(f"1{NBSP}500")
        assert "," not in format_money(Decimal("1500"), "JPY")


def test_dates_are_written_the_local_way(app):
    with app.test_request_context():
        with force_locale("lv"):
            assert format_date(date(2026, 11, 23)) == "2026. gada 23. nov."
        with force_locale("ru"):
            assert format_date(date(2026, 11, 23)) == "23 нояб. 2026\u202fг."
        with force_locale("kk"):
            assert format_date(date(2026, 11, 23)) == "2026\u202fж. 23 қар."


def test_datetimes_are_shown_in_the_users_time_zone(app, make_user, login):
    app.add_url_rule("/_t", "t", lambda: render_template_string(
        "{{ when|datetime }} | {{ when|date }} | {{ amount|money('KZT') }}",
        when=EVENING_UTC, amount=Decimal("99.5")))
    user = make_user("anna", timezone="Asia/Tashkent", locale="ru")
    client = app.test_client()
    login(client, user)
    text = client.get("/_t").get_data(as_text=True)
    # 20:30 UTC is already the next day in Tashkent (UTC+5).
    assert text.startswith("24 нояб. 2026\u202fг., 01:30:00 | 24 нояб. 2026\u202fг.")
    assert text.endswith(f"99,50{NBSP}KZT")  # CLDR ru has no symbol for the tenge


def test_empty_values_render_as_nothing(app):
    with app.test_request_context():
        assert format_date(None) == format_datetime(None) == format_number(None) == ""
        assert format_money(None, "EUR") == ""
