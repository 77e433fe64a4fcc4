"""Templates users and admins edit (mail, documents) render in one kind of sandbox, with plain
data only.

Why: such a template is written by someone who must not reach Python internals
(`{{ ''.__class__.__mro__ }}`, `cycler.__init__.__globals__`) nor an ORM object, whose
attributes and lazy loads would walk to other records (`offer.partner.owner.password_hash`).
So templates render in Jinja's `ImmutableSandboxedEnvironment`, made strict: every unsafe
access is an error, never a quiet empty string, so a probing template is refused as a whole
instead of half-rendered. And the data handed to them is checked to be plain (text, numbers,
dates, None, and lists and dicts of those) before rendering.

Each user of the sandbox keeps its own filters, undefined policy and error messages (an e-mail
template names the missing language; a document template points at the editor's field list);
the errors here are the common base: `except SandboxError` catches them all.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

__all__ = [
    "PLAIN_SCALARS", "PlainDataError", "SandboxError", "StrictSandbox", "TemplateRenderError",
    "check_plain", "make_sandbox",
]

#: Values a template may be given as they are (`markupsafe.Markup` is a `str`).
PLAIN_SCALARS = (str, int, float, Decimal, bool, date, datetime, time, type(None))


class SandboxError(Exception):
    """A template or its data refused; `str()` is a translated message safe to show."""


class PlainDataError(SandboxError, TypeError):
    """The data holds something other than plain values (e.g. an ORM object)."""


class TemplateRenderError(SandboxError):
    """A template that cannot be rendered: broken, or reaching for what it may not."""


class StrictSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox quietly gives an undefined value for `x.__class__`; this one makes every
    unsafe access an error."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                            "object is unsafe.")


def make_sandbox(*, filters: Mapping[str, Any] | None = None,
                 globals: Mapping[str, Any] | None = None,  # noqa: A002 - Jinja's name
                 jinja_globals: bool = False, **options: Any) -> StrictSandbox:
    """A `StrictSandbox` with `filters` added and only `globals` as globals.

    Jinja's default globals (`range`, `dict`, `lipsum`, `cycler`, `joiner`, `namespace`) are
    removed unless `jinja_globals` is true: a template gets only what its owner names.
    `options` go to the environment (`loader`, `autoescape`, `undefined`, `cache_size`...).
    """
    env = StrictSandbox(**options)
    if not jinja_globals:
        env.globals.clear()
    env.globals.update(globals or {})
    env.filters.update(filters or {})
    return env


def check_plain(value: Any, path: str = "context", *,
                error: type[PlainDataError] = PlainDataError) -> None:
    """Refuse anything but plain data, naming where it was found (`context['people'][0]`);
    raises `error`, so a caller can raise its own subclass."""
    if isinstance(value, PLAIN_SCALARS):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(_("%(path)s has a key that is not text.", path=path))
            check_plain(item, f"{path}[{key!r}]", error=error)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_plain(item, f"{path}[{index}]", error=error)
        return
    raise error(_(
        "%(path)s is a %(type)s; templates take plain data only (text, numbers, dates, lists "
        "and dicts of them), never database objects.",
        path=path, type=type(value).__name__))
