"""Phone calls: the PBX endpoint, the call-log CSV import, matching, missed-call leads, report.

Why it works this way:

- **One service, two doors.** A PBX posting JSON and a CSV export of the same PBX's call log
  both become `CallData` and go through `record_call()`, so a call is matched and followed up
  the same way whichever door it came through. `external_id` makes both idempotent: a PBX
  that retries, or a log imported twice, stores each call once.
- **Matching by normalised phone.** Numbers are brought to E.164 with the contacts addon's
  `normalize_phone` (the firm's `BIRGA_PHONE_REGION` for numbers without a country code) and
  looked up in `contacts_phone`, so `+371 2000 0001`, `0037120000001` and `20000001` are one
  number.
- **A missed inbound call is work.** From an unknown number it becomes a lead (channel phone,
  assigned by the pipeline's rules) with a call-back activity for the assignee; a second
  missed call from the same number joins the open lead instead of making another. A missed
  call from a known contact gives the contact's salesperson a call-back.
- **The report compares the log with what managers recorded** (seed 001): a call with no
  contact or lead behind it, or after which its manager wrote nothing on that contact, lead
  or their deals (a timeline entry by them, an activity they created or completed) within
  `BIRGA_PIPELINE_CALL_FOLLOWUP_HOURS` (24), is listed under that manager. Nothing the system
  writes by itself counts, so an automatic call-back that was never done still shows.
- **The PBX authenticates with a per-installation secret**, `BIRGA_PBX_TOKEN` (sent as
  `Authorization: Bearer <token>` or `X-PBX-Token`); without the setting the endpoint does not
  exist. It is CSRF-exempt: a PBX has no session.
"""
from __future__ import annotations

import csv
import hmac
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, abort, flash, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_login import current_user
from sqlalchemy import and_, func, or_, select, tuple_

from addons.contacts.models import Partner, PartnerPhone
from addons.contacts.services import display_phone, normalize_phone
from core.activities import (
    Activity,
    ActivityType,
    as_utc,
    local_midnight,
    managed_member_ids,
    now,
    schedule_activity,
    seed_activity_types,
    user_timezone,
)
from core.api import User, db
from core.extensions import csrf
from core.security import permission_required, scope_for
from core.timeline import TimelineEntry, log_entry

from .leads import create_lead, default_pipeline, setting
from .models import Call, Deal, Lead, Pipeline, Stage
from .views import bp

__all__ = ["CallData", "CallDataError", "ManagerCalls", "import_calls", "parse_call",
           "record_call", "unrecorded_calls"]

LEAD_MODEL = "pipeline.lead"
PARTNER_MODEL = "contacts.partner"
DEAL_MODEL = "pipeline.deal"

#: Column names PBX exports use, mapped to ours (compared lower case, spaces as underscores).
ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "id", "call_id", "uniqueid", "unique_id", "linkedid"),
    "direction": ("direction", "type", "call_type"),
    "status": ("status", "disposition", "result"),
    "from": ("from", "from_number", "caller", "src", "source", "caller_id", "clid"),
    "to": ("to", "to_number", "callee", "dst", "destination"),
    "started_at": ("started_at", "start", "started", "date", "calldate", "call_date",
                   "datetime", "time"),
    "duration": ("duration", "billsec", "seconds", "talk_time"),
    "user": ("user", "agent", "manager", "operator", "login", "user_email", "employee"),
    "pipeline": ("pipeline", "pipeline_id"),
}
_IN = {"in", "inbound", "incoming", "inc", "входящий", "ienākošais"}
_OUT = {"out", "outbound", "outgoing", "исходящий", "izejošais"}
_MISSED = {"missed", "no answer", "no_answer", "noanswer", "busy", "failed", "cancel",
           "cancelled", "canceled", "unanswered", "abandoned", "пропущенный"}
_ANSWERED = {"answered", "answer", "ok", "success", "completed", "принят", "отвечен"}
_DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
                 "%Y/%m/%d %H:%M:%S")


class CallDataError(ValueError):
    """A call record we cannot read; `str()` is translated and names the field."""


@dataclass
class CallData:
    """One call as a channel delivered it, already checked."""

    started_at: datetime
    direction: str = "in"
    status: str = "answered"
    from_number: str | None = None
    to_number: str | None = None
    duration_seconds: int = 0
    external_id: str | None = None
    user: User | None = None
    pipeline_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _value(data: Mapping[str, Any], name: str) -> Any:
    for alias in ALIASES[name]:
        if alias in data and data[alias] not in (None, ""):
            return data[alias]
    return None


def _moment(value: Any) -> datetime:
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        return datetime.fromtimestamp(float(value), tz=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    parsed = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise CallDataError(_("Unreadable call time: %(value)s", value=text[:40]))
    if parsed.tzinfo is None:  # a PBX logs local time: the installation's zone
        parsed = user_timezone(None).localize(parsed)
    return as_utc(parsed)


def _user(value: Any) -> User | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    return db.session.scalar(select(User).where(
        or_(func.lower(User.login) == text, func.lower(User.email) == text)).limit(1))


def parse_call(data: Mapping[str, Any]) -> CallData:
    """A PBX payload or a CSV row (column names as in `ALIASES`) as `CallData`."""
    row = {_key(k): v for k, v in data.items()}
    started = _value(row, "started_at")
    if started is None:
        raise CallDataError(_("The call has no start time."))
    direction = str(_value(row, "direction") or "in").strip().lower()
    if direction not in _IN | _OUT:
        raise CallDataError(_("Unknown call direction: %(value)s", value=direction[:20]))
    status = str(_value(row, "status") or "answered").strip().lower()
    if status not in _MISSED | _ANSWERED:
        raise CallDataError(_("Unknown call status: %(value)s", value=status[:20]))
    try:
        duration = int(float(_value(row, "duration") or 0))
    except (TypeError, ValueError):
        raise CallDataError(_("The call duration is not a number of seconds.")) from None
    from_number, to_number = _value(row, "from"), _value(row, "to")
    if not from_number and not to_number:
        raise CallDataError(_("The call has no phone number."))
    pipeline = _value(row, "pipeline")
    try:
        pipeline_id = int(pipeline) if pipeline not in (None, "") else None
    except (TypeError, ValueError):
        pipeline_id = None
    external = _value(row, "external_id")
    return CallData(
        started_at=_moment(started), direction="in" if direction in _IN else "out",
        status="missed" if status in _MISSED else "answered",
        from_number=str(from_number).strip()[:40] if from_number else None,
        to_number=str(to_number).strip()[:40] if to_number else None,
        duration_seconds=max(duration, 0),
        external_id=str(external).strip()[:100] if external not in (None, "") else None,
        user=_user(_value(row, "user")), pipeline_id=pipeline_id,
        raw={k: str(v)[:200] for k, v in list(row.items())[:30]})


# -- recording ---------------------------------------------------------------------------------
def match_partner(number: str | None) -> Partner | None:
    """The active contact with this (normalised) phone; the oldest when several share it."""
    if not number:
        return None
    return db.session.scalar(
        select(Partner).join(PartnerPhone, PartnerPhone.partner_id == Partner.id)
        .where(PartnerPhone.number == number, Partner.active.is_(True))
        .order_by(Partner.id).limit(1))


def _call_type_id() -> int:
    type_id = db.session.scalar(select(ActivityType.id).where(ActivityType.code == "call"))
    if type_id is None:
        seed_activity_types()  # commits: called before this call writes anything
        type_id = db.session.scalar(select(ActivityType.id).where(ActivityType.code == "call"))
    return int(type_id)


def _open_callback(model: str, record_id: int) -> bool:
    return db.session.scalar(select(Activity.id).join(ActivityType).where(
        Activity.model == model, Activity.record_id == record_id, Activity.done_at.is_(None),
        ActivityType.code == "call").limit(1)) is not None


def _callback(type_id: int, model: str, record_id: int, assignee: User | None,
              number: str) -> Activity | None:
    if assignee is None or _open_callback(model, record_id):
        return None
    return schedule_activity(type_id=type_id, assignee=assignee, creator=None,
                             summary=_("Call back %(number)s", number=display_phone(number)),
                             due_at=now(), model=model, record_id=record_id)


def _log_call(call: Call, partner: Partner, user: User | None) -> None:
    """An answered call is on the client's timeline and on its open deals' (a "call" entry
    at the call's time), so the card shows it, and the deals' last contact, which stale-deal
    rotation and the workload board read, counts it. The system writes it (no author): what
    the salesperson notes about the call is still theirs to write, and the calls report
    still asks for it."""
    name = user.display_name if user is not None else None
    if call.direction == "in":
        subject = _l("Incoming call, answered by %(user)s", user=name) if name \
            else _l("Incoming call")
    else:
        subject = _l("Outgoing call by %(user)s", user=name) if name else _l("Outgoing call")
    minutes = max(1, round((call.duration_seconds or 0) / 60))
    body = lazy_ngettext("%(num)d minute", "%(num)d minutes", minutes) \
        if call.duration_seconds else ""
    deals = db.session.scalars(select(Deal.id).join(Stage, Stage.id == Deal.stage_id).where(
        or_(Deal.partner_id == partner.id, Deal.company_id == partner.id),
        Deal.active.is_(True), Stage.kind == "open")).all()
    for model, record_id in [(PARTNER_MODEL, partner.id), *((DEAL_MODEL, d) for d in deals)]:
        entry = log_entry(model, record_id, "call", body, subject=subject)
        if call.started_at is not None:
            entry.created_at = call.started_at


def record_call(data: CallData) -> tuple[Call, bool]:
    """Store one call, matched and followed up; returns (call, created). The caller commits."""
    if data.external_id:
        existing = db.session.scalar(select(Call).where(Call.external_id == data.external_id))
        if existing is not None:
            return existing, False
    type_id = _call_type_id()
    from_number = normalize_phone(data.from_number) if data.from_number else None
    to_number = normalize_phone(data.to_number) if data.to_number else None
    other = from_number if data.direction == "in" else to_number
    partner = match_partner(other)
    call = Call(external_id=data.external_id, direction=data.direction, status=data.status,
                from_number=(from_number or "")[:32] or None,
                to_number=(to_number or "")[:32] or None, started_at=data.started_at,
                duration_seconds=data.duration_seconds,
                user_id=data.user.id if data.user else None,
                partner_id=partner.id if partner else None)
    db.session.add(call)
    db.session.flush()
    if partner is not None and data.status == "answered":
        _log_call(call, partner, data.user)
    if data.direction == "in" and data.status == "missed" and other:
        if partner is not None:
            owner = db.session.get(User, partner.owner_id) if partner.owner_id else None
            assignee = owner or data.user
            _callback(type_id, PARTNER_MODEL, partner.id, assignee, other)
        else:
            lead = _lead_for_missed_call(call, data, other)
            assignee = db.session.get(User, lead.owner_id) if lead.owner_id else data.user
            call.lead_id = lead.id
            _callback(type_id, LEAD_MODEL, lead.id, assignee, other)
        if call.user_id is None and assignee is not None:
            call.user_id = assignee.id  # whoever must call back answers for the call
    return call, True


def _lead_for_missed_call(call: Call, data: CallData, number: str) -> Lead:
    existing = db.session.scalar(select(Lead).where(
        Lead.phone == number, Lead.status == "new").order_by(Lead.id.desc()).limit(1))
    if existing is not None:
        return existing
    pipeline = db.session.get(Pipeline, data.pipeline_id) if data.pipeline_id else None
    return create_lead(channel="phone", pipeline=pipeline or default_pipeline(), phone=number,
                       subject=_("Missed call from %(number)s", number=display_phone(number)),
                       payload={"call_id": call.id, "call": data.raw})


# -- the PBX endpoint --------------------------------------------------------------------------
def _token_ok(expected: str) -> bool:
    given = request.headers.get("X-PBX-Token") or ""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@bp.route("/pbx/calls", methods=["POST"])
@csrf.exempt
def pbx_calls() -> Response:
    """JSON: one call object, a list of them, or `{"calls": [...]}`; answers what was stored."""
    expected = setting("PBX_TOKEN")
    if not expected:
        abort(404)
    if not _token_ok(str(expected)):
        return Response('{"error": "unauthorized"}', status=401, mimetype="application/json",
                        headers={"WWW-Authenticate": 'Bearer realm="pbx"'})
    payload = request.get_json(silent=True)
    if isinstance(payload, dict) and isinstance(payload.get("calls"), list):
        payload = payload["calls"]
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(i, dict) for i in items) or len(items) > 1000:
        return jsonify({"error": _("Send a call object or a list of up to 1000.")}), 400
    stored, errors = [], []
    for index, item in enumerate(items):
        try:
            call, created = record_call(parse_call(item))
        except CallDataError as exc:
            errors.append({"index": index, "error": str(exc)})
            continue
        stored.append({"index": index, "id": call.id, "external_id": call.external_id,
                       "created": created, "partner_id": call.partner_id,
                       "lead_id": call.lead_id, "user_id": call.user_id})
    db.session.commit()
    return jsonify({"calls": stored, "errors": errors}), 200 if stored or not errors else 400


# -- the CSV import ----------------------------------------------------------------------------
@dataclass
class ImportResult:
    created: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")


def import_calls(raw: bytes | str) -> ImportResult:
    """Record every row of a call-log CSV (`,`, `;` or tab separated); commits in batches."""
    text = raw if isinstance(raw, str) else _decode(raw)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    result = ImportResult()
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    for line_no, row in enumerate(reader, start=2):
        try:
            _call, created = record_call(parse_call({k: v for k, v in row.items() if k}))
        except CallDataError as exc:
            result.errors.append((line_no, str(exc)))
            continue
        if created:
            result.created += 1
        else:
            result.duplicates += 1
        if (result.created + result.duplicates) % 200 == 0:
            db.session.commit()
    db.session.commit()
    return result


@bp.route("/calls/import", methods=["GET", "POST"])
@permission_required("pipeline.manage")
def calls_import():
    from core.forms import ActionForm

    result = None
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            abort(400)
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(_("Choose a CSV file."), "error")
        else:
            result = import_calls(upload.read())
            flash(_("Calls imported: %(created)d, already known: %(duplicates)d, "
                    "refused: %(errors)d.", created=result.created,
                    duplicates=result.duplicates, errors=len(result.errors)),
                  "success" if not result.errors else "warning")
    return render_template("pipeline/call_import.html", result=result, aliases=ALIASES)


# -- the report --------------------------------------------------------------------------------
@dataclass
class CallProblem:
    call: Call
    no_contact: bool
    no_record: bool


@dataclass
class ManagerCalls:
    user: User | None
    calls: int = 0
    problems: list[CallProblem] = field(default_factory=list)

    @property
    def no_contact(self) -> int:
        return sum(1 for p in self.problems if p.no_contact)

    @property
    def no_record(self) -> int:
        return sum(1 for p in self.problems if p.no_record)


def _records_of(calls: list[Call]) -> dict[int, set[tuple[str, int]]]:
    """Per call: the records a manager would write on (contact, lead, their deals)."""
    lead_ids = {c.lead_id for c in calls if c.lead_id}
    partner_ids = {c.partner_id for c in calls if c.partner_id}
    lead_deals = {lead_id: deal_id for lead_id, deal_id in db.session.execute(
        select(Lead.id, Lead.deal_id).where(Lead.id.in_(lead_ids), Lead.deal_id.is_not(None)))
    } if lead_ids else {}
    deals: dict[int, set[int]] = {}
    if partner_ids:
        for deal_id, partner_id, company_id in db.session.execute(
                select(Deal.id, Deal.partner_id, Deal.company_id).where(
                    or_(Deal.partner_id.in_(partner_ids), Deal.company_id.in_(partner_ids)))):
            for pid in (partner_id, company_id):
                if pid in partner_ids:
                    deals.setdefault(pid, set()).add(deal_id)
    refs: dict[int, set[tuple[str, int]]] = {}
    for call in calls:
        mine: set[tuple[str, int]] = set()
        if call.partner_id:
            mine.add((PARTNER_MODEL, call.partner_id))
            mine |= {(DEAL_MODEL, d) for d in deals.get(call.partner_id, ())}
        if call.lead_id:
            mine.add((LEAD_MODEL, call.lead_id))
            if lead_deals.get(call.lead_id):
                mine.add((DEAL_MODEL, lead_deals[call.lead_id]))
        refs[call.id] = mine
    return refs


def _recorded(refs: set[tuple[str, int]], user_ids: set[int], since: datetime,
              until: datetime) -> list[tuple[str, int, int, datetime]]:
    """(model, record id, user id, moment) of what those users wrote on those records."""
    if not refs or not user_ids:
        return []
    pairs = sorted(refs)
    rows: list[tuple[str, int, int, datetime]] = []
    for start in range(0, len(pairs), 500):
        chunk = pairs[start:start + 500]
        rows += list(db.session.execute(select(
            TimelineEntry.model, TimelineEntry.record_id, TimelineEntry.author_id,
            TimelineEntry.created_at).where(
            tuple_(TimelineEntry.model, TimelineEntry.record_id).in_(chunk),
            TimelineEntry.author_id.in_(user_ids),
            TimelineEntry.created_at >= since, TimelineEntry.created_at <= until)))
        created = select(Activity.model, Activity.record_id, Activity.creator_id,
                         Activity.created_at).where(
            tuple_(Activity.model, Activity.record_id).in_(chunk),
            Activity.creator_id.in_(user_ids),
            Activity.created_at >= since, Activity.created_at <= until)
        done = select(Activity.model, Activity.record_id, Activity.assignee_id,
                      Activity.done_at).where(
            tuple_(Activity.model, Activity.record_id).in_(chunk),
            Activity.assignee_id.in_(user_ids), Activity.done_at.is_not(None),
            and_(Activity.done_at >= since, Activity.done_at <= until))
        rows += list(db.session.execute(created))
        rows += list(db.session.execute(done))
    return rows


def unrecorded_calls(start: datetime, end: datetime, *, user_ids: Iterable[int] | None = None,
                     limit: int = 5000) -> list[ManagerCalls]:
    """Calls in `[start, end)` per manager, with those that produced no contact or record.

    `user_ids` (None: everyone) limits the managers; calls nobody answers for are grouped
    under `user=None`.
    """
    hours = float(setting("PIPELINE_CALL_FOLLOWUP_HOURS", 24))
    window = timedelta(hours=hours)
    query = select(Call).where(Call.started_at >= start, Call.started_at < end)
    if user_ids is not None:
        query = query.where(Call.user_id.in_(list(user_ids)))
    calls = list(db.session.scalars(query.order_by(Call.started_at, Call.id).limit(limit)))
    refs = _records_of(calls)
    managers = {c.user_id for c in calls if c.user_id}
    every_ref = set().union(*refs.values()) if refs else set()
    written = _recorded(every_ref, managers, start, end + window)
    by_ref: dict[tuple[str, int, int], list[datetime]] = {}
    for model, record_id, user_id, moment in written:
        by_ref.setdefault((model, record_id, user_id), []).append(as_utc(moment))
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(managers)))}
    rows: dict[int | None, ManagerCalls] = {}
    for call in calls:
        row = rows.setdefault(call.user_id, ManagerCalls(users.get(call.user_id)))
        row.calls += 1
        began = as_utc(call.started_at)
        no_contact = call.partner_id is None and call.lead_id is None
        recorded = call.user_id is not None and any(
            began <= moment <= began + window
            for model, record_id in refs[call.id]
            for moment in by_ref.get((model, record_id, call.user_id), ()))
        if no_contact or not recorded:
            row.problems.append(CallProblem(call, no_contact, not recorded))
    return sorted(rows.values(), key=lambda r: (r.user is None, r.user.display_name.lower()
                                                if r.user else ""))


def _report_users(user: User) -> Any:
    """None (everyone) for those who see all deals, else themselves and their team members."""
    if user.is_admin or scope_for(user, "pipeline_deal") == "all":
        return None
    ids = {user.id} | set(db.session.scalars(managed_member_ids(user.id)))
    return ids


def _period() -> tuple[datetime, datetime, str, str]:
    tz = user_timezone(current_user)
    today = now().astimezone(tz).date()
    try:
        first = datetime.strptime(request.args.get("start", ""), "%Y-%m-%d").date()
    except ValueError:
        first = today - timedelta(days=6)
    try:
        last = datetime.strptime(request.args.get("end", ""), "%Y-%m-%d").date()
    except ValueError:
        last = today
    if last < first:
        first, last = last, first
    return (local_midnight(tz, first), local_midnight(tz, last + timedelta(days=1)),
            first.isoformat(), last.isoformat())


@bp.route("/calls/report")
@permission_required("pipeline.manage")  # a supervisor's check on the floor
def calls_report():
    start, end, first, last = _period()
    allowed = _report_users(current_user)
    chosen = request.args.get("user", type=int)
    ids = allowed
    if chosen:
        if allowed is not None and chosen not in allowed:
            abort(404)
        ids = {chosen}
    rows = unrecorded_calls(start, end, user_ids=ids)
    if request.args.get("format") == "csv":
        return _report_csv(rows)
    managers = db.session.scalars(select(User).where(User.active.is_(True)).where(
        User.id.in_(allowed) if allowed is not None else True).order_by(User.name)).all()
    return render_template("pipeline/call_report.html", rows=rows, start=first, end=last,
                           managers=managers, chosen=chosen, display_phone=display_phone)


def _report_csv(rows: list[ManagerCalls]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("Manager"), _("Started"), _("Direction"), _("Status"), _("From"),
                     _("To"), _("No contact"), _("Nothing recorded")])
    for row in rows:
        for problem in row.problems:
            call = problem.call
            writer.writerow([row.user.display_name if row.user else "",
                             as_utc(call.started_at).isoformat(), call.direction, call.status,
                             call.from_number or "", call.to_number or "",
                             int(problem.no_contact), int(problem.no_record)])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=calls-without-follow-up.csv"})
