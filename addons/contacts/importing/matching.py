"""Matching imported rows against the database in bulk: update keys and likely duplicates.

`duplicates.find_duplicates()` answers for one contact with a few index lookups; a 100k-row
import cannot afford 300k queries, so this module asks the same questions for a whole file
with one `IN (...)` query per 500 values, and applies the same rules and reasons (same phone,
e-mail or tax number among active partners, a very similar name in the same company).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import func, select

from core.api import db

from ..duplicates import NAME_SIMILARITY
from ..folding import fold
from ..models import Partner, PartnerEmail, PartnerPhone

CHUNK = 500


def chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _lookup(column: Any, values: set[Any], *,
            active_only: bool = False) -> dict[Any, list[tuple[int, str, str]]]:
    """value -> [(partner id, kind, name)] for partners whose `column` holds the value.

    Two index lookups rather than a join: with a join SQLite may walk the partners by their
    `active` index once per chunk, which turns 100k values into minutes.
    """
    found: dict[Any, list[tuple[int, str, str]]] = defaultdict(list)
    if not values:
        return found
    table = column.class_
    owner = Partner.id if table is Partner else table.partner_id
    pairs = holding(column, owner, values)
    partners: dict[int, tuple[str, str]] = {}
    for batch in chunks(sorted({pid for _v, pid in pairs})):
        stmt = select(Partner.id, Partner.kind, Partner.name, Partner.active).where(
            Partner.id.in_(batch))
        for pid, kind, name, active in db.session.execute(stmt):
            if active or not active_only:
                partners[pid] = (kind, name)
    for value, pid in pairs:
        if pid in partners:
            entry = (pid, *partners[pid])
            if entry not in found[value]:
                found[value].append(entry)
    return found


def holding(column: Any, owner: Any, values: set[Any], *criteria: Any
            ) -> list[tuple[Any, int]]:
    """(value, id) of the rows (meeting `criteria`) whose `column` holds one of `values`,
    by id: one `IN` query per CHUNK values, or for a file as big as the table (a first
    import) one pass over the column, which beats thousands of index lookups (SQL `=` on
    these strings is exact, as Python's `in` is)."""
    if not values:
        return []
    if _small(column.class_, len(values)):
        found = [(value, pid) for value, pid in db.session.execute(
            select(column, owner).where(column.is_not(None), *criteria)) if value in values]
    else:
        found = [tuple(row) for batch in chunks(sorted(values)) for row in db.session.execute(
            select(column, owner).where(column.in_(batch), *criteria))]
    found.sort(key=lambda pair: pair[1])
    return found


#: A table with at most this many rows per looked-up value is read whole rather than probed.
SCAN_RATIO = 4


def _small(table: Any, wanted: int) -> bool:
    """Whether reading all of `table` costs less than probing its index `wanted` times."""
    if wanted < CHUNK:
        return False
    rows = db.session.scalar(select(func.count()).select_from(table))
    return rows <= wanted * SCAN_RATIO


def by_key(key: str, values: set[str]) -> dict[str, list[tuple[int, str, str]]]:
    """Existing partners (any state) holding each value of the chosen match key."""
    if key == "email":
        return _lookup(PartnerEmail.email_key, {v.lower() for v in values})
    if key == "phone":
        return _lookup(PartnerPhone.number, values)
    if key == "vat":
        return _lookup(Partner.vat, values)
    return _lookup(Partner.external_id, values)


class DuplicateIndex:
    """The file's phones, e-mail keys and tax numbers looked up among active partners."""

    def __init__(self, phones: set[str], emails: set[str], vats: set[str]) -> None:
        self.phones = _lookup(PartnerPhone.number, phones, active_only=True)
        self.emails = _lookup(PartnerEmail.email_key, {e.lower() for e in emails},
                              active_only=True)
        self.vats = _lookup(Partner.vat, vats, active_only=True)
        self._colleagues: dict[int, list[tuple[int, str, str]]] = {}

    def load_colleagues(self, company_ids: set[int]) -> None:
        """Names of the people of these existing companies, for the similar-name rule."""
        found: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        people = select(Partner.company_id, Partner.id, Partner.name).where(
            Partner.active.is_(True)).order_by(Partner.id)
        if _small(Partner, len(company_ids)):
            rows = [row for row in db.session.execute(people.where(
                Partner.company_id.is_not(None))) if row[0] in company_ids]
        else:
            rows = [row for batch in chunks(sorted(company_ids)) for row in db.session.execute(
                people.where(Partner.company_id.in_(batch)))]
        for company_id, pid, name in rows:
            found[company_id].append((pid, name, fold(name)))
        self._colleagues.update(found)

    def may_match(self, phones: list[str], email_keys: list[str], vats: Iterable[str],
                  company_id: int | None) -> bool:
        """False when `matches()` surely finds nothing (most rows of a first import).
        `vats` are the spellings of the row's tax number (`duplicates.vat_variants`)."""
        return (company_id is not None and company_id in self._colleagues) or any(
            v in self.vats for v in vats) or any(
            p in self.phones for p in phones) or any(e in self.emails for e in email_keys)

    def matches(self, *, phones: list[str], emails: list[str], vats: Iterable[str],
                name: str | None, company_id: int | None,
                exclude_id: int | None = None) -> list[dict[str, Any]]:
        """Like `find_duplicates()`: [{"id", "name", "reasons"}], strongest first."""
        found: dict[int, dict[str, Any]] = {}

        def add(entries: list[tuple[int, str, str]], reason: str) -> None:
            for pid, _kind, pname in entries:
                if pid == exclude_id:
                    continue
                match = found.setdefault(pid, {"id": pid, "name": pname, "reasons": []})
                if reason not in match["reasons"]:
                    match["reasons"].append(reason)

        for number in phones:
            add(self.phones.get(number, []), "phone")
        for email in emails:
            add(self.emails.get(email.lower(), []), "email")
        for vat in vats:
            add(self.vats.get(vat, []), "vat")
        if name and company_id is not None and company_id in self._colleagues:
            wanted = fold(name)
            for pid, pname, folded in self._colleagues[company_id]:
                if pid != exclude_id and fuzz.token_sort_ratio(wanted, folded) >= NAME_SIMILARITY:
                    add([(pid, "person", pname)], "name")
        order = {"vat": 0, "email": 1, "phone": 2, "name": 3}
        return sorted(found.values(), key=lambda m: (
            -len(m["reasons"]), min(order[r] for r in m["reasons"]), m["name"]))[:5]
