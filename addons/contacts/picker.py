"""Client fields of other addons' forms: a name typed (or picked from suggestions) becomes a
contact. Published for addons that depend on contacts (the deal form, the offer form).

Why: records link a person or company by id, but people know their clients by name, and a
firm has far too many contacts for a select. The form shows a text input plus a hidden id
(the `contacts/_picker.html` macro). With JavaScript, `contacts/static/picker.js` fills a
`<datalist>` from `/contacts/lookup.json` and sets the id when a suggestion is picked;
without it, the server resolves the typed name (exact name first, then the contacts search)
and, when several contacts match, offers them in a select. Every lookup goes through
`core.api.visible`, so a contact outside the user's record rules is "not found", whether it
was typed, suggested or posted as an id.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import db, visible

from . import services
from .listing import sort_language
from .models import Partner

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


def suggest(text: str, kind: str | None) -> list[Partner]:
    """The contacts a user may see whose name starts like `text`, sorted for the reader;
    people or companies (`kind`), or both when `kind` is None."""
    if len(text.strip()) < 2 or (kind is not None and kind not in KINDS):
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


def resolve(name: str | None, partner_id: object, kind: str | None, *,
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
    named = visible(Partner).where(Partner.active.is_(True),
                                   func.lower(Partner.name) == text.lower())
    if kind is not None:
        named = named.where(Partner.kind == kind)
    exact = list(db.session.scalars(named.limit(LIMIT)))
    if len(exact) == 1:
        return Resolved(partner=exact[0])
    matches = exact or suggest(text, kind)
    if len(matches) == 1:
        return Resolved(partner=matches[0])
    if not matches:
        return Resolved(error=_("No contact named “%(name)s” was found.", name=text))
    return Resolved(error=_("Several contacts match “%(name)s”: choose one.", name=text),
                    candidates=matches)
