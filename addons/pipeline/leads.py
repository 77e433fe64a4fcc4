"""Leads: one service every channel uses to create them, and the conversion to a deal.

Why one `create_lead()`: the web form, the mail handler, the PBX endpoint, the call-log import
and the manual form must all normalise the phone the same way, assign the lead by the same
rules and leave the same line on its timeline; the channels only parse their input.

Why conversion never guesses: a lead's sender may already be a contact (the same phone or
e-mail, `contacts.duplicates.find_duplicates`) and its company may already exist. The convert
page shows the matches and the user picks one or asks for a new contact explicitly;
`convert_lead()` refuses to create a contact while matches exist and nobody chose, so no path
creates a silent duplicate.

Why a pool: a lead the assignment rules could give to nobody (everyone at capacity, no rule)
has no owner, so the record rules ("own", "team") would hide it from everyone but admins.
`visible_leads()` also shows such new, unassigned leads of a pipeline the user works in (its
team, or a pipeline without a team) to whoever may work leads, and `take_lead()` lets one of
them take it; the pipeline's managers are told when a lead lands there (`assignment`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, or_, select, update

from addons.contacts import services as contact_services
from addons.contacts.duplicates import DuplicateMatch, find_duplicates
from addons.contacts.folding import fold
from addons.contacts.models import Partner
from core.api import User, audit, db, log_entry, register_record_reader
from core.loader import AddonContext
from core.security import Team, TeamMember, rule_clause

from .assignment import assign_lead
from .models import CHANNEL_LABELS, CHANNELS, Deal, Lead, Pipeline

__all__ = ["ConversionChoiceNeeded", "LeadError", "LeadMatches", "convert_lead", "create_lead",
           "dismiss_lead", "init_leads", "lead_matches", "pool_clause", "setting", "take_lead",
           "visible_leads"]

MODEL = "pipeline.lead"
NEW = "new"  # the explicit choice "create a new contact/company" on the convert page


class LeadError(ValueError):
    """A lead the rules refuse; `str()` is translated."""


class ConversionChoiceNeeded(LeadError):
    """Matches exist for the person or company and the caller did not say which to use."""


def setting(name: str, default: Any = None) -> Any:
    """`BIRGA_<name>` or `<name>` from the config (environment variables drop the prefix)."""
    for key in (f"BIRGA_{name}", name):
        value = current_app.config.get(key)
        if value not in (None, ""):
            return value
    return default


def _clean(value: Any, limit: int) -> str | None:
    text = " ".join(str(value or "").split())
    return text[:limit] or None


def _email(value: Any) -> str | None:
    try:
        return contact_services.normalize_email(str(value or ""))
    except ValueError:
        return None


def default_pipeline() -> Pipeline | None:
    return db.session.scalar(select(Pipeline).where(Pipeline.active.is_(True))
                             .order_by(Pipeline.sequence, Pipeline.id).limit(1))


def create_lead(*, channel: str, pipeline: Pipeline | None = None, name: str | None = None,
                email: str | None = None, phone: str | None = None,
                company_name: str | None = None, subject: str | None = None,
                message: str | None = None, lang: str | None = None,
                country: str | None = None, payload: dict | None = None,
                owner: User | None = None, author: User | None = None,
                partner_id: int | None = None, assign: bool = True) -> Lead:
    """A new lead (the caller commits). Without `owner`, the pipeline's assignment rules
    pick one and notify them. An e-mail that is not an address is kept in the payload only."""
    if channel not in CHANNELS:
        raise ValueError(f"Unknown lead channel '{channel}'.")  # a programming error
    clean_email = _email(email)
    number = contact_services.normalize_phone(phone) if phone else None
    lead = Lead(channel=channel, status="new", pipeline_id=pipeline.id if pipeline else None,
                name=_clean(name, 200), company_name=_clean(company_name, 300),
                email=clean_email, phone=(number or "")[:32] or None,
                subject=_clean(subject, 300), message=(message or "").strip()[:20000] or None,
                lang=_clean(lang, 16), owner_id=owner.id if owner else None,
                partner_id=partner_id, payload=dict(payload or {}))
    if email and not clean_email:
        lead.payload.setdefault("email_as_sent", str(email)[:254])
    db.session.add(lead)
    db.session.flush()
    log_entry(MODEL, lead.id, "system",
              _l("Received through: %(channel)s", channel=CHANNEL_LABELS[channel]),
              subject=_l("Lead received"), author=author)
    if owner is None and assign:
        assign_lead(lead, pipeline, country=country, by=author)
    return lead


def dismiss_lead(lead: Lead, *, user: User | None, note: str = "") -> None:
    if lead.status != "new":
        raise LeadError(_("Only a new lead can be dismissed."))
    lead.status = "dismissed"
    log_entry(MODEL, lead.id, "system", note, subject=_l("Lead dismissed"), author=user)


# -- the pool of unassigned leads -----------------------------------------------------------
def pool_clause(user: User) -> Any:
    """New leads without an owner in a pipeline `user` works in (its team's, or one without a
    team): the leads nobody was given, which anyone who may work leads there can take."""
    teams = select(TeamMember.team_id).where(TeamMember.user_id == user.id).union(
        select(Team.id).where(Team.manager_id == user.id))
    pipelines = select(Pipeline.id).where(or_(Pipeline.team_id.is_(None),
                                              Pipeline.team_id.in_(teams)))
    return and_(Lead.owner_id.is_(None), Lead.status == "new",
                or_(Lead.pipeline_id.is_(None), Lead.pipeline_id.in_(pipelines)))


def pool_reader(user: User) -> Any:
    """Who may take a pool lead reads its history first (timeline, files, activities)."""
    return pool_clause(user) if user.has_permission("pipeline.write") else None


def visible_leads(user: User) -> Any:
    """`select(Lead)` narrowed to the leads `user` may see: the record rules, plus the pool
    for a user who may work leads (see the module's docstring)."""
    rule = rule_clause(Lead, user)
    if rule is None:
        return select(Lead)
    if user.has_permission("pipeline.write"):
        return select(Lead).where(or_(rule, pool_clause(user)))
    return select(Lead).where(rule)


def take_lead(lead: Lead, user: User) -> Lead:
    """Make `user` the owner of the unassigned `lead` (the caller commits).

    The owner is checked by the UPDATE itself (`... WHERE owner_id IS NULL`), in the same
    transaction that writes it: of two people pressing "Take" at once, one gets the lead and
    the other a `LeadError`, whatever page each of them was looking at.
    """
    if lead.status != "new":
        raise LeadError(_("This lead was already handled."))
    taken = db.session.execute(
        update(Lead).where(Lead.id == lead.id, Lead.owner_id.is_(None), Lead.status == "new")
        .values(owner_id=user.id).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        db.session.refresh(lead)
        if lead.status != "new":
            raise LeadError(_("This lead was already handled."))
        raise LeadError(_("Someone else has taken this lead meanwhile."))
    db.session.refresh(lead)
    log_entry(MODEL, lead.id, "system", "", subject=_l("Lead taken by %(name)s",
                                                      name=user.display_name), author=user)
    # The UPDATE above bypasses the session's audit listener: the same row, written here.
    audit("update", model=MODEL, record_id=lead.id, user=user,
          details={"owner_id": [None, user.id]})
    return lead


# -- conversion ------------------------------------------------------------------------------
@dataclass
class LeadMatches:
    """Existing contacts a lead may be: people (same phone/e-mail) and companies (same name)."""

    people: list[DuplicateMatch] = field(default_factory=list)
    companies: list[Partner] = field(default_factory=list)


def _companies_named(name: str | None) -> list[Partner]:
    if not name:
        return []
    condition = contact_services.search_condition(name)
    query = select(Partner).where(Partner.kind == "company", Partner.active.is_(True))
    if condition is not None:
        query = query.where(condition)
    wanted = fold(name)
    return [p for p in db.session.scalars(query.order_by(Partner.id).limit(50))
            if fold(p.name) == wanted]


def lead_matches(lead: Lead) -> LeadMatches:
    """What the convert page offers to link instead of creating new contacts."""
    companies = _companies_named(lead.company_name)
    people = find_duplicates(phones=[lead.phone] if lead.phone else [],
                             emails=[lead.email] if lead.email else [], name=lead.name,
                             company_id=companies[0].id if len(companies) == 1 else None)
    # A company with the sender's phone or e-mail is the company, not the person.
    by_id = {p.id: p for p in db.session.scalars(select(Partner).where(
        Partner.id.in_([m.partner_id for m in people])))} if people else {}
    person_matches = [m for m in people if by_id.get(m.partner_id) is not None
                      and by_id[m.partner_id].kind == "person"]
    for match in people:
        company = by_id.get(match.partner_id)
        if company is not None and company.kind == "company" and company not in companies:
            companies.append(company)
    return LeadMatches(person_matches, companies)


def _new_partner(kind: str, name: str, *, lead: Lead, user: User | None,
                 company_id: int | None = None) -> Partner:
    owner_id = lead.owner_id or (user.id if user is not None else None)
    partner = Partner(kind=kind, name=name, company_id=company_id, status="lead",
                      lang=lead.lang, source=str(CHANNEL_LABELS[lead.channel])[:60],
                      owner_id=owner_id, created_by_id=user.id if user is not None else None)
    db.session.add(partner)
    if kind == "person":
        if lead.phone:
            contact_services.set_phones(partner, [lead.phone])
        if lead.email:
            contact_services.set_emails(partner, [lead.email])
    db.session.flush()
    contact_services.refresh_search(partner)
    return partner


def _pick(choice: Any, existing: list[int], what: str) -> int | str | None:
    """The user's choice: an id among the matches, NEW, or None (only when nothing matched)."""
    if choice in (None, ""):
        if existing:
            raise ConversionChoiceNeeded(what)
        return None
    if choice == NEW:
        return NEW
    try:
        return int(choice)
    except (TypeError, ValueError):
        raise LeadError(_("Choose one of the listed contacts.")) from None


def convert_lead(lead: Lead, *, user: User | None, person: Any = None, company: Any = None,
                 title: str | None = None, pipeline: Pipeline | int | None = None,
                 amount: Decimal | str | None = None, currency: str | None = None,
                 owner_id: int | None = None) -> Deal:
    """Turn a lead into a deal (the caller commits); raises `LeadError`.

    `person` / `company`: the id of an existing partner, `NEW` to create one from the lead, or
    None when the lead names none. With matches on the page, None is refused
    (`ConversionChoiceNeeded`): the user must pick or ask for a new contact.
    """
    from .state import create_deal

    if lead.status != "new":
        raise LeadError(_("This lead was already handled."))
    matches = lead_matches(lead)
    person_choice = _pick(person, [m.partner_id for m in matches.people],
                          _("Choose the contact or create a new one."))
    company_choice = _pick(company, [c.id for c in matches.companies],
                           _("Choose the company or create a new one."))
    company_obj: Partner | None = None
    if company_choice == NEW:
        if not lead.company_name:
            raise LeadError(_("The lead names no company to create."))
        company_obj = _new_partner("company", lead.company_name, lead=lead, user=user)
    elif company_choice is not None:
        company_obj = db.session.get(Partner, company_choice)
        if company_obj is None or company_obj.kind != "company":
            raise LeadError(_("Choose one of the listed contacts."))
    person_obj: Partner | None = None
    if person_choice == NEW:
        name = lead.name or lead.email or lead.phone
        if not name:
            raise LeadError(_("The lead names no person to create."))
        person_obj = _new_partner("person", name, lead=lead, user=user,
                                  company_id=company_obj.id if company_obj else None)
    elif person_choice is not None:
        person_obj = db.session.get(Partner, person_choice)
        if person_obj is None or person_obj.kind != "person":
            raise LeadError(_("Choose one of the listed contacts."))
    deal_title = title or lead.subject or (
        _("Request from %(name)s", name=lead.name or lead.company_name or lead.email
          or lead.phone or "?"))
    try:
        deal = create_deal(title=deal_title, pipeline=pipeline or lead.pipeline_id, user=user,
                           owner_id=owner_id or lead.owner_id, amount=amount, currency=currency,
                           partner_id=person_obj.id if person_obj else None,
                           company_id=company_obj.id if company_obj else (
                               person_obj.company_id if person_obj else None),
                           source=lead.channel, via="form")
    except ValueError as exc:  # TransitionError: already translated
        raise LeadError(str(exc)) from exc
    lead.status = "converted"
    lead.deal_id = deal.id
    lead.partner_id = person_obj.id if person_obj else (company_obj.id if company_obj else None)
    if lead.message:
        log_entry("pipeline.deal", deal.id, "note", lead.message,
                  subject=lead.subject or _l("Original request"), author=user)
    log_entry(MODEL, lead.id, "system", "", subject=_l("Converted to deal: %(title)s",
                                                       title=deal.title), author=user)
    return deal


# -- wiring ----------------------------------------------------------------------------------
def init_leads(app: Flask, addon: AddonContext) -> None:
    """Menus and the inbound mail handler of the lead channels (called from `init_app`)."""
    from .inbound import handle_mail

    addon.menu("sales.leads", _l("Leads"), "pipeline.leads", parent="sales", sequence=5,
               permission="pipeline.read")
    addon.menu("sales.calls", _l("Calls report"), "pipeline.calls_report", parent="sales",
               sequence=80, permission="pipeline.manage")
    # One pattern for every address: the handler declines mail that is not for a pipeline's
    # inbound address, so addresses an admin sets later need no restart.
    addon.mail_handler("*@*", handle_mail, sequence=500)
    register_record_reader(MODEL, pool_reader)
