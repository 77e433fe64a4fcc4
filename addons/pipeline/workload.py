"""The workload board: how loaded each salesperson is (seed 001: "a manager can hold only so
many live contacts").

Per person: open deals, overdue activities, deals without a next step, stale deals, days since
the last contact and the share of their capacity used. Why it is built this way:

- **A constant number of grouped queries** (people, deals, activities, capacities), whatever the
  team's size: one GROUP BY owner over the deals and one over the activities, never a query per
  person, so the board stays fast with 50k deals.
- **"Without a next step"** reads the deal's denormalised `next_activity_at` (kept by the
  activity listeners), the same column the board's flag uses, so both always agree.
- **The last contact** is the later of the last done call/meeting/e-mail the person was assigned
  and the newest `last_activity_at` of their open deals.
- **Capacity** is `Capacity.live_deals`; a person without a row shows the default of 150 (the
  column's default), so a manager sees a figure for everyone.
- **Who is on the board**: a holder of `pipeline.manage` sees the people their deal scope covers
  (everyone for scope "all", their teams for "team"); a team manager sees the members of the
  teams they manage. Everyone else is refused by the view.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, false, func, or_, select, true

from core.activities import Activity, ActivityType, as_utc, managed_member_ids
from core.api import User, db
from core.security import Team, TeamMember, scope_for

from .assignment import DEFAULT_CAPACITY, capacities  # one capacity rule for everyone
from .models import Deal, Stage

__all__ = ["CONTACT_TYPES", "DEFAULT_CAPACITY", "WorkloadRow", "can_see_workload",
           "people_clause", "people_for", "team_choices", "workload"]

#: Activity types whose completion counts as contact with a client.
CONTACT_TYPES = ("call", "meeting", "email")
DEAL_RULES = "pipeline_deal"  # the record-rule key of Deal


@dataclass
class WorkloadRow:
    """One salesperson's line on the board."""

    user: User
    open_deals: int = 0
    overdue_activities: int = 0
    without_next_step: int = 0
    stale_deals: int = 0
    last_contact_at: datetime | None = None
    capacity: int = DEFAULT_CAPACITY
    days_since_contact: int | None = None

    @property
    def capacity_used(self) -> float:
        """Share of the capacity in use (1.0 = full); 0 when the capacity is 0 and nothing
        is held, else "over" as a large share."""
        if self.capacity <= 0:
            return 0.0 if self.open_deals == 0 else float(self.open_deals)
        return self.open_deals / self.capacity

    @property
    def at_capacity(self) -> bool:
        return self.open_deals >= self.capacity


def _team_ids(user_id: int) -> Select:
    return select(Team.id).where(or_(
        Team.manager_id == user_id,
        Team.id.in_(select(TeamMember.team_id).where(TeamMember.user_id == user_id))))


def _teammate_ids(user_id: int) -> Select:
    teams = _team_ids(user_id)
    return select(TeamMember.user_id).where(TeamMember.team_id.in_(teams)).union(
        select(Team.manager_id).where(Team.id.in_(teams), Team.manager_id.is_not(None)))


def people_clause(column: Any, user: User) -> Any:
    """A condition on a user-id column keeping the people whose deals `user` may see:
    everyone (scope "all"), their teams' people ("team") or only themselves ("own")."""
    scope = scope_for(user, DEAL_RULES)
    if scope == "all":
        return true()
    if scope == "team":
        return or_(column == user.id, column.in_(_teammate_ids(user.id)))
    if scope == "own":
        return column == user.id
    return false()


def can_see_workload(user: User) -> bool:
    """Sales managers: `pipeline.manage` or the manager of a team."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.has_permission("pipeline.manage"):
        return True
    return db.session.scalar(select(func.count(Team.id)).where(Team.manager_id == user.id)) > 0


def people_for(user: User, team_id: int | None = None) -> list[User]:
    """The active people `user` may see on the board (and filter reports by), by name.

    Scope "all": members and managers of any team plus anyone owning an open deal; "team":
    the user's teammates and themselves; a team manager without `pipeline.manage`: the members
    of the teams they manage and themselves.
    """
    query = select(User).where(User.active.is_(True))
    if user.has_permission("pipeline.manage") or user.is_admin:
        scope = scope_for(user, DEAL_RULES)
        if scope == "all":
            query = query.where(or_(
                User.id.in_(select(TeamMember.user_id)),
                User.id.in_(select(Team.manager_id).where(Team.manager_id.is_not(None))),
                User.id.in_(select(Deal.owner_id).join(Stage, Stage.id == Deal.stage_id)
                            .where(Deal.active.is_(True), Stage.kind == "open"))))
        else:
            query = query.where(people_clause(User.id, user))
    elif scope_for(user, DEAL_RULES) == "own" and not _manages_any(user):
        query = query.where(User.id == user.id)
    else:
        query = query.where(or_(User.id == user.id,
                                User.id.in_(managed_member_ids(user.id))))
    if team_id is not None:
        query = query.where(or_(
            User.id.in_(select(TeamMember.user_id).where(TeamMember.team_id == team_id)),
            User.id.in_(select(Team.manager_id).where(Team.id == team_id))))
    return list(db.session.scalars(query.order_by(User.name, User.login)))


def _manages_any(user: User) -> bool:
    return db.session.scalar(select(func.count(Team.id)).where(Team.manager_id == user.id)) > 0


def team_choices(user: User) -> list[Team]:
    """Teams `user` may filter by: all of them for scope "all", else their own."""
    query = select(Team).order_by(Team.name)
    if not user.is_admin and scope_for(user, DEAL_RULES) != "all":
        query = query.where(Team.id.in_(_team_ids(user.id)))
    return list(db.session.scalars(query))


def workload(people: list[User], now: datetime) -> list[WorkloadRow]:
    """The board's rows for `people` at `now`: three grouped queries, whatever their number."""
    rows = {person.id: WorkloadRow(user=person) for person in people}
    if not rows:
        return []
    ids = list(rows)
    now = as_utc(now)
    deals = db.session.execute(
        select(Deal.owner_id, func.count(Deal.id),
               func.sum(case((Deal.next_activity_at.is_(None), 1), else_=0)),
               func.sum(case((Deal.stale.is_(True), 1), else_=0)),
               func.max(Deal.last_activity_at))
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Deal.owner_id.in_(ids), Deal.active.is_(True), Stage.kind == "open")
        .group_by(Deal.owner_id))
    for owner_id, count, without, stale, last in deals:
        row = rows[owner_id]
        row.open_deals, row.without_next_step = int(count), int(without or 0)
        row.stale_deals = int(stale or 0)
        row.last_contact_at = as_utc(last) if last is not None else None
    contact = and_(Activity.done_at.is_not(None), ActivityType.code.in_(CONTACT_TYPES))
    activities = db.session.execute(
        select(Activity.assignee_id,
               func.sum(case((and_(Activity.done_at.is_(None), Activity.due_at < now), 1),
                             else_=0)),
               func.max(case((contact, Activity.done_at), else_=None)))
        .join(ActivityType, ActivityType.id == Activity.type_id)
        .where(Activity.assignee_id.in_(ids))
        .group_by(Activity.assignee_id))
    for assignee_id, overdue, last_done in activities:
        row = rows[assignee_id]
        row.overdue_activities = int(overdue or 0)
        if last_done is not None:
            last_done = as_utc(_as_datetime(last_done))
            if row.last_contact_at is None or last_done > row.last_contact_at:
                row.last_contact_at = last_done
    for user_id, limit in capacities(list(ids)).items():
        rows[user_id].capacity = limit
    for row in rows.values():
        if row.last_contact_at is not None:
            row.days_since_contact = max((now - row.last_contact_at).days, 0)
    return [rows[person.id] for person in people]


def _as_datetime(value: Any) -> datetime:
    """SQLite hands MAX() over a CASE back as text; PostgreSQL as a datetime."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
