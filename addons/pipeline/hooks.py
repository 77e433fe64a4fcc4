"""Where deals meet the rest of Birga without anyone importing the pipeline addon:

- the contact card's side column lists the partner's deals (`contacts.card.sidebar`);
- activity listeners keep `Deal.next_activity_at` / `last_activity_at` in step with the
  activities planned and done on a deal (and calls, meetings, e-mails on its timeline), so the
  board flags "no next step" with a column read, not a query per card;
- won deals answer the contacts addon's `collect_revenue` signal, so ABC segments include them;
- merged partners take their deals along (`partner_merged`).

The session listeners are process-wide (SQLAlchemy's are), so they only act on rows that name
`pipeline.deal`, and write with Core UPDATEs on the flush's connection: a reminder being done
does not bump the deal's version and so never turns someone's edit into a conflict.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, render_template, request
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.orm import Session

from core.activities import Activity
from core.api import addon_enabled, db, scoped, utcnow
from core.timeline import TimelineEntry

from .models import Deal, Stage

MODEL = "pipeline.deal"
#: Timeline entry kinds that mean someone was in touch about the deal.
CONTACT_KINDS = ("call", "meeting", "email")
SIDEBAR_LIMIT = 10


# -- the contact card ------------------------------------------------------------------------
def render_partner_deals(partner: Any = None, **_ctx: Any) -> Markup:
    """`contacts.card.sidebar`: the deals of a person or company the user may see."""
    if partner is None or not current_user.is_authenticated \
            or not current_user.has_permission("pipeline.read"):
        return Markup("")
    from .state import stage_label

    where = or_(Deal.partner_id == partner.id, Deal.company_id == partner.id)
    base = scoped(select(Deal).where(Deal.active.is_(True), where))
    rows = db.session.execute(
        base.join(Stage, Stage.id == Deal.stage_id).add_columns(Stage)
        .order_by((Stage.kind == "open").desc(), Deal.id.desc()).limit(SIDEBAR_LIMIT + 1)).all()
    deals = [(deal, stage) for deal, stage in rows]
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "pipeline/_partner_deals.html", partner=partner, deals=deals[:SIDEBAR_LIMIT],
        more=len(deals) > SIDEBAR_LIMIT, stage_label=stage_label,
        can_write=current_user.has_permission("pipeline.write"),
        next_url=request.full_path.rstrip("?")))


# -- activity listeners ----------------------------------------------------------------------
def _touched_deals(session: Session) -> tuple[set[int], dict[int, datetime]]:
    """Deals whose activities changed in this flush, and contact moments logged on deals."""
    recompute: set[int] = set()
    contacted: dict[int, datetime] = {}
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if isinstance(obj, Activity) and obj.model == MODEL and obj.record_id is not None:
            recompute.add(int(obj.record_id))
        elif isinstance(obj, TimelineEntry) and obj in session.new and obj.model == MODEL \
                and obj.kind in CONTACT_KINDS and obj.record_id is not None:
            moment = obj.created_at or utcnow()
            if obj.record_id not in contacted or contacted[obj.record_id] < moment:
                contacted[int(obj.record_id)] = moment
    return recompute, contacted


@event.listens_for(Session, "after_flush")
def _keep_activity_dates(session: Session, flush_context: Any) -> None:
    """Recompute the next planned and the last done activity of the deals touched."""
    recompute, contacted = _touched_deals(session)
    if not recompute and not contacted:
        return
    table = Deal.__table__
    activities = Activity.__table__
    connection = session.connection()
    for deal_id in sorted(recompute):
        on_deal = and_(activities.c.model == MODEL, activities.c.record_id == deal_id)
        next_at = select(func.min(activities.c.due_at)).where(
            on_deal, activities.c.done_at.is_(None)).scalar_subquery()
        last_done = connection.execute(select(func.max(activities.c.done_at)).where(
            on_deal, activities.c.done_at.is_not(None))).scalar()
        values: dict[str, Any] = {"next_activity_at": next_at, "stale": False}
        connection.execute(update(table).where(table.c.id == deal_id).values(**values))
        if last_done is not None:
            connection.execute(update(table).where(
                table.c.id == deal_id, or_(table.c.last_activity_at.is_(None),
                                           table.c.last_activity_at < last_done))
                .values(last_activity_at=last_done))
    for deal_id, moment in contacted.items():
        connection.execute(update(table).where(
            table.c.id == deal_id, or_(table.c.last_activity_at.is_(None),
                                       table.c.last_activity_at < moment))
            .values(last_activity_at=moment))


# -- revenue for the contacts' ABC segments --------------------------------------------------
def won_revenue(app: Flask, start: date, end: date, currency: str,
                **_kw: Any) -> dict[int, dict[str, Decimal]]:
    """Won deals in `[start, end)` per partner and currency; booked on the company when the
    deal names one (that is who buys), otherwise on the person."""
    if not addon_enabled("pipeline", app):
        return {}
    from datetime import UTC, time

    begin = datetime.combine(start, time.min, tzinfo=UTC)
    finish = datetime.combine(end, time.min, tzinfo=UTC)
    who = func.coalesce(Deal.company_id, Deal.partner_id)
    rows = db.session.execute(
        select(who, Deal.currency, func.sum(Deal.amount))
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Stage.kind == "won", Deal.won_at >= begin, Deal.won_at < finish,
               who.is_not(None))
        .group_by(who, Deal.currency))
    result: dict[int, dict[str, Decimal]] = {}
    for partner_id, code, total in rows:
        bucket = result.setdefault(int(partner_id), {})
        bucket[code] = bucket.get(code, Decimal(0)) + Decimal(total or 0)
    return result


def move_deals_to_survivor(app: Flask, survivor_id: int, merged_ids: list[int],
                           **_kw: Any) -> None:
    """A merge of contacts keeps their deals: re-point them to the surviving partner."""
    if not addon_enabled("pipeline", app) or not merged_ids:
        return
    table = Deal.__table__
    for column in (table.c.partner_id, table.c.company_id):
        db.session.execute(update(table).where(column.in_(merged_ids))
                           .values({column.key: survivor_id}))


_connected = False


def connect_signals() -> None:
    """Connect once per process (blinker receivers are process-wide; each checks the app)."""
    global _connected
    if _connected:
        return
    from addons.contacts import signals

    signals.collect_revenue.connect(won_revenue, weak=False)
    signals.partner_merged.connect(move_deals_to_survivor, weak=False)
    _connected = True
