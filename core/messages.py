"""Translatable messages kept as the gettext call, so each reader sees them in her language.

Why: a timeline line is written once, by someone working in Russian, and read later by a
Latvian manager. Text translated at write time would show Russian to her. So a line keeps
the *message*: `_l("Won: %(amount)s", amount=money(total, "EUR"))` is stored as

    {"msgid": "Won: %(amount)s", "params": {"amount": {"$money": ["1234.50", "EUR"]}}}

(with "context", "plural" and "n" for `lazy_pgettext` / `lazy_ngettext`) and translated and
formatted again for whoever reads it. Parameters may be plain values (user data: shown as
typed, escaped by the page), nested lazy strings (`{"$msg": spec}`, e.g. a stage's title),
and the typed values below, formatted in the reader's locale: `money()`, `day()`, and
`localized()` for names a firm typed per language (`{"lv": "Uzvarēts", ...}`).

A message that cannot be shown (a catalogue whose translation lost a placeholder) raises
`MessageError`; callers fall back to the text stored beside the message.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import flask_babel
from flask_babel import Domain, get_locale
from flask_babel.speaklater import LazyString

from .formatting import format_date, format_money

__all__ = ["Day", "Localized", "MessageError", "Money", "day", "decode_param", "encode",
           "encode_param", "is_message", "localized", "money", "render"]

#: flask_babel's function names -> the names of their leading arguments in a spec.
_SIGNATURES: dict[str, tuple[tuple[str, str], ...]] = {
    "gettext": (("string", "msgid"),),
    "pgettext": (("context", "context"), ("string", "msgid")),
    "ngettext": (("singular", "msgid"), ("plural", "plural"), ("num", "n")),
    "npgettext": (("context", "context"), ("singular", "msgid"), ("plural", "plural"),
                  ("num", "n")),
}


class MessageError(ValueError):
    """A stored message that cannot be encoded or rendered."""


class Money:
    """An amount in a currency, formatted in the reader's locale (`1 234,50 €`, `€1,234.50`)."""

    def __init__(self, amount: Decimal | int | float | str, currency: str) -> None:
        self.amount = Decimal(str(amount))
        self.currency = str(currency).upper()

    def __str__(self) -> str:
        return format_money(self.amount, self.currency)

    def to_json(self) -> dict[str, Any]:
        return {"$money": [str(self.amount), self.currency]}


class Day:
    """A date (or a moment, shown as its day in the reader's time zone), in her locale."""

    def __init__(self, value: date | datetime) -> None:
        self.value = value

    def __str__(self) -> str:
        return format_date(self.value)

    def to_json(self) -> dict[str, Any]:
        return {"$day": self.value.isoformat()}


class Localized:
    """A name typed per language (`labels`: {"lv": ..., "ru": ...}); `default` otherwise.

    `default` may be a lazy string (a seeded name's translation) or plain text.
    """

    def __init__(self, labels: Mapping[str, str] | None, default: Any) -> None:
        self.labels = {str(k): str(v) for k, v in (labels or {}).items() if v}
        self.default = default

    def __str__(self) -> str:
        locale = get_locale()
        if locale is not None and self.labels:
            code = str(locale)
            for key in (code, code.split("_")[0]):
                if self.labels.get(key):
                    return self.labels[key]
        return str(self.default)

    def to_json(self) -> dict[str, Any]:
        return {"$localized": {"labels": self.labels, "default": encode_param(self.default)}}


def money(amount: Decimal | int | float | str, currency: str) -> Money:
    """Money inside a stored message: formatted for each reader, not for the writer."""
    return Money(amount, currency)


def day(value: date | datetime) -> Day:
    """A date inside a stored message: formatted for each reader, not for the writer."""
    return Day(value)


def localized(labels: Mapping[str, str] | None, default: Any) -> Localized:
    """A firm's own name with per-language labels, picked for each reader."""
    return Localized(labels, default)


# -- encoding ----------------------------------------------------------------------------------
def is_message(value: Any) -> bool:
    """Whether `value` is a lazy gettext call that `encode` can store."""
    return isinstance(value, LazyString) and _function_name(value) is not None


def _function_name(value: LazyString) -> str | None:
    func = value._func
    name = getattr(func, "__name__", "")
    if name not in _SIGNATURES:
        return None
    owner = getattr(func, "__self__", None)
    if isinstance(owner, Domain) or getattr(func, "__module__", "") == flask_babel.__name__:
        return name
    return None


def encode(value: LazyString) -> dict[str, Any]:
    """The JSON spec of a lazy gettext call (`lazy_gettext`, `lazy_pgettext`, `lazy_ngettext`,
    `lazy_npgettext`, from flask_babel or one of its domains)."""
    name = _function_name(value) if isinstance(value, LazyString) else None
    if name is None:
        raise MessageError(f"not a lazy gettext call: {value!r}")
    args = list(value._args)
    variables = dict(value._kwargs)
    spec: dict[str, Any] = {}
    for argument, key in _SIGNATURES[name]:
        if args:
            spec[key] = args.pop(0)
        elif argument in variables:
            spec[key] = variables.pop(argument)
        else:
            raise MessageError(f"{name}() without {argument}")
    if args:
        raise MessageError(f"{name}() with unexpected arguments {args!r}")
    if "n" in spec:
        spec["n"] = encode_param(spec["n"])
    if variables:
        spec["params"] = {key: encode_param(val) for key, val in variables.items()}
    return spec


def encode_param(value: Any) -> Any:
    """A message parameter as JSON: plain values as they are, the rest tagged."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)  # Markup and other subclasses become plain text (escaped when shown)
    if isinstance(value, LazyString):
        return {"$msg": encode(value)} if is_message(value) else str(value)
    if isinstance(value, Money | Day | Localized):
        return value.to_json()
    if isinstance(value, date):  # a bare date is still a date: shown in the reader's locale
        return Day(value).to_json()
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    return str(value)


# -- rendering ---------------------------------------------------------------------------------
def decode_param(value: Any) -> Any:
    """A stored parameter back as a value for `%` formatting in the current locale."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    [(tag, data)] = value.items()
    if tag == "$msg":
        return render(data)
    if tag == "$money":
        return format_money(Decimal(data[0]), data[1])
    if tag == "$day":
        text = str(data)
        return format_date(datetime.fromisoformat(text) if "T" in text
                           else date.fromisoformat(text))
    if tag == "$localized":
        return str(Localized(data.get("labels"), decode_param(data.get("default"))))
    if tag == "$decimal":
        return Decimal(data)
    return value


def render(spec: Mapping[str, Any]) -> str:
    """The message in the current locale (use `force_locale` for another one)."""
    try:
        params = {key: decode_param(val) for key, val in (spec.get("params") or {}).items()}
        msgid = spec["msgid"]
        context = spec.get("context")
        if spec.get("plural") is not None:
            n = decode_param(spec.get("n"))
            if context is not None:
                return flask_babel.npgettext(context, msgid, spec["plural"], n, **params)
            return flask_babel.ngettext(msgid, spec["plural"], n, **params)
        if context is not None:
            return flask_babel.pgettext(context, msgid, **params)
        return flask_babel.gettext(msgid, **params)
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise MessageError(f"cannot render {spec!r}: {exc}") from exc
