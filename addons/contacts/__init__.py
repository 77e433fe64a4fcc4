"""Contacts: people and companies, the client card, search, segments, duplicates, import."""
from __future__ import annotations

from datetime import datetime

from flask import Flask
from sqlalchemy import event, or_, update
from sqlalchemy.orm import Session

from core.api import _l, register_record_rule, utcnow
from core.loader import AddonContext


def init_app(app: Flask, addon: AddonContext) -> None:
    from .models import Partner

    addon.permission("contacts.read", _l("See contacts"))
    addon.permission("contacts.write", _l("Create and edit contacts"))
    addon.permission("contacts.delete", _l("Delete contacts"))
    addon.permission("contacts.import", _l("Import contacts"))
    addon.permission("contacts.export", _l("Export contacts"))
    addon.permission("contacts.manage", _l("Manage custom fields, tags and segments"))
    register_record_rule(Partner, owner_attr="owner_id", title=_l("Contacts"), app=app)

    addon.menu("contacts", _l("Contacts"), None, sequence=10, permission="contacts.read")
    addon.menu("contacts.people", _l("People"), "contacts.people", parent="contacts",
               sequence=10, permission="contacts.read")
    addon.menu("contacts.companies", _l("Companies"), "contacts.companies", parent="contacts",
               sequence=20, permission="contacts.read")
    addon.menu("contacts.all", _l("All contacts"), "contacts.index", parent="contacts",
               sequence=30, permission="contacts.read")
    addon.menu("contacts.segments", _l("Segments"), "contacts.segments", parent="contacts",
               sequence=40, permission="contacts.read")
    addon.menu("contacts.duplicates", _l("Possible duplicates"), "contacts.duplicates",
               parent="contacts", sequence=50, permission="contacts.manage")
    addon.menu("contacts.import", _l("Import"), "contacts.import_upload", parent="contacts",
               sequence=60, permission="contacts.import")
    from . import dashboard

    addon.hook("core.dashboard", dashboard.render_dashboard, sequence=20)
    addon.menu("settings.contacts_fields", _l("Contact fields"), "contacts.custom_fields",
               parent="settings", sequence=40, permission="contacts.manage")


#: Timeline entry kinds that mean someone was in touch with the contact.
CONTACT_KINDS = ("call", "meeting", "email")


@event.listens_for(Session, "after_flush")
def _touch_last_contact(session: Session, flush_context: object) -> None:
    """Keep `Partner.last_contact_at` (the "no activity for N days" filter, the card's "last
    contact") in step with calls, meetings and e-mails put on a contact's timeline, whichever
    way they arrive (a logged call, a done activity, a sent e-mail).

    A Core UPDATE on the flush's connection: it does not bump the partner's version, so an
    e-mail arriving while someone edits the card does not make their save a conflict.
    """
    from core.timeline import TimelineEntry

    latest: dict[int, datetime] = {}
    for obj in session.new:
        if isinstance(obj, TimelineEntry) and obj.model == "contacts.partner" \
                and obj.kind in CONTACT_KINDS and obj.record_id is not None:
            moment = obj.created_at or utcnow()
            if obj.record_id not in latest or latest[obj.record_id] < moment:
                latest[obj.record_id] = moment
    if not latest:
        return
    from .models import Partner

    table = Partner.__table__
    connection = session.connection()
    for record_id, moment in latest.items():
        connection.execute(update(table).where(
            table.c.id == record_id,
            or_(table.c.last_contact_at.is_(None), table.c.last_contact_at < moment),
        ).values(last_contact_at=moment))
