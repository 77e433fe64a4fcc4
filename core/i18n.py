"""Locale selection and translation catalogues merged in dependency order.

Flask-Babel 4.0.0 merges catalogues from several directories but keeps the plural rule of
whichever it saw last, and caches them on the shared `Babel` object (flask-babel#241). We merge
ourselves: core first, then addons in load order, then the instance's overrides, and hand
Flask-Babel one finished `Translations` per locale through our own domain.
"""
from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, request, session
from flask_babel import Babel, Domain, get_locale
from flask_login import current_user
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

log = logging.getLogger(__name__)

DOMAIN = "messages"
#: Interface languages; English is the source language.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "lv": "Latviešu",
    "ru": "Русский",
    "uz": "Oʻzbekcha",
    "kk": "Қазақша",
    "ro": "Română",
}
TRANSLATED = ("lv", "ru", "uz", "kk", "ro")
#: The gettext context of an addon manifest's `name` and `summary` (`birga i18n update`
#: extracts both into the addon's catalogue; `manifest_text` reads them back).
MANIFEST_CONTEXT = "addon manifest"


def load_catalog(directory: Path, locale: str) -> Translations | None:
    """The compiled catalogue; compiled in memory from the `.po` when the `.mo` is stale.

    `.mo` files are build output (`birga i18n compile`, run by `make`), so a fresh checkout or an
    edited `.po` still shows the right text instead of silently falling back to English.
    """
    base = directory / locale / "LC_MESSAGES"
    po, mo = base / f"{DOMAIN}.po", base / f"{DOMAIN}.mo"
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    if po.is_file():
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        return Translations(buf, domain=DOMAIN)
    return None


def merge_catalogs(directories: Iterable[Path], locale: str) -> NullTranslations:
    """Later directories override earlier ones; the plural rule comes from the first catalogue."""
    merged: Translations | None = None
    for directory in directories:
        catalog = load_catalog(Path(directory), locale)
        if catalog is None:
            continue
        if merged is None:
            merged = catalog
        else:
            merged.merge(catalog)
    return merged if merged is not None else NullTranslations()


@lru_cache(maxsize=128)
def _addon_catalog(directory: Path, locale: str) -> NullTranslations:
    return load_catalog(directory, locale) or NullTranslations()


def manifest_text(addon: Any, key: str) -> str:
    """The addon manifest's `key` (`name` or `summary`) in the user's language.

    Read from the addon's own catalogue, not the merged one: the Addons page lists disabled
    addons too, whose catalogues are not merged. Untranslated text stays as written."""
    text = str(addon.manifest.get(key) or "")
    if not text:
        return ""
    locale = str(get_locale() or "en")
    catalog = _addon_catalog(Path(addon.path) / "translations", locale)
    return catalog.upgettext(MANIFEST_CONTEXT, text)


class MergedDomain(Domain):
    """A Flask-Babel domain backed by our merged catalogues, one per locale, built lazily."""

    def __init__(self, directories: list[Path]) -> None:
        super().__init__(domain=DOMAIN)
        self.directories = directories
        self._lock = threading.Lock()

    def translations_for(self, locale: str) -> NullTranslations:
        try:
            return self.cache[locale]
        except KeyError:
            with self._lock:
                if locale not in self.cache:
                    self.cache[locale] = merge_catalogs(self.directories, locale)
                return self.cache[locale]

    def get_translations(self) -> NullTranslations:
        return current_translations()


def current_translations() -> NullTranslations:
    """The merged catalogue of the current locale, looked up once per request and locale.

    A list page calls gettext a few hundred times; going through Flask-Babel each time
    (context, domain, locale, `str(locale)`) cost about a millisecond a page. The result is
    kept on Flask-Babel's own per-request namespace beside the `Locale` object it was built
    for, so `force_locale` (a new object) is honoured at once.
    """
    try:  # `g` resolved once: every access through its proxy looks the context up again
        request_g = g._get_current_object()
    except RuntimeError:  # no app context
        return NullTranslations()
    ctx = getattr(request_g, "_flask_babel", None)
    locale = getattr(ctx, "babel_locale", None) if ctx is not None else None
    if locale is None:
        locale = get_locale()
        if locale is None:
            return NullTranslations()
        ctx = request_g._flask_babel
    cached = getattr(ctx, "birga_translations", None)
    if cached is not None and cached[0] is locale:
        return cached[1]
    translations = current_app.extensions["birga.i18n"].translations_for(str(locale))
    ctx.birga_translations = (locale, translations)
    return translations


def _formatted(eval_ctx: EvalContext, message: str, variables: dict[str, Any]) -> str:
    """Always a format string; in HTML the message is markup (it is ours, from the catalogue)
    and `%` escapes the variables, exactly as `jinja2.ext.i18n`'s new style does."""
    if not variables and "%" not in message:  # most texts: nothing to format, same result
        return Markup(message) if eval_ctx.autoescape else message  # noqa: S704 - catalogue
    if eval_ctx.autoescape:
        return Markup(message) % variables  # noqa: S704 - catalogue text, not user input
    return message % variables


@pass_eval_context
def _template_gettext(eval_ctx: EvalContext, string: str, **variables: Any) -> str:
    return _formatted(eval_ctx, current_translations().ugettext(string), variables)


@pass_eval_context
def _template_ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int,
                       **variables: Any) -> str:
    variables.setdefault("num", num)
    return _formatted(eval_ctx, current_translations().ungettext(singular, plural, num),
                      variables)


@pass_eval_context
def _template_pgettext(eval_ctx: EvalContext, context: str, string: str,
                       **variables: Any) -> str:
    return _formatted(eval_ctx, current_translations().upgettext(context, string),
                      variables)


@pass_eval_context
def _template_npgettext(eval_ctx: EvalContext, context: str, singular: str, plural: str,
                        num: int, **variables: Any) -> str:
    variables.setdefault("num", num)
    return _formatted(eval_ctx, current_translations().unpgettext(
        context, singular, plural, num), variables)


def _install_template_gettext(app: Flask) -> None:
    """Templates translate through `current_translations()` with Jinja's new-style rules
    (always a format string, variables escaped), like `jinja2.ext.i18n` does, but without
    its context-passing wrappers: inside a loop or a `{% set %}` block each of those copied
    the whole template context, once per `_()`."""
    env = app.jinja_env
    env.install_gettext_callables(_template_gettext, _template_ngettext, newstyle=True,
                                  pgettext=_template_pgettext, npgettext=_template_npgettext)
    env.globals.update(_=_template_gettext, gettext=_template_gettext,
                       ngettext=_template_ngettext, pgettext=_template_pgettext,
                       npgettext=_template_npgettext)


class BirgaBabel(Babel):
    """Flask-Babel whose domain belongs to the current app, not to the shared extension."""

    @property
    def domain_instance(self) -> Domain:  # type: ignore[override]
        return current_app.extensions["birga.i18n"]


#: The interface languages as Babel locales, parsed once: Flask-Babel parses the selector's
#: answer on every request (~25 µs) unless it is a `Locale` already. They are only read.
_LOCALES: dict[str, Locale] = {}


def _locale(code: str) -> Locale:
    found = _LOCALES.get(code)
    if found is None:
        found = _LOCALES[code] = Locale.parse(code)
    return found


def select_locale() -> Locale:
    """The user's setting, else the session's choice (login page), else Accept-Language."""
    if not has_request_context():
        return _locale("en")  # CLI, jobs: callers use `force_locale` for a recipient's language
    if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale:
        if current_user.locale in LANGUAGES:
            return _locale(current_user.locale)
    chosen = session.get("locale")
    if chosen in LANGUAGES:
        return _locale(chosen)
    return _locale(request.accept_languages.best_match(list(LANGUAGES)) or "en")


def select_timezone() -> str | None:
    if not has_request_context():
        return None
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.timezone or None
    return None


def plural_count(locale: str) -> int:
    """How many plural forms gettext needs for `locale` (CLDR data through Babel)."""
    from babel.messages.plurals import get_plural

    return get_plural(Locale.parse(locale)).num_plurals


babel = BirgaBabel()


def init_app(app: Flask, directories: list[Path]) -> None:
    app.extensions["birga.i18n"] = MergedDomain(directories)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone,
                   default_timezone=app.config.get("BIRGA_DEFAULT_TIMEZONE", "UTC"))
    _install_template_gettext(app)
