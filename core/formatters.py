"""Fast `money`, `date` and `number` for list pages: the filters' exact text, Babel read once.

Why: the filters (`core.formatting`) go through Flask-Babel and Babel on every call (locale
lookup, pattern, symbols, rounding, time zone): 20-30 µs each, and a list page or a board
calls them hundreds of times. `formatters()` gives the same text for the current request's
locale and time zone. A day's text is memoised per locale and day (a datetime is first put in
the user's zone, as the filter does). An amount's *shape* (prefix, suffix, separators,
decimals) is read off Babel once per locale and currency, then replayed with string
operations; a shape is used only after it reproduced Babel exactly on several samples, so a
locale with another grouping (Hindi's lakhs) or a sign placed otherwise falls back to Babel,
and so do negative amounts and -0.

Made per request (`formatters()`): they close over the request's locale and time zone.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from babel.numbers import get_currency_precision
from flask_babel import get_locale, get_timezone

from .formatting import format_date, format_money, format_number

__all__ = ["Formatters", "formatters"]

#: Samples a shape must reproduce: grouping of millions and of thousands, a fraction, zero.
_SAMPLES = (Decimal("1234567.5"), Decimal("1234.5"), Decimal("12.25"), Decimal("0"))


class _Shape(NamedTuple):
    prefix: str
    suffix: str
    group: str
    decimal: str
    digits: int  # fixed decimals (money), or -1: up to three, trailing zeros dropped (number)


def _replay(shape: _Shape, value: Decimal) -> str:
    """`value` (non-negative) written in `shape`; Babel's rounding (the context's, half-even)."""
    digits = 3 if shape.digits < 0 else shape.digits
    text = f"{value.quantize(Decimal(1).scaleb(-digits)):,f}"
    if shape.digits < 0 and "." in text:
        text = text.rstrip("0").rstrip(".")
    text = text.replace(",", "\x00").replace(".", shape.decimal).replace("\x00", shape.group)
    return shape.prefix + text + shape.suffix


def _read_shape(reference: Callable[[Decimal], str], digits: int) -> _Shape | None:
    """The shape of `reference`'s output for 1 234 567.5, or None when it does not replay."""
    sample = reference(_SAMPLES[0])
    start, end = sample.find("1"), sample.rfind("5" if digits < 0 else "0" if digits else "8")
    if start < 0 or end < start + 8:
        return None
    body = sample[start:end + 1]
    group = body[1]
    decimal = body[-2] if digits < 0 else body[-digits - 1] if digits else ""
    shape = _Shape(sample[:start], sample[end + 1:], group, decimal, digits)
    if any(_replay(shape, value) != reference(value) for value in _SAMPLES):
        return None
    return shape


@lru_cache(maxsize=512)
def _money_shape(locale: str, currency: str) -> _Shape | None:
    """Read under `locale` (the key: formatting follows the request's locale)."""
    return _read_shape(lambda value: format_money(value, currency),
                       get_currency_precision(currency))


@lru_cache(maxsize=64)
def _number_shape(locale: str) -> _Shape | None:
    return _read_shape(format_number, -1)


@lru_cache(maxsize=8192)
def _day_text(locale: str, day: date) -> str:
    return format_date(day)


def _decimal(value: Any) -> Decimal:
    """As Babel reads a number (a float through its text, not its binary value)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _plain(value: Decimal) -> bool:
    """Replayable: finite and without a sign (negative amounts, and -0, go to Babel)."""
    return value.is_finite() and not value.is_signed()


class Formatters(NamedTuple):
    """`money(amount, currency)`, `date(value)`, `number(value)`; None gives ""."""

    money: Callable[[Any, str], str]
    date: Callable[[Any], str]
    number: Callable[[Any], str]


def formatters() -> Formatters:
    """The `money`, `date` and `number` filters' text for the current request's locale and
    time zone (`format_money`, `format_date`, `format_number`), for pages that call them often."""
    locale = str(get_locale() or "en")
    zone = get_timezone()

    def money(amount: Any, currency: str) -> str:
        if amount is None:
            return ""
        value = _decimal(amount)
        shape = _money_shape(locale, currency) if _plain(value) else None
        return format_money(value, currency) if shape is None else _replay(shape, value)

    def day(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):  # a moment (naive = UTC): the user's zone has its day
            if zone is None:
                return format_date(value)
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            value = moment.astimezone(zone).date()
        return _day_text(locale, value)

    def number(value: Any) -> str:
        if value is None:
            return ""
        amount = _decimal(value)
        shape = _number_shape(locale) if _plain(amount) else None
        return format_number(value) if shape is None else _replay(shape, amount)

    return Formatters(money, day, number)
