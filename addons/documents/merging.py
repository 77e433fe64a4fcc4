"""A merge of contacts keeps their offers: contacts' `partner_merged` signal re-points them to
the surviving contact inside the merge's transaction. Without it the merge could not delete
the merged contacts (an offer's client is ON DELETE RESTRICT: offers are business records)."""
from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import update

from core.api import db

from .models import Offer

_connected = False


def _enabled(app: Flask) -> bool:
    state = app.extensions.get("birga")
    return state is not None and "documents" in getattr(state, "addons_by_name", {})


def move_offers_to_survivor(app: Flask, survivor_id: int, merged_ids: list[int],
                            **_kw: Any) -> None:
    if not _enabled(app) or not merged_ids:
        return
    db.session.execute(update(Offer.__table__).where(Offer.partner_id.in_(merged_ids))
                       .values(partner_id=survivor_id))


def connect_signals() -> None:
    """Connect once per process (blinker receivers are process-wide; each checks the app)."""
    global _connected
    if _connected:
        return
    from addons.contacts import signals

    signals.partner_merged.connect(move_offers_to_survivor, weak=False)
    _connected = True
