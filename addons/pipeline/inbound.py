"""Mail to a pipeline's inbound address becomes a lead, or lands on the deal it is about.

The platform's gateway (`core.mail_inbound`, `birga mail ingest`) already files replies to mail
Birga sent for a deal (signed reply address, `In-Reply-To`). What reaches this handler is mail
the gateway could not thread; in that order:

1. a subject quoting a deal reference, `[DEAL-123]` (clients that drop every header still keep
   the subject): the mail goes on that deal's timeline;
2. another message from the same sender about the same subject while their lead is still new:
   it joins that lead instead of making a second one;
3. anything else is a new lead (channel "email"), assigned by the pipeline's rules.

The handler returns the record, so the gateway puts the mail itself (sanitised body,
attachments) on its timeline in the same transaction. Mail to an address no pipeline uses is
declined (`False`), so other addons' handlers and the refusal still apply.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from addons.contacts.models import Partner, PartnerEmail
from core.api import InboundMail, db

from .leads import create_lead
from .models import Deal, Lead, Pipeline

__all__ = ["DEAL_REFERENCE", "deal_reference", "deal_tag", "handle_mail",
           "pipeline_for_address"]

DEAL_REFERENCE = re.compile(r"\[\s*DEAL[-\s#]*(\d{1,12})\s*\]", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|vs|ha|отв|пересл)\s*(\[\d+\])?\s*:\s*)+",
                           re.IGNORECASE)


def deal_tag(deal_id: int) -> str:
    """The reference people quote in a subject, `[DEAL-123]` (what `deal_reference` reads):
    shown on the deal page and put in the subject of the e-mails written from it."""
    return f"[DEAL-{deal_id}]"


def deal_reference(subject: str) -> int | None:
    """The deal id a subject quotes as `[DEAL-123]`, if any."""
    match = DEAL_REFERENCE.search(subject or "")
    return int(match.group(1)) if match else None


def pipeline_for_address(address: str | None) -> Pipeline | None:
    if not address:
        return None
    return db.session.scalar(select(Pipeline).where(
        func.lower(Pipeline.inbound_address) == address.strip().lower(),
        Pipeline.active.is_(True)))


def _base_subject(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject or "").strip().lower()


def _open_lead(pipeline: Pipeline, mail: InboundMail) -> Lead | None:
    wanted = _base_subject(mail.subject)
    rows = db.session.scalars(select(Lead).where(
        Lead.pipeline_id == pipeline.id, Lead.status == "new", Lead.channel == "email",
        func.lower(Lead.email) == mail.sender.lower()).order_by(Lead.id.desc()).limit(20))
    return next((lead for lead in rows if _base_subject(lead.subject or "") == wanted), None)


def _known_sender(address: str) -> Partner | None:
    return db.session.scalar(
        select(Partner).join(PartnerEmail, PartnerEmail.partner_id == Partner.id)
        .where(PartnerEmail.email_key == address.lower(), Partner.active.is_(True))
        .order_by(Partner.id).limit(1))


def handle_mail(mail: InboundMail) -> Any:
    """The gateway's handler for every address; see the module docstring."""
    pipeline = pipeline_for_address(mail.recipient)
    if pipeline is None:
        return False
    deal_id = deal_reference(mail.subject)
    if deal_id is not None:
        deal = db.session.get(Deal, deal_id)
        if deal is not None:
            return deal
    existing = _open_lead(pipeline, mail)
    if existing is not None:
        return existing
    partner = _known_sender(mail.sender)
    return create_lead(
        channel="email", pipeline=pipeline, name=mail.sender_name or None, email=mail.sender,
        subject=mail.subject or None, message=mail.text,
        lang=partner.lang if partner is not None else None,
        country=partner.country if partner is not None else None,
        partner_id=partner.id if partner is not None else None,
        company_name=partner.company_name if partner is not None else None,
        payload={"message_id": mail.message_id, "to": list(mail.to), "cc": list(mail.cc),
                 "recipient": mail.recipient})
