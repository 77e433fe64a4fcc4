"""Segments: the ABC class of every client by revenue, and named static/dynamic segments.

**ABC classes** (seed 001: "segment clients, e.g. ABC analysis, and serve each group
differently"). Contacts sells nothing itself, so it asks: `collect_revenue_for(start, end)`
sends the `collect_revenue` signal (`addons/contacts/signals.py` documents the contract) and
adds up what every receiver returns, converting foreign currencies to the company currency
with `core.refdata.convert`. Won deals, loyalty purchases or invoices each answer for their
own addon; contacts depends on none of them.

`compute_abc()` ranks partners by revenue, highest first, and walks the cumulative share of
the total: a partner is **A** while the revenue ranked before it is under the A share (80 % by
default), **B** while it is under A + B (95 %), **C** after that. So the partner whose revenue
crosses a threshold still belongs to the better class (the top client is always A), partners
with equal revenue always share a class (the class of the first of them), and a partner with
no or negative revenue in the period gets no class (`None`). The shares and the period live
in `SegmentSettings` (one row), editable on the segments page.

`recompute_segments()` writes the classes onto `Partner.segment` with a few set-based UPDATEs
(only rows whose class changed), so a nightly run over 100k contacts is quick; it runs as the
periodic job `contacts.segments.recompute` (02:30 UTC) and on demand from the page. The
change is not put on each timeline (a nightly reclassification would drown the history).

**Named segments** are what other addons target (offers, coupons): `segment_members(segment)`
returns a `select(Partner)` of the members: a static segment's chosen contacts, a dynamic
segment's filter evaluated now, or an ABC class (`segment_members("A")`). Apply
`core.api.scoped()` to it when a user's record rules must apply.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, delete, false, insert, select, update

from core.api import (
    RateNotFound,
    User,
    company_currency,
    convert,
    crontab,
    db,
    periodic_task,
    utcnow,
)

from .models import SEGMENTS, Partner
from .segment_models import Segment, SegmentMember, SegmentSettings
from .signals import collect_revenue

__all__ = ["add_members", "apply_filters", "collect_revenue_for", "compute_abc",
           "filter_conditions", "recompute_segments", "remove_members", "segment_members",
           "settings"]

log = logging.getLogger(__name__)
JOB_NAME = "contacts.segments.recompute"
_CHUNK = 500


# -- settings ------------------------------------------------------------------------------
def settings() -> SegmentSettings:
    """The one settings row, created with the defaults (80/15, 365 days) on first use."""
    row = db.session.scalar(select(SegmentSettings).order_by(SegmentSettings.id).limit(1))
    if row is None:
        row = SegmentSettings(a_share=Decimal("80"), b_share=Decimal("15"), period_days=365)
        db.session.add(row)
        db.session.flush()
    return row


def period(config: SegmentSettings, today: date | None = None) -> tuple[date, date]:
    """`[start, end)` of the period to rank: pinned dates, else the last `period_days` days."""
    if config.period_start and config.period_end:
        return config.period_start, config.period_end + timedelta(days=1)
    today = today or utcnow().date()
    end = today + timedelta(days=1)
    return end - timedelta(days=max(int(config.period_days or 365), 1)), end


# -- revenue -------------------------------------------------------------------------------
def collect_revenue_for(start: date, end: date, *, currency: str | None = None,
                        missing: set[str] | None = None) -> dict[int, Decimal]:
    """Revenue per partner in `[start, end)` from every `collect_revenue` receiver, summed,
    in `currency` (the company currency by default). Amounts in a currency without an
    exchange rate are left out and their codes added to `missing`."""
    currency = (currency or company_currency()).upper()
    rate_day = end - timedelta(days=1)
    totals: dict[int, Decimal] = {}
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for _receiver, result in collect_revenue.send(app, start=start, end=end, currency=currency):
        for partner_id, amount in (result or {}).items():
            value = _in_currency(amount, currency, rate_day, missing)
            if value:
                key = int(partner_id)
                totals[key] = totals.get(key, Decimal(0)) + value
    return totals


def _in_currency(amount: Any, currency: str, day: date, missing: set[str] | None) -> Decimal:
    if not isinstance(amount, Mapping):
        return Decimal(amount or 0)
    total = Decimal(0)
    for code, value in amount.items():
        if not value:
            continue
        try:
            total += convert(Decimal(value), str(code), currency, day)
        except RateNotFound:
            log.warning("ABC segments: no exchange rate %s -> %s on %s", code, currency, day)
            if missing is not None:
                missing.add(str(code).upper())
    return total


# -- classification ------------------------------------------------------------------------
def compute_abc(revenue: Mapping[int, Decimal], a_share: Decimal | float = 80,
                b_share: Decimal | float = 15) -> dict[int, str]:
    """`{partner_id: "A" | "B" | "C"}` for partners with positive revenue (see the module
    docstring for the rule: cumulative share before the partner, ties share a class)."""
    positive = {pid: Decimal(v) for pid, v in revenue.items() if v is not None and v > 0}
    total = sum(positive.values(), Decimal(0))
    if not total:
        return {}
    a_limit = Decimal(str(a_share))
    b_limit = a_limit + Decimal(str(b_share))
    ranked = sorted(positive.items(), key=lambda item: (-item[1], item[0]))
    classes: dict[int, str] = {}
    before = Decimal(0)  # revenue of the partners ranked above the current tie group
    index = 0
    while index < len(ranked):
        amount = ranked[index][1]
        group = []
        while index < len(ranked) and ranked[index][1] == amount:
            group.append(ranked[index][0])
            index += 1
        share = before * 100 / total
        cls = "A" if share < a_limit else ("B" if share < b_limit else "C")
        for pid in group:
            classes[pid] = cls
        before += amount * len(group)
    return classes


def recompute_segments(*, start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """Rank every partner for the period (settings' by default) and store `Partner.segment`.

    Only changed rows are written. The caller commits (the job and the page do). Returns
    counts per class plus the period and total, also kept in the settings' `last_result`.
    """
    config = settings()
    if start is None or end is None:
        start, end = period(config)
    missing: set[str] = set()
    revenue = collect_revenue_for(start, end, missing=missing)
    wanted = compute_abc(revenue, config.a_share, config.b_share)
    table = Partner.__table__
    current = dict(db.session.execute(
        select(table.c.id, table.c.segment).where(table.c.segment.is_not(None))).all())
    changes: dict[str | None, list[int]] = {}
    for pid, cls in wanted.items():
        if current.get(pid) != cls:
            changes.setdefault(cls, []).append(pid)
    for pid in current.keys() - wanted.keys():
        changes.setdefault(None, []).append(pid)
    for cls, ids in changes.items():
        ids.sort()
        for offset in range(0, len(ids), _CHUNK):
            db.session.execute(update(table).where(table.c.id.in_(ids[offset:offset + _CHUNK]))
                               .values(segment=cls))
    counts = {cls: 0 for cls in SEGMENTS}
    for cls in wanted.values():
        counts[cls] += 1
    result: dict[str, Any] = {
        **counts, "start": start.isoformat(), "end": (end - timedelta(days=1)).isoformat(),
        "total": str(sum((v for v in revenue.values() if v > 0), Decimal(0))),
        "currency": company_currency(), "changed": sum(len(v) for v in changes.values()),
        "missing_rates": sorted(missing),
    }
    config.last_run_at = utcnow()
    config.last_result = result
    return result


@periodic_task(crontab(minute="30", hour="2"), name=JOB_NAME)
def recompute_segments_job() -> dict[str, Any]:
    """Nightly ABC run. Idempotent: a second run computes and writes the same classes."""
    result = recompute_segments()
    db.session.commit()
    return result


# -- dynamic filters -----------------------------------------------------------------------
class _Nobody:
    """Stands for "me" in a filter whose author is gone: matches no owner."""

    id = None


def filter_conditions(query: Mapping[str, Any], user: Any = None,
                      seen: frozenset[int] = frozenset()) -> list[Any]:
    """SQL conditions on `Partner` for a list filter given as the list page's query arguments
    (what a saved filter stores: `q`, `kind`, `owner`, `status`, `tag`, `segment`, `city`,
    `country`, `idle`, custom fields). Evaluated by the list page's own code
    (`listing.conditions`), so a dynamic segment holds exactly who the list shows for the same
    filter; `user` is who "owner=me" means (the segment's author)."""
    from werkzeug.datastructures import MultiDict

    from .custom_fields import active_fields
    from .listing import ListParams, conditions

    fields = active_fields()
    args = MultiDict([(key, str(v)) for key, value in query.items()
                      for v in (value if isinstance(value, list | tuple) else [value])
                      if v is not None])
    params = ListParams.parse(args, fields)
    return conditions(params, fields, user if user is not None else _Nobody(), seen)


def apply_filters(stmt: Select, query: Mapping[str, Any], user: Any = None,
                  seen: frozenset[int] = frozenset()) -> Select:
    """`stmt` (a select over `Partner`) narrowed by `filter_conditions(query, user)`."""
    found = filter_conditions(query, user, seen)
    return stmt.where(and_(*found)) if found else stmt


def in_segment(segment_id: int, seen: frozenset[int] = frozenset()) -> Any:
    """The list filter `in_segment`: a condition on `Partner` true for the named segment's
    members. An unknown segment, or one already being evaluated (a dynamic segment whose
    filter names itself, directly or through others), has no members."""
    found = db.session.get(Segment, segment_id)
    if found is None or found.id in seen:
        return false()
    members = segment_members(found, seen | {found.id})
    # No correlation: the subquery reads contacts_partner on its own, not the outer row.
    return Partner.id.in_(members.with_only_columns(Partner.id).correlate(None))


# -- named segments ------------------------------------------------------------------------
def segment_members(segment: Segment | int | str,
                    seen: frozenset[int] = frozenset()) -> Select:
    """`select(Partner)` of the segment's active members, for other addons to target.

    `segment` is a `Segment`, its id, or an ABC class letter ("A", "B", "C"). The result is
    not narrowed to any user: wrap it in `core.api.scoped()` for a user's view of it.
    """
    stmt = select(Partner).where(Partner.active.is_(True))
    if isinstance(segment, str) and segment.upper() in SEGMENTS:
        return stmt.where(Partner.segment == segment.upper())
    if not isinstance(segment, Segment):
        found = db.session.get(Segment, int(segment))
        if found is None:
            raise LookupError(f"No segment with id {segment!r}.")
        segment = found
    if segment.kind == "dynamic":
        author = db.session.get(User, segment.created_by_id) if segment.created_by_id else None
        return apply_filters(stmt, segment.query or {}, author, seen | {segment.id})
    return stmt.where(Partner.id.in_(
        select(SegmentMember.partner_id).where(SegmentMember.segment_id == segment.id)))


def add_members(segment: Segment, partner_ids: Iterable[int]) -> int:
    """Add partners to a static segment (already present ones are skipped); returns how many
    were added. The caller commits."""
    if segment.kind != "static":
        raise ValueError("Only a static segment has members to add.")
    have = set(db.session.scalars(select(SegmentMember.partner_id).where(
        SegmentMember.segment_id == segment.id)))
    new = sorted({int(p) for p in partner_ids} - have)
    existing = set(db.session.scalars(select(Partner.id).where(Partner.id.in_(new)))) \
        if new else set()
    rows = [{"segment_id": segment.id, "partner_id": p} for p in new if p in existing]
    if rows:
        db.session.execute(insert(SegmentMember), rows)
    return len(rows)


def remove_members(segment: Segment, partner_ids: Iterable[int]) -> int:
    """Take partners out of a static segment; returns how many rows went. Caller commits."""
    ids = [int(p) for p in partner_ids]
    result = db.session.execute(delete(SegmentMember).where(
        SegmentMember.segment_id == segment.id, SegmentMember.partner_id.in_(ids)))
    return int(result.rowcount or 0)


def move_members(survivor_id: int, merged_ids: list[int]) -> None:
    """Merge: static memberships of the merged partners go to the survivor (no doubles)."""
    table = SegmentMember.__table__
    segments = set(db.session.scalars(select(table.c.segment_id).where(
        table.c.partner_id.in_(merged_ids))))
    have = set(db.session.scalars(select(table.c.segment_id).where(
        table.c.partner_id == survivor_id)))
    db.session.execute(delete(table).where(table.c.partner_id.in_(merged_ids)))
    rows = [{"segment_id": s, "partner_id": survivor_id} for s in sorted(segments - have)]
    if rows:
        db.session.execute(insert(table), rows)
