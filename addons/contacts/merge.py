"""Merging duplicate partners into one survivor, losing nothing.

What moves to the survivor, in one transaction (the caller commits or rolls back):

- the values chosen per field (`choices`: field -> id of the partner whose value wins; by
  default the survivor's value when it has one, else the first merged partner's);
- every phone and e-mail of every partner (deduplicated; the chosen `phone`/`email` owner's
  first, so the primary is the chosen one), and every tag;
- custom field values (the chosen partner's value per field);
- the people of a merged company, and static segment memberships;
- timeline entries, activities and attachments, which link to records by `(model,
  record_id)`: re-pointed with one UPDATE per table;
- other addons' records: the `partner_merged` signal (`signals.py`) lets each addon move its
  own rows inside this same transaction; a receiver that fails rolls the whole merge back.

The merged partners are then **deleted**, not archived: an archived twin would keep turning up
in duplicate checks, imports matching by key and exports, which is what the merge was meant to
end. Nothing is lost because everything linked was moved first, and the audit log keeps a full
snapshot of each merged partner (its fields, phones, e-mails, tags and custom values) in the
`merge` entry, next to the automatic `delete` entries. The survivor's timeline says who merged
what, and its tracked fields show the values that changed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import delete, insert, select, update

from core.api import (
    RecordAttachment,
    TimelineEntry,
    _,
    _l,
    audit,
    db,
    log_entry,
)

from .models import CustomField, CustomValue, Partner, PartnerTag
from .services import refresh_search, set_emails, set_phones
from .signals import partner_merged

__all__ = ["MERGE_FIELDS", "MergeError", "MergeResult", "default_choices", "merge_partners",
           "partner_snapshot"]

#: Fields the merge screen offers a choice for, in screen order.
MERGE_FIELDS: tuple[str, ...] = (
    "name", "first_name", "middle_name", "last_name", "company_id", "job_title", "phone",
    "email", "website", "street", "city", "postcode", "region", "country", "lang", "birthday",
    "vat", "registration_no", "status", "source", "owner_id", "external_id",
)
#: Choosing these picks whose phones / e-mails come first (the primary); all are kept.
LIST_FIELDS = ("phone", "email")
#: Custom values are offered as `cf_<field id>`.
CUSTOM_PREFIX = "cf_"
VALUE_COLUMNS = ("value_text", "value_number", "value_date", "value_bool")


class MergeError(ValueError):
    """The partners cannot be merged as asked; the message is translated, for the user."""


@dataclass
class MergeResult:
    survivor_id: int
    merged_ids: list[int]
    moved: dict[str, int] = field(default_factory=dict)


def partner_model_name() -> str:
    """The generic-link name of partners (`contacts.partner`), as the timeline stores it."""
    return str(getattr(Partner, "__record_name__", "contacts.partner"))


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _custom_values(ids: list[int]) -> dict[int, dict[int, CustomValue]]:
    """partner id -> field id -> value row."""
    found: dict[int, dict[int, CustomValue]] = {}
    for row in db.session.scalars(select(CustomValue).where(CustomValue.partner_id.in_(ids))):
        found.setdefault(row.partner_id, {})[row.field_id] = row
    return found


def custom_value(row: CustomValue | None) -> Any:
    if row is None:
        return None
    for column in VALUE_COLUMNS:
        value = getattr(row, column)
        if value is not None:
            return value
    return None


def default_choices(partners: list[Partner]) -> dict[str, int]:
    """Per field, the id of the partner whose value wins by default: the survivor
    (`partners[0]`) when its value is not empty, else the first other one that has a value."""
    survivor = partners[0]
    choices: dict[str, int] = {}
    for name in MERGE_FIELDS:
        source = next((p for p in partners if not _empty(getattr(p, name))), survivor)
        choices[name] = source.id
    values = _custom_values([p.id for p in partners])
    field_ids = sorted({fid for rows in values.values() for fid in rows})
    for fid in field_ids:
        source = next((p for p in partners
                       if not _empty(custom_value(values.get(p.id, {}).get(fid)))), survivor)
        choices[f"{CUSTOM_PREFIX}{fid}"] = source.id
    return choices


def partner_snapshot(partner: Partner) -> dict[str, Any]:
    """Everything about a partner as plain data, for the audit log's merge entry."""
    from core.timeline import plain

    data = {c.key: plain(getattr(partner, c.key)) for c in Partner.__table__.columns
            if not c.key.startswith("sort_") and c.key != "search_text"}
    data["phones"] = [[p.number, p.kind] for p in partner.phones]
    data["emails"] = [[e.email, e.kind] for e in partner.emails]
    data["tags"] = [t.name for t in partner.tags]
    codes = dict(db.session.execute(select(CustomField.id, CustomField.code)).all())
    data["custom"] = {codes.get(fid, str(fid)): plain(custom_value(row))
                      for fid, row in _custom_values([partner.id]).get(partner.id, {}).items()}
    return data


def _load(survivor_id: int, merged_ids: list[int]) -> tuple[Partner, list[Partner]]:
    merged_ids = list(dict.fromkeys(int(i) for i in merged_ids if int(i) != int(survivor_id)))
    if not merged_ids:
        raise MergeError(_("Choose at least two contacts to merge."))
    rows = {p.id: p for p in db.session.scalars(
        select(Partner).where(Partner.id.in_([survivor_id, *merged_ids])))}
    if len(rows) != len(merged_ids) + 1:
        raise MergeError(_("Some of these contacts no longer exist."))
    survivor = rows[int(survivor_id)]
    others = [rows[i] for i in merged_ids]
    if any(p.kind != survivor.kind for p in others):
        raise MergeError(_("A person and a company cannot be merged."))
    return survivor, others


def merge_partners(survivor_id: int, merged_ids: list[int],
                   choices: Mapping[str, int] | None = None, *,
                   versions: Mapping[int, int] | None = None) -> MergeResult:
    """Merge `merged_ids` into `survivor_id` (see the module docstring). Does not commit.

    `choices` maps a field (`MERGE_FIELDS` or `cf_<id>`) to the id of the partner whose value
    wins; missing fields take `default_choices`. `versions` (partner id -> version the user
    saw) refuses the merge with `MergeError` when someone changed one of them meanwhile.
    """
    survivor, others = _load(survivor_id, merged_ids)
    partners = [survivor, *others]
    by_id = {p.id: p for p in partners}
    ids = [p.id for p in others]
    for pid, version in (versions or {}).items():
        if pid in by_id and by_id[pid].version != int(version):
            raise MergeError(_("%(name)s was changed by someone else meanwhile; review the "
                               "merge again.", name=by_id[pid].name))
    wanted = default_choices(partners)
    for key, pid in (choices or {}).items():
        if key in wanted and int(pid) in by_id:
            wanted[key] = int(pid)
    snapshots = [partner_snapshot(p) for p in others]
    moved: dict[str, int] = {}

    # Fields, in the order phones/e-mails want them (chosen primary first, nothing dropped).
    phones = _ordered_union(partners, wanted["phone"], "phones", "number")
    emails = _ordered_union(partners, wanted["email"], "emails", "email")
    old_name = survivor.name
    for name in MERGE_FIELDS:
        if name in LIST_FIELDS:
            continue
        source = by_id[wanted[name]]
        if source is not survivor:
            setattr(survivor, name, getattr(source, name))
    if survivor.company_id in ids or survivor.company_id == survivor.id:
        survivor.company_id = None
    created = [_utc(p.created_at) for p in partners if p.created_at]
    if created:
        survivor.created_at = min(created)  # the relationship is as old as its oldest record
    contacts = [_utc(p.last_contact_at) for p in partners if p.last_contact_at]
    survivor.last_contact_at = max(contacts) if contacts else None
    set_phones(survivor, phones)
    set_emails(survivor, emails)

    moved["custom_values"] = _merge_custom_values(survivor, others, wanted)
    moved["tags"] = _merge_tags(survivor.id, ids)
    moved.update(_move_links(survivor.id, ids))

    from .segments import move_members

    move_members(survivor.id, ids)
    people = db.session.execute(update(Partner.__table__)
                                .where(Partner.__table__.c.company_id.in_(ids))
                                .values(company_id=survivor.id))
    moved["people"] = int(people.rowcount or 0)

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    partner_merged.send(app, survivor_id=survivor.id, merged_ids=list(ids))

    names = ", ".join(p.name for p in others)
    log_entry(partner_model_name(), survivor.id, "system",
              _l("Merged into this contact: %(names)s.", names=names),
              subject=_l("Contacts merged"), author=_actor())
    audit("merge", record=survivor, details={
        "merged_ids": ids, "choices": {k: v for k, v in wanted.items()},
        "merged": snapshots, "moved": moved})

    for partner in others:
        db.session.expire(partner)  # drop stale collections (people, tags) before deleting
        db.session.delete(partner)
    db.session.flush()
    refresh_search(survivor)
    if moved["people"] or survivor.name != old_name:
        for person in db.session.scalars(select(Partner).where(
                Partner.company_id == survivor.id)):
            refresh_search(person)
    db.session.flush()
    return MergeResult(survivor.id, ids, moved)


def _utc(moment: datetime) -> datetime:
    """SQLite hands stored moments back naive (they are UTC); fresh ones are aware."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _actor() -> Any:
    from flask_login import current_user

    user = current_user._get_current_object() if current_user else None
    return user if getattr(user, "is_authenticated", False) else None


def _ordered_union(partners: list[Partner], first_id: int, relation: str,
                   attr: str) -> list[tuple[str, str]]:
    ordered = sorted(partners, key=lambda p: p.id != first_id)  # stable: survivor next
    values: list[tuple[str, str]] = []
    for partner in ordered:
        for item in getattr(partner, relation):
            values.append((getattr(item, attr), item.kind))
    return values


def _merge_custom_values(survivor: Partner, others: list[Partner],
                         wanted: Mapping[str, int]) -> int:
    """The chosen partner's row per field is re-pointed to the survivor; the survivor's own
    row for that field goes (its value is in the audit snapshot). Returns rows moved."""
    values = _custom_values([survivor.id, *(p.id for p in others)])
    mine = values.get(survivor.id, {})
    moved = 0
    for key, pid in wanted.items():
        if not key.startswith(CUSTOM_PREFIX) or pid == survivor.id:
            continue
        fid = int(key[len(CUSTOM_PREFIX):])
        row = values.get(pid, {}).get(fid)
        if row is None:
            continue
        if fid in mine:
            db.session.delete(mine[fid])
            db.session.flush()  # the unique (partner, field) must be free before the move
        db.session.execute(update(CustomValue.__table__).where(
            CustomValue.__table__.c.id == row.id).values(partner_id=survivor.id))
        db.session.expire(row)
        moved += 1
    return moved


def _merge_tags(survivor_id: int, ids: list[int]) -> int:
    table = PartnerTag.__table__
    have = set(db.session.scalars(select(table.c.tag_id).where(
        table.c.partner_id == survivor_id)))
    theirs = set(db.session.scalars(select(table.c.tag_id).where(table.c.partner_id.in_(ids))))
    new = sorted(theirs - have)
    if new:
        db.session.execute(insert(table), [{"partner_id": survivor_id, "tag_id": t}
                                           for t in new])
    db.session.execute(delete(table).where(table.c.partner_id.in_(ids)))
    survivor = db.session.get(Partner, survivor_id)
    if survivor is not None:
        db.session.expire(survivor, ["tags"])
    return len(new)


def _move_links(survivor_id: int, ids: list[int]) -> dict[str, int]:
    """Re-point the core tables keyed by `(model, record_id)` in SQL, one UPDATE each."""
    name = partner_model_name()
    tables: dict[str, Any] = {"timeline": TimelineEntry.__table__,
                              "attachments": RecordAttachment.__table__}
    try:
        from core.activities import Activity
    except ImportError:  # a kernel without activities
        Activity = None  # noqa: N806
    if Activity is not None:
        tables["activities"] = Activity.__table__
    moved = {}
    for key, table in tables.items():
        result = db.session.execute(update(table).where(
            table.c.model == name, table.c.record_id.in_(ids)).values(record_id=survivor_id))
        moved[key] = int(result.rowcount or 0)
    return moved
