"""The start page's "Offers" card (hook `core.dashboard`): the user's sent offers still
waiting for the client's answer, and those whose validity ends within a week, the soonest
named. Two queries whatever the number of offers, with the offer list's own filters
(`views.offer_conditions`), so each figure links to the list showing exactly those offers.
"""
from __future__ import annotations

from typing import Any

from flask import render_template, url_for
from markupsafe import Markup
from sqlalchemy import case, func, select

from addons.contacts.models import Partner
from core.api import current_user, formatters, read, scoped, url_pattern

from . import offers as svc
from .models import Offer
from .views import offer_conditions

#: "Valid until" this many days ahead (today included) counts as ending soon.
EXPIRING_DAYS = 7
#: How many of the offers ending soon the card names.
EXPIRING_ITEMS = 3


def _scoped(stmt: Any, user: Any) -> Any:
    return scoped(stmt, user, model=Offer)


def render_dashboard(**_ctx: Any) -> Markup:
    """`core.dashboard`: for users who may see offers."""
    if not current_user.is_authenticated or not current_user.has_permission("documents.read"):
        return Markup("")
    user = current_user._get_current_object()
    today = svc.local_today()
    waiting = offer_conditions(state="sent", owner="me", user=user)
    ending = offer_conditions(state="sent", owner="me", expiring=EXPIRING_DAYS, user=user,
                              today=today)
    ending_only = ending[len(waiting):]  # the validity condition, on top of `waiting`
    sent, soon = read(_scoped(select(
        func.count(Offer.id),
        func.coalesce(func.sum(case((ending_only[0], 1), else_=0)), 0)).where(*waiting),
        user)).one()
    rows = read(_scoped(
        select(Offer.id, Offer.number, Offer.revision, Offer.valid_until, Offer.amount_total,
               Offer.currency, Partner.name.label("client"))
        .outerjoin(Partner, Partner.id == Offer.partner_id).where(*ending)
        .order_by(Offer.valid_until, Offer.id).limit(EXPIRING_ITEMS), user)).all() \
        if soon else []
    base = url_for("documents.offers")
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "documents/_dashboard.html", sent=int(sent), soon=int(soon), rows=rows, today=today,
        days=EXPIRING_DAYS, number=svc.number_formatter(), fmt=formatters(),
        offers_url=f"{base}?owner=me", sent_url=f"{base}?state=sent&owner=me",
        soon_url=f"{base}?state=sent&owner=me&expiring={EXPIRING_DAYS}",
        offer_url=url_pattern("documents.offer", "offer_id")))
