"""Running an import: read, check, match, then write everything in one transaction.

Why it is built this way:
- **All or nothing.** Reading, checking and matching only read the database; the writes (new
  partners and their phones, e-mails, search tokens and custom values, updates of matched
  partners, the record of what changed, the batch's final state) happen in ONE transaction on
  the session's connection, committed at the very end. An exception or a killed process
  before that commit leaves the contacts exactly as they were.
- **Fast enough for 100k rows.** New partners are written with bulk statements (COPY on
  PostgreSQL, INSERTs of hundreds of rows each on SQLite) of rows whose derived data (names,
  E.164 phones, search tokens, ICU sort keys) is computed in Python with the services' own
  functions; ids are allocated up front so children need no round trip; a helper thread
  computes the rows of the next chunk while the database stores the previous one. The
  database's share is index upkeep: rows go in the order of their sort keys, and on SQLite a
  big import into a small table builds the sort-key and token indexes once at the end
  (`Writer._defer_indexes`). Matching asks one `IN` query per 500 values, or reads a small
  table whole (`matching.py`), never a query per row. Updates go through the ORM and
  `services.refresh_search()` like a form save: they are few, and they must be tracked.
- **Progress** is written on a separate connection while the run only reads (on PostgreSQL
  also while it writes); SQLite allows one writer, so there the page says "saving" until the
  commit.
- **Revert** deletes the id ranges the import created and puts back the previous values it
  recorded for the partners it updated.
"""
from __future__ import annotations

import logging
import queue
import sqlite3
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import Date, DateTime, Numeric, delete, func, select, text, update

from core.api import User, db, ngettext, refresh_statistics, task, utcnow
from core.audit import audit

from .. import services
from ..duplicates import vat_variants
from ..folding import fold, sort_keys
from ..models import (
    CustomField,
    CustomValue,
    Partner,
    PartnerEmail,
    PartnerPhone,
    SearchToken,
    value_key,
)
from ..taxids import InvalidTaxId, validate
from . import matching
from .mapping import Candidate, RowError, RowMapper
from .models import ImportBatch, ImportRecord, ImportRowError
from .parsing import ParseError, Table, iter_rows, read_table, without_cyclic_gc

log = logging.getLogger(__name__)

#: Files up to this many rows run inside the request; longer ones as a background job.
INLINE_ROWS = 1000
PREVIEW_ROWS = 200
PROGRESS_EVERY = 5000
#: ... and at most this often (the progress page refreshes itself every two seconds; each
#: write is a commit of its own).
PROGRESS_SECONDS = 1.0
#: New partners computed and inserted per step of the write pipeline.
WRITE_CHUNK = 5000
#: A running import whose heartbeat is older than this was killed (its transaction is gone).
STALE_AFTER = timedelta(minutes=10)
SORT_COLUMNS = tuple(f"sort_{lang}" for lang in ("en", "lv", "ru", "uz", "kk", "ro"))
#: The indexes a big import into a small table builds after its inserts (on SQLite): those
#: on a sort key, and the search tokens' index by token; each takes its rows in random order.
DEFERRED_INDEXES = frozenset([index.name for index in Partner.__table__.indexes
                              if any(c.name in SORT_COLUMNS for c in index.columns)]
                             + [index.name for index in SearchToken.__table__.indexes])
#: The tables an import writes in bulk, and the least number of changed rows after which
#: their planner statistics are refreshed.
STATISTICS_TABLES = tuple(t.__tablename__ for t in (Partner, PartnerPhone, PartnerEmail,
                                                     SearchToken, CustomValue))
STATISTICS_MIN_ROWS = 1_000
#: Below this many new partners the indexes are always maintained row by row.
REBUILD_MIN_ROWS = 10_000
PARTNER_COLUMNS = (
    "id", "kind", "name", "first_name", "last_name", "middle_name", "company_id",
    "company_name", "job_title", "phone", "email", "website", "street", "city", "postcode",
    "region", "country", "lang", "birthday", "vat", "registration_no", "status", "source",
    "owner_id", "external_id", "active", "search_text", *SORT_COLUMNS, "created_at",
    "updated_at", "created_by_id", "version")
PHONE_COLUMNS = ("partner_id", "number", "kind", "sequence")
EMAIL_COLUMNS = ("partner_id", "email", "email_key", "kind", "sequence")
TOKEN_COLUMNS = ("partner_id", "token")
CUSTOM_COLUMNS = ("partner_id", "field_id", "value_text", "value_key", "value_number",
                  "value_date", "value_bool")
#: Columns an import may set on an existing partner (and the revert restores).
UPDATABLE = ("name", "first_name", "last_name", "middle_name", "company_id", "job_title",
             "website", "street", "city", "postcode", "region", "country", "lang", "birthday",
             "vat", "registration_no", "status", "source", "owner_id", "external_id")


class ImportFailed(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass(slots=True)
class Outcome:
    """What a row does (or would do, in a dry run)."""

    row_no: int
    action: str  # create, update, skip, error
    name: str = ""
    partner_id: int | None = None
    code: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    cand: Candidate | None = None

    def preview(self) -> dict[str, Any]:
        return {"row": self.row_no, "action": self.action, "name": self.name,
                "partner_id": self.partner_id, "code": self.code, "params": self.params,
                "duplicates": self.duplicates, "warnings": self.warnings}


class NewPartner:
    """A partner the import will insert; `id` is set when ids are allocated."""

    __slots__ = ("cand", "company", "id", "kind", "name", "outcome")

    def __init__(self, cand: Candidate, outcome: Outcome | None = None) -> None:
        self.cand = cand
        self.kind = cand.kind
        self.outcome = outcome
        self.id: int | None = None
        self.company: NewPartner | int | None = None
        self.name = outcome.name if outcome is not None else display_name(cand)


def display_name(cand: Candidate, locale: str | None = None) -> str:
    """The name a new partner gets (`locale`: the firm's name order, read once per run)."""
    values = cand.values
    if cand.kind == "person":
        built = services.person_name(values.get("first_name"), values.get("last_name"),
                                     values.get("middle_name"), locale)
        return built or values.get("name") or ""
    return values.get("name") or ""


@lru_cache(maxsize=200_000)
def _sort_keys(name: str) -> tuple[bytes, ...]:
    keys = sort_keys(name)
    return tuple(keys[column] for column in SORT_COLUMNS)


def _sort_order(partner: NewPartner) -> bytes:
    return _sort_keys(partner.name)[0]


class _Clock:
    """Seconds per phase, kept in the result (the benchmark prints them)."""

    def __init__(self) -> None:
        self._now = time.perf_counter
        self._last = self._now()
        self.laps: dict[str, float] = {}

        self._progress = self._last

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

    def since_progress(self) -> float:
        return self._now() - self._progress

    def progressed(self) -> None:
        self._progress = self._now()


# -- running -------------------------------------------------------------------------------
def _progress(batch_id: int, **values: Any) -> None:
    """Update the batch row on a connection of its own (committed at once, seen by the page)."""
    values["heartbeat_at"] = utcnow()
    with db.engine.begin() as conn:
        conn.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(**values))


def start(batch: ImportBatch, *, dry_run: bool) -> None:
    """Queue a run (a background job), or run a short file at once; the caller committed the
    mapping and options."""
    from flask import current_app

    batch.state = "queued"
    batch.dry_run = dry_run
    batch.processed_rows = 0
    batch.failure = None
    db.session.commit()
    limit = int(current_app.config.get("BIRGA_IMPORT_INLINE_ROWS", INLINE_ROWS))
    if batch.total_rows <= limit:
        execute(batch.id, dry_run=dry_run)
    else:
        run_import.delay(batch.id, dry_run)


@task(name="contacts.import")
def run_import(batch_id: int, dry_run: bool = False) -> None:
    """The background job: one import run."""
    execute(batch_id, dry_run=dry_run)


def execute(batch_id: int, *, dry_run: bool = False) -> None:
    """Run (or check) the import of batch `batch_id`; never leaves half an import behind."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.state in ("done", "reverted") or (
            batch.state == "running" and not is_stale(batch)):
        return
    batch.state, batch.dry_run, batch.phase = "running", dry_run, "reading"
    batch.started_at = batch.heartbeat_at = utcnow()
    batch.finished_at, batch.failure, batch.processed_rows = None, None, 0
    db.session.commit()
    try:
        with without_cyclic_gc():  # quadratic time on big files otherwise
            _run(batch, dry_run)
    except (ImportFailed, ParseError) as exc:
        db.session.rollback()
        _finish_failed(batch_id, exc.code, exc.params)
    except Exception as exc:  # noqa: BLE001 - any failure must end as a failed import
        db.session.rollback()
        log.exception("Import %s failed", batch_id)
        _finish_failed(batch_id, "failed", {"detail": str(exc)[:300]})
    except BaseException:
        db.session.rollback()
        _finish_failed(batch_id, "interrupted", {})
        raise


def _finish_failed(batch_id: int, code: str, params: dict[str, Any]) -> None:
    _progress(batch_id, state="failed", phase=None, finished_at=utcnow(),
              failure={"code": code, "params": {k: str(v) for k, v in params.items()}})


def _run(batch: ImportBatch, dry_run: bool) -> None:
    clock = _Clock()
    table = read_table(batch.content, batch.format, encoding=batch.encoding,
                       delimiter=batch.delimiter)
    options = batch.options or {}
    kind = options.get("kind", "person")
    custom = {f.code: f for f in db.session.scalars(select(CustomField))}
    mapper = RowMapper(batch.mapping or {}, kind=kind, custom_fields=custom)
    total = len(table.rows)
    _progress(batch.id, total_rows=total, phase="reading")
    clock.progressed()
    locale = services.name_locale()

    outcomes: list[Outcome] = []
    for done, (row_no, row) in enumerate(iter_rows(table), start=1):
        try:
            cand = mapper.convert(row_no, row)
            outcome = Outcome(row_no, "create", display_name(cand, locale), cand=cand)
        except RowError as exc:
            outcome = Outcome(row_no, "error", code=exc.code, params=exc.params, values=row)
        outcomes.append(outcome)
        if done % PROGRESS_EVERY == 0 and clock.since_progress() >= PROGRESS_SECONDS:
            _progress(batch.id, processed_rows=done)
            clock.progressed()
    clock.lap("read")
    _progress(batch.id, processed_rows=total, phase="matching")

    plan = Planner(batch, table, outcomes, custom)
    plan.resolve()
    clock.lap("match")
    errors = [o for o in outcomes if o.action == "error"]
    if dry_run:
        _store_result(batch, plan, outcomes, state="checked")
        _store_errors(batch, errors)
        db.session.commit()
        return
    if errors and options.get("strict"):
        _store_errors(batch, errors)
        batch.state, batch.phase, batch.finished_at = "failed", None, utcnow()
        batch.failure = {"code": "strict", "params": {}}
        _store_result(batch, plan, outcomes, state="failed")
        db.session.commit()
        return
    _progress(batch.id, phase="writing", processed_rows=0)
    writer = Writer(batch, plan)
    writer.write()
    _store_errors(batch, errors)
    _store_result(batch, plan, outcomes, state="done")
    user = db.session.get(User, batch.user_id) if batch.user_id else None
    audit("import", model="contacts.partner", user=user,
          details={"import": batch.id, "file": batch.filename, **plan.counts()})
    clock.lap("write")
    batch.result = {**batch.result, "seconds": {
        **clock.laps, "match_steps": plan.laps, "insert": round(writer.db_seconds, 3),
        "index_build": round(writer.index_seconds, 3), "rows": round(writer.rows_seconds, 3)}}
    db.session.commit()
    _refresh_statistics(len(plan.new) + len(plan.updates))


def _refresh_statistics(changed: int) -> None:
    """After an import that changed at least a tenth of the partners (and 1,000 rows), the
    planner's statistics of the tables it wrote: SQLite has none until told, and PostgreSQL's
    autovacuum would catch up only later. Smaller imports leave the numbers about right."""
    if changed < STATISTICS_MIN_ROWS:
        return
    total = db.session.scalar(select(func.count()).select_from(Partner)) or 0
    if changed * 10 >= total:
        refresh_statistics(tables=STATISTICS_TABLES)


def _store_result(batch: ImportBatch, plan: Planner, outcomes: list[Outcome], *,
                  state: str) -> None:
    batch.result = {**plan.counts(),
                    "preview": [o.preview() for o in outcomes[:PREVIEW_ROWS]]}
    batch.state, batch.phase = state, None
    batch.processed_rows = len(outcomes)
    batch.finished_at = batch.heartbeat_at = utcnow()


def _store_errors(batch: ImportBatch, errors: list[Outcome]) -> None:
    db.session.execute(delete(ImportRowError).where(ImportRowError.import_id == batch.id))
    if errors:
        db.session.execute(ImportRowError.__table__.insert(), [
            {"import_id": batch.id, "row_no": o.row_no, "code": o.code,
             "params": {k: str(v) for k, v in o.params.items()}, "values": o.values}
            for o in errors])


def is_stale(batch: ImportBatch) -> bool:
    """A run that stopped without saying so (its process was killed)."""
    if batch.state not in ("running", "queued") or batch.heartbeat_at is None:
        return False
    beat = batch.heartbeat_at
    if beat.tzinfo is None:
        from datetime import UTC

        beat = beat.replace(tzinfo=UTC)
    return utcnow() - beat > STALE_AFTER


# -- planning: what each row does ----------------------------------------------------------
class Planner:
    """Decides create / update / skip / error per row, resolving owners and companies."""

    def __init__(self, batch: ImportBatch, table: Table, outcomes: list[Outcome],
                 custom: dict[str, CustomField]) -> None:
        self.batch = batch
        self.table = table
        #: Person row number -> its company: an existing id, a new company, or None.
        self.links: dict[int, NewPartner | int | None] = {}
        self.options = batch.options or {}
        self.outcomes = outcomes
        self.custom = {f.id: f for f in custom.values()}
        self.new: list[NewPartner] = []  # rows to insert, companies first
        self.updates: list[tuple[Outcome, int]] = []
        self.companies_created = 0

    def _reject(self, outcome: Outcome, code: str, **params: Any) -> None:
        outcome.action, outcome.code, outcome.params = "error", code, params
        outcome.values = list(self.table.rows[outcome.row_no - 2])
        outcome.cand = None

    def live(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.cand is not None and o.action != "error"]

    def resolve(self) -> None:
        t = time.perf_counter()
        self.laps = {}
        for step in (self._owners, self._vats, self._keys, self._companies, self._duplicates):
            step()
            self.laps[step.__name__] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()

    def _owners(self) -> None:
        wanted = {o.cand.owner.lower() for o in self.live() if o.cand.owner}
        users: dict[str, int] = {}
        if wanted:
            for uid, login, email in db.session.execute(select(User.id, User.login, User.email)):
                users[login.lower()] = uid
                if email:
                    users.setdefault(email.lower(), uid)
        for outcome in self.live():
            cand = outcome.cand
            if cand.owner:
                owner_id = users.get(cand.owner.lower())
                if owner_id is None:
                    self._reject(outcome, "owner_unknown", value=cand.owner)
                    continue
                cand.values["owner_id"] = owner_id

    def _vats(self) -> None:
        """Tax numbers in the normal form forms store; a number the country's rules reject is
        kept as written (an old system's data is not thrown away) with a warning."""
        for outcome in self.live():
            values = outcome.cand.values
            if values.get("vat"):
                try:
                    values["vat"] = validate(values.get("country"), values["vat"]) or None
                except InvalidTaxId:
                    outcome.warnings.append(("vat_unchecked", {
                        "country": values.get("country"), "value": values["vat"]}))

    def _key_values(self, cand: Candidate, key: str) -> list[str]:
        if key == "email":
            return [e.lower() for e in cand.emails]
        if key == "phone":
            return list(cand.phones)
        value = cand.values.get(key)
        return [value] if value else []

    def _keys(self) -> None:
        key = self.options.get("match_key")
        if key not in ("email", "phone", "vat", "external_id"):
            return
        wanted = {v for o in self.live() for v in self._key_values(o.cand, key)}
        existing = matching.by_key(key, wanted)
        hidden = self._hidden({pid for rows in existing.values() for pid, _k, _n in rows})
        seen: dict[tuple[str, str], int] = {}
        for outcome in self.live():
            cand = outcome.cand
            values = self._key_values(cand, key)
            repeated = next((seen[(cand.kind, v)] for v in values if (cand.kind, v) in seen),
                            None)
            if repeated is not None:
                self._reject(outcome, "key_repeated", row=repeated, key=key)
                continue
            for value in values:
                seen[(cand.kind, value)] = outcome.row_no
            ids = {pid for v in values for pid, kind, _n in existing.get(v, [])
                   if kind == cand.kind}
            if ids & hidden:  # never update (or reveal) a contact the importer may not see
                self._reject(outcome, "key_not_visible", value=", ".join(values))
            elif len(ids) > 1:
                self._reject(outcome, "key_ambiguous", value=", ".join(values))
            elif ids:
                outcome.action, outcome.partner_id = "update", ids.pop()

    def _hidden(self, ids: set[int]) -> set[int]:
        """Which of `ids` the importing user's record rules hide (none for administrators
        and "all records" roles): the rules of the contacts list apply to the import too."""
        from core.security import rule_clause

        user = db.session.get(User, self.batch.user_id) if self.batch.user_id else None
        clause = rule_clause(Partner, user) if user is not None else None
        if clause is None or not ids:
            return set()
        seen: set[int] = set()
        for batch in matching.chunks(sorted(ids)):
            seen.update(db.session.scalars(select(Partner.id).where(
                Partner.id.in_(batch), clause)))
        return ids - seen

    def _mask_hidden_duplicates(self, live: list[Any]) -> None:
        """A row like a contact the importer may not see still says so (creating it would
        make a duplicate), but not whose: the name and the link stay behind the record
        rules, as on the list."""
        hidden = self._hidden({d["id"] for o in live for d in o.duplicates if d.get("id")})
        if not hidden:
            return
        for outcome in live:
            if any(d.get("id") in hidden for d in outcome.duplicates):
                outcome.duplicates = [{"hidden": True, "reasons": d["reasons"]}
                                      if d.get("id") in hidden else d
                                      for d in outcome.duplicates]

    def _companies(self) -> None:
        """Company rows first (they may be the companies people rows name), then link people
        to a company matched by external id, tax number or name, or created."""
        by_ext: dict[str, NewPartner | int] = {}
        by_vat: dict[str, NewPartner | int] = {}
        by_name: dict[str, NewPartner | int] = {}
        for outcome in self.live():
            cand = outcome.cand
            if cand.kind != "company":
                continue
            ref: NewPartner | int
            if outcome.action == "update":
                ref = outcome.partner_id
            else:
                ref = NewPartner(cand, outcome)
                self.new.append(ref)
            values = cand.values
            if values.get("external_id"):
                by_ext.setdefault(values["external_id"], ref)
            if values.get("vat"):
                by_vat.setdefault(values["vat"], ref)
            by_name.setdefault(fold(values.get("name")), ref)
        people = [o for o in self.live() if o.cand.kind == "person"]
        exts = {o.cand.company_external_id for o in people if o.cand.company_external_id}
        vats = {o.cand.company_vat for o in people if o.cand.company_vat}
        names = any(o.cand.company_name for o in people)
        company = Partner.kind == "company"
        for ext, pid in matching.holding(Partner.external_id, Partner.id, exts - set(by_ext),
                                         company):
            by_ext.setdefault(ext, pid)
        for vat, pid in matching.holding(Partner.vat, Partner.id, vats - set(by_vat), company):
            by_vat.setdefault(vat, pid)
        if names:
            for pid, name in db.session.execute(select(Partner.id, Partner.name).where(
                    company, Partner.active.is_(True)).order_by(Partner.id)):
                by_name.setdefault(fold(name), pid)
        new_companies: list[NewPartner] = []
        for outcome in people:
            cand = outcome.cand
            ref = None
            if cand.company_external_id:
                ref = by_ext.get(cand.company_external_id)
                if ref is None:
                    self._reject(outcome, "company_unknown", value=cand.company_external_id)
                    continue
            if ref is None and cand.company_vat:
                ref = by_vat.get(cand.company_vat)
            if ref is None and cand.company_name:
                ref = by_name.get(fold(cand.company_name))
            if ref is None and (cand.company_name or cand.company_vat):
                values = {"name": cand.company_name or cand.company_vat,
                          "vat": cand.company_vat,
                          "owner_id": cand.values.get("owner_id")}
                ref = NewPartner(Candidate(cand.row_no, "company",
                                           {k: v for k, v in values.items() if v}))
                new_companies.append(ref)
                if cand.company_vat:
                    by_vat[cand.company_vat] = ref
                by_name[fold(ref.name)] = ref
            self.links[outcome.row_no] = ref
        self.companies_created = len(new_companies)
        self.new = new_companies + self.new

    def company_ref(self, row_no: int) -> NewPartner | int | None:
        return self.links.get(row_no)

    def _duplicates(self) -> None:
        live = self.live()
        phones = {p for o in live for p in o.cand.phones}
        emails = {e for o in live for e in o.cand.emails}
        vat_forms = {o.row_no: vat_variants(o.cand.values.get("vat"), o.cand.values.get("country"))
                     for o in live if o.cand.values.get("vat")}
        index = matching.DuplicateIndex(phones, emails, set().union(*vat_forms.values()))
        index.load_colleagues({ref for ref in self.links.values()
                               if isinstance(ref, int)})
        #: The first row of the file holding each phone, e-mail key and tax number.
        first_row: dict[str, dict[str, int]] = {"phone": {}, "email": {}, "vat": {}}
        skip = bool(self.options.get("skip_duplicates"))
        links = self.links
        for outcome in live:
            cand = outcome.cand
            row_no = outcome.row_no
            company = links.get(row_no)
            company_id = company if isinstance(company, int) else None
            emails = [e.lower() for e in cand.emails]
            forms = vat_forms.get(row_no, ())
            if index.may_match(cand.phones, emails, forms, company_id):
                found = index.matches(
                    phones=cand.phones, emails=emails, vats=forms,
                    name=outcome.name if cand.kind == "person" else None,
                    company_id=company_id, exclude_id=outcome.partner_id)
            else:
                found = []
            in_file: dict[int, list[str]] = {}
            for reason, values in (("phone", cand.phones), ("email", emails),
                                   ("vat", forms)):
                seen = first_row[reason]
                for value in values:
                    earlier = seen.setdefault(value, row_no)
                    if earlier != row_no:
                        reasons = in_file.setdefault(earlier, [])
                        if reason not in reasons:
                            reasons.append(reason)
            if in_file:
                found += [{"row": row, "reasons": reasons} for row, reasons in in_file.items()]
            outcome.duplicates = found
            if found and skip and outcome.action == "create":
                outcome.action = "skip"
        self._mask_hidden_duplicates(live)
        for outcome in live:
            if outcome.action == "update":
                self.updates.append((outcome, outcome.partner_id))
        wanted = {id(o) for o in live if o.action == "create"}
        self.new = [n for n in self.new if n.outcome is None or id(n.outcome) in wanted]
        self.new += [NewPartner(o.cand, o) for o in live
                     if o.action == "create" and o.cand.kind == "person"]
        company_rows = {n.outcome.row_no: n for n in self.new
                        if n.outcome is not None and n.kind == "company"}
        for row_no, ref in list(self.links.items()):
            if isinstance(ref, NewPartner) and ref.outcome is not None \
                    and ref.outcome.action != "create":
                # A company row skipped as a duplicate: its people join the one it
                # duplicates (an existing company, or an earlier row of the file).
                dupes = ref.outcome.duplicates
                self.links[row_no] = next(
                    (d.get("id") or company_rows.get(d.get("row")) for d in dupes
                     if d.get("id") or d.get("row") in company_rows), None)
        for new in self.new:
            if new.kind == "person":
                new.company = self.company_ref(new.cand.row_no)
        # A company created for people rows that were all skipped is not needed.
        used = {id(n.company) for n in self.new if isinstance(n.company, NewPartner)}
        used |= {id(self.company_ref(o.row_no)) for o, _pid in self.updates}
        self.new = [n for n in self.new if n.outcome is not None or id(n) in used]
        self.companies_created = sum(1 for n in self.new if n.outcome is None)

    def counts(self) -> dict[str, int]:
        actions = Counter(o.action for o in self.outcomes)
        return {"total": len(self.outcomes), "create": actions["create"],
                "update": actions["update"], "skip": actions["skip"],
                "error": actions["error"],
                "duplicates": sum(1 for o in self.outcomes if o.duplicates),
                "warnings": sum(1 for o in self.outcomes if o.warnings),
                "companies_created": self.companies_created}


# -- writing -------------------------------------------------------------------------------
class _QuickHandover:
    """A shorter GIL switch interval while imports write (process-wide, so counted: the
    last import to finish puts the previous interval back)."""

    seconds = 0.0005

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = sys.getswitchinterval()

    def __enter__(self) -> None:
        with self._lock:
            if not self._users:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self.seconds))
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                sys.setswitchinterval(self._saved)


_QUICK_HANDOVER = _QuickHandover()


@dataclass
class _Rows:
    """One chunk of new partners as tuples per table."""

    count: int
    partners: list[tuple[Any, ...]] = field(default_factory=list)
    phones: list[tuple[Any, ...]] = field(default_factory=list)
    emails: list[tuple[Any, ...]] = field(default_factory=list)
    tokens: list[tuple[int, str]] = field(default_factory=list)
    custom: list[tuple[Any, ...]] = field(default_factory=list)


class Writer:
    """Inserts the new partners in bulk and applies the updates, in the session's
    transaction (the caller commits)."""

    def __init__(self, batch: ImportBatch, plan: Planner) -> None:
        self.batch = batch
        self.plan = plan
        self.conn = db.session.connection()
        self.now = utcnow()
        #: Time spent in the bulk statements, in building indexes again (included in the
        #: former) and in computing the rows (on the helper thread, alongside): the
        #: benchmark shows them beside the phases.
        self.db_seconds = self.index_seconds = self.rows_seconds = 0.0
        #: SQLite's text for each date and time value met, per column.
        self._memo: dict[tuple[str, str], dict[Any, Any]] = {}
        self._variables = _sqlite_variables(self.conn) \
            if self.conn.dialect.name == "sqlite" else 0

    def write(self) -> None:
        # The first write takes SQLite's write lock, so the ids read next stay ours.
        db.session.execute(delete(ImportRecord).where(ImportRecord.import_id == self.batch.id))
        new = self.plan.new
        sqlite = self.conn.dialect.name == "sqlite"
        if sqlite:
            # A page cache that holds all this transaction writes (about 2.5 kB a partner
            # with its phones, e-mails, tokens and index entries): SQLite's default 2 MB
            # would spill pages to the WAL and read them back, again and again.
            kib = min(max(256 * 1024, 4 * len(new)), 1024 * 1024)
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{kib}")
        try:
            self._write(new)
        finally:
            if sqlite:  # the pooled connection goes back with SQLite's default cache
                self.conn.exec_driver_sql("PRAGMA cache_size=-2000")

    def _write(self, new: list[NewPartner]) -> None:
        companies = [n for n in new if n.kind == "company"]
        people = [n for n in new if n.kind == "person"]
        deferred = self._defer_indexes(len(new))
        # Rows go in, and take their ids, in the order of their sort keys: each sort-key
        # index then takes its new entries nearly in order, page after page (the twelve
        # indexes agree within a script), and the phones, e-mails and tokens, which follow
        # their partner's id, are appended to the end of their partner-id indexes; random
        # places in all of these would cost PostgreSQL 10-20% more time, SQLite a third.
        companies.sort(key=_sort_order)
        people.sort(key=_sort_order)
        ids = self._allocate(len(new))
        for partner, pid in zip(companies + people, ids, strict=True):
            partner.id = pid
        self._insert_partners(companies)
        self._insert_partners(people)
        self._rebuild_indexes(deferred)
        if ids:
            self._record_created(sorted(ids))
        for outcome, pid in self.plan.updates:
            self._update(outcome, pid)
        db.session.flush()

    def _allocate(self, count: int) -> list[int]:
        if not count:
            return []
        if self.conn.dialect.name == "postgresql":
            rows = self.conn.execute(text(
                "SELECT nextval(pg_get_serial_sequence('contacts_partner', 'id')) "
                "FROM generate_series(1, :n)"), {"n": count}).scalars().all()
            return sorted(rows)
        start = self.conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM contacts_partner")
                                  ).scalar_one()
        return list(range(start + 1, start + count + 1))

    def _defer_indexes(self, count: int) -> list[str]:
        """On SQLite, an import at least as big as the partner table drops the sort-key and
        token indexes and builds them again after its inserts (the `CREATE INDEX` statements
        stored in the schema), in its own transaction: one sort per index instead of 100k
        random b-tree inserts into each of twelve sort-key indexes (and a million into the
        token index), about twice as fast. A rollback or a killed process puts them back
        with everything else, and other connections keep reading the committed schema,
        indexes included, meanwhile. Not on PostgreSQL, where `DROP INDEX` would lock the
        contacts list for everyone until the commit."""
        if self.conn.dialect.name != "sqlite" or count < REBUILD_MIN_ROWS:
            return []
        existing = self.conn.exec_driver_sql("SELECT COUNT(*) FROM contacts_partner").scalar()
        if existing > count:
            return []
        found = self.conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name IN "
            "('contacts_partner', 'contacts_search_token') ORDER BY name").all()
        statements = []
        for name, sql in found:
            if name in DEFERRED_INDEXES and sql:
                self.conn.exec_driver_sql(f'DROP INDEX "{name}"')
                statements.append(sql)
        return statements

    def _rebuild_indexes(self, statements: list[str]) -> None:
        if not statements:
            return
        started = time.perf_counter()
        for sql in statements:
            self.conn.exec_driver_sql(sql)
        self.index_seconds = time.perf_counter() - started
        self.db_seconds += self.index_seconds

    def _record_created(self, ids: list[int]) -> None:
        ranges: list[dict[str, Any]] = []
        first = last = ids[0]
        for pid in ids[1:]:
            if pid == last + 1:
                last = pid
                continue
            ranges.append({"first_id": first, "last_id": last})
            first = last = pid
        ranges.append({"first_id": first, "last_id": last})
        db.session.execute(ImportRecord.__table__.insert(), [
            {"import_id": self.batch.id, "action": "create", **r} for r in ranges])

    def _custom_texts(self, cand: Candidate) -> list[str]:
        texts: list[str] = []
        for field_id, (value_text, *_rest) in cand.custom.items():
            custom = self.plan.custom.get(field_id)
            if custom is None or not value_text or custom.kind not in ("text", "choice"):
                continue
            texts.append(value_text)
            if custom.kind == "choice":
                for choice in custom.choices or []:
                    if choice.get("value") == value_text:
                        texts.extend(v for v in (choice.get("labels") or {}).values() if v)
        return texts

    def _insert_partners(self, partners: list[NewPartner]) -> None:
        """Rows are computed and inserted chunk by chunk: a helper thread computes the next
        chunk (tokens, sort keys: Python) while this one stores the previous one, and the
        database's work overlaps with Python's: PostgreSQL's in its own process, SQLite's
        in this one while a statement of hundreds of rows steps without the GIL. So that
        this thread gets the GIL back as soon as such a statement is done, rather than after
        the interpreter's 5 ms switch interval, the interval is shortened meanwhile.
        Progress is reported on PostgreSQL only: SQLite has one writer, this transaction."""
        if not partners:
            return
        names = {n.id: n.name for n in self.plan.new}
        refs = {n.company for n in partners if isinstance(n.company, int)}
        for batch in matching.chunks(sorted(refs)):
            names.update(db.session.execute(
                select(Partner.id, Partner.name).where(Partner.id.in_(batch))).all())
        chunks: queue.Queue[_Rows | BaseException | None] = queue.Queue(maxsize=3)
        stop = threading.Event()

        def produce() -> None:
            try:
                for start in range(0, len(partners), WRITE_CHUNK):
                    if stop.is_set():  # the inserting thread failed: nobody needs more
                        return
                    started = time.perf_counter()
                    rows = self._prepared(self._rows(partners[start:start + WRITE_CHUNK],
                                                     names))
                    self.rows_seconds += time.perf_counter() - started
                    chunks.put(rows)
                chunks.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the inserting thread
                chunks.put(exc)

        report = self.conn.dialect.name == "postgresql"
        producer = threading.Thread(target=produce, name="birga-import-rows", daemon=True)
        done = 0
        reported = time.perf_counter()
        with _QUICK_HANDOVER:
            producer.start()
            try:
                while (item := chunks.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    self._insert(item)
                    done += item.count
                    if report and time.perf_counter() - reported >= PROGRESS_SECONDS:
                        _progress(self.batch.id, processed_rows=done)
                        reported = time.perf_counter()
            finally:
                stop.set()
                while producer.is_alive():  # unblock a producer waiting on a full queue
                    try:
                        chunks.get(timeout=0.1)
                    except queue.Empty:
                        pass
                producer.join()

    def _rows(self, partners: list[NewPartner], names: dict[int, str]) -> _Rows:
        """Plain tuples for one chunk of new partners (no database, no app context)."""
        out = _Rows(len(partners))
        user_id = self.batch.user_id
        now = self.now
        search_tokens, indexed = services.bulk_search_tokens, services.indexed_tokens
        custom_texts = self._custom_texts
        partner_rows, phone_rows, email_rows = out.partners, out.phones, out.emails
        token_rows, custom_rows = out.tokens, out.custom
        for partner in partners:
            cand = partner.cand
            get = cand.values.get
            company = partner.company
            company_id = company.id if isinstance(company, NewPartner) else company
            company_name = names.get(company_id) if company_id is not None else None
            first_name, last_name, middle_name = (get("first_name"), get("last_name"),
                                                  get("middle_name"))
            city, vat, registration_no = get("city"), get("vat"), get("registration_no")
            texts = [partner.name, first_name, last_name, middle_name, company_name, vat,
                     registration_no, city, services.bare_vat(services.fold_fast(vat or ""))]
            if cand.custom:
                texts += custom_texts(cand)
            phones, emails = cand.phones, cand.emails
            nationals = cand.nationals
            ordered = indexed(search_tokens(texts, [(p, nationals.get(p)) for p in phones],
                                            emails))
            pid = partner.id
            partner_rows.append((
                pid, partner.kind, partner.name, first_name, last_name, middle_name,
                company_id, company_name, get("job_title"), phones[0] if phones else None,
                emails[0] if emails else None, get("website"), get("street"), city,
                get("postcode"), get("region"), get("country"), get("lang"), get("birthday"),
                vat, registration_no, get("status") or "lead", get("source"),
                get("owner_id") or user_id, get("external_id"), True, " ".join(ordered),
                *_sort_keys(partner.name), get("created_at") or now, now, user_id, 1))
            for seq, number in enumerate(phones):
                phone_rows.append((pid, number, "mobile", seq))
            for seq, email in enumerate(emails):
                email_rows.append((pid, email, email.lower(), "work", seq))
            token_rows += [(pid, token) for token in ordered]
            if cand.custom:
                for field_id, (t, n, d, b) in cand.custom.items():
                    custom_rows.append((pid, field_id, t, value_key(t), n, d, b))
        return out

    def _tables(self, rows: _Rows) -> list[tuple[Any, tuple[str, ...], list[tuple[Any, ...]]]]:
        return [(Partner.__table__, PARTNER_COLUMNS, rows.partners),
                (PartnerPhone.__table__, PHONE_COLUMNS, rows.phones),
                (PartnerEmail.__table__, EMAIL_COLUMNS, rows.emails),
                (SearchToken.__table__, TOKEN_COLUMNS, rows.tokens),
                (CustomValue.__table__, CUSTOM_COLUMNS, rows.custom)]

    def _prepared(self, rows: _Rows) -> _Rows:
        """On SQLite, the chunk's dates and decimals already as SQLite stores them (done by
        the helper thread, so that the inserting one only binds and steps)."""
        if self.conn.dialect.name == "sqlite":
            dialect, memo, variables = self.conn.dialect, self._memo, self._variables
            rows.partners, rows.phones, rows.emails, rows.tokens, rows.custom = (
                _sqlite_values(dialect, table, columns, values, memo, variables)
                for table, columns, values in self._tables(rows))
        return rows

    def _insert(self, rows: _Rows) -> None:
        started = time.perf_counter()
        for table, columns, values in self._tables(rows):
            bulk_insert(self.conn, table, columns, values)
        self.db_seconds += time.perf_counter() - started

    def _update(self, outcome: Outcome, pid: int) -> None:
        """An existing partner takes the row's values; phones and e-mails are added to the
        ones it has (never dropped). Previous values are recorded for the revert."""
        partner = db.session.get(Partner, pid)
        cand = outcome.cand
        values = dict(cand.values)
        values.pop("created_at", None)
        ref = self.plan.company_ref(outcome.row_no)
        if ref is not None:
            values["company_id"] = ref.id if isinstance(ref, NewPartner) else ref
        previous: dict[str, Any] = {"fields": {}, "phones": None, "emails": None,
                                    "custom": {}}
        for key in UPDATABLE:
            if key in values and values[key] != getattr(partner, key):
                previous["fields"][key] = _plain(getattr(partner, key))
                setattr(partner, key, values[key])
        if "company_id" in previous["fields"]:
            partner.company = db.session.get(Partner, values["company_id"])
        if cand.phones:
            old = [(p.number, p.kind) for p in partner.phones]
            merged = old + [(n, "mobile") for n in cand.phones if n not in dict(old)]
            if merged != old:
                previous["phones"] = [list(p) for p in old]
                services.set_phones(partner, merged)
        if cand.emails:
            old_e = [(e.email, e.kind) for e in partner.emails]
            keys = {e.lower() for e, _k in old_e}
            merged_e = old_e + [(e, "work") for e in cand.emails if e.lower() not in keys]
            if merged_e != old_e:
                previous["emails"] = [list(e) for e in old_e]
                services.set_emails(partner, merged_e)
        if cand.custom:
            existing = {row.field_id: row for row in db.session.scalars(
                select(CustomValue).where(CustomValue.partner_id == pid))}
            for field_id, (t, n, d, b) in cand.custom.items():
                row = existing.get(field_id)
                previous["custom"][str(field_id)] = None if row is None else [
                    row.value_text, _plain(row.value_number), _plain(row.value_date),
                    row.value_bool]
                if row is None:
                    row = CustomValue(partner_id=pid, field_id=field_id)
                    db.session.add(row)
                row.value_text, row.value_number, row.value_date, row.value_bool = t, n, d, b
        db.session.flush()
        services.refresh_search(partner)
        if partner.kind == "company" and "name" in previous["fields"]:
            services.refresh_people_of(partner)
        db.session.add(ImportRecord(import_id=self.batch.id, action="update", first_id=pid,
                                    last_id=pid, previous=previous))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def bulk_insert(conn: Any, table: Any, columns: tuple[str, ...],
                rows: list[tuple[Any, ...]]) -> None:
    """Insert plain tuples fast: COPY on PostgreSQL; on SQLite, INSERTs of as many rows as
    a statement may bind (one statement steps hundreds of rows; `executemany` would step,
    and cross the driver, once per row), with SQLAlchemy's own conversions for the types
    SQLite cannot bind as they are."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    if not isinstance(rows, _SQLiteValues):
        rows = _sqlite_values(conn.dialect, table, columns, rows, {}, _sqlite_variables(conn))
    for count, params in rows.statements:
        conn.exec_driver_sql(_insert_sql(table.name, columns, count), params)


@lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], count: int) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    # Table and column names come from our own metadata, never from the file.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join(  # noqa: S608
        [one] * count)


def _sqlite_variables(conn: Any) -> int:
    """How many parameters one SQLite statement may bind (999 before SQLite 3.32)."""
    driver = conn.connection.driver_connection
    try:
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):
        limit = 999
    return max(1, min(limit, 32766))


class _SQLiteValues(list):
    """Rows whose values SQLite can bind as they are, and the parameters of the statements
    that insert them: (rows, their values one after the other) per statement."""

    statements: list[tuple[int, tuple[Any, ...]]]


def _sqlite_values(dialect: Any, table: Any, columns: tuple[str, ...],
                   rows: list[tuple[Any, ...]], memo: dict[tuple[str, str], dict[Any, Any]],
                   variables: int) -> _SQLiteValues:
    """Dates, times and decimals as SQLAlchemy stores them on SQLite (each distinct value
    converted once: a file repeats its dates, and `updated_at` is one value), cut into
    statements of at most `variables` parameters."""
    if isinstance(rows, _SQLiteValues):
        return rows
    slots = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, Date | DateTime | Numeric):
            process = column_type._cached_bind_processor(dialect)
            if process is not None:
                slots.append((index, process, memo.setdefault((table.name, name), {})))
    if not slots:
        converted = _SQLiteValues(rows)
    else:
        converted = _SQLiteValues()
        for row in rows:
            values = list(row)
            for index, process, seen in slots:
                value = values[index]
                if value is not None:
                    found = seen.get(value)
                    if found is None:
                        found = seen[value] = process(value)
                    values[index] = found
            converted.append(tuple(values))
    per = max(1, variables // len(columns))
    converted.statements = [
        (len(part), tuple(chain.from_iterable(part)))
        for part in (converted[start:start + per] for start in range(0, len(converted), per))]
    return converted


# -- revert --------------------------------------------------------------------------------
class RevertRefused(Exception):  # noqa: N818 - reads better at the call site
    """The import cannot be reverted as it stands; `str()` is a translated message."""


def revert(batch: ImportBatch, user: Any = None) -> None:
    """Undo a finished import in one transaction (the caller commits): updated partners get
    their previous values back, created ones are deleted (their children cascade).

    Refused (`RevertRefused`, nothing changed) while other records point at a created
    contact (a deal, an offer, ...): deleting it would fail on some and silently unlink the
    others, so the work done since the import would be lost."""
    if batch.state != "done":
        raise ValueError("only a finished import can be reverted")
    records = db.session.scalars(select(ImportRecord).where(
        ImportRecord.import_id == batch.id).order_by(ImportRecord.id.desc())).all()
    from ..usage import partners_in_use

    used = partners_in_use(ranges=[(r.first_id, r.last_id) for r in records
                                   if r.action == "create"], outside_contacts=True)
    if used:
        raise RevertRefused(ngettext(
            "%(num)d contact created by this import is used by other records since (such as "
            "deals or offers); the import cannot be reverted.",
            "%(num)d contacts created by this import are used by other records since (such "
            "as deals or offers); the import cannot be reverted.", len(used)))
    for record in records:
        if record.action == "update":
            _restore(record)
    db.session.flush()
    created = [r for r in records if r.action == "create"]
    for record in created:
        db.session.execute(delete(Partner).where(Partner.id.between(record.first_id,
                                                                     record.last_id)))
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    batch.state = "reverted"
    audit("import_revert", model="contacts.partner", user=user,
          details={"import": batch.id, "file": batch.filename,
                   "deleted": sum(r.last_id - r.first_id + 1 for r in created),
                   "restored": sum(1 for r in records if r.action == "update")})


def _restore(record: ImportRecord) -> None:
    partner = db.session.get(Partner, record.first_id)
    if partner is None:
        return
    previous = record.previous or {}
    columns = Partner.__table__.c
    for key, value in (previous.get("fields") or {}).items():
        python_type = getattr(columns[key].type, "python_type", str)
        if value is not None and python_type is date:
            value = date.fromisoformat(value)
        setattr(partner, key, value)
    if "company_id" in (previous.get("fields") or {}):
        cid = previous["fields"]["company_id"]
        partner.company = db.session.get(Partner, cid) if cid else None
    if previous.get("phones") is not None:
        services.set_phones(partner, [tuple(p) for p in previous["phones"]])
    if previous.get("emails") is not None:
        services.set_emails(partner, [tuple(e) for e in previous["emails"]])
    for field_id, old in (previous.get("custom") or {}).items():
        row = db.session.scalar(select(CustomValue).where(
            CustomValue.partner_id == partner.id, CustomValue.field_id == int(field_id)))
        if old is None:
            if row is not None:
                db.session.delete(row)
            continue
        if row is None:
            row = CustomValue(partner_id=partner.id, field_id=int(field_id))
            db.session.add(row)
        row.value_text = old[0]
        row.value_number = Decimal(old[1]) if old[1] is not None else None
        row.value_date = date.fromisoformat(old[2]) if old[2] else None
        row.value_bool = old[3]
    db.session.flush()
    services.refresh_search(partner)
    if partner.kind == "company" and "name" in (previous.get("fields") or {}):
        services.refresh_people_of(partner)
