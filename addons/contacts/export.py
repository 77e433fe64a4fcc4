"""Exporting the current list (its filters come as the list page's query string) to CSV, XLSX
and vCard 3.0.

- The rows come from `listing.base_query()`, the list's own query, so an export holds exactly
  what the user sees: the same filters and the same record rules.
- Spreadsheet cells that start with `=`, `+`, `-`, `@`, a tab or a carriage return get a
  leading `'` (OWASP's advice against formula injection): a contact named `=HYPERLINK(...)`
  stays text in Excel and LibreOffice. The import strips that `'` again, so an export can be
  imported back unchanged.
- Every export is written to the audit log with its format, row count and filters.
- Headers are the import's field labels in the reader's language, so the import's mapping
  recognises an exported file by itself.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response, abort, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select, select

from core.api import User, db, permission_required, reads_in_transaction
from core.audit import audit

from . import custom_fields as cf
from . import listing
from .importing.mapping import FIELDS
from .models import CustomField, CustomValue, Partner, PartnerEmail, PartnerPhone
from .views import bp

FORMATS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument"
           ".spreadsheetml.sheet", "vcf": "text/vcard"}
#: Characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Partner columns exported, in order (labels from the import's field catalogue).
COLUMNS = ("kind", "name", "first_name", "last_name", "middle_name", "company_name",
           "job_title", "phone", "email", "website", "street", "city", "postcode", "region",
           "country", "lang", "birthday", "vat", "registration_no", "status", "source",
           "owner", "external_id", "created_at")
CHUNK = 1000


def neutralise(value: Any) -> Any:
    """`value` safe for a spreadsheet cell: text starting like a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def header(fields: list[CustomField]) -> list[str]:
    return [str(FIELDS[c]) for c in COLUMNS] + [cf.field_label(f) for f in fields]


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.replace(microsecond=0, tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


class Exported:
    """One partner with its phones, e-mails, owner login and custom values."""

    __slots__ = ("custom", "emails", "owner", "partner", "phones")

    def __init__(self, partner: Partner) -> None:
        self.partner = partner
        self.phones: list[tuple[str, str]] = []
        self.emails: list[tuple[str, str]] = []
        self.custom: dict[int, Any] = {}
        self.owner = ""

    def values(self, fields: list[CustomField]) -> list[Any]:
        p = self.partner
        row: list[Any] = []
        for column in COLUMNS:
            if column == "phone":
                row.append("; ".join(n for n, _k in self.phones))
            elif column == "email":
                row.append("; ".join(e for e, _k in self.emails))
            elif column == "owner":
                row.append(self.owner)
            else:
                row.append(_text(getattr(p, column)))
        for field in fields:
            value = self.custom.get(field.id)
            if field.kind == "choice" and value:
                value = dict(cf.choice_options(field)).get(value, value)
            row.append(_text(value))
        return row


def iter_partners(query: Select, fields: list[CustomField]) -> Iterator[Exported]:
    """The query's partners with their children, loaded a thousand at a time (a fixed
    number of queries per chunk, whatever the list's size)."""
    users = dict(db.session.execute(select(User.id, User.login)).all())
    field_ids = [f.id for f in fields]
    for chunk in _chunks(db.session.scalars(query.execution_options(yield_per=CHUNK))):
        rows = {p.id: Exported(p) for p in chunk}
        ids = list(rows)
        for pid, number, kind in db.session.execute(
                select(PartnerPhone.partner_id, PartnerPhone.number, PartnerPhone.kind)
                .where(PartnerPhone.partner_id.in_(ids)).order_by(PartnerPhone.sequence)):
            rows[pid].phones.append((number, kind))
        for pid, email, kind in db.session.execute(
                select(PartnerEmail.partner_id, PartnerEmail.email, PartnerEmail.kind)
                .where(PartnerEmail.partner_id.in_(ids)).order_by(PartnerEmail.sequence)):
            rows[pid].emails.append((email, kind))
        if field_ids:
            by_id = {f.id: f for f in fields}
            for value in db.session.scalars(select(CustomValue).where(
                    CustomValue.partner_id.in_(ids), CustomValue.field_id.in_(field_ids))):
                rows[value.partner_id].custom[value.field_id] = cf.value_of(
                    value, by_id[value.field_id])
        for row in rows.values():
            row.owner = users.get(row.partner.owner_id, "") if row.partner.owner_id else ""
            yield row


def _chunks(items: Any) -> Iterator[list[Partner]]:
    chunk: list[Partner] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def to_csv(rows: Iterator[Exported], fields: list[CustomField]) -> tuple[bytes, int]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise(h) for h in header(fields)])
    count = 0
    for row in rows:
        writer.writerow([neutralise(v) for v in row.values(fields)])
        count += 1
    # A BOM, so Excel opens UTF-8 as UTF-8 (the import reads both).
    return ("\ufeff" + out.getvalue()).encode("utf-8"), count


def to_xlsx(rows: Iterator[Exported], fields: list[CustomField]) -> tuple[bytes, int]:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(_("Contacts"))
    sheet.append([neutralise(h) for h in header(fields)])
    count = 0
    for row in rows:
        # Every value goes in as text or a number: a string never becomes a formula.
        sheet.append([neutralise(v) for v in row.values(fields)])
        count += 1
    out = io.BytesIO()
    book.save(out)
    return out.getvalue(), count


def to_vcard(rows: Iterator[Exported], fields: list[CustomField]) -> tuple[bytes, int]:
    """vCard 3.0, one card per partner (UTF-8, as every current address book reads)."""
    import vobject

    cards: list[str] = []
    for row in rows:
        p = row.partner
        card = vobject.vCard()
        card.add("fn").value = p.name or ""
        if p.kind == "person":
            card.add("n").value = vobject.vcard.Name(
                family=p.last_name or "", given=p.first_name or "",
                additional=p.middle_name or "")
            if p.company_name:
                card.add("org").value = [p.company_name]
        else:
            card.add("n").value = vobject.vcard.Name(family=p.name or "")
            card.add("org").value = [p.name or ""]
        if p.job_title:
            card.add("title").value = p.job_title
        for number, kind in row.phones:
            tel = card.add("tel")
            tel.value = number
            tel.type_param = {"mobile": "CELL", "work": "WORK", "home": "HOME",
                              "fax": "FAX"}.get(kind, "VOICE")
        for email, _kind in row.emails:
            mail = card.add("email")
            mail.value = email
            mail.type_param = "INTERNET"
        if p.street or p.city or p.postcode or p.country:
            card.add("adr").value = vobject.vcard.Address(
                street=p.street or "", city=p.city or "", region=p.region or "",
                code=p.postcode or "", country=p.country or "")
        if p.birthday:
            card.add("bday").value = p.birthday.isoformat()
        if p.website:
            card.add("url").value = p.website
        card.add("uid").value = f"birga-partner-{p.id}"
        cards.append(card.serialize())
    return "".join(cards).encode("utf-8"), len(cards)


WRITERS = {"csv": to_csv, "xlsx": to_xlsx, "vcf": to_vcard}


def export_query(args: Any, user: Any) -> tuple[Select, list[CustomField], dict[str, Any]]:
    """The list's query for these query-string arguments, sorted as the list is."""
    fields = cf.active_fields()
    params = listing.ListParams.parse(args, fields)
    query = listing.base_query(params, fields, user).order_by(
        *listing.order_by(params, listing.sort_language()))
    return query, fields, params.filters()


def export(query: Select, fields: list[CustomField], fmt: str,
           filters: dict[str, Any] | None = None) -> tuple[bytes, int]:
    """The file for `query` (a `select(Partner)` the caller scoped), audited."""
    data, count = WRITERS[fmt](iter_partners(query, fields), fields)
    audit("export", model="contacts.partner",
          details={"format": fmt, "rows": count, "filters": filters or {}})
    db.session.commit()
    return data, count


@bp.route("/export.<fmt>")
@reads_in_transaction  # the rows stream through a server-side cursor (yield_per)
@permission_required("contacts.export")
def export_list(fmt: str):
    if fmt not in WRITERS:
        abort(404)
    query, fields, filters = export_query(request.args, current_user)
    data, _count = export(query, fields, fmt, filters)
    name = f"contacts.{fmt}"
    return Response(data, mimetype=FORMATS[fmt],
                    headers={"Content-Disposition": f"attachment; filename={name}"})
