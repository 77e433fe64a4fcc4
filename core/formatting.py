"""Locale-aware formatting of dates, times, numbers and money for templates and code.

Everything goes through Babel with the request's locale and the user's time zone, so a Riga
manager sees `23.11.2026.` and `1 234,50 €` while a Tashkent one sees her own conventions.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import flask_babel
from flask import Flask


def format_date(value: date | datetime | None, format: str = "medium") -> str:  # noqa: A002
    if value is None:
        return ""
    if isinstance(value, datetime):
        # A stored UTC moment is a date in the user's zone, not in UTC.
        return flask_babel.format_date(value, format=format, rebase=True)
    return flask_babel.format_date(value, format=format, rebase=False)


def format_datetime(value: datetime | None, format: str = "medium") -> str:  # noqa: A002
    """Shown in the user's time zone; naive values are taken as UTC."""
    if value is None:
        return ""
    return flask_babel.format_datetime(value, format=format, rebase=True)


def format_number(value: float | int | Decimal | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    if digits is None:
        return flask_babel.format_decimal(value)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return flask_babel.format_decimal(value, format=pattern)


def format_money(value: float | int | Decimal | None, currency: str) -> str:
    """Amount with its currency, using the currency's own number of decimals."""
    if value is None:
        return ""
    return flask_babel.format_currency(value, currency)


def format_percent(value: float | Decimal | None) -> str:
    if value is None:
        return ""
    return flask_babel.format_percent(value)


FILTERS: dict[str, Any] = {
    "date": format_date,
    "datetime": format_datetime,
    "number": format_number,
    "money": format_money,
    "percent": format_percent,
}


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(FILTERS)
