"""THE deal state machine: every path that creates a deal or moves it between stages ends here.

Why one module: the board's drag and drop, the deal form, the CSV import, the API and the jobs
must give the same result for the same transition (seed 002). So the rules live once:

- Lost needs a reason from the editable list (seed 001: "a reason for every refusal");
- Won records the date and needs an amount: a deal won for nothing would be missing from the
  forecast, the reports and the contacts' revenue signal, so one without an amount must be
  given one on the way (an amount given with the move replaces the deal's);
- the probability follows the stage unless someone set it (closing a deal hands it back to the
  stage: 100 % won, 0 % lost);
- every move leaves a `StageChange` row (reports read it) and a line on the deal's timeline.

Errors are `TransitionError` with a translated message and an HTTP-ish `status` (422 for a rule,
409 for a stale copy), so a view only has to show `str(error)`.

Seeded names (the default pipeline, its stages, the lost reasons) are stored in English and shown
through gettext; names a firm typed are shown as typed, or from `labels[locale]` when given.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import has_request_context
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from core.api import User, db, log_entry, utcnow
from core.timeline import localized, money

from .models import Deal, LostReason, Pipeline, Stage, StageChange

__all__ = [
    "DEFAULT_LOST_REASONS", "DEFAULT_PIPELINE", "DEFAULT_STAGES", "StaleDealError",
    "TransitionError", "create_deal", "lost_reason_label", "move_deal", "pipeline_label",
    "seed_defaults", "stage_label",
]

#: The paths a move can come from (stored in `StageChange.via`).
VIAS = ("board", "form", "import", "api", "job")

DEFAULT_PIPELINE = "Sales"
#: (name, probability, kind, colour) of the seeded stages, in order.
DEFAULT_STAGES: tuple[tuple[str, int, str, str], ...] = (
    ("New", 10, "open", "#8aa4d6"),
    ("Qualified", 25, "open", "#6fb3c9"),
    ("Proposal", 50, "open", "#e0b04f"),
    ("Negotiation", 75, "open", "#e08a4f"),
    ("Won", 100, "won", "#4caf7a"),
    ("Lost", 0, "lost", "#c9544d"),
)
DEFAULT_LOST_REASONS = ("Too expensive", "Chose a competitor", "No budget", "No answer",
                        "Bad timing")
#: Seeded names -> their translatable titles (extracted by pybabel from these literals).
SEEDED_TITLES: dict[str, Any] = {
    "Sales": _l("Sales"),
    "New": _l("New"), "Qualified": _l("Qualified"), "Proposal": _l("Proposal"),
    "Negotiation": _l("Negotiation"), "Won": _l("Won"), "Lost": _l("Lost"),
    "Too expensive": _l("Too expensive"), "Chose a competitor": _l("Chose a competitor"),
    "No budget": _l("No budget"), "No answer": _l("No answer"), "Bad timing": _l("Bad timing"),
}


class TransitionError(ValueError):
    """A creation or move the rules refuse; `str(error)` is translated, `status` is 422."""

    status = 422

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


class StaleDealError(TransitionError):
    """The move was based on an older copy of the deal (someone moved or edited it)."""

    status = 409


# -- names -----------------------------------------------------------------------------------
def _locale() -> str | None:
    if not has_request_context():
        return None
    locale = get_locale()
    return str(locale) if locale is not None else None


def _label(name: str, labels: dict | None) -> str:
    locale = _locale()
    if locale and labels:
        for key in (locale, locale.split("_")[0]):
            if labels.get(key):
                return str(labels[key])
    seeded = SEEDED_TITLES.get(name)
    return str(seeded) if seeded is not None else name


def stage_label(stage: Stage) -> str:
    """The stage's name in the user's language."""
    return _label(stage.name, stage.labels)


def lost_reason_label(reason: LostReason) -> str:
    return _label(reason.name, reason.labels)


def pipeline_label(pipeline: Pipeline) -> str:
    return _label(pipeline.name, None)


def _title(name: str, labels: dict | None) -> Any:
    """A name as a timeline message parameter, shown like `_label` for each reader."""
    seeded = SEEDED_TITLES.get(name)
    default = seeded if seeded is not None else name
    return localized(labels, default) if labels else default


def stage_title(stage: Stage) -> Any:
    """`stage_label` kept for each reader: for lazy messages such as timeline entries."""
    return _title(stage.name, stage.labels)


def lost_reason_title(reason: LostReason) -> Any:
    return _title(reason.name, reason.labels)


# -- seeding ---------------------------------------------------------------------------------
def seed_defaults() -> Pipeline:
    """A default pipeline with its stages when there is none, and the missing lost reasons.

    Idempotent (`birga demo`, tests and the first board visit may all call it); never changes
    what an admin edited. Returns the first pipeline. The caller commits.
    """
    pipeline = db.session.scalar(select(Pipeline).order_by(Pipeline.sequence, Pipeline.id)
                                 .limit(1))
    if pipeline is None:
        pipeline = Pipeline(name=DEFAULT_PIPELINE, sequence=10, active=True, form_origins=[])
        for index, (name, probability, kind, color) in enumerate(DEFAULT_STAGES):
            pipeline.stages.append(Stage(name=name, labels={}, sequence=10 * (index + 1),
                                         probability=probability, kind=kind, color=color,
                                         folded=False))
        db.session.add(pipeline)
    have = set(db.session.scalars(select(LostReason.name)))
    for index, name in enumerate(DEFAULT_LOST_REASONS):
        if name not in have:
            db.session.add(LostReason(name=name, labels={}, sequence=10 * (index + 1),
                                      active=True))
    db.session.flush()
    return pipeline


def first_open_stage(pipeline: Pipeline) -> Stage:
    stages = [s for s in pipeline.stages if s.kind == "open"] or list(pipeline.stages)
    if not stages:
        raise TransitionError(_("This pipeline has no stages yet."), code="no_stage")
    return stages[0]


# -- helpers ---------------------------------------------------------------------------------
def _as_stage(stage: Stage | int | None, known: dict[int, Stage] | None = None) -> Stage:
    if isinstance(stage, Stage):
        return stage
    found = None
    if stage not in (None, ""):
        found = (known or {}).get(int(stage)) or db.session.get(Stage, int(stage))
    if found is None:
        raise TransitionError(_("Choose a stage."), code="stage_required")
    return found


def _as_reason(reason: LostReason | int | str | None) -> LostReason | None:
    if reason is None or reason == "":
        return None
    if isinstance(reason, LostReason):
        return reason
    try:
        return db.session.get(LostReason, int(reason))
    except (TypeError, ValueError):
        return None


def parse_amount(value: Any) -> Decimal | None:
    """A typed amount ("1 234,50" or "1234.50") as a Decimal; None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        result = value
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if "," in text and "." not in text:
            text = text.replace(",", ".")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise TransitionError(_("Give the amount as a number."), code="amount") from None
    if not result.is_finite() or result < 0:
        raise TransitionError(_("The amount cannot be negative."), code="amount")
    return result.quantize(Decimal("0.01"))


def _user_id(user: User | None) -> int | None:
    return getattr(user, "id", None) if user is not None else None


# -- the machine -----------------------------------------------------------------------------
def move_deal(deal: Deal, stage: Stage | int, *, user: User | None = None, via: str = "form",
              lost_reason: LostReason | int | str | None = None, lost_note: str | None = None,
              amount: Decimal | str | None = None, version: int | str | None = None) -> Deal:
    """Move `deal` to `stage` (the caller commits); raises `TransitionError`.

    `version`, when given, is the deal's version the caller saw: an older one is a
    `StaleDealError` (409), never a silent overwrite. Moving to the stage the deal is in
    changes nothing (and logs nothing) unless it closes a lost deal with a new reason.
    """
    if via not in VIAS:
        raise ValueError(f"Unknown move path '{via}'.")  # a programming error
    if version not in (None, ""):
        try:
            submitted = int(version)
        except (TypeError, ValueError):
            submitted = -1
        if submitted != deal.version:
            raise StaleDealError(_("Someone else changed this deal meanwhile; nothing was "
                                   "overwritten. Reload the page and try again."),
                                 code="conflict")
    # One query reads the pipeline's stages: the target and the deal's current stage then
    # come without a query each (the move POST is the board's hot path). The dict holds them
    # for the whole move: the identity map keeps objects only weakly, so a result nobody
    # references is collected at once and `deal.stage` would be read again.
    stages = {s.id: s for s in db.session.scalars(
        select(Stage).where(Stage.pipeline_id == deal.pipeline_id))}
    target = _as_stage(stage, stages)
    if target.pipeline_id != deal.pipeline_id:
        raise TransitionError(_("That stage belongs to another pipeline."), code="pipeline")
    reason = _as_reason(lost_reason)
    new_amount = parse_amount(amount)
    source = deal.stage if deal.stage_id is not None else None
    if target.kind == "lost":
        if reason is None or not reason.active:
            raise TransitionError(_("Choose why the deal was lost."), code="lost_reason")
    same = source is not None and source.id == target.id
    if target.kind == "won" and not same and not (new_amount or deal.amount):
        raise TransitionError(_("Give the amount the deal was won for."), code="amount")
    if same and (target.kind != "lost" or reason.id == deal.lost_reason_id):
        if new_amount is not None and new_amount != deal.amount:
            deal.amount = new_amount
        return deal
    moment = utcnow()
    if target.kind == "lost":
        deal.lost_reason_id = reason.id
        deal.lost_reason = reason
        deal.lost_note = (lost_note or "").strip() or None
        deal.lost_at = moment
        deal.won_at = None
        deal.probability = None
    elif target.kind == "won":
        deal.won_at = moment
        deal.lost_at = None
        deal.lost_reason_id = None
        deal.lost_note = None
        deal.probability = None
    else:
        deal.won_at = None
        deal.lost_at = None
        deal.lost_reason_id = None
        deal.lost_note = None
    if new_amount is not None:
        deal.amount = new_amount
    deal.stage_id = target.id
    deal.stage = target
    deal.stage_changed_at = moment
    deal.stale = False
    db.session.add(StageChange(deal_id=deal.id, from_stage_id=source.id if source else None,
                               to_stage_id=target.id, user_id=_user_id(user), via=via,
                               at=moment))
    _log_move(deal, source, target, reason, user)
    # ONE flush, last: everything is prepared before the first write, so SQLite's write lock
    # is held for the statements and the commit only. A stale copy fails here (the version
    # check of the UPDATE) and the history added above goes with the rolled-back flush.
    db.session.flush()
    return deal


def _log_move(deal: Deal, source: Stage | None, target: Stage, reason: LostReason | None,
              user: User | None) -> None:
    # Lazy messages: each reader sees the line in her language (core.messages).
    if source is None:
        subject = _l("Stage: %(stage)s", stage=stage_title(target))
    else:
        subject = _l("Stage: %(old)s → %(new)s", old=stage_title(source),
                     new=stage_title(target))
    body: list[Any] = []
    if target.kind == "lost" and reason is not None:
        body.append(_l("Lost reason: %(reason)s", reason=lost_reason_title(reason)))
        if deal.lost_note:
            body.append(deal.lost_note)  # the user's own words, kept as typed
    elif target.kind == "won":
        body.append(_l("Won: %(amount)s", amount=money(deal.amount or 0, deal.currency)))
    log_entry("pipeline.deal", deal.id, "system", body, subject=subject, author=user)


def create_deal(*, title: str, pipeline: Pipeline | int | None = None,
                stage: Stage | int | None = None, user: User | None = None, via: str = "form",
                owner_id: int | None = None, team_id: int | None = None,
                partner_id: int | None = None, company_id: int | None = None,
                amount: Decimal | str | None = None, currency: str | None = None,
                probability: int | None = None, expected_close: date | None = None,
                source: str | None = None, lost_reason: LostReason | int | None = None,
                lost_note: str | None = None, tags: list | None = None) -> Deal:
    """A new deal in `stage` (default: the pipeline's first open stage); the caller commits.

    Creating a deal directly in Won or Lost follows the same rules as moving it there.
    """
    title = " ".join((title or "").split())[:300]
    if not title:
        raise TransitionError(_("Give the deal a title."), code="title")
    if stage not in (None, ""):
        target = _as_stage(stage)
        pipeline_obj = target.pipeline
    else:
        if isinstance(pipeline, Pipeline):
            pipeline_obj = pipeline
        elif pipeline not in (None, ""):
            pipeline_obj = db.session.get(Pipeline, int(pipeline))
        else:
            pipeline_obj = seed_defaults()
        if pipeline_obj is None:
            raise TransitionError(_("Choose a pipeline."), code="pipeline")
        target = first_open_stage(pipeline_obj)
    if target.kind == "lost":
        reason = _as_reason(lost_reason)
        if reason is None or not reason.active:
            raise TransitionError(_("Choose why the deal was lost."), code="lost_reason")
    if target.kind == "won" and not parse_amount(amount):
        raise TransitionError(_("Give the amount the deal was won for."), code="amount")
    if probability is not None and not 0 <= int(probability) <= 100:
        raise TransitionError(_("The probability is a percentage from 0 to 100."),
                              code="probability")
    owner = owner_id if owner_id is not None else _user_id(user)
    deal = Deal(title=title, pipeline_id=pipeline_obj.id, stage_id=None,
                partner_id=partner_id, company_id=company_id,
                amount=parse_amount(amount) or Decimal("0"),
                currency=(currency or pipeline_obj.currency or "EUR").upper()[:3],
                probability=probability, expected_close=expected_close, owner_id=owner,
                team_id=team_id if team_id is not None else pipeline_obj.team_id,
                source=source, sequence=_top_sequence(target.id), active=True,
                stale=False)
    if tags:
        deal.tags = list(tags)
    # A deal starts nowhere and moves into its first stage: one path, one history.
    first = first_open_stage(pipeline_obj)
    deal.stage_id = first.id
    deal.stage = first
    db.session.add(deal)
    db.session.flush()
    db.session.add(StageChange(deal_id=deal.id, from_stage_id=None, to_stage_id=first.id,
                               user_id=_user_id(user), via=via, at=deal.created_at or utcnow()))
    if target.id != first.id:
        move_deal(deal, target, user=user, via=via, lost_reason=lost_reason,
                  lost_note=lost_note)
    return deal


def _top_sequence(stage_id: int) -> int:
    """New cards go on top of their column."""
    lowest = db.session.scalar(select(func.min(Deal.sequence)).where(Deal.stage_id == stage_id))
    return (lowest or 0) - 1


def closed(deal: Deal) -> bool:
    return deal.stage.kind in ("won", "lost")

