"""The file manager's data: one folder per client over the platform's attachments.

Why it reads `core.storage` instead of keeping its own file table: a file attached on the
contact card, on an offer or on a deal is the same file everywhere, and deleting the record
takes its files with it (storage's guarantee). A client's folder is therefore a *view*: the
partner's own attachments plus those of its offers and, when the `pipeline` addon is enabled,
its deals. Every query goes through the record rules (`core.security.scoped`), so a folder, a
search hit or a download never shows a record the user may not see.

Deals without a hard dependency: `documents` depends only on `contacts`; the pipeline's `Deal`
is imported lazily (`_deal_model()`) and only after `core.api.addon_enabled("pipeline")` says
the addon is on in this app, so an installation without pipeline never imports it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, false, func, or_, select

from addons.contacts.models import Partner
from core.api import addon_enabled, db, save_attachment, scoped
from core.models import User
from core.storage import Attachment

from .models import Offer

PARTNER = "contacts.partner"
OFFER = "documents.offer"
DEAL = "pipeline.deal"
#: What the file manager previews inline; anything else is only downloaded.
PREVIEW_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")
SEARCH_LIMIT = 200


@dataclass(frozen=True)
class FolderRecord:
    """One record whose files belong in a client's folder."""

    model: str
    record_id: int
    label: str

    @property
    def key(self) -> str:
        return f"{self.model}:{self.record_id}"


def _deal_model() -> Any:
    """The pipeline's Deal, imported only when that addon is enabled (no hard dependency)."""
    from addons.pipeline.models import Deal

    return Deal


def _partner_ids_clause(column: Any) -> ColumnElement[bool]:
    """Rows whose record id is a partner the user may see."""
    return column.in_(scoped(select(Partner.id), model=Partner))


def readable_clause() -> ColumnElement[bool]:
    """Attachments hanging off partners, offers or deals the current user may see (SQL)."""
    parts = [
        and_(Attachment.model == PARTNER, _partner_ids_clause(Attachment.record_id)),
        and_(Attachment.model == OFFER,
             Attachment.record_id.in_(scoped(select(Offer.id), model=Offer))),
    ]
    if addon_enabled("pipeline"):
        deal = _deal_model()
        parts.append(and_(Attachment.model == DEAL,
                          Attachment.record_id.in_(scoped(select(deal.id), model=deal))))
    return or_(*parts)


def folder_records(partner: Partner) -> list[FolderRecord]:
    """The partner itself, then its offers and deals the user may see, newest first."""
    records = [FolderRecord(PARTNER, partner.id, partner.name)]
    offers = db.session.execute(scoped(
        select(Offer.id, Offer.number, Offer.revision).where(Offer.partner_id == partner.id)
        .order_by(Offer.id.desc()), model=Offer)).all()
    for offer_id, number, revision in offers:
        label = _("Offer %(number)s", number=number) if number else \
            _("Draft offer #%(id)s", id=offer_id)
        if number and revision and revision > 1:
            label = _("Offer %(number)s, revision %(revision)s", number=number,
                      revision=revision)
        records.append(FolderRecord(OFFER, offer_id, label))
    if addon_enabled("pipeline"):
        deal = _deal_model()
        rows = db.session.execute(scoped(
            select(deal.id, deal.title).where(or_(deal.partner_id == partner.id,
                                                  deal.company_id == partner.id))
            .order_by(deal.id.desc()), model=deal)).all()
        records += [FolderRecord(DEAL, deal_id, title) for deal_id, title in rows]
    return records


def _records_clause(records: Iterable[FolderRecord]) -> ColumnElement[bool]:
    by_model: dict[str, list[int]] = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record.record_id)
    if not by_model:
        return false()
    return or_(*(and_(Attachment.model == model, Attachment.record_id.in_(ids))
                 for model, ids in by_model.items()))


def name_filter(query: str) -> ColumnElement[bool]:
    """Case-insensitive "file name contains" with LIKE wildcards taken literally."""
    escaped = query.strip().lower().replace("\\", "\\\\").replace("%", "\\%") \
        .replace("_", "\\_")
    return func.lower(Attachment.filename).like(f"%{escaped}%", escape="\\")


def folder_files(records: list[FolderRecord], query: str = "") -> list[Attachment]:
    """Files of a folder's records (already permission-filtered), optionally by name."""
    stmt = select(Attachment).where(_records_clause(records))
    if query.strip():
        stmt = stmt.where(name_filter(query))
    return list(db.session.scalars(stmt.order_by(Attachment.created_at.desc(),
                                                 Attachment.id.desc())))


def folder_count(records: list[FolderRecord]) -> int:
    return int(db.session.scalar(select(func.count(Attachment.id))
                                 .where(_records_clause(records))) or 0)


def search_files(query: str, limit: int = SEARCH_LIMIT) -> list[Attachment]:
    """Every readable file whose name contains `query` (across all clients)."""
    if not query.strip():
        return []
    stmt = (select(Attachment).where(readable_clause(), name_filter(query))
            .order_by(Attachment.created_at.desc(), Attachment.id.desc()).limit(limit))
    return list(db.session.scalars(stmt))


def client_folders(query: str = "", limit: int = 100) -> list[tuple[Partner, int]]:
    """Clients the user may see with how many of their own files there are, by name."""
    counts = (select(Attachment.record_id, func.count().label("n"))
              .where(Attachment.model == PARTNER).group_by(Attachment.record_id).subquery())
    stmt = scoped(select(Partner, func.coalesce(counts.c.n, 0))
                  .outerjoin(counts, counts.c.record_id == Partner.id)
                  .where(Partner.active.is_(True)), model=Partner)
    if query.strip():
        escaped = query.strip().lower().replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(Partner.name).like(f"%{escaped}%", escape="\\"))
    return [(p, int(n)) for p, n in db.session.execute(
        stmt.order_by(Partner.name, Partner.id).limit(limit)).all()]


def readable_attachment(attachment_id: int) -> Attachment | None:
    """The attachment if it hangs off a record of the file manager the user may read."""
    return db.session.scalar(select(Attachment).where(Attachment.id == attachment_id,
                                                      readable_clause()))


def upload(record: FolderRecord, stream: IO[bytes], filename: str | None,
           user: User) -> Attachment:
    """Store a file on one of a folder's records (the caller commits; limits in storage)."""
    return save_attachment(record.model, record.record_id, stream, filename, user=user)


def can_preview(attachment: Attachment) -> bool:
    return attachment.content_type in PREVIEW_TYPES


def deletable_ids(rows: Iterable[Attachment], user: Any) -> set[int]:
    """Which of `rows` the file manager offers to delete, through the kernel's route
    (`POST /attachments/<id>/delete`, `core.storage`), by the kernel's rule: the user's own
    uploads, or any file for an administrator (`core.admin`). Never an offer's PDF as sent
    (`Offer.sent_attachment_id`): it is what the client received, shown again byte for byte
    and behind the public link, so the file manager does not offer to lose it."""
    rows = list(rows)
    offer_ids = {a.record_id for a in rows if a.model == OFFER}
    frozen = set(db.session.scalars(select(Offer.sent_attachment_id).where(
        Offer.id.in_(offer_ids), Offer.sent_attachment_id.is_not(None)))) if offer_ids else set()
    admin = user.has_permission("core.admin")
    return {a.id for a in rows if a.id not in frozen and (admin or a.uploaded_by_id == user.id)}

