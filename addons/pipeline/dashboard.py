"""The start page's "My pipeline" card (hook `core.dashboard`): the user's open deals with
their total and weighted amount per currency (never added across currencies), the open deals
with nothing planned, and the new leads nobody has taken yet. One query for the deals, one for
the leads, whatever their number; each figure links to the deal list or the leads inbox
filtered the same way.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import render_template, url_for
from markupsafe import Markup
from sqlalchemy import case, func, select

from core.api import current_user, formatters, read, scoped

from .models import Deal, Lead, Stage


def open_deal_figures(user: Any) -> tuple[int, int, list[dict[str, Any]]]:
    """(open deals, of which with no next activity, per currency: count, total, weighted)
    for the user's own open deals within the record rules: one grouped query."""
    probability = func.coalesce(Deal.probability, Stage.probability)
    stmt = (select(Deal.currency, func.count(Deal.id),
                   func.coalesce(func.sum(Deal.amount), 0),
                   func.coalesce(func.sum(Deal.amount * probability), 0),
                   func.coalesce(func.sum(case((Deal.next_activity_at.is_(None), 1),
                                               else_=0)), 0))
            .join(Stage, Stage.id == Deal.stage_id)
            .where(Deal.active.is_(True), Deal.owner_id == user.id, Stage.kind == "open")
            .group_by(Deal.currency).order_by(Deal.currency))
    total = no_next = 0
    currencies = []
    for currency, count, amount, weighted, unplanned in read(scoped(stmt, user, model=Deal)):
        total += int(count)
        no_next += int(unplanned)
        currencies.append({"currency": currency, "count": int(count),
                           "amount": Decimal(amount),
                           "weighted": Decimal(weighted) / Decimal(100)})
    return total, no_next, currencies


def unassigned_leads(user: Any) -> int:
    """New leads without an owner that the user's record rules let them see (the inbox's
    `status=new&owner=none`)."""
    stmt = select(func.count(Lead.id)).where(Lead.status == "new", Lead.owner_id.is_(None))
    return int(read(scoped(stmt, user, model=Lead)).scalar() or 0)


def render_dashboard(**_ctx: Any) -> Markup:
    """`core.dashboard`: for users who may see deals."""
    if not current_user.is_authenticated or not current_user.has_permission("pipeline.read"):
        return Markup("")
    user = current_user._get_current_object()
    total, no_next, currencies = open_deal_figures(user)
    leads = unassigned_leads(user)
    fmt = formatters()
    deals_url = url_for("pipeline.deals")
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "pipeline/_dashboard.html", total=total, no_next=no_next, leads=leads,
        # Leads waiting are news to those who hand them out; to others only when there are.
        show_leads=bool(leads) or user.has_permission("pipeline.manage"),
        amounts=[{**c, "amount_text": fmt.money(c["amount"], c["currency"]),
                  "weighted_text": fmt.money(c["weighted"], c["currency"])}
                 for c in currencies],
        open_url=f"{deals_url}?owner={user.id}&open=1",
        no_next_url=f"{deals_url}?owner={user.id}&open=1&no_next=1",
        leads_url=url_for("pipeline.leads", status="new", owner="none"),
        board_url=url_for("pipeline.index")))
