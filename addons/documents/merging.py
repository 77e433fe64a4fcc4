"""Signals documents answers: a merge of contacts keeps their offers (contacts'
`partner_merged` re-points them to the surviving contact inside the merge's transaction;
without it the merge could not delete the merged contacts, as an offer's client is ON DELETE
RESTRICT), and an offer's PDF as sent is never deleted (the kernel's `attachment_removing`)."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import gettext as _
from sqlalchemy import select, update

from core.api import AttachmentRefused, addon_enabled, attachment_removing, db

from .models import Offer

_connected = False


def move_offers_to_survivor(app: Flask, survivor_id: int, merged_ids: list[int],
                            **_kw: Any) -> None:
    if not addon_enabled("documents", app) or not merged_ids:
        return
    db.session.execute(update(Offer.__table__).where(Offer.partner_id.in_(merged_ids))
                       .values(partner_id=survivor_id))


def keep_sent_pdfs(app: Flask, attachment: Any, **_kw: Any) -> None:
    """The PDF an offer was sent as is what the client received (shown again byte for byte
    and behind the public link): its uploader may not delete it through the kernel's route."""
    if not addon_enabled("documents", app):
        return
    if db.session.scalar(select(Offer.id).where(
            Offer.sent_attachment_id == attachment.id).limit(1)) is not None:
        raise AttachmentRefused(_("This PDF is the offer as it was sent to the client, so it "
                                  "is kept."))


def connect_signals() -> None:
    """Connect once per process (blinker receivers are process-wide; each checks the app)."""
    global _connected
    if _connected:
        return
    from addons.contacts import signals

    signals.partner_merged.connect(move_offers_to_survivor, weak=False)
    attachment_removing.connect(keep_sent_pdfs, weak=False)
    _connected = True
