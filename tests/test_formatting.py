"""Dates, numbers and money follow the user's locale and time zone (Babel/CLDR), and the fast
formatters of list pages (`core.formatters`) print exactly what the filters print."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from flask import render_template_string
from flask_babel import force_locale, get_timezone
from flask_login import login_user

from core.api import Formatters, User, db, formatters
from core.formatters import _money_shape, _number_shape
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


# -- the fast formatters (core.formatters): exactly the filters' text --------------------------
LOCALES = ("en", "lv", "ru", "uz", "kk", "ro", "de_CH", "hi")  # de_CH: ’ groups; hi: lakhs
D = Decimal
AMOUNTS = [
    D("0"), D("0.00"), D("-0"), D("-0.00"), D("0.001"), D("0.005"), D("0.015"), D("0.025"),
    D("0.0005"), D("0.0015"), D("2.5"), D("3.5"), D("12.345"), D("12.3400"), D("999.995"),
    D("999.9995"), D("1000"), D("1E+3"), D("1234.5"), D("1234567.891"), D("98765432109.5"),
    D("-0.001"), D("-12.5"), D("-1234567.891"), D("NaN"), D("Infinity"),
    0, 7, -7, 10**12, 12.5, 0.1 + 0.2, 1e-7, 1e16, -2.675, 2.675,
]
CURRENCIES = ("EUR", "USD", "RUB", "UZS", "KZT", "MDL", "JPY", "KWD")
#: User zones west and east of UTC (Riga and New York change to summer time, Almaty moved
#: from UTC+6 to UTC+5 on 1 March 2024), and None: a signed-out visitor on the default zone.
ZONES = ("Asia/Almaty", "Europe/Riga", "America/New_York", None)
#: Every whole UTC hour over two days, and a minute either side: midnight in each zone.
MOMENTS = [datetime(2026, 11, 23, tzinfo=UTC) + timedelta(hours=h, minutes=m)
           for h in range(-14, 34) for m in (-1, 0, 1)] + [
    datetime(2026, 3, 28, 21, 59, tzinfo=UTC), datetime(2026, 3, 28, 22, 0, tzinfo=UTC),
    datetime(2026, 10, 24, 20, 59, tzinfo=UTC), datetime(2026, 10, 24, 21, 0, tzinfo=UTC),
    datetime(2026, 3, 8, 4, 59, tzinfo=UTC), datetime(2026, 11, 1, 4, 0, tzinfo=UTC),
    datetime(2024, 2, 29, 18, 30, tzinfo=UTC), datetime(2024, 3, 1, 18, 30, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 30, tzinfo=UTC), datetime(2027, 1, 1, 0, 30, tzinfo=UTC)]


@contextmanager
def signed_in(app, user, locale: str):
    """A request of `user` (None: signed out) in `locale`, in an app context of its own, so
    Flask-Babel asks the time-zone selector afresh (it caches the zone per app context)."""
    with app.app_context(), app.test_request_context(), force_locale(locale):
        if user is not None:
            login_user(db.session.get(User, user.id))
        yield


@pytest.mark.parametrize("locale", LOCALES)
def test_fast_money_and_numbers_print_what_the_filters_print(app, locale):
    with app.test_request_context(), force_locale(locale):
        fmt = formatters()
        assert isinstance(fmt, Formatters)
        for amount in AMOUNTS:
            for currency in CURRENCIES:
                assert fmt.money(amount, currency) == format_money(amount, currency), (
                    amount, currency)
            assert fmt.number(amount) == format_number(amount), amount
        assert fmt.money(None, "EUR") == fmt.date(None) == fmt.number(None) == ""


@pytest.mark.parametrize("locale", LOCALES)
def test_fast_dates_print_what_the_filter_prints_in_the_users_zone(app, make_user, locale):
    users = {zone: make_user(f"u{i}", timezone=zone) if zone else None
             for i, zone in enumerate(ZONES)}
    days = [date(2026, 1, 31), date(2024, 2, 29), date(2026, 11, 23), date(1999, 12, 31)]
    for zone, user in users.items():
        with signed_in(app, user, locale):
            assert get_timezone().zone == (zone or "UTC")
            fmt = formatters()
            for value in days:
                assert fmt.date(value) == format_date(value), value
            for moment in MOMENTS:  # aware, naive (= UTC), and aware in another zone
                for value in (moment, moment.replace(tzinfo=None),
                              moment.astimezone(ZoneInfo("Asia/Tokyo"))):
                    assert fmt.date(value) == format_date(value), (zone, value)


def test_the_users_zone_decides_the_day_of_a_moment(app, make_user):
    """A check of the check above: near midnight the zone really changes the printed day."""
    evening, early = datetime(2026, 11, 23, 20, 30), datetime(2026, 11, 24, 3, 30)
    for zone, value, day in (("Asia/Almaty", evening, "Nov 24, 2026"),
                             ("Europe/Riga", evening + timedelta(hours=2), "Nov 24, 2026"),
                             ("America/New_York", early, "Nov 23, 2026"),
                             (None, evening, "Nov 23, 2026")):
        user = make_user(zone.replace("/", "_").lower(), timezone=zone) if zone else None
        with signed_in(app, user, "en"):
            assert formatters().date(value) == format_date(value) == day, zone


def test_common_formats_take_the_fast_path(app):
    """The shapes of the interface languages replay (else every amount silently goes back to
    Babel); Hindi's lakh grouping does not, and is left to Babel."""
    for locale in ("en", "lv", "ru", "uz", "kk", "ro", "de_CH"):
        with app.test_request_context(), force_locale(locale):
            formatters()
            for currency in ("EUR", "USD", "KZT", "JPY", "KWD"):
                assert _money_shape(locale, currency) is not None, (locale, currency)
            assert _number_shape(locale) is not None, locale
    with app.test_request_context(), force_locale("hi"):
        assert _money_shape("hi", "EUR") is None and _number_shape("hi") is None
