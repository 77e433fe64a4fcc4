"""The product list's rows as HTML, written in Python instead of by a Jinja loop.

Why: as for the contacts list (`contacts/rows.py`) and the deal list (`pipeline/cards.py`),
Jinja's escaping and undefined-aware attribute reads of every output of every row were about
half of the page's time. What a user typed (SKU, name, unit) is escaped with
`markupsafe.escape`; amounts come from the request's `core.api.formatters()`; the words and
the link pattern are made once a page. The markup is the one `documents/products.html` had.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from core.api import Formatters, _, url_pattern

__all__ = ["product_rows"]


def product_rows(products: Sequence[Any], currency: str, fmt: Formatters) -> Markup:
    """The `<tr>` of every product row (or the "no products" row), as one piece of markup."""
    if not products:
        return Markup('<tr><td colspan="6" class="muted">{}</td></tr>').format(
            _("No products yet."))
    link = url_pattern("documents.product_form", "product_id")
    # Words are looked up outside the f-strings: Babel's extractor does not read into them.
    words = escape(_("No price")), escape(_("Not tracked"))
    no_price, not_tracked = (f'<span class="muted">{word}</span>' for word in words)
    yes, no = escape(_("Yes")), escape(_("No"))
    money, number = fmt.money, fmt.number
    out = []
    for p in products:
        price = no_price if p.price is None else escape(money(p.price, currency))
        stock = escape(number(p.stock)) if p.track_stock else not_tracked
        out.append(
            f'<tr>\n<td><a href="{link(p.id)}">{escape(p.sku)}</a></td>\n'
            f"<td>{escape(p.name)}</td><td>{escape(p.unit)}</td>\n"
            f'<td class="num">{price}</td>\n<td class="num">{stock}</td>\n'
            f"<td>{yes if p.active else no}</td>\n</tr>\n")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped
