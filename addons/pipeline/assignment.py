"""Who gets a new lead: territory/language rules, then round robin among a team, skipping
salespeople at capacity (seed 001: "a manager can hold only so many live contacts").

Why it works this way:

- **Round robin** walks the team's active members in id order, starting after the pipeline's
  `last_assigned_user_id`, so the turn survives restarts and is shared by every worker (the
  pipeline row is locked `FOR UPDATE` on PostgreSQL while the turn moves).
- **Capacity** is `Capacity.live_deals` against the open deals a person owns (active deals in
  an `open` stage), counted in one grouped query for the whole team. No `Capacity` row means
  the default (`BIRGA_PIPELINE_DEFAULT_CAPACITY`, 150), the same rule the workload board
  and rotation use. When everyone is full nobody is picked: the lead waits in the inbox
  unassigned rather than overloading someone silently, and the pipeline's managers (who may
  manage the pipeline, in its team) are notified so it is not left unseen.
- **Territory rules** (`AssignmentRule`, in `sequence` order) match a lead's country and/or
  language; the first matching rule names a user or a team (round robin inside that team).
  A rule whose user is at capacity is skipped, so the next rule or the pipeline's team takes it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import current_app, has_request_context, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from core.api import User, db, notify
from core.security import Team, TeamMember

from .models import AssignmentRule, Capacity, Deal, Lead, Pipeline, Stage

__all__ = ["DEFAULT_CAPACITY", "assign_lead", "at_capacity", "capacities", "choose_assignee",
           "default_capacity", "lead_managers", "open_deal_counts", "team_members"]


def team_members(team_id: int | None) -> list[User]:
    """Active members of a team, in id order (the round-robin order)."""
    if team_id is None:
        return []
    return list(db.session.scalars(
        select(User).join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team_id, User.active.is_(True)).order_by(User.id)))


def open_deal_counts(user_ids: Sequence[int]) -> dict[int, int]:
    """Open (live) deals per owner: active deals in an `open` stage."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(Deal.owner_id, func.count(Deal.id)).join(Stage, Stage.id == Deal.stage_id)
        .where(Deal.owner_id.in_(list(user_ids)), Deal.active.is_(True), Stage.kind == "open")
        .group_by(Deal.owner_id))
    return {owner: int(count) for owner, count in rows}


DEFAULT_CAPACITY = 150


def default_capacity() -> int:
    """Live deals a salesperson without a `Capacity` row may hold (seed 001: e.g. 150)."""
    return int(current_app.config.get("BIRGA_PIPELINE_DEFAULT_CAPACITY", DEFAULT_CAPACITY))


def capacities(user_ids: Sequence[int]) -> dict[int, int]:
    """Each user's limit: their `Capacity` row, else the default."""
    limits = {uid: default_capacity() for uid in user_ids}
    if user_ids:
        limits.update({uid: int(limit) for uid, limit in db.session.execute(
            select(Capacity.user_id, Capacity.live_deals).where(
                Capacity.user_id.in_(list(user_ids))))})
    return limits


def _full(user_ids: Sequence[int]) -> set[int]:
    limits = capacities(user_ids)
    counts = open_deal_counts(list(user_ids))
    return {uid for uid, limit in limits.items() if counts.get(uid, 0) >= limit}


def at_capacity(user: User) -> bool:
    """Whether `user` already holds as many open deals as their capacity allows."""
    return user.id in _full([user.id])


def _round_robin(pipeline: Pipeline, members: list[User]) -> User | None:
    """The next member after the pipeline's last pick who is not at capacity."""
    if not members:
        return None
    full = _full([m.id for m in members])
    last = pipeline.last_assigned_user_id or 0
    ordered = [m for m in members if m.id > last] + [m for m in members if m.id <= last]
    for member in ordered:
        if member.id not in full:
            return member
    return None


def _rule_matches(rule: AssignmentRule, country: str | None, lang: str | None) -> bool:
    if rule.country and (country or "").upper() != rule.country.upper():
        return False
    if rule.lang:
        wanted = rule.lang.lower().replace("-", "_")
        have = (lang or "").lower().replace("-", "_")
        if have != wanted and have.split("_")[0] != wanted:
            return False
    return True


def _by_rules(pipeline: Pipeline, country: str | None, lang: str | None) -> User | None:
    rules = db.session.scalars(select(AssignmentRule).where(
        AssignmentRule.pipeline_id == pipeline.id).order_by(AssignmentRule.sequence,
                                                            AssignmentRule.id))
    for rule in rules:
        if not _rule_matches(rule, country, lang):
            continue
        if rule.user_id is not None:
            user = db.session.get(User, rule.user_id)
            if user is not None and user.active and not at_capacity(user):
                return user
            continue
        picked = _round_robin(pipeline, team_members(rule.team_id))
        if picked is not None:
            return picked
    return None


def choose_assignee(pipeline: Pipeline, *, country: str | None = None,
                    lang: str | None = None) -> User | None:
    """The user who should take a new lead of `pipeline` (None: nobody free), and the turn
    moves on. The caller commits."""
    # Lock the pipeline row so two workers never hand out the same turn (no-op on SQLite,
    # where the write lock serialises them anyway).
    locked = db.session.scalar(select(Pipeline).where(Pipeline.id == pipeline.id)
                               .with_for_update()) or pipeline
    picked = None
    if locked.assignment == "territory":
        picked = _by_rules(locked, country, lang)
    if picked is None:
        picked = _round_robin(locked, team_members(locked.team_id))
    if picked is not None:
        locked.last_assigned_user_id = picked.id
    return picked


def lead_path(lead_id: int) -> str:
    """The lead's page, from a request or from a job/CLI (no request to build against)."""
    if has_request_context():
        return url_for("pipeline.lead", lead_id=lead_id)
    return current_app.url_map.bind("").build("pipeline.lead", {"lead_id": lead_id})


def lead_managers(pipeline: Pipeline | None) -> list[User]:
    """Who hears about a lead nobody could be given: active users who may manage the
    pipeline, among its team (members and the team's manager) when it has one; everyone who
    may manage pipelines when its team has no such person or there is no pipeline."""
    users = list(db.session.scalars(select(User).where(User.active.is_(True))
                                    .order_by(User.id)))
    managers = [u for u in users if u.has_permission("pipeline.manage")]
    if pipeline is None or pipeline.team_id is None:
        return managers
    team = db.session.get(Team, pipeline.team_id)
    crew = {m.id for m in team_members(pipeline.team_id)}
    if team is not None and team.manager_id is not None:
        crew.add(team.manager_id)
    return [u for u in managers if u.id in crew] or managers


def _say(user: User, lead: Lead, message: Callable[[str], str]) -> None:
    """Notify `user` about `lead` in her language: `message(who)` runs under her locale."""
    default = current_app.config.get("BABEL_DEFAULT_LOCALE", "en")
    with force_locale(user.locale or default):
        who = lead.name or lead.email or lead.phone or _("unknown sender")
        text = message(who)
    notify(user, text, lead_path(lead.id))


def assign_lead(lead: Lead, pipeline: Pipeline | None, *, country: str | None = None,
                by: User | None = None) -> User | None:
    """Give `lead` an owner by the pipeline's rules and notify them (the caller commits).

    When the rules find nobody, the lead stays unassigned in the leads list and the
    pipeline's managers are notified (`lead_managers`), so someone assigns or takes it.
    """
    user = choose_assignee(pipeline, country=country, lang=lead.lang) \
        if pipeline is not None else None
    if user is None:
        for manager in lead_managers(pipeline):
            if by is None or by.id != manager.id:
                _say(manager, lead, lambda who: _(
                    "Nobody could be given the new lead %(name)s: take it or assign it.",
                    name=who))
        return None
    lead.owner_id = user.id
    db.session.flush()
    if by is None or by.id != user.id:
        _say(user, lead, lambda who: _("New lead for you: %(name)s", name=who))
    return user

