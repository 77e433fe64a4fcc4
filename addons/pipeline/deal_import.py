"""Deals from a spreadsheet: the old system's deals on day one, or the deal list's own export
edited and read back.

Why it works this way:
- **The state machine decides.** Each row becomes `state.create_deal` (or `state.move_deal`
  for a row whose number names an existing deal), with `via="import"`: Won needs an amount,
  Lost a reason from the list, exactly as on the board, the form and the API.
- **All or nothing.** Every row goes through the state machine in one transaction, which
  is committed only when no row failed. "Check" runs the same and rolls back, so it shows
  exactly what the import would do; a refused row is reported by line, in the reader's
  language.
- **The export's columns are understood**, in any of the staff languages (the export writes
  its headers in the exporter's language), and so are the English column keys.
- **Names are looked up, never created:** the pipeline, stage, salesperson, company, contact
  and lost reason must exist (companies and people come in through the contacts import), and
  only contacts the importer may see are found.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import abort, render_template, request
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from addons.contacts.folding import fold
from addons.contacts.importing.parsing import ParseError, guess_format, read_table
from addons.contacts.models import Partner, PartnerEmail
from core.api import User, db, permission_required, scoped
from core.forms import ActionForm
from core.i18n import LANGUAGES

from . import state
from .models import Deal, LostReason, Pipeline, Stage
from .views import bp

#: Column key -> its header as the deal list's export writes it (translated per reader).
COLUMNS: dict[str, Any] = {
    "number": _l("Number"), "title": _l("Title"), "pipeline": _l("Pipeline"),
    "stage": _l("Stage"), "contact": _l("Contact"), "company": _l("Company"),
    "amount": _l("Amount"), "currency": _l("Currency"), "probability": _l("Probability"),
    "expected_close": _l("Expected close"), "owner": _l("Salesperson"),
    "lost_reason": _l("Lost reason"), "lost_note": _l("Comment on the loss"),
}
MAX_ROWS = 5000
MAX_BYTES = 5 * 1024 * 1024


class RowError(ValueError):
    """A row that cannot be imported; the message is translated."""


@dataclass
class Outcome:
    """What the file did, or would do: created and updated counts, errors by line."""

    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)


# -- reading the file ----------------------------------------------------------------------
def _header_keys() -> dict[str, str]:
    """Folded header text -> column key, for the English keys and every staff language."""
    keys = {fold(key.replace("_", " ")): key for key in COLUMNS}
    for locale in LANGUAGES:
        with force_locale(locale):
            keys.update({fold(str(label)): key for key, label in COLUMNS.items()})
    return keys


def read_rows(data: bytes, filename: str) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """(line, {column key: text}) per non-empty row, and the headers nobody understood."""
    fmt = guess_format(filename, data)
    if fmt == "vcard":
        raise RowError(_("A vCard holds contacts, not deals: choose a CSV or XLSX file."))
    try:
        table = read_table(data, fmt)
    except ParseError as exc:
        raise RowError(_parse_message(exc)) from None
    known = _header_keys()
    keys = [known.get(fold(name)) for name in table.columns]
    if "title" not in keys and "number" not in keys:
        raise RowError(_("The file has no Title column."))
    unknown = [name for name, key in zip(table.columns, keys, strict=True)
               if key is None and name.strip()]
    rows = []
    for line, cells in enumerate(table.rows, start=2):
        values = {key: (cells[i] if i < len(cells) else "").strip()
                  for i, key in enumerate(keys) if key}
        if any(values.values()):
            rows.append((line, values))
    if len(rows) > MAX_ROWS:
        raise RowError(ngettext("A file may hold at most %(num)d deal; split it.",
                                "A file may hold at most %(num)d deals; split it.", MAX_ROWS))
    return rows, unknown


def _parse_message(error: ParseError) -> str:
    if error.code == "empty":
        return _("The file is empty.")
    if error.code == "encoding":
        return _("The file is not readable text. Save it as CSV (UTF-8) or XLSX.")
    if error.code == "xlsx":
        return _("The file is not a readable XLSX workbook.")
    return _("The file is not a readable CSV file.")


# -- looking names up ----------------------------------------------------------------------
def _spellings(name: str, labels: Mapping[str, str] | None) -> set[str]:
    """A pipeline's, stage's or reason's name as anyone may write it, folded: as stored, as
    labelled per language, and a seeded name ("Won") in every staff language."""
    found = {name, *(text for text in (labels or {}).values() if text)}
    seeded = state.SEEDED_TITLES.get(name)
    if seeded is not None:
        for locale in LANGUAGES:
            with force_locale(locale):
                found.add(str(seeded))
    return {fold(text) for text in found}


class Lookups:
    """Pipelines, stages, users and lost reasons by folded name, read once per file."""

    def __init__(self) -> None:
        self.pipelines: dict[str, Pipeline] = {}
        self.stages: dict[int, dict[str, Stage]] = {}
        for pipeline in db.session.scalars(select(Pipeline).where(Pipeline.active.is_(True))
                                           .order_by(Pipeline.sequence, Pipeline.id)):
            for name in _spellings(pipeline.name, None):
                self.pipelines.setdefault(name, pipeline)
            self.stages[pipeline.id] = {}
            for stage in pipeline.stages:
                for name in _spellings(stage.name, stage.labels):
                    self.stages[pipeline.id].setdefault(name, stage)
        self.users: dict[str, User] = {}
        for user in db.session.scalars(select(User).where(User.active.is_(True))):
            for name in (user.login, user.email, user.name):
                if name:
                    self.users.setdefault(fold(name), user)
        self.partners: dict[tuple[str, str], Partner | None | RowError] = {}
        self.reasons: dict[str, LostReason] = {}
        for reason in db.session.scalars(select(LostReason).where(LostReason.active.is_(True))):
            for name in _spellings(reason.name, reason.labels):
                self.reasons.setdefault(name, reason)

    def pipeline(self, text: str) -> Pipeline:
        if not text:
            return state.seed_defaults() if not self.pipelines else next(
                iter(self.pipelines.values()))
        found = self.pipelines.get(fold(text))
        if found is None:
            raise RowError(_("No pipeline is called “%(name)s”.", name=text))
        return found

    def stage(self, pipeline: Pipeline, text: str) -> Stage | None:
        if not text:
            return None
        found = self.stages.get(pipeline.id, {}).get(fold(text))
        if found is None:
            raise RowError(_("The pipeline has no stage “%(name)s”.", name=text))
        return found

    def owner(self, text: str) -> User:
        if not text:
            return current_user
        found = self.users.get(fold(text))
        if found is None:
            raise RowError(_("No active user is “%(name)s”.", name=text))
        return found

    def partner(self, kind: str, text: str) -> Partner | None:
        """`_partner`, asked once per name: a file often has many deals of one company."""
        key = (kind, text)
        if key not in self.partners:
            try:
                self.partners[key] = _partner(kind, text)
            except RowError as exc:
                self.partners[key] = exc
        found = self.partners[key]
        if isinstance(found, RowError):
            raise RowError(str(found))
        return found

    def reason(self, text: str) -> LostReason | None:
        if not text:
            return None
        found = self.reasons.get(fold(text))
        if found is None:
            raise RowError(_("“%(name)s” is not one of the lost reasons.", name=text))
        return found


def _partner(kind: str, text: str) -> Partner | None:
    """The company or person the importer may see, by name (or a person by e-mail)."""
    if not text:
        return None
    query = select(Partner).where(Partner.active.is_(True), Partner.kind == kind)
    # As written (what the export wrote), or in other case (SQLite's lower() folds ASCII).
    by_name = or_(Partner.name == text, func.lower(Partner.name) == text.lower())
    if kind == "person" and "@" in text:
        by_name = or_(by_name, Partner.id.in_(select(PartnerEmail.partner_id).where(
            PartnerEmail.email_key == text.strip().lower())))
    found = db.session.scalars(scoped(query.where(by_name), current_user).limit(2)).all()
    if not found:
        if kind == "company":
            raise RowError(_("No company “%(name)s” among your contacts.", name=text))
        raise RowError(_("No contact person “%(name)s” among your contacts.", name=text))
    if len(found) > 1:
        raise RowError(_("Several contacts are called “%(name)s”: give an e-mail instead.",
                         name=text))
    return found[0]


def _date(text: str) -> date | None:
    if not text:
        return None
    for pattern in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            return datetime.strptime(text[:10], pattern).date()
        except ValueError:
            continue
    raise RowError(_("“%(value)s” is not a date (e.g. 2026-12-31 or 31.12.2026).", value=text))


def _probability(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(float(text.rstrip("% ").replace(",", ".")))
    except ValueError:
        raise RowError(_("The probability is a percentage from 0 to 100.")) from None
    if not 0 <= value <= 100:
        raise RowError(_("The probability is a percentage from 0 to 100."))
    return value


def _currency(text: str) -> str | None:
    if not text:
        return None
    if len(text) != 3 or not text.isalpha():
        raise RowError(_("“%(value)s” is not a currency code (three letters, e.g. EUR).",
                         value=text))
    return text.upper()


# -- one row -------------------------------------------------------------------------------
def import_row(values: Mapping[str, str], lookups: Lookups) -> str:
    """Create or update the row's deal through the state machine; "created" or "updated"."""
    try:
        if values.get("number"):
            return _update(values, lookups)
        pipeline = lookups.pipeline(values.get("pipeline", ""))
        stage = lookups.stage(pipeline, values.get("stage", ""))
        company = lookups.partner("company", values.get("company", ""))
        contact = lookups.partner("person", values.get("contact", ""))
        state.create_deal(
            title=values.get("title", ""), pipeline=pipeline, stage=stage, user=current_user,
            via="import", owner_id=lookups.owner(values.get("owner", "")).id,
            partner_id=contact.id if contact else None,
            company_id=company.id if company else (contact.company_id if contact else None),
            amount=state.parse_amount(values.get("amount")),
            currency=_currency(values.get("currency", "")),
            probability=_probability(values.get("probability", "")),
            expected_close=_date(values.get("expected_close", "")),
            lost_reason=lookups.reason(values.get("lost_reason", "")),
            lost_note=values.get("lost_note") or None)
        return "created"
    except state.TransitionError as exc:
        raise RowError(str(exc)) from None


def _update(values: Mapping[str, str], lookups: Lookups) -> str:
    number = values["number"].lstrip("#").strip()
    if not number.isdigit():
        raise RowError(_("“%(value)s” is not a deal number.", value=values["number"]))
    deal = db.session.scalar(scoped(select(Deal).where(Deal.id == int(number)), current_user))
    if deal is None:
        raise RowError(_("No deal number %(number)s among yours.", number=number))
    if values.get("title"):
        deal.title = " ".join(values["title"].split())[:300]
    amount = state.parse_amount(values.get("amount"))
    stage = lookups.stage(deal.pipeline, values.get("stage", ""))
    if stage is not None and stage.id != deal.stage_id:
        # The amount goes with the move, as on the board (Won checks it).
        state.move_deal(deal, stage, user=current_user, via="import", amount=amount,
                        lost_reason=lookups.reason(values.get("lost_reason", "")),
                        lost_note=values.get("lost_note") or None)
    elif amount is not None:
        deal.amount = amount
    for key, parse, attr in (("currency", _currency, "currency"),
                             ("probability", _probability, "probability"),
                             ("expected_close", _date, "expected_close")):
        if values.get(key):
            setattr(deal, attr, parse(values[key]))
    if values.get("owner"):
        deal.owner_id = lookups.owner(values["owner"]).id
    return "updated"


def import_deals(rows: Iterable[tuple[int, Mapping[str, str]]]) -> Outcome:
    """Every row through `import_row`, in the session's transaction: the caller commits only
    when no row failed, and rolls back otherwise (and after a check)."""
    outcome = Outcome()
    lookups = Lookups()
    for line, values in rows:
        try:
            done = import_row(values, lookups)
        except RowError as exc:
            outcome.errors.append((line, str(exc)))
            continue
        except SQLAlchemyError:
            # The database refused a row the checks let through: the transaction is gone
            # (PostgreSQL), so say so on this line and stop.
            outcome.errors.append((line, _("This row could not be saved; nothing was "
                                           "imported.")))
            break
        if done == "created":
            outcome.created += 1
        else:
            outcome.updated += 1
    return outcome


# -- the page ------------------------------------------------------------------------------
@bp.route("/import", methods=["GET", "POST"])
@permission_required("pipeline.import")
def import_page():
    outcome: Outcome | None = None
    problem = None
    written = False
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400)
        upload = request.files.get("file")
        data = upload.read(MAX_BYTES + 1) if upload is not None and upload.filename else b""
        if not data:
            problem = _("Choose a CSV or XLSX file.")
        elif len(data) > MAX_BYTES:
            problem = _("The file is larger than 5 MB; split it.")
        else:
            try:
                rows, unknown = read_rows(data, upload.filename)
            except RowError as exc:
                problem = str(exc)
            else:
                outcome = import_deals(rows)
                outcome.unknown_columns = unknown
                written = request.form.get("action") == "import" and not outcome.errors
                if written:
                    db.session.commit()
                else:
                    db.session.rollback()
    return render_template("pipeline/deal_import.html", outcome=outcome, problem=problem,
                           written=written, columns=COLUMNS, max_rows=MAX_ROWS)

