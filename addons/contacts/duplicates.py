"""Finding likely duplicates of a contact: the same phone, e-mail or tax number, or a very
similar name in the same company. Used on create (a warning on the form) and by the import
(per row), so both judge alike; `duplicate_pairs()` lists the duplicates already in the
database for the managers' "possible duplicates" page.

Keys are compared in their normalised forms (E.164 phones, lower-case e-mail keys, tax numbers
without spaces or punctuation), each an indexed column, so both questions are index lookups or
one self-join per key in SQL; only names need Python (rapidfuzz), and only among the people of
one company.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from core.api import _l, db

from .folding import fold
from .models import Partner, PartnerEmail, PartnerPhone
from .services import normalize_email, normalize_phone

#: rapidfuzz token_sort_ratio at or above which two names in one company are "very similar".
NAME_SIMILARITY = 90

REASONS = {
    "phone": _l("same phone"),
    "email": _l("same e-mail"),
    "vat": _l("same tax number"),
    "name": _l("similar name in the same company"),
}
_ORDER = {"vat": 0, "email": 1, "phone": 2, "name": 3}
_NOT_VAT = re.compile(r"[^0-9A-Z]")


@dataclass
class DuplicateMatch:
    partner_id: int
    name: str
    reasons: list[str] = field(default_factory=list)  # keys of REASONS

    @property
    def labels(self) -> list[str]:
        return [str(REASONS[r]) for r in self.reasons]


@dataclass
class DuplicatePair:
    """Two existing partners that look like one, and why (for the duplicates page)."""

    first_id: int
    first_name: str
    second_id: int
    second_name: str
    reason: str
    value: str  # the shared phone / e-mail / tax number, or the two names' score

    @property
    def label(self) -> str:
        return str(REASONS[self.reason])


def vat_key(vat: str | None) -> str | None:
    """A tax number as stored and compared: upper case, no spaces, dots or dashes."""
    if not vat:
        return None
    return _NOT_VAT.sub("", vat.upper()) or None


def vat_variants(vat: str | None, country: str | None = None) -> set[str]:
    """The spellings one tax number may be stored under: as typed (compacted), and with or
    without its two-letter country prefix. The forms store LV and RO numbers bare, while a row
    imported without a country keeps "LV40003245752": both are the same company."""
    key = vat_key(vat)
    if not key or not vat:
        return set()
    found = {key, vat.replace(" ", "").upper()}
    if len(key) > 4 and key[:2].isalpha() and key[2].isdigit():
        found.add(key[2:])
    elif country and len(country) == 2 and country.isalpha() and key[0].isdigit():
        found.add(country.upper() + key)
    return found


def _bare_vat(column: Any) -> Any:
    """SQL for a stored tax number without its two-letter country prefix (`vat_variants`'
    rule: two letters, then a digit), on SQLite and PostgreSQL alike."""
    head = func.upper(func.substr(column, 1, 2))
    letters = and_(func.substr(head, 1, 1).between("A", "Z"),
                   func.substr(head, 2, 1).between("A", "Z"))
    prefixed = and_(letters, func.substr(column, 3, 1).between("0", "9"),
                    func.length(column) > 4)
    return case((prefixed, func.substr(column, 3)), else_=column)


def _vat_country(partner: Any) -> Any:
    """SQL for the country a partner's tax number belongs to: its prefix, else the partner's
    country, else "" (unknown)."""
    column = partner.vat
    return case((_bare_vat(column) != column, func.upper(func.substr(column, 1, 2))),
                else_=func.coalesce(func.upper(partner.country), ""))


def _safe_email(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except ValueError:
        return None


def find_duplicates(*, phones: Iterable[str] = (), emails: Iterable[str] = (),
                    vat: str | None = None, name: str | None = None,
                    company_id: int | None = None, exclude_id: int | None = None,
                    limit: int = 5, country: str | None = None) -> list[DuplicateMatch]:
    """Existing active partners that look like the one described; strongest reasons first
    (most reasons, then tax number > e-mail > phone > name).

    Queries are index lookups (phone, e-mail key, tax number, company), so this is cheap
    enough to run per imported row. Names are compared folded ("Петров" = "Petrov"), with
    word order ignored ("Ivan Petrov" = "Petrov Ivan").
    """
    numbers = {n for n in (normalize_phone(p) for p in phones if p) if n}
    keys = {e.lower() for e in (_safe_email(e) for e in emails if e) if e}
    # Stored numbers are compacted by the forms and the import; older rows may only have lost
    # their spaces, or keep (or lack) the country prefix: every spelling is looked up.
    taxes = vat_variants(vat, country)
    found: dict[int, DuplicateMatch] = {}

    def add(pid: int, pname: str, reason: str) -> None:
        match = found.setdefault(pid, DuplicateMatch(pid, pname))
        if reason not in match.reasons:
            match.reasons.append(reason)

    base = select(Partner.id, Partner.name).where(Partner.active.is_(True))
    if exclude_id is not None:
        base = base.where(Partner.id != exclude_id)
    queries = []
    if numbers:
        queries.append(("phone", base.where(Partner.id.in_(
            select(PartnerPhone.partner_id).where(PartnerPhone.number.in_(numbers))))))
    if keys:
        queries.append(("email", base.where(Partner.id.in_(
            select(PartnerEmail.partner_id).where(PartnerEmail.email_key.in_(keys))))))
    if taxes:
        queries.append(("vat", base.where(Partner.vat.in_(sorted(taxes)))))
    for reason, stmt in queries:
        for pid, pname in db.session.execute(stmt).all():
            add(pid, pname, reason)
    wanted = fold(name) if name else ""
    if wanted and company_id is not None:
        colleagues = db.session.execute(base.where(Partner.company_id == company_id)).all()
        if colleagues:
            scores = process.extract(wanted, [fold(n) for _i, n in colleagues],
                                     scorer=fuzz.token_sort_ratio, score_cutoff=NAME_SIMILARITY,
                                     limit=None)
            for _choice, _score, index in scores:
                add(*colleagues[index], "name")
    matches = sorted(found.values(),
                     key=lambda m: (-len(m.reasons), min(_ORDER[r] for r in m.reasons), m.name))
    return matches[:limit]


# -- the duplicates page -------------------------------------------------------------------
def _pairs_by_key(reason: str, within: Select | None) -> Select:
    """Every pair (lower id first) sharing the reason's key. The keys held more than once are
    found first with a GROUP BY over the key's index, so the self-join only touches those."""
    one, two = aliased(Partner), aliased(Partner)
    if reason == "vat":
        bare = _bare_vat(Partner.vat)
        shared = (select(bare.label("key")).where(Partner.vat.is_not(None), Partner.vat != "")
                  .group_by(bare).having(func.count() > 1).cte(f"dup_{reason}"))
        one_bare, two_bare = _bare_vat(one.vat), _bare_vat(two.vat)
        # "LV4000…" and a Latvian "4000…" are one company (forms store LV and RO numbers
        # bare, an import without a country keeps the prefix); "LV4000…" and "EE4000…", or
        # a Latvian and a Romanian "4000…", are two. A bare number without a country matches
        # any, as on the form (`vat_variants`).
        one_land, two_land = _vat_country(one), _vat_country(two)
        same_country = or_(one_land == two_land, one_land == "", two_land == "")
        stmt = (select(one.id, one.name, two.id, two.name, one.vat)
                .join(two, and_(two_bare == one_bare, two.id > one.id, same_country))
                .where(one_bare.in_(select(shared.c.key))))
    else:
        child = PartnerPhone if reason == "phone" else PartnerEmail
        key = child.number if reason == "phone" else child.email_key
        shared = (select(key.label("key")).group_by(key).having(func.count() > 1)
                  .cte(f"dup_{reason}"))
        left, right = aliased(child), aliased(child)
        left_key, right_key = getattr(left, key.key), getattr(right, key.key)
        stmt = (select(one.id, one.name, two.id, two.name, left_key)
                .select_from(left)
                .join(right, and_(right_key == left_key, right.partner_id > left.partner_id))
                .join(one, one.id == left.partner_id)
                .join(two, two.id == right.partner_id)
                .where(left_key.in_(select(shared.c.key))))
    stmt = stmt.where(one.active.is_(True), two.active.is_(True))
    if within is not None:
        stmt = stmt.where(one.id.in_(within), two.id.in_(within))
    return stmt


def duplicate_pairs(reason: str, *, within: Select | None = None, offset: int = 0,
                    limit: int = 50) -> tuple[list[DuplicatePair], bool]:
    """Pairs of active partners sharing the reason's key (`phone`, `email`, `vat`) or having
    very similar names in one company (`name`); and whether more follow.

    `within` (a `select(Partner.id)`, e.g. the user's visible partners) limits both sides.
    Key reasons are one SQL self-join each, ordered by the shared value; `name` compares the
    people of each company that has several (rapidfuzz), companies taken in id order.
    """
    if reason not in REASONS:
        raise ValueError(reason)
    if reason == "name":
        return _name_pairs(within, offset, limit)
    stmt = _pairs_by_key(reason, within)
    cols = stmt.selected_columns
    rows = db.session.execute(stmt.order_by(cols[4], cols[0], cols[2])
                              .offset(offset).limit(limit + 1)).all()
    pairs = [DuplicatePair(a, an, b, bn, reason, str(value)) for a, an, b, bn, value in rows]
    return pairs[:limit], len(pairs) > limit


def count_pairs(within: Select | None = None) -> dict[str, int]:
    """How many pairs each key reason has (the page's tab counters; names are not counted:
    that would compare every company's people)."""
    counts = {}
    for reason in ("phone", "email", "vat"):
        sub = _pairs_by_key(reason, within).subquery()
        counts[reason] = int(db.session.scalar(select(func.count()).select_from(sub)) or 0)
    return counts


def _name_pairs(within: Select | None, offset: int, limit: int
                ) -> tuple[list[DuplicatePair], bool]:
    people = select(Partner.company_id).where(
        Partner.active.is_(True), Partner.company_id.is_not(None), Partner.kind == "person")
    if within is not None:
        people = people.where(Partner.id.in_(within))
    crowded = (people.group_by(Partner.company_id).having(func.count() > 1)
               .order_by(Partner.company_id))
    pairs: list[DuplicatePair] = []
    wanted = offset + limit + 1
    batch = 1000
    start = 0
    while len(pairs) < wanted:
        company_ids = list(db.session.scalars(crowded.offset(start).limit(batch)))
        if not company_ids:
            break
        start += batch
        rows = select(Partner.id, Partner.name, Partner.company_id).where(
            Partner.active.is_(True), Partner.kind == "person",
            Partner.company_id.in_(company_ids)).order_by(Partner.company_id, Partner.id)
        if within is not None:
            rows = rows.where(Partner.id.in_(within))
        groups: dict[int, list[tuple[int, str]]] = {}
        for pid, pname, cid in db.session.execute(rows):
            groups.setdefault(cid, []).append((pid, pname))
        for cid in company_ids:
            members = groups.get(cid, [])
            folded = [fold(n) for _i, n in members]
            for i in range(len(members)):
                for j in range(i + 1, len(members)):
                    score = fuzz.token_sort_ratio(folded[i], folded[j])
                    if score >= NAME_SIMILARITY:
                        (a, an), (b, bn) = members[i], members[j]
                        pairs.append(DuplicatePair(a, an, b, bn, "name", f"{score:.0f}"))
    page = pairs[offset:offset + limit]
    return page, len(pairs) > offset + limit
