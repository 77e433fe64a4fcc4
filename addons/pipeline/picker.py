"""The deal form's client fields: a name typed (or picked from suggestions) becomes a contact.

Why here: a deal links a person and a company by id, but people know their clients by name.
The form shows a text input per link plus a hidden id. With JavaScript, `picker.js` fills a
`<datalist>` from `/pipeline/contacts.json` and sets the id when a suggestion is picked;
without it, the server resolves the typed name (exact name first, then the contacts search)
and, when several contacts match, offers them in a select. Every lookup goes through
`core.api.visible`, so a contact outside the user's record rules is "not found", whether it
was typed, suggested or posted as an id.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import func, select

from addons.contacts import services
from addons.contacts.listing import sort_language
from addons.contacts.models import Partner
from core.api import db, visible

#: Suggestions per lookup, and candidates offered when a typed name is ambiguous.
LIMIT = 15
KINDS = ("person", "company")


@dataclass
class Resolved:
    """The outcome for one client field: the partner (or None), an error, the candidates."""

    partner: Partner | None = None
    error: str | None = None
    candidates: list[Partner] = field(default_factory=list)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def suggest(text: str, kind: str) -> list[Partner]:
    """The contacts a user may see whose name starts like `text`, sorted for the reader."""
    if len(text.strip()) < 2 or kind not in KINDS:
        return []
    order = getattr(Partner, f"sort_{sort_language()}")
    found = services.visible_like(text, kind).order_by(order, Partner.id).limit(LIMIT)
    return list(db.session.scalars(found))


def visible_partner(partner_id: int | None) -> Partner | None:
    """The contact if it exists and the user may see it."""
    if not partner_id:
        return None
    return db.session.scalar(visible(Partner).where(Partner.id == partner_id))


def _as_id(value: object) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return -1  # a malformed id is "not found" like any id the user may not see


def resolve(name: str | None, partner_id: object, kind: str, *,
            current_id: int | None = None) -> Resolved:
    """The contact a submitted client field means.

    `name` is the typed text (None when the form had no such input: an id-only post);
    `partner_id` the hidden or chosen id; `current_id` the deal's present link, kept as it is
    when the user may not see it and left the (empty) name alone, so saving a deal never
    unlinks or reveals a contact outside the user's rules.
    """
    wanted = _as_id(partner_id)
    text = " ".join((name or "").split())
    if name is not None and not text:
        if wanted is not None and wanted == current_id and visible_partner(wanted) is None:
            return Resolved(partner=db.session.get(Partner, wanted))
        return Resolved()
    if wanted is not None:
        partner = visible_partner(wanted)
        if partner is None:
            return Resolved(error=_("No such contact."))
        if name is None or _fold(partner.name) == _fold(text) or db.session.scalar(
                select(func.count()).select_from(
                    services.visible_like(text, kind).where(Partner.id == wanted).subquery())):
            return Resolved(partner=partner)
    if name is None:
        return Resolved()
    exact = [p for p in db.session.scalars(
        visible(Partner).where(Partner.kind == kind, Partner.active.is_(True),
                               func.lower(Partner.name) == text.lower()).limit(LIMIT))]
    if len(exact) == 1:
        return Resolved(partner=exact[0])
    matches = exact or suggest(text, kind)
    if len(matches) == 1:
        return Resolved(partner=matches[0])
    if not matches:
        return Resolved(error=_("No contact named “%(name)s” was found.", name=text))
    return Resolved(error=_("Several contacts match “%(name)s”: choose one.", name=text),
                    candidates=matches)
