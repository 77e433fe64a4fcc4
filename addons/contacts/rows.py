"""The contacts list's rows as HTML, written in Python instead of by a Jinja loop.

Why: a page shows up to 200 rows of a dozen outputs each. Jinja escapes every output and
reads every attribute through its undefined-aware `getattr`; with the rows' preparation
that was a third of the list page's time. Here what a user typed (names, cities, tags, ...)
is escaped with `core.api.escape_text` (autoescape's escaping, as a plain str), ids are
written as they are, and each row is one f-string. Translated texts and the status badges
are built once a page, as `pipeline.cards` does for the board.

The markup is the one `contacts/list.html` had; `contacts.js` and the tests rely on its
`partner-<id>` ids and the `ids` checkboxes of the bulk form.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app
from flask_babel import get_locale
from markupsafe import Markup

from core.api import _, escape_text, url_pattern

from . import custom_fields as cf
from . import services
from .listing import PER_PAGE, Page
from .models import STATUS_LABELS, STATUSES

__all__ = ["list_rows", "pager", "status_labels"]


def status_labels() -> dict[str, str]:
    """The statuses' labels in the reader's language, resolved once per app and language:
    printing a lazy label runs Flask-Babel's whole gettext chain (~5 µs each)."""
    kept = current_app.extensions.setdefault("contacts.status_labels", {})
    locale = str(get_locale() or "en")
    found = kept.get(locale)
    if found is None:
        found = kept[locale] = {k: str(v) for k, v in STATUS_LABELS.items()}
    return found


def list_rows(page: Page, list_fields: list[Any]) -> Markup:
    """The `<tr>` of every row of `page` (or the "no contacts" row), as one piece of markup."""
    if not page.rows:
        return Markup('<tr><td colspan="{}" class="muted">{}</td></tr>').format(
            9 + len(list_fields), _("No contacts match."))
    card: Callable[[Any], str] = url_pattern("contacts.card", "partner_id")
    select = _("Select %(name)s")
    # Words are looked up outside the f-strings: Babel's extractor does not read into them.
    word = escape_text(_("company"))
    company_word = f' <span class="muted kind">{word}</span>'
    labels = status_labels()
    badges = {s: f'<span class="badge status-{s}">{escape_text(labels[s])}</span>'
              for s in STATUSES}
    phone, owners, tags, custom = (services.phone_formatter(), page.owners, page.tags,
                                   page.custom_values)
    out = []
    for p in page.rows:
        pid, name = p.id, escape_text(p.name)
        badge_html = "".join(f'<span class="badge tag">{escape_text(t)}</span>'
                             for t in tags.get(pid, ()))
        company = (f'<a href="{card(p.company_id)}">{escape_text(p.company_name or "")}</a>'
                   if p.company_id else "")
        email = escape_text(p.email) if p.email else ""
        mail = f'<a href="mailto:{email}">{email}</a>' if email else ""
        out.append(
            f'<tr id="partner-{pid}">\n'
            f'<td><input type="checkbox" name="ids" value="{pid}" '
            f'aria-label="{escape_text(select % {"name": p.name})}"></td>\n'
            f'<td><a href="{card(pid)}">{name}</a>'
            f'{company_word if p.kind == "company" else ""}{badge_html}</td>\n'
            f'<td>{company}</td>\n'
            f'<td class="nowrap">{escape_text(phone(p.phone))}</td>\n'
            f'<td>{mail}</td>\n'
            f'<td>{escape_text(p.city or "")}</td>\n'
            f'<td>{badges.get(p.status, "")}</td>\n'
            f'<td>{escape_text(owners.get(p.owner_id, ""))}</td>\n'
            f'<td>{escape_text(p.segment or "")}</td>\n')
        if list_fields:
            values: Mapping[int, Any] = custom.get(pid, {})
            out.append("".join(f"<td>{escape_text(cf.display(f, values.get(f.id)))}</td>"
                               for f in list_fields))
        out.append("</tr>\n")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped


def pager(page: Page, list_url: str) -> Markup:
    """The pager under the list (previous, the page numbers around the current one with the
    first and the last, next, the page sizes), or nothing for a single page. Written here for
    the same reason as the rows: a dozen links with a test each were a quarter of the list's
    template. Links keep the filters (`ListParams.url`) and are escaped (`&` in a query)."""
    params, last = page.params, page.pages
    if last <= 1:
        return Markup("")
    current, url = params.page, params.url
    # Words are looked up outside the f-strings: Babel's extractor does not read into them.
    pages, previous_word, next_word, per_page = (
        escape_text(_("Pages")), escape_text(_("← Previous")), escape_text(_("Next →")),
        escape_text(_("Per page:")))
    out = [f'<nav class="pager" aria-label="{pages}">\n']
    if current > 1:
        out.append(f'<a href="{escape_text(url(list_url, page=current - 1))}" rel="prev">'
                   f'{previous_word}</a>\n')
    shown = 0
    for n in page.window():
        if n > shown + 1:
            out.append('<span class="gap">…</span>\n')
        out.append(f'<strong aria-current="page">{n}</strong>\n' if n == current else
                   f'<a href="{escape_text(url(list_url, page=n))}">{n}</a>\n')
        shown = n
    if current < last:
        out.append(f'<a href="{escape_text(url(list_url, page=current + 1))}" rel="next">'
                   f'{next_word}</a>\n')
    out.append(f'<span class="muted">· {per_page}\n')
    out.extend(f"<strong>{n}</strong> " if n == params.per_page else
               f'<a href="{escape_text(url(list_url, per_page=n, page=1))}">{n}</a> '
               for n in PER_PAGE)
    out.append("</span>\n</nav>\n")
    return Markup("".join(out))  # noqa: S704 - every text and link above is escaped
