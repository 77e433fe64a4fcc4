"""The product and offer lists' rows as HTML, written in Python instead of by a Jinja loop.

Why: as for the contacts list (`contacts/rows.py`) and the deal list (`pipeline/cards.py`),
Jinja's escaping and undefined-aware attribute reads of every output of every row were about
half of the page's time. What a user typed (SKU, name, unit) is escaped with
`core.api.escape_text` (a plain str); amounts come from the request's `core.api.formatters()`;
the words and the link pattern are made once a page. The markup is the one
`documents/products.html` and `documents/offers.html` had.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from markupsafe import Markup

from core.api import Formatters, _, escape_text, url_pattern

__all__ = ["offer_rows", "product_rows"]


def product_rows(products: Sequence[Any], currency: str, fmt: Formatters) -> Markup:
    """The `<tr>` of every product row (or the "no products" row), as one piece of markup."""
    if not products:
        return Markup('<tr><td colspan="6" class="muted">{}</td></tr>').format(
            _("No products yet."))
    link = url_pattern("documents.product_form", "product_id")
    # Words are looked up outside the f-strings: Babel's extractor does not read into them.
    words = escape_text(_("No price")), escape_text(_("Not tracked"))
    no_price, not_tracked = (f'<span class="muted">{word}</span>' for word in words)
    yes, no = escape_text(_("Yes")), escape_text(_("No"))
    money, number = fmt.money, fmt.number
    out = []
    for p in products:
        price = no_price if p.price is None else escape_text(money(p.price, currency))
        stock = escape_text(number(p.stock)) if p.track_stock else not_tracked
        out.append(
            f'<tr>\n<td><a href="{link(p.id)}">{escape_text(p.sku)}</a></td>\n'
            f"<td>{escape_text(p.name)}</td><td>{escape_text(p.unit)}</td>\n"
            f'<td class="num">{price}</td>\n<td class="num">{stock}</td>\n'
            f"<td>{yes if p.active else no}</td>\n</tr>\n")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped


def offer_rows(offers: Sequence[Any], number: Callable[[Any], str], fmt: Formatters,
               states: Mapping[str, str], empty: str) -> Markup:
    """The `<tr>` of every offer row (id, number, revision, client, dates, state, total), or
    one row saying `empty`. `number` writes an offer's number (`offers.number_formatter`)."""
    if not offers:
        return Markup('<tr><td colspan="6" class="muted">{}</td></tr>').format(empty)
    link = url_pattern("documents.offer", "offer_id")
    day, money = fmt.date, fmt.money
    state_names = {code: escape_text(label) for code, label in states.items()}
    out = []
    for o in offers:
        out.append(
            f'<tr>\n<td><a href="{link(o.id)}">{escape_text(number(o))}</a></td>\n'
            f'<td>{escape_text(o.client or "")}</td>\n'
            f"<td>{escape_text(day(o.offer_date))}</td><td>{escape_text(day(o.valid_until))}</td>\n"
            f'<td>{state_names.get(o.state, "")}</td>\n'
            f'<td class="num">{escape_text(money(o.amount_total, o.currency))}</td>\n</tr>\n')
    return Markup("".join(out))  # noqa: S704 - every value above is escaped
