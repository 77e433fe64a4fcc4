"""Signals the contacts addon publishes, so addons that build on contacts (deals, offers,
loyalty, tickets) plug in without contacts importing any of them.

Connect from your addon's `init_app` (or module level) with blinker's `connect`; the sender is
the Flask app, keyword arguments are plain data (ids, dates), never ORM objects.

`partner_merged(app, survivor_id: int, merged_ids: list[int])`
    Sent by `contacts.merge.merge_partners` inside the merge's transaction, after contacts moved
    its own links and before the merged partners are deleted. A receiver re-points its rows from
    `merged_ids` to `survivor_id` through `db.session` (an UPDATE in SQL is best) and must not
    commit: if anything fails, the whole merge rolls back, receivers' changes included. Rows left
    pointing at a merged partner would be removed by its foreign keys (ON DELETE CASCADE/SET
    NULL), i.e. lost.

        from addons.contacts.signals import partner_merged

        @partner_merged.connect
        def _move_deals(app, survivor_id, merged_ids, **_kw):
            db.session.execute(update(Deal).where(Deal.partner_id.in_(merged_ids))
                               .values(partner_id=survivor_id))

`collect_revenue(app, start: date, end: date, currency: str)`
    Sent by `contacts.segments.collect_revenue_for` when the ABC segments are computed. Each
    receiver returns the revenue it knows of for the half-open period `[start, end)` as a
    mapping `{partner_id: amount}` where `amount` is either a `Decimal` already in `currency`
    (the company currency; convert with `core.api.convert(amount, from_cur, currency, day)`)
    or a mapping `{currency_code: Decimal}`, which contacts converts with `core.refdata.convert`
    at the period's last day. Revenue of a person may be booked on their company: return it
    under the id that should be ranked. Receivers only read; returning `None` or `{}` is fine.
    Results of all receivers are added up.

        @collect_revenue.connect
        def _won_deals(app, start, end, currency, **_kw):
            rows = db.session.execute(select(Deal.partner_id, Deal.currency,
                                             func.sum(Deal.amount)).where(...).group_by(...))
            result = {}
            for pid, cur, total in rows:
                result.setdefault(pid, {})[cur] = total
            return result
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: See the module docstring: keyword arguments `survivor_id`, `merged_ids`.
partner_merged = _signals.signal("contacts.partner-merged")

#: See the module docstring: keyword arguments `start`, `end`, `currency`; receivers return
#: `{partner_id: Decimal | {currency: Decimal}}`.
collect_revenue = _signals.signal("contacts.collect-revenue")

__all__ = ["collect_revenue", "partner_merged"]
