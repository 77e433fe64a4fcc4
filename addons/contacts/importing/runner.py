"""Running an import: read, check, match, then write everything in one transaction.

Why it is built this way:
- **All or nothing.** Reading, checking and matching only read the database; the writes (new
  partners and their phones, e-mails, search tokens and custom values, updates of matched
  partners, the record of what changed, the batch's final state) happen in ONE transaction on
  the session's connection, committed at the very end. An exception or a killed process
  before that commit leaves the contacts exactly as they were.
- **Fast enough for 100k rows.** New partners are written with bulk statements (COPY on
  PostgreSQL, `executemany` on SQLite) of rows whose derived data (names, E.164 phones, search
  tokens, ICU sort keys) is computed in Python with the services' own functions; ids are
  allocated up front so children need no round trip; on PostgreSQL the rows of the next chunk
  are computed while the server stores the previous one. Matching asks one `IN` query per 500
  values (`matching.py`), not a query per row. Updates go through the ORM and
  `services.refresh_search()` like a form save: they are few, and they must be tracked.
- **Progress** is written on a separate connection while the run only reads (on PostgreSQL
  also while it writes); SQLite allows one writer, so there the page says "saving" until the
  commit.
- **Revert** deletes the id ranges the import created and puts back the previous values it
  recorded for the partners it updated.
"""
from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select, text, update

from core.api import User, db, task, utcnow
from core.audit import audit

from .. import services
from ..folding import fold, sort_keys
from ..models import CustomField, CustomValue, Partner, PartnerEmail, PartnerPhone, SearchToken
from ..taxids import InvalidTaxId, validate
from . import matching
from .mapping import Candidate, RowError, RowMapper
from .models import ImportBatch, ImportRecord, ImportRowError
from .parsing import ParseError, Table, iter_rows, read_table

log = logging.getLogger(__name__)

#: Files up to this many rows run inside the request; longer ones as a background job.
INLINE_ROWS = 1000
PREVIEW_ROWS = 200
PROGRESS_EVERY = 5000
#: New partners computed and inserted per step of the write pipeline.
WRITE_CHUNK = 5000
#: A running import whose heartbeat is older than this was killed (its transaction is gone).
STALE_AFTER = timedelta(minutes=10)
SORT_COLUMNS = tuple(f"sort_{lang}" for lang in ("en", "lv", "ru", "uz", "kk", "ro"))
PARTNER_COLUMNS = (
    "id", "kind", "name", "first_name", "last_name", "middle_name", "company_id",
    "company_name", "job_title", "phone", "email", "website", "street", "city", "postcode",
    "region", "country", "lang", "birthday", "vat", "registration_no", "status", "source",
    "owner_id", "external_id", "active", "search_text", *SORT_COLUMNS, "created_at",
    "updated_at", "created_by_id", "version")
#: Columns an import may set on an existing partner (and the revert restores).
UPDATABLE = ("name", "first_name", "last_name", "middle_name", "company_id", "job_title",
             "website", "street", "city", "postcode", "region", "country", "lang", "birthday",
             "vat", "registration_no", "status", "source", "owner_id", "external_id")


class ImportFailed(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass
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


def display_name(cand: Candidate) -> str:
    values = cand.values
    if cand.kind == "person":
        built = services.person_name(values.get("first_name"), values.get("last_name"),
                                     values.get("middle_name"))
        return built or values.get("name") or ""
    return values.get("name") or ""


@lru_cache(maxsize=200_000)
def _sort_keys(name: str) -> tuple[bytes, ...]:
    keys = sort_keys(name)
    return tuple(keys[column] for column in SORT_COLUMNS)


class _Shape:
    """The attributes `services.search_tokens()` reads, without an ORM object per row."""

    __slots__ = ("city", "company_name", "email", "emails", "first_name", "id",
                 "last_name", "middle_name", "name", "phone", "phones", "registration_no",
                 "vat")

    def __init__(self, **values: Any) -> None:
        for key in self.__slots__:
            setattr(self, key, values.get(key))


class _Value:
    __slots__ = ("email", "number")

    def __init__(self, number: str | None = None, email: str | None = None) -> None:
        self.number = number
        self.email = email


class _Clock:
    """Seconds per phase, kept in the result (the benchmark prints them)."""

    def __init__(self) -> None:
        self._now = time.perf_counter
        self._last = self._now()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


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
    # Hundreds of thousands of small objects and no cycles: the cyclic collector would rescan
    # them all again and again (quadratic time on big files) for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
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
    finally:
        if collecting:
            gc.enable()


def _finish_failed(batch_id: int, code: str, params: dict[str, Any]) -> None:
    _progress(batch_id, state="failed", phase=None, finished_at=utcnow(),
              failure={"code": code, "params": {k: str(v) for k, v in params.items()}})


def _run(batch: ImportBatch, dry_run: bool) -> None:
    table = read_table(batch.content, batch.format, encoding=batch.encoding,
                       delimiter=batch.delimiter)
    options = batch.options or {}
    kind = options.get("kind", "person")
    custom = {f.code: f for f in db.session.scalars(select(CustomField))}
    mapper = RowMapper(batch.mapping or {}, kind=kind, custom_fields=custom)
    total = len(table.rows)
    _progress(batch.id, total_rows=total, phase="reading")
    clock = _Clock()

    outcomes: list[Outcome] = []
    for done, (row_no, row) in enumerate(iter_rows(table), start=1):
        try:
            cand = mapper.convert(row_no, row)
            outcome = Outcome(row_no, "create", display_name(cand), cand=cand)
        except RowError as exc:
            outcome = Outcome(row_no, "error", code=exc.code, params=exc.params, values=row)
        outcomes.append(outcome)
        if done % PROGRESS_EVERY == 0:
            _progress(batch.id, processed_rows=done)
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
    batch.result = {**batch.result, "seconds": {**clock.laps, "match_steps": plan.laps,
                                                "insert": round(writer.db_seconds, 3)}}
    db.session.commit()


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
                except InvalidTaxId as exc:
                    outcome.warnings.append(("vat_unchecked", {"detail": str(exc)}))

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
            if len(ids) > 1:
                self._reject(outcome, "key_ambiguous", value=", ".join(values))
            elif ids:
                outcome.action, outcome.partner_id = "update", ids.pop()

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
        for batch in matching.chunks(sorted(exts - set(by_ext))):
            for pid, ext in db.session.execute(select(Partner.id, Partner.external_id).where(
                    company, Partner.external_id.in_(batch))):
                by_ext.setdefault(ext, pid)
        for batch in matching.chunks(sorted(vats - set(by_vat))):
            for pid, vat in db.session.execute(select(Partner.id, Partner.vat).where(
                    company, Partner.vat.in_(batch))):
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
        vats = {o.cand.values["vat"] for o in live if o.cand.values.get("vat")}
        index = matching.DuplicateIndex(phones, emails, vats)
        index.load_colleagues({ref for ref in self.links.values()
                               if isinstance(ref, int)})
        first_row: dict[tuple[str, str], int] = {}
        skip = bool(self.options.get("skip_duplicates"))
        for outcome in live:
            cand = outcome.cand
            company = self.company_ref(outcome.row_no)
            found = index.matches(
                phones=cand.phones, emails=cand.emails, vat=cand.values.get("vat"),
                name=outcome.name if cand.kind == "person" else None,
                company_id=company if isinstance(company, int) else None,
                exclude_id=outcome.partner_id)
            in_file: dict[int, list[str]] = {}
            pairs = [("phone", p) for p in cand.phones] + [
                ("email", e.lower()) for e in cand.emails]
            if cand.values.get("vat"):
                pairs.append(("vat", cand.values["vat"]))
            for reason, value in pairs:
                earlier = first_row.setdefault((reason, value), outcome.row_no)
                if earlier != outcome.row_no:
                    reasons = in_file.setdefault(earlier, [])
                    if reason not in reasons:
                        reasons.append(reason)
            found += [{"row": row, "reasons": reasons} for row, reasons in in_file.items()]
            outcome.duplicates = found
            if found and skip and outcome.action == "create":
                outcome.action = "skip"
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
        #: Time spent in the bulk statements (the benchmark shows it beside the rest).
        self.db_seconds = 0.0

    def write(self) -> None:
        # The first write takes SQLite's write lock, so the ids read next stay ours.
        db.session.execute(delete(ImportRecord).where(ImportRecord.import_id == self.batch.id))
        if self.conn.dialect.name == "sqlite":
            # A big page cache for this transaction: the token and sort-key indexes take
            # random inserts, and SQLite's default 2 MB cache would spill them to the WAL.
            self.conn.exec_driver_sql("PRAGMA cache_size=-262144")
        new = self.plan.new
        ids = self._allocate(len(new))
        for partner, pid in zip(new, ids, strict=True):
            partner.id = pid
        companies = [n for n in new if n.kind == "company"]
        people = [n for n in new if n.kind == "person"]
        self._insert_partners(companies)
        self._insert_partners(people)
        if ids:
            self._record_created(sorted(ids))
        for outcome, pid in self.plan.updates:
            self._update(outcome, pid)
        db.session.flush()
        if self.conn.dialect.name == "sqlite":
            self.conn.exec_driver_sql("PRAGMA cache_size=-2000")

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
        """Rows are computed and inserted chunk by chunk. On PostgreSQL a helper thread
        computes the next chunk while this one streams the previous one to the server, whose
        work then overlaps with Python's. SQLite works inside this process and gives the GIL
        back for every row it steps, so a busy helper thread would make each row wait for the
        interpreter's switch interval: there the chunks run one after the other."""
        if not partners:
            return
        names = {n.id: n.name for n in self.plan.new}
        refs = {n.company for n in partners if isinstance(n.company, int)}
        for batch in matching.chunks(sorted(refs)):
            names.update(db.session.execute(
                select(Partner.id, Partner.name).where(Partner.id.in_(batch))).all())
        if self.conn.dialect.name != "postgresql":
            for start in range(0, len(partners), WRITE_CHUNK):
                self._insert(self._rows(partners[start:start + WRITE_CHUNK], names))
            return
        chunks: queue.Queue[_Rows | BaseException | None] = queue.Queue(maxsize=3)

        def produce() -> None:
            try:
                for start in range(0, len(partners), WRITE_CHUNK):
                    chunks.put(self._rows(partners[start:start + WRITE_CHUNK], names))
                chunks.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the inserting thread
                chunks.put(exc)

        producer = threading.Thread(target=produce, name="birga-import-rows", daemon=True)
        producer.start()
        done = 0
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                self._insert(item)
                done += item.count
                _progress(self.batch.id, processed_rows=done)
        finally:
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
        for partner in partners:
            cand = partner.cand
            values = cand.values
            company_id = partner.company.id if isinstance(partner.company, NewPartner) \
                else partner.company
            company_name = names.get(company_id) if company_id is not None else None
            texts = [partner.name, values.get("first_name"), values.get("last_name"),
                     values.get("middle_name"), company_name, values.get("vat"),
                     values.get("registration_no"), values.get("city"),
                     *self._custom_texts(cand)]
            found = services.bulk_search_tokens(
                texts, [(p, cand.nationals.get(p)) for p in cand.phones], cand.emails)
            ordered = sorted(found)
            pid = partner.id
            out.partners.append((
                pid, partner.kind, partner.name, values.get("first_name"),
                values.get("last_name"), values.get("middle_name"), company_id, company_name,
                values.get("job_title"), cand.phones[0] if cand.phones else None,
                cand.emails[0] if cand.emails else None, values.get("website"),
                values.get("street"), values.get("city"), values.get("postcode"),
                values.get("region"), values.get("country"), values.get("lang"),
                values.get("birthday"), values.get("vat"), values.get("registration_no"),
                values.get("status") or "lead", values.get("source"),
                values.get("owner_id") or user_id, values.get("external_id"), True,
                " ".join(ordered), *_sort_keys(partner.name),
                values.get("created_at") or now, now, user_id, 1))
            for seq, number in enumerate(cand.phones):
                out.phones.append((pid, number, "mobile", seq))
            for seq, email in enumerate(cand.emails):
                out.emails.append((pid, email, email.lower(), "work", seq))
            out.tokens.extend((pid, token) for token in ordered)
            for field_id, (t, n, d, b) in cand.custom.items():
                out.custom.append((pid, field_id, t, n, d, b))
        return out

    def _insert(self, rows: _Rows) -> None:
        started = time.perf_counter()
        bulk_insert(self.conn, Partner.__table__, PARTNER_COLUMNS, rows.partners)
        bulk_insert(self.conn, PartnerPhone.__table__,
                    ("partner_id", "number", "kind", "sequence"), rows.phones)
        bulk_insert(self.conn, PartnerEmail.__table__,
                    ("partner_id", "email", "email_key", "kind", "sequence"), rows.emails)
        bulk_insert(self.conn, SearchToken.__table__, ("partner_id", "token"), rows.tokens)
        bulk_insert(self.conn, CustomValue.__table__,
                    ("partner_id", "field_id", "value_text", "value_number", "value_date",
                     "value_bool"), rows.custom)
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
    """Insert plain tuples fast: COPY on PostgreSQL, the driver's executemany on SQLite (with
    SQLAlchemy's own conversions only for the types SQLite cannot bind as they are)."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    from sqlalchemy import Date, DateTime, Numeric

    processors = []
    for name in columns:
        column_type = table.c[name].type
        if isinstance(column_type, Date | DateTime | Numeric):
            processors.append(column_type._cached_bind_processor(conn.dialect))
        else:
            processors.append(None)
    if any(processors):
        slots = [(i, p) for i, p in enumerate(processors) if p is not None]
        converted = []
        for row in rows:
            values = list(row)
            for i, process in slots:
                if values[i] is not None:
                    values[i] = process(values[i])
            converted.append(tuple(values))
        rows = converted
    marks = ", ".join("?" for _ in columns)
    # Table and column names come from our own metadata, never from the file.
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
    conn.exec_driver_sql(sql, rows)


# -- revert --------------------------------------------------------------------------------
def revert(batch: ImportBatch, user: Any = None) -> None:
    """Undo a finished import in one transaction (the caller commits): updated partners get
    their previous values back, created ones are deleted (their children cascade)."""
    if batch.state != "done":
        raise ValueError("only a finished import can be reverted")
    records = db.session.scalars(select(ImportRecord).where(
        ImportRecord.import_id == batch.id).order_by(ImportRecord.id.desc())).all()
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
