"""Countries, currencies, dated exchange rates and dated VAT rates: reference data as rows.

Rates change by law on a given day (Romania's standard VAT went from 19 % to 21 % on
1 Aug 2025), and a document must use the rate of *its* date, so every rate has a validity period
and every lookup takes a date. Names are not stored: Babel's CLDR data translates them into the
reader's locale, and gives each currency's decimals. Amounts are `Decimal`, never float.

`seed_reference_data()` (also `birga refdata load`) copies `core.refdata_data` in once; it only
adds what is missing, so an admin's edits survive a re-seed.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import click
import flask_babel
from babel import Locale
from babel.numbers import get_currency_precision
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import Boolean, Date, ForeignKey, Integer, Numeric, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import refdata_data
from .extensions import db

__all__ = ["CATEGORIES", "Country", "Currency", "ExchangeRate", "RateNotFound", "VatRate",
           "company_currency", "convert", "country_name", "currency_name", "rate_on",
           "seed_reference_data", "set_exchange_rate", "set_vat_rate", "vat_amount", "vat_rate"]

#: VAT categories a rate can belong to.
CATEGORIES: tuple[str, ...] = ("standard", "reduced", "zero")


class RateNotFound(LookupError):
    """No exchange or VAT rate is recorded for the asked date: a data gap the admin must fill."""


def _locale() -> Locale:
    try:
        return flask_babel.get_locale() or Locale("en")
    except RuntimeError:  # outside an app context
        return Locale("en")


def country_name(code: str, locale: str | Locale | None = None) -> str:
    """The country's name in `locale` (default: the current user's), from CLDR."""
    loc = Locale.parse(locale) if locale is not None else _locale()
    return loc.territories.get(code.upper(), code.upper())


def currency_name(code: str, locale: str | Locale | None = None) -> str:
    loc = Locale.parse(locale) if locale is not None else _locale()
    return loc.currencies.get(code.upper(), code.upper())


class Currency(db.Model):
    __tablename__ = "core_currency"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)  # ISO 4217
    decimals: Mapped[int] = mapped_column(Integer, default=2)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def name(self) -> str:
        return currency_name(self.code)


class Country(db.Model):
    __tablename__ = "core_country"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)  # ISO 3166-1 alpha-2
    currency_code: Mapped[str | None] = mapped_column(ForeignKey("core_currency.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def name(self) -> str:
        return country_name(self.code)


class ExchangeRate(db.Model):
    """On `on_date`, one unit of `currency_code` was worth `rate` units of the company currency."""

    __tablename__ = "core_exchange_rate"
    __table_args__ = (UniqueConstraint("currency_code", "on_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency_code: Mapped[str] = mapped_column(ForeignKey("core_currency.code"), index=True)
    on_date: Mapped[date] = mapped_column(Date)
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 8))


class VatRate(db.Model):
    """A VAT rate in percent for one country and category, valid from/to (inclusive) dates."""

    __tablename__ = "core_vat_rate"
    __table_args__ = (UniqueConstraint("country_code", "category", "valid_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    country_code: Mapped[str] = mapped_column(ForeignKey("core_country.code"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


def _session(session: Session | None) -> Session:
    return session if session is not None else db.session


def _today() -> date:
    zone = ZoneInfo(current_app.config.get("BIRGA_DEFAULT_TIMEZONE") or "UTC")
    return datetime.now(zone).date()


def _day(value: date | datetime | None) -> date:
    if value is None:
        return _today()
    return value.date() if isinstance(value, datetime) else value


def company_currency() -> str:
    """The currency the books are kept in (`BIRGA_COMPANY_CURRENCY`, EUR by default)."""
    return str(current_app.config.get("BIRGA_COMPANY_CURRENCY") or "EUR").upper()


# -- exchange rates ----------------------------------------------------------------------------
def rate_on(currency: str, on_date: date | datetime | None = None, *,
            session: Session | None = None) -> Decimal:
    """Company-currency units per unit of `currency`: the latest rate on or before the date."""
    currency, day = currency.upper(), _day(on_date)
    if currency == company_currency():
        return Decimal(1)
    rate = _session(session).scalar(
        select(ExchangeRate.rate)
        .where(ExchangeRate.currency_code == currency, ExchangeRate.on_date <= day)
        .order_by(ExchangeRate.on_date.desc()).limit(1))
    if rate is None:
        raise RateNotFound(_("No exchange rate for %(currency)s on or before %(date)s.",
                             currency=currency, date=day.isoformat()))
    return Decimal(rate)


def set_exchange_rate(currency: str, rate: Decimal | str, on_date: date, *,
                      session: Session | None = None) -> ExchangeRate:
    """Record (or correct) the rate of `currency` on `on_date`."""
    s, currency, value = _session(session), currency.upper(), Decimal(rate)
    if value <= 0:
        raise ValueError(_("An exchange rate must be greater than zero."))
    row = s.scalar(select(ExchangeRate).where(ExchangeRate.currency_code == currency,
                                              ExchangeRate.on_date == on_date))
    if row is None:
        row = ExchangeRate(currency_code=currency, on_date=on_date, rate=value)
        s.add(row)
    else:
        row.rate = value
    s.flush()
    return row


def _decimals(currency: str, session: Session | None) -> int:
    decimals = _session(session).scalar(select(Currency.decimals)
                                        .where(Currency.code == currency.upper()))
    return get_currency_precision(currency.upper()) if decimals is None else decimals


def convert(amount: Decimal, from_currency: str, to_currency: str,
            on_date: date | datetime | None = None, *,
            session: Session | None = None) -> Decimal:
    """`amount` in `to_currency` at the date's rates, rounded half-up to its decimals."""
    value = Decimal(amount)
    if from_currency.upper() != to_currency.upper():
        value = (value * rate_on(from_currency, on_date, session=session)
                 / rate_on(to_currency, on_date, session=session))
    quantum = Decimal(1).scaleb(-_decimals(to_currency, session))
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


# -- VAT ---------------------------------------------------------------------------------------
def _vat_row(country: str, category: str, day: date, session: Session | None) -> VatRate | None:
    return _session(session).scalar(
        select(VatRate)
        .where(VatRate.country_code == country.upper(), VatRate.category == category,
               VatRate.valid_from <= day,
               (VatRate.valid_to.is_(None)) | (VatRate.valid_to >= day))
        .order_by(VatRate.valid_from.desc()).limit(1))


def vat_rate(country: str, category: str = "standard", on_date: date | datetime | None = None,
             *, session: Session | None = None) -> Decimal:
    """The VAT rate in percent (e.g. `Decimal("21")`) in force in `country` on the date."""
    day = _day(on_date)
    row = _vat_row(country, category, day, session)
    if row is None:
        raise RateNotFound(_("No %(category)s VAT rate for %(country)s on %(date)s.",
                             category=category, country=country_name(country),
                             date=day.isoformat()))
    return Decimal(row.rate)


def vat_amount(net: Decimal, percent: Decimal, currency: str, *,
               session: Session | None = None) -> Decimal:
    """The VAT on `net` at `percent`, rounded half-up to the currency's decimals."""
    quantum = Decimal(1).scaleb(-_decimals(currency, session))
    return (Decimal(net) * Decimal(percent) / 100).quantize(quantum, rounding=ROUND_HALF_UP)


def set_vat_rate(country: str, category: str, rate: Decimal | str, valid_from: date, *,
                 valid_to: date | None = None, session: Session | None = None) -> VatRate:
    """Record a rate from `valid_from` on (how an admin enters reduced rates or a law change).

    The period in force on that day is closed the day before; without `valid_to`, the new rate
    runs until the next recorded period starts, or indefinitely.
    """
    if category not in CATEGORIES:
        raise ValueError(_("Unknown VAT category %(category)s.", category=category))
    value = Decimal(rate)
    if not Decimal(0) <= value <= Decimal(100):
        raise ValueError(_("A VAT rate is a percentage between 0 and 100."))
    s, country = _session(session), country.upper()
    same = (VatRate.country_code == country, VatRate.category == category)
    row = s.scalar(select(VatRate).where(*same, VatRate.valid_from == valid_from))
    previous = s.scalar(select(VatRate).where(*same, VatRate.valid_from < valid_from)
                        .order_by(VatRate.valid_from.desc()).limit(1))
    if previous is not None and (previous.valid_to is None or previous.valid_to >= valid_from):
        previous.valid_to = valid_from - timedelta(days=1)
    if valid_to is None:
        following = s.scalar(select(VatRate.valid_from).where(*same,
                                                               VatRate.valid_from > valid_from)
                             .order_by(VatRate.valid_from).limit(1))
        valid_to = following - timedelta(days=1) if following is not None else None
    if row is None:
        row = VatRate(country_code=country, category=category, valid_from=valid_from)
        s.add(row)
    row.rate, row.valid_to = value, valid_to
    s.flush()
    return row


# -- seeding -----------------------------------------------------------------------------------
def seed_reference_data(*, session: Session | None = None) -> int:
    """Add the seed countries, currencies and VAT rates that are missing; returns how many rows
    were added (0 on a second run). Existing rows are never changed. The caller commits."""
    s = _session(session)
    added = 0
    have = set(s.scalars(select(Currency.code)))
    for code in refdata_data.CURRENCIES:
        if code not in have:
            s.add(Currency(code=code, decimals=get_currency_precision(code), active=True))
            added += 1
    s.flush()
    have = set(s.scalars(select(Country.code)))
    for code, currency in refdata_data.COUNTRIES.items():
        if code not in have:
            s.add(Country(code=code, currency_code=currency, active=True))
            added += 1
    s.flush()
    have_rates = {tuple(row) for row in s.execute(select(VatRate.country_code,
                                                         VatRate.category, VatRate.valid_from))}
    for country, category, rate, valid_from, valid_to in refdata_data.VAT_RATES:
        if (country, category, valid_from) not in have_rates:
            s.add(VatRate(country_code=country, category=category, rate=rate,
                          valid_from=valid_from, valid_to=valid_to))
            added += 1
    s.flush()
    return added


# -- command line ------------------------------------------------------------------------------
@click.group("refdata")
def refdata_cli() -> None:
    """Reference data: countries, currencies, exchange and VAT rates."""


@refdata_cli.command("load")
@with_appcontext
def refdata_load() -> None:
    """Add the seed countries, currencies and VAT rates that are missing (safe to re-run)."""
    added = seed_reference_data()
    db.session.commit()
    click.echo(ngettext("Reference data loaded: %(num)d row added.",
                        "Reference data loaded: %(num)d rows added.", added))


@refdata_cli.command("vat")
@click.argument("country")
@click.argument("category", type=click.Choice(CATEGORIES))
@click.argument("rate", type=Decimal)
@click.option("--from", "valid_from", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "valid_to", type=click.DateTime(["%Y-%m-%d"]), default=None)
@with_appcontext
def refdata_vat(country: str, category: str, rate: Decimal, valid_from: datetime,
                valid_to: datetime | None) -> None:
    """Set COUNTRY's CATEGORY VAT RATE (percent) from a date, e.g. `LV reduced 12 --from
    2025-01-01`."""
    set_vat_rate(country, category, rate, valid_from.date(),
                 valid_to=valid_to.date() if valid_to else None)
    db.session.commit()
    click.echo(_("VAT rate saved."))


@refdata_cli.command("rate")
@click.argument("currency")
@click.argument("rate", type=Decimal)
@click.option("--date", "on_date", type=click.DateTime(["%Y-%m-%d"]), required=True)
@with_appcontext
def refdata_rate(currency: str, rate: Decimal, on_date: datetime) -> None:
    """Record CURRENCY's exchange RATE to the company currency on a date."""
    set_exchange_rate(currency, rate, on_date.date())
    db.session.commit()
    click.echo(_("Exchange rate saved."))
