"""Rendering user-editable document templates safely, with plain data only.

Templates (offers, contracts, letters) are edited by users, so they render in the kernel's
strict sandbox (`core.sandbox`, shared with mail templates) with no globals and a context made
only of plain values: dicts, lists, strings, numbers, `Decimal`, dates. No ORM object ever
reaches a template, so there is nothing to walk from (`offer.partner.owner.password_hash`), and
the sandbox refuses every underscore attribute (`''.__class__.__mro__`,
`cycler.__init__.__globals__`). Any such attempt is a `TemplateRenderError` with a translated
message pointing at the editor's field list, and nothing is rendered. Unlike mail templates, an
unknown name prints as empty (a field left blank on a document), but an attribute of it is an
error.

Money, dates and numbers are formatted in the DOCUMENT's language (a Russian offer printed by
a Latvian user reads "1 234,50 ₽"), so the filters here take the locale from the context, not
from the request. `offer_context()` is the one place that turns an offer into plain data.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel.dates import format_date as babel_date
from babel.numbers import format_currency, format_decimal
from flask_babel import force_locale
from flask_babel import gettext as _
from jinja2 import Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SecurityError
from markupsafe import Markup

from core.sandbox import (
    PLAIN_SCALARS,
    StrictSandbox,
    TemplateRenderError,
    check_plain,
    make_sandbox,
)

from .words import UnsupportedAmount, amount_in_words

DOCUMENT_LANGS = ("en", "lv", "ru", "uz", "kk", "ro")


def base_lang(lang: str | None) -> str:
    code = (lang or "en").replace("-", "_").split("_")[0].lower()
    return code if code in DOCUMENT_LANGS else "en"


def _filters(lang: str) -> dict[str, Any]:
    """Filters bound to the document's locale."""

    def money(value: Any, currency: str = "EUR") -> str:
        if value is None or value == "":
            return ""
        return format_currency(Decimal(str(value)), currency, locale=lang)

    def number(value: Any, digits: int | None = None) -> str:
        if value is None or value == "":
            return ""
        if digits is None:
            return format_decimal(Decimal(str(value)), locale=lang)
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(Decimal(str(value)), format=pattern, locale=lang)

    def date_(value: Any, format: str = "medium") -> str:  # noqa: A002 - Jinja's name
        if not value:
            return ""
        if isinstance(value, datetime):
            value = value.date()
        return babel_date(value, format=format, locale=lang)

    def words(value: Any, currency: str = "EUR") -> str:
        try:
            return amount_in_words(Decimal(str(value)), currency, lang)
        except UnsupportedAmount:
            return ""

    return {"money": money, "number": number, "date": date_, "words": words}


_ENVS: dict[str, StrictSandbox] = {}


def environment(lang: str) -> StrictSandbox:
    """One sandbox per document language, with no globals (no cycler, joiner, namespace...)."""
    lang = base_lang(lang)
    env = _ENVS.get(lang)
    if env is None:
        env = make_sandbox(filters=_filters(lang), autoescape=True, auto_reload=False,
                           cache_size=200)
        _ENVS[lang] = env
    return env


@lru_cache(maxsize=128)
def _compiled(lang: str, source: str) -> Template:
    """Compiling costs more than rendering; a template's source rarely changes."""
    return environment(lang).from_string(source)


def render_string(source: str, data: Mapping[str, Any], lang: str) -> str:
    """Render `source` with plain `data` in `lang`'s sandbox; errors are translated."""
    check_plain(data, "data")
    try:
        return _compiled(base_lang(lang), source).render(**data)
    except SecurityError:
        raise TemplateRenderError(_(
            "The template tried to use something templates may not reach (a hidden attribute "
            "or internal object). Use only the fields listed beside the editor.")) from None
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(_("Template error on line %(line)s: %(message)s",
                                    line=exc.lineno, message=exc.message or "")) from None
    except UndefinedError as exc:
        raise TemplateRenderError(_("The template uses an unknown field: %(message)s",
                                    message=exc.message or "")) from None
    except TemplateError as exc:
        raise TemplateRenderError(_("The template could not be rendered: %(message)s",
                                    message=str(exc))) from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateRenderError(_("The template could not be rendered: %(message)s",
                                    message=str(exc))) from None


def render_document(html: str, css: str, data: Mapping[str, Any], lang: str) -> str:
    """The final HTML given to WeasyPrint: both the body and the CSS go through the sandbox
    (so the CSS can print the translated word "Page" in the footer)."""
    lang = base_lang(lang)
    body = render_string(html, data, lang)
    style = render_string(css, data, lang)
    title = str(Markup.escape(str(data.get("title", ""))))
    return ('<!DOCTYPE html><html lang="' + lang + '"><head><meta charset="utf-8"><title>'
            + title + "</title><style>" + style + "</style></head><body>" + body
            + "</body></html>")


# -- plain data --------------------------------------------------------------------------------
def labels(lang: str) -> dict[str, str]:
    """Words printed on documents, translated into the document's language."""
    with force_locale(base_lang(lang)):
        return {
            "offer": _("Commercial offer"), "number": _("Number"), "date": _("Date"),
            "valid_until": _("Valid until"), "client": _("Client"), "seller": _("Seller"),
            "vat_no": _("VAT number"), "reg_no": _("Registration number"),
            "bank": _("Bank account"), "pos": _("No."), "description": _("Description"),
            "quantity": _("Quantity"), "unit": _("Unit"), "price": _("Price"),
            "discount": _("Discount"), "vat": _("VAT"), "amount": _("Amount"),
            "untaxed": _("Total without VAT"), "vat_at": _("VAT"), "total": _("Total"),
            "in_words": _("Amount in words"), "payment_terms": _("Payment terms"),
            "notes": _("Notes"), "signature": _("Signature"), "name_title": _("Name, title"),
            "stamp": _("Stamp"), "page": _("Page"), "of": _("of"), "phone": _("Phone"),
            "email": _("E-mail"), "contract": _("Contract"), "letter": _("Letter"),
            "base": _("Base"), "iban": _("IBAN"), "bic": _("SWIFT/BIC"),
            "website": _("Website"),
        }


def company_context() -> dict[str, Any]:
    """The seller: Settings → Company details, each empty field from `BIRGA_COMPANY_*`.
    `logo` is a `data:` URL or a URL our fetcher serves (`/static/...`)."""
    from core.api import company_details

    return dict(company_details())


PARTNER_FIELDS = ("id", "kind", "name", "first_name", "last_name", "middle_name", "company_name",
                  "job_title", "phone", "email", "website", "street", "city", "postcode",
                  "region", "country", "lang", "birthday", "vat", "registration_no", "status",
                  "source", "segment")


def partner_context(partner: Any) -> dict[str, Any]:
    """Any field of a person or company, plus the company's fields for a person."""
    if partner is None:
        return {}
    data = {name: getattr(partner, name, None) for name in PARTNER_FIELDS}
    data["address"] = ", ".join(str(p) for p in (partner.street, partner.postcode, partner.city)
                                if p)
    company = getattr(partner, "company", None)
    data["company"] = ({name: getattr(company, name, None) for name in PARTNER_FIELDS}
                       if company is not None else {})
    return data


def deal_context(deal: Any) -> dict[str, Any]:
    """A pipeline deal's columns as plain values (only called when pipeline is enabled)."""
    if deal is None:
        return {}
    data: dict[str, Any] = {}
    for column in deal.__table__.columns:
        value = getattr(deal, column.key, None)
        if isinstance(value, PLAIN_SCALARS):
            data[column.key] = value
    return data


def offer_context(offer: Any) -> dict[str, Any]:
    """An offer as plain data for its template: header, client, lines, totals per VAT rate,
    total in words. Totals come from `offers.totals_of` (the one rounding rule)."""
    from addons.contacts.models import Partner
    from core.api import db

    from .models import Product
    from .offers import UNIT_LABELS, display_number, product_description, totals_of

    lang = base_lang(offer.lang)
    totals = totals_of(offer)
    product_ids = {line.product_id for line in offer.lines if line.product_id}
    products = ({p.id: p for p in db.session.scalars(
        db.select(Product).where(Product.id.in_(product_ids)))} if product_ids else {})
    with force_locale(lang):  # "pcs" in the document's language
        units = {code: str(label) for code, label in UNIT_LABELS.items()}
    lines = []
    for pos, (line, net) in enumerate(zip(offer.lines, totals.line_nets, strict=True), 1):
        product = products.get(line.product_id)
        lines.append({
            "pos": pos, "sku": product.sku if product else "",
            "description": line.description,
            "details": product_description(product, lang) if product else "",
            "quantity": line.quantity, "unit": units.get(line.unit, line.unit),
            "unit_price": line.unit_price,
            "discount": line.discount, "vat_rate": line.vat_rate, "amount": net,
        })
    with force_locale(lang):
        number = display_number(offer)
    try:
        words = amount_in_words(totals.total, offer.currency, lang)
    except UnsupportedAmount:
        words = ""
    partner = db.session.get(Partner, offer.partner_id)
    return {
        "lang": lang, "labels": labels(lang), "company": company_context(),
        "title": number, "deal": {},
        "client": partner_context(partner),
        "offer": {
            "id": offer.id, "number": number, "revision": offer.revision, "state": offer.state,
            "date": offer.offer_date, "valid_until": offer.valid_until,
            "currency": offer.currency, "payment_terms": offer.payment_terms or "",
            "notes": offer.notes or "", "deal_id": offer.deal_id,
        },
        "lines": lines,
        "totals": {
            "untaxed": totals.untaxed, "tax": totals.tax, "total": totals.total,
            "groups": [{"rate": g.rate, "base": g.base, "tax": g.tax} for g in totals.groups],
            "in_words": words,
        },
    }


def generic_context(*, partner: Any = None, deal: Any = None, lang: str | None = None,
                    today: date | None = None) -> dict[str, Any]:
    """Plain data for a contract or letter: any field of the person, their company and the
    deal (the deal only when the pipeline addon is enabled and a deal is given)."""
    lang = base_lang(lang or getattr(partner, "lang", None))
    person = partner_context(partner)
    return {"lang": lang, "labels": labels(lang), "company": company_context(),
            "partner": person, "client": person, "deal": deal_context(deal),
            "today": today or date.today(),
            "title": str(person.get("name") or "")}
