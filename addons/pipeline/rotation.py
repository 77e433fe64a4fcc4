"""Stale-deal rotation: no deal is forgotten or hoarded (seed 001).

A pipeline's rules say when an open deal is stale: nothing happened for
`stale_no_activity_days`, or it has no planned next step and nothing happened for
`stale_no_next_step_days`. "Something happened" is any of: an activity on it
(`last_activity_at`), a stage move, its creation, or a rotation move (so a deal handed to a new
owner gets a full period with them). Then:

1. `mark_stale()` sets the `stale` flag of every open deal of the rotating pipelines from the
   rules (one UPDATE per pipeline and outcome; the flag is no user-edited field, so it does not
   bump the deal's version);
2. `reclaim()` takes stale deals back from their owners to the pool (no owner), one deal per
   transaction through `save_or_conflict`, so a deal someone is editing right now is skipped
   rather than overwritten; the reason goes on the deal's timeline and the old owner is
   notified;
3. `assign_pool()` hands the pool round robin to the team (the deal's team, else the
   pipeline's), skipping people at capacity and the previous owner, with the same turn pointer
   as lead assignment (`Pipeline.last_assigned_user_id`); the new owner is notified.

Owner changes are not stage changes: the state machine is not involved, but every move is
version-checked, leaves an `OwnerMove` row and a timeline entry. `rotate()` does all three; the
periodic job runs it once per pipeline and day (`core.jobs.once`), and a manager runs it from
the workload board.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import force_locale, lazy_ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, exists, false, func, or_, select, update

from core.activities import as_utc, now
from core.api import User, crontab, db, log_entry, notify, once, periodic_task
from core.locking import save_or_conflict
from core.timeline import record_link

from .assignment import open_deal_counts, team_members
from .models import Deal, Pipeline, Stage
from .rotation_models import OwnerMove

__all__ = ["JOB_NAME", "RotationResult", "assign_pool", "mark_stale", "reclaim", "rotate",
           "rotate_stale_deals", "rotating_pipelines", "stale_clause", "stale_deals"]

JOB_NAME = "pipeline.rotate_stale_deals"
DEAL_MODEL = "pipeline.deal"


@dataclass
class RotationResult:
    """What one rotation did (ids, for messages and tests)."""

    marked: int = 0
    reclaimed: list[int] = field(default_factory=list)
    assigned: dict[int, int] = field(default_factory=dict)  # deal id -> new owner id
    skipped: list[int] = field(default_factory=list)  # changed meanwhile: left alone

    @property
    def left_in_pool(self) -> int:
        return len(self.reclaimed) - len([d for d in self.reclaimed if d in self.assigned])


# -- the rules -------------------------------------------------------------------------------
def _quiet_since(cutoff: datetime) -> Any:
    """Nothing happened to the deal since `cutoff`."""
    moved = exists().where(OwnerMove.deal_id == Deal.id, OwnerMove.at >= cutoff)
    return and_(or_(Deal.last_activity_at.is_(None), Deal.last_activity_at < cutoff),
                Deal.stage_changed_at < cutoff, Deal.created_at < cutoff, ~moved)


def _rules(pipeline: Pipeline, moment: datetime) -> tuple[Any, Any]:
    """(no-activity condition, no-next-step condition); `false()` for a rule that is off."""
    no_activity = no_next = false()
    if pipeline.stale_no_activity_days:
        no_activity = _quiet_since(moment - timedelta(days=pipeline.stale_no_activity_days))
    if pipeline.stale_no_next_step_days:
        no_next = and_(Deal.next_activity_at.is_(None), _quiet_since(
            moment - timedelta(days=pipeline.stale_no_next_step_days)))
    return no_activity, no_next


def _open_deals_of(pipeline: Pipeline) -> Any:
    open_stages = select(Stage.id).where(Stage.pipeline_id == pipeline.id, Stage.kind == "open")
    return and_(Deal.pipeline_id == pipeline.id, Deal.active.is_(True),
                Deal.stage_id.in_(open_stages))


def stale_clause(pipeline: Pipeline, moment: datetime | None = None) -> Any:
    """The condition an open deal of `pipeline` meets when the rules call it stale."""
    no_activity, no_next = _rules(pipeline, as_utc(moment or now()))
    return and_(_open_deals_of(pipeline), or_(no_activity, no_next))


def rotating_pipelines(pipeline_ids: Iterable[int] | None = None) -> list[Pipeline]:
    query = select(Pipeline).where(Pipeline.active.is_(True), or_(
        Pipeline.stale_no_activity_days > 0, Pipeline.stale_no_next_step_days > 0))
    if pipeline_ids is not None:
        query = query.where(Pipeline.id.in_(list(pipeline_ids)))
    return list(db.session.scalars(query.order_by(Pipeline.id)))


def mark_stale(pipelines: Iterable[Pipeline] | None = None,
               moment: datetime | None = None) -> int:
    """Set the `stale` flag of the open deals of rotating pipelines from the rules, clear it
    where they no longer hold; returns how many deals are stale (the caller commits)."""
    moment = as_utc(moment or now())
    total = 0
    for pipeline in (list(pipelines) if pipelines is not None else rotating_pipelines()):
        clause = stale_clause(pipeline, moment)
        db.session.execute(
            update(Deal).where(clause, Deal.stale.is_(False)).values(stale=True)
            .execution_options(synchronize_session=False))
        # No longer stale (someone acted): clear the flag, except in the pool (no owner).
        db.session.execute(
            update(Deal).where(_open_deals_of(pipeline), Deal.owner_id.is_not(None),
                               ~or_(*_rules(pipeline, moment)), Deal.stale.is_(True))
            .values(stale=False).execution_options(synchronize_session=False))
        total += db.session.scalar(select(func.count(Deal.id)).where(clause)) or 0
    db.session.expire_all()
    return total


def stale_deals(pipeline: Pipeline, moment: datetime | None = None, *,
                owner_id: int | None = None, where: Any = None) -> list[tuple[int, str]]:
    """(deal id, reason) of the owned stale deals of `pipeline`; the reason is
    "no_activity" or "no_next_step" (the first rule that holds)."""
    no_activity, no_next = _rules(pipeline, as_utc(moment or now()))
    query = (select(Deal.id, case((no_activity, "no_activity"), else_="no_next_step"))
             .where(_open_deals_of(pipeline), or_(no_activity, no_next),
                    Deal.owner_id.is_not(None)).order_by(Deal.id))
    if owner_id is not None:
        query = query.where(Deal.owner_id == owner_id)
    if where is not None:
        query = query.where(where)
    return [(int(deal_id), str(reason)) for deal_id, reason in db.session.execute(query)]


# -- moving owners ---------------------------------------------------------------------------
def _reason_text(reason: str, pipeline: Pipeline) -> Any:
    """Lazy: a timeline entry keeps it for each reader, a notification renders it now."""
    if reason == "no_activity":
        days = pipeline.stale_no_activity_days or 0
        return lazy_ngettext("no activity for %(num)d day", "no activity for %(num)d days",
                             days)
    if reason == "no_next_step":
        days = pipeline.stale_no_next_step_days or 0
        return lazy_ngettext("no next step for %(num)d day", "no next step for %(num)d days",
                             days)
    return _l("a manager's decision")


def _language(user: User) -> str:
    return user.locale or current_app.config.get("BABEL_DEFAULT_LOCALE", "en")


def _move_owner(deal: Deal, new_owner_id: int | None) -> bool:
    """Version-checked owner change; False (and nothing changed) when the deal moved on."""
    conflict = save_or_conflict(deal, deal.version, {"owner_id": new_owner_id})
    return conflict is None


def reclaim(pipeline: Pipeline, deals: list[tuple[int, str]], *, by: User | None = None,
            moment: datetime | None = None) -> tuple[list[int], list[int]]:
    """Take these stale deals back to the pool, one transaction each (commits).

    Returns (reclaimed ids, skipped ids). A deal that is no longer stale or owned when its
    turn comes (someone acted on it meanwhile) is skipped.
    """
    moment = as_utc(moment or now())
    done: list[int] = []
    skipped: list[int] = []
    for deal_id, reason in deals:
        deal = db.session.scalar(select(Deal).where(Deal.id == deal_id,
                                                    stale_clause(pipeline, moment)))
        old_owner = db.session.get(User, deal.owner_id) if deal and deal.owner_id else None
        if deal is None or old_owner is None or not _move_owner(deal, None):
            db.session.rollback()
            skipped.append(deal_id)
            continue
        deal.stale = True
        why = _reason_text(reason, pipeline)
        db.session.add(OwnerMove(deal_id=deal.id, from_user_id=old_owner.id, to_user_id=None,
                                 reason=reason, by_user_id=by.id if by else None, at=moment))
        log_entry(DEAL_MODEL, deal.id, "system",
                  _l("Taken from %(user)s back to the pool: %(reason)s.",
                     user=old_owner.display_name, reason=why),
                  subject=_l("Reclaimed: %(reason)s", reason=why), author=by)
        with force_locale(_language(old_owner)):
            text = _("%(deal)s went back to the pool: %(reason)s.", deal=deal.title,
                     reason=_reason_text(reason, pipeline))
        notify(old_owner, text, record_link(DEAL_MODEL, deal.id))
        db.session.commit()
        done.append(deal.id)
    return done, skipped


def _capacities(user_ids: list[int]) -> dict[int, int]:
    from .assignment import capacities

    return capacities(user_ids)


class _Turns:
    """Round robin over one team, skipping people at capacity; counts what it hands out."""

    def __init__(self, members: list[User]) -> None:
        self.members = members
        ids = [m.id for m in members]
        self.held = {uid: 0 for uid in ids} | open_deal_counts(ids)
        self.limits = _capacities(ids)

    def pick(self, after: int | None, exclude: int | None) -> User | None:
        last = after or 0
        ordered = ([m for m in self.members if m.id > last]
                   + [m for m in self.members if m.id <= last])
        for member in ordered:
            if member.id == exclude or self.held[member.id] >= self.limits[member.id]:
                continue
            self.held[member.id] += 1
            return member
        return None


def _previous_owners(deal_ids: list[int]) -> dict[int, tuple[int | None, str]]:
    """Who held each deal before its latest move to the pool, and why it was taken."""
    if not deal_ids:
        return {}
    rows = db.session.execute(
        select(OwnerMove.deal_id, OwnerMove.from_user_id, OwnerMove.reason)
        .where(OwnerMove.deal_id.in_(deal_ids), OwnerMove.to_user_id.is_(None))
        .order_by(OwnerMove.at, OwnerMove.id))
    return {deal_id: (user_id, reason) for deal_id, user_id, reason in rows}  # latest wins


def assign_pool(pipeline: Pipeline, *, by: User | None = None,
                moment: datetime | None = None, where: Any = None) -> tuple[dict[int, int],
                                                                           list[int]]:
    """Hand the pipeline's pool (stale deals without an owner) round robin to the team.

    Returns ({deal id: new owner id}, skipped ids); commits one deal at a time. Deals nobody
    can take (everyone at capacity, or no team) stay in the pool.
    """
    moment = as_utc(moment or now())
    query = select(Deal.id, Deal.team_id).where(
        _open_deals_of(pipeline), Deal.owner_id.is_(None), Deal.stale.is_(True)).order_by(Deal.id)
    if where is not None:
        query = query.where(where)
    pool = list(db.session.execute(query))
    previous = _previous_owners([deal_id for deal_id, _team in pool])
    turns: dict[int, _Turns] = {}
    assigned: dict[int, int] = {}
    skipped: list[int] = []
    for deal_id, team_id in pool:
        team_id = team_id or pipeline.team_id
        if team_id is None:
            continue
        if team_id not in turns:
            turns[team_id] = _Turns(team_members(team_id))
        old_id, reason = previous.get(deal_id, (None, "manual"))
        picked = turns[team_id].pick(pipeline.last_assigned_user_id, old_id)
        if picked is None:
            continue
        deal = db.session.get(Deal, deal_id)
        if deal is None or deal.owner_id is not None or not _move_owner(deal, picked.id):
            db.session.rollback()
            turns.pop(team_id, None)  # counts are unsure now: read them again
            skipped.append(deal_id)
            continue
        deal.stale = False
        pipeline.last_assigned_user_id = picked.id
        db.session.add(OwnerMove(deal_id=deal.id, from_user_id=None, to_user_id=picked.id,
                                 reason=reason,
                                 by_user_id=by.id if by else None, at=moment))
        old = db.session.get(User, old_id) if old_id is not None else None
        if old is not None:
            body = _l("Reassigned from the pool to %(user)s (was %(old)s's).",
                      user=picked.display_name, old=old.display_name)
        else:
            body = _l("Reassigned from the pool to %(user)s.", user=picked.display_name)
        log_entry(DEAL_MODEL, deal.id, "system", body,
                  subject=_l("Reassigned by rotation"), author=by)
        with force_locale(_language(picked)):
            text = _("%(deal)s is yours now (stale-deal rotation).", deal=deal.title)
        notify(picked, text, record_link(DEAL_MODEL, deal.id))
        db.session.commit()
        assigned[deal.id] = picked.id
    return assigned, skipped


def rotate(pipeline: Pipeline, *, by: User | None = None, owner_id: int | None = None,
           moment: datetime | None = None, where: Any = None) -> RotationResult:
    """Mark, reclaim and reassign the stale deals of `pipeline` (commits).

    `owner_id` limits the reclaim to one salesperson's deals; `where` is an extra condition on
    `Deal` (a manager's record rules), applied to the reclaim and to the pool.
    """
    moment = as_utc(moment or now())
    result = RotationResult()
    result.marked = mark_stale([pipeline], moment)
    db.session.commit()
    candidates = stale_deals(pipeline, moment, owner_id=owner_id, where=where)
    result.reclaimed, result.skipped = reclaim(pipeline, candidates, by=by, moment=moment)
    result.assigned, skipped = assign_pool(pipeline, by=by, moment=moment, where=where)
    result.skipped += skipped
    return result


@periodic_task(crontab(minute="40", hour="4"), name=JOB_NAME)
def rotate_stale_deals() -> dict[str, int]:
    """Rotate every rotating pipeline once a day; a rerun the same day does nothing."""
    day = as_utc(now()).date().isoformat()
    totals = {"pipelines": 0, "reclaimed": 0, "assigned": 0}
    for pipeline_id in [p.id for p in rotating_pipelines()]:
        with once(f"{pipeline_id}:{day}", job=JOB_NAME) as first:
            if not first:
                continue
            pipeline = db.session.get(Pipeline, pipeline_id)
            result = rotate(pipeline)
            totals["pipelines"] += 1
            totals["reclaimed"] += len(result.reclaimed)
            totals["assigned"] += len(result.assigned)
    return totals
