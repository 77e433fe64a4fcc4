"""Board cards and deal-list rows as HTML, written in Python instead of by a Jinja loop.

Why: a board shows up to 300 cards with a dozen outputs each. Jinja escapes every output
(a `Markup` object even for a number) and reads every attribute through its undefined-aware
`getattr`; that was most of the board's rendering time. Here only what a user typed is
escaped (titles, names, tags: `core.api.escape_text`, autoescape's escaping as a plain str),
numbers are written as they are, and each card is one f-string. Translated texts and the
per-column parts (the stage list of the no-JavaScript move form) are built once per page.

The markup is the one `pipeline/board.html` had; `board.js` and the tests rely on its
classes and data attributes (`deal-card`, `data-deal`, `data-version`, `data-no-amount` (Won
asks for the amount), `no-next`, the
`stage_<id>` select and the `move` button of the page's one form).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from core.api import escape_text

from .board import BoardColumn, Card
from .models import Stage

__all__ = ["CardHtml", "RowHtml", "stage_options"]

_NO_NEXT = ' class="no-next"'


def stage_options(stages: list[Stage], labels: Mapping[int, str]) -> dict[int, str]:
    """For each stage, the `<option>`s of every stage with that one selected (escaped)."""
    items = [(s.id, escape_text(labels[s.id])) for s in stages]
    return {current.id: "".join(
        f'<option value="{sid}"{" selected" if sid == current.id else ""}>{label}</option>'
        for sid, label in items) for current in stages}


class CardHtml:
    """Writes a column's cards; built per request with the page's texts and rights."""

    def __init__(self, *, deal_url: str, can_write: bool,
                 fmt_money: Callable[[Decimal | None, str], str], no_next_flag: str,
                 stage_text: str, move_text: str, options: Mapping[int, str]) -> None:
        self.deal_url = escape_text(deal_url)
        self.can_write = can_write
        self.fmt_money = fmt_money
        self.no_next_flag = str(no_next_flag)  # markup (the template's translated flag)
        self.stage_text = escape_text(stage_text)
        self.move_text = escape_text(move_text)
        self.options = options

    def __call__(self, column: BoardColumn) -> Markup:
        """The `<li>` of every card of `column`, as one piece of markup."""
        stage = column.stage
        is_open = stage.kind == "open"
        url, fmt, flag = self.deal_url, self.fmt_money, self.no_next_flag
        drag = ' draggable="true"' if self.can_write else ""
        select = (f'" form="board-move" aria-label="{self.stage_text}">'
                  f'{self.options.get(stage.id, "")}</select><button name="move" value="')
        move = f'" form="board-move" class="small">{self.move_text}</button></div>'
        out = []
        for card in column.cards:
            deal = card.deal
            did, version = deal.id, deal.version
            flagged = is_open and deal.next_activity_at is None
            company, person, owner = card.company_name, card.partner_name, card.owner_name
            client = f"{company} · {person}" if company and person else company or person
            out.append(
                f'<li class="deal-card{" no-next" if flagged else ""}'
                f'{" stale" if deal.stale else ""}" id="deal-{did}" data-deal="{did}" '
                f'data-version="{version}"{"" if deal.amount else " data-no-amount"}{drag}>\n'
                f'<a class="deal-title" href="{url}{did}">{escape_text(deal.title)}</a>\n')
            if client:
                out.append(f'<div class="deal-client">{escape_text(client)}</div>\n')
            out.append(f'<div class="deal-meta"><span class="deal-amount">'
                       f'{escape_text(fmt(deal.amount, deal.currency))}</span>')
            if owner:
                out.append(f'<span class="deal-owner muted">{escape_text(owner)}</span>')
            out.append("</div>\n")
            if card.tags:
                out.append('<div class="deal-tags">' + "".join(
                    f'<span class="badge tag">{escape_text(t.name)}</span>' for t in card.tags)
                    + "</div>\n")
            if flagged:
                out.append(flag)
            if drag:
                out.append(f'<div class="card-move js-hide"><select name="stage_{did}{select}'
                           f'{did}:{version}{move}')
            out.append("</li>\n")
        return Markup("".join(out))  # noqa: S704 - every user text above went through escape


class RowHtml:
    """Writes the deal list's rows (`pipeline/deals.html`), the same way as `CardHtml`."""

    def __init__(self, *, deal_url: str, fmt_money: Callable[[Decimal | None, str], str],
                 fmt_date: Callable[[Any], str], stage_names: Mapping[int, str],
                 none_planned: str) -> None:
        self.deal_url = escape_text(deal_url)
        self.fmt_money = fmt_money
        self.fmt_date = fmt_date
        self.stage_names = {k: escape_text(v) for k, v in stage_names.items()}
        self.none_planned = str(none_planned)  # markup (the page's translated flag)

    def __call__(self, cards: list[Card]) -> Markup:
        url, money, day, names = self.deal_url, self.fmt_money, self.fmt_date, self.stage_names
        out = []
        for card in cards:
            deal = card.deal
            did, stage = deal.id, deal.stage
            next_at = deal.next_activity_at
            flagged = next_at is None and stage.kind == "open"
            company, person, owner = card.company_name, card.partner_name, card.owner_name
            client = f"{company} · {person}" if company and person else company or person
            if next_at is not None:
                planned = escape_text(day(next_at))
            else:
                planned = self.none_planned if flagged else ""
            out.append(
                f'<tr{_NO_NEXT if flagged else ""} data-deal="{did}">\n'
                f'<td><a href="{url}{did}">{escape_text(deal.title)}</a></td>\n'
                f'<td>{escape_text(client or "")}</td>\n'
                f'<td>{names[stage.id]}</td>\n'
                f'<td class="nowrap">{escape_text(money(deal.amount, deal.currency))}</td>\n'
                f'<td>{deal.effective_probability} %</td>\n'
                f'<td>{escape_text(day(deal.expected_close))}</td>\n'
                f'<td>{escape_text(owner or "")}</td>\n'
                f'<td>{planned}</td>\n</tr>\n')
        return Markup("".join(out))  # noqa: S704 - every user text above went through escape
