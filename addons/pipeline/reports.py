"""Sales analytics as plain grouped queries (seeds 002 and 004): funnel, win/loss, cycle length,
revenue won, activities done per salesperson, and the forecast.

Why it works this way:

- **Every report goes through the record rules.** Deal queries are `scoped(..., model=Deal)`;
  per-person figures (activities) keep only the people whose deals the user may see. A
  salesperson's reports therefore show their own deals, a manager's their teams'.
- **One filter for all** (`ReportFilter`): period, team, salesperson, pipeline. The period
  means what a reader expects of each report: deals created in it (funnel), closed in it
  (win/loss, cycle, revenue), activities done in it, deals expected to close in it (forecast).
  Days are UTC days.
- **Money never mixes currencies.** Sums are per currency; the forecast also gives a total
  converted to the company currency at today's rates (`core.refdata`), marked missing when a
  rate is unknown.
- **Few queries, grouped in SQL**, so the forecast and the funnel answer quickly over 50k deals:
  the funnel reads `StageChange` once (the furthest stage each deal reached), the forecast is
  two GROUP BYs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select

from core.activities import Activity, ActivityType, as_utc
from core.api import RateNotFound, User, company_currency, db, rate_on
from core.security import Team, TeamMember, scoped

from .models import Deal, LostReason, Pipeline, Stage, StageChange
from .workload import people_clause

__all__ = [
    "ActivityRow", "CycleReport", "ForecastReport", "FunnelReport", "FunnelStep",
    "ReportFilter", "RevenueReport", "WinLossReport", "activities_done", "cycle_length",
    "forecast", "funnel", "revenue_won", "win_loss",
]

CENT = Decimal("0.01")


def _money(value: Any) -> Decimal:
    """A SQL sum (Decimal on PostgreSQL, float on SQLite) as a Decimal to the cent."""
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    return None if not whole else (Decimal(part) / Decimal(whole))


@dataclass
class ReportFilter:
    """What a reader narrowed the report to; None everywhere means everything they may see."""

    date_from: date | None = None
    date_to: date | None = None
    team_id: int | None = None
    user_id: int | None = None
    pipeline_id: int | None = None

    @property
    def start(self) -> datetime | None:
        return datetime.combine(self.date_from, time.min, UTC) if self.date_from else None

    @property
    def end(self) -> datetime | None:
        """Exclusive: the first moment after the last day."""
        if self.date_to is None:
            return None
        return datetime.combine(self.date_to + timedelta(days=1), time.min, UTC)

    def moment_in(self, column: Any) -> Any:
        conditions = []
        if self.start is not None:
            conditions.append(column >= self.start)
        if self.end is not None:
            conditions.append(column < self.end)
        return and_(*conditions) if conditions else None

    def day_in(self, column: Any) -> Any:
        conditions = []
        if self.date_from is not None:
            conditions.append(column >= self.date_from)
        if self.date_to is not None:
            conditions.append(column <= self.date_to)
        return and_(*conditions) if conditions else None


def _team_people(team_id: int) -> Select:
    return select(TeamMember.user_id).where(TeamMember.team_id == team_id).union(
        select(Team.manager_id).where(Team.id == team_id, Team.manager_id.is_not(None)))


def _deals(stmt: Select, flt: ReportFilter, user: User, *, period: Any = None) -> Select:
    """`stmt` over Deal narrowed by the record rules and the filter (not the period)."""
    stmt = scoped(stmt, user, model=Deal).where(Deal.active.is_(True))
    if flt.pipeline_id is not None:
        stmt = stmt.where(Deal.pipeline_id == flt.pipeline_id)
    if flt.team_id is not None:
        stmt = stmt.where(or_(Deal.team_id == flt.team_id,
                              Deal.owner_id.in_(_team_people(flt.team_id))))
    if flt.user_id is not None:
        stmt = stmt.where(Deal.owner_id == flt.user_id)
    if period is not None:
        stmt = stmt.where(period)
    return stmt


def month_of(column: Any) -> Any:
    """'YYYY-MM' of a date or timestamp column, in the engine's own dialect (SQLite stores
    both as ISO text, whose first seven characters are the month: cheaper than strftime)."""
    if db.engine.dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.substr(column, 1, 7)


def user_names(ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {uid: name or login for uid, name, login in db.session.execute(
        select(User.id, User.name, User.login).where(User.id.in_(wanted)))}


def default_pipeline(user: User, flt: ReportFilter) -> Pipeline | None:
    if flt.pipeline_id is not None:
        return db.session.get(Pipeline, flt.pipeline_id)
    return db.session.scalar(select(Pipeline).where(Pipeline.active.is_(True))
                             .order_by(Pipeline.sequence, Pipeline.id).limit(1))


# -- funnel ----------------------------------------------------------------------------------
@dataclass
class FunnelStep:
    stage: Stage
    reached: int = 0  # deals that got at least this far
    lost_here: int = 0  # ... and were lost from here
    open_here: int = 0  # ... and are still open at this stage
    conversion: Decimal | None = None  # share of these that reached the next step


@dataclass
class FunnelReport:
    pipeline: Pipeline | None
    steps: list[FunnelStep] = field(default_factory=list)
    deals: int = 0

    @property
    def overall(self) -> Decimal | None:
        """Share of the cohort that reached the last step (normally Won)."""
        if not self.steps:
            return None
        return _ratio(self.steps[-1].reached, self.steps[0].reached)


def funnel(flt: ReportFilter, user: User) -> FunnelReport:
    """Deals created in the period, by the furthest open/won stage their history reached.

    "Reached" is cumulative: a deal that went New -> Proposal -> Lost counts for New, Qualified
    (skipped stages are passed) and Proposal. Conversion is reached(next) / reached(this).
    """
    pipeline = default_pipeline(user, flt)
    report = FunnelReport(pipeline=pipeline)
    if pipeline is None:
        return report
    stages = [s for s in pipeline.stages if s.kind != "lost"]
    ranks = {stage.id: index for index, stage in enumerate(stages)}
    if not ranks:
        return report
    kinds = {stage.id: stage.kind for stage in pipeline.stages}
    furthest_rank = func.max(case(ranks, value=StageChange.to_stage_id))
    per_deal = _deals(
        select(StageChange.deal_id.label("deal_id"), Deal.stage_id.label("stage_id"),
               furthest_rank.label("furthest"))
        .join(Deal, Deal.id == StageChange.deal_id)
        .group_by(StageChange.deal_id, Deal.stage_id),
        ReportFilter(team_id=flt.team_id, user_id=flt.user_id, pipeline_id=pipeline.id), user,
        period=flt.moment_in(Deal.created_at)).subquery()
    rows = db.session.execute(
        select(per_deal.c.furthest, per_deal.c.stage_id, func.count())
        .group_by(per_deal.c.furthest, per_deal.c.stage_id))
    furthest: dict[int, int] = defaultdict(int)
    lost: dict[int, int] = defaultdict(int)
    still_open: dict[int, int] = defaultdict(int)
    for rank, stage_id, count in rows:
        if rank is None:
            continue
        kind = kinds.get(stage_id)
        furthest[int(rank)] += int(count)
        if kind == "lost":
            lost[int(rank)] += int(count)
        elif kind == "open":
            still_open[int(rank)] += int(count)
    total = 0
    for index in reversed(range(len(stages))):
        total += furthest[index]
        report.steps.insert(0, FunnelStep(stage=stages[index], reached=total,
                                          lost_here=lost[index], open_here=still_open[index]))
    for step, following in zip(report.steps, report.steps[1:], strict=False):
        step.conversion = _ratio(following.reached, step.reached)
    report.deals = report.steps[0].reached if report.steps else 0
    return report


# -- win / loss ------------------------------------------------------------------------------
@dataclass
class WinLossReport:
    won: int = 0
    lost: int = 0
    by_reason: list[tuple[LostReason | None, int]] = field(default_factory=list)
    by_person: list[tuple[int | None, str, int, int]] = field(default_factory=list)

    @property
    def win_rate(self) -> Decimal | None:
        return _ratio(self.won, self.won + self.lost)


def _closed_at() -> Any:
    return func.coalesce(Deal.won_at, Deal.lost_at)


def win_loss(flt: ReportFilter, user: User) -> WinLossReport:
    """Deals won and lost in the period; lost ones by reason; both per salesperson."""
    report = WinLossReport()
    rows = db.session.execute(_deals(
        select(Stage.kind, Deal.lost_reason_id, Deal.owner_id, func.count(Deal.id))
        .join(Stage, Stage.id == Deal.stage_id).where(Stage.kind.in_(("won", "lost")))
        .group_by(Stage.kind, Deal.lost_reason_id, Deal.owner_id), flt, user,
        period=flt.moment_in(_closed_at()))).all()
    reasons: dict[int | None, int] = defaultdict(int)
    people: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for kind, reason_id, owner_id, count in rows:
        count = int(count)
        if kind == "won":
            report.won += count
            people[owner_id][0] += count
        else:
            report.lost += count
            reasons[reason_id] += count
            people[owner_id][1] += count
    known = {r.id: r for r in db.session.scalars(
        select(LostReason).where(LostReason.id.in_([i for i in reasons if i is not None])))}
    report.by_reason = sorted(((known.get(rid) if rid else None, n) for rid, n in reasons.items()),
                              key=lambda item: (-item[1], item[0].sequence if item[0] else 1e9))
    names = user_names(set(people))
    report.by_person = sorted(((uid, names.get(uid, ""), won, lost)
                               for uid, (won, lost) in people.items()),
                              key=lambda item: (-item[2], item[1]))
    return report


# -- sales cycle -----------------------------------------------------------------------------
@dataclass
class CycleReport:
    deals: int = 0
    average_days: Decimal | None = None
    median_days: Decimal | None = None
    by_person: list[tuple[int | None, str, int, Decimal]] = field(default_factory=list)


def _days(start: datetime, end: datetime) -> Decimal:
    seconds = (as_utc(end) - as_utc(start)).total_seconds()
    return (Decimal(seconds) / Decimal(86400)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def cycle_length(flt: ReportFilter, user: User) -> CycleReport:
    """Days from creation to winning, for deals won in the period; per salesperson too."""
    rows = db.session.execute(_deals(
        select(Deal.owner_id, Deal.created_at, Deal.won_at)
        .join(Stage, Stage.id == Deal.stage_id).where(Stage.kind == "won",
                                                      Deal.won_at.is_not(None)),
        flt, user, period=flt.moment_in(Deal.won_at))).all()
    report = CycleReport(deals=len(rows))
    if not rows:
        return report
    days = [_days(created, won) for _owner, created, won in rows]
    report.average_days = (sum(days) / len(days)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    report.median_days = Decimal(median(days)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    per: dict[int | None, list[Decimal]] = defaultdict(list)
    for (owner_id, _created, _won), value in zip(rows, days, strict=True):
        per[owner_id].append(value)
    names = user_names(set(per))
    report.by_person = sorted(
        ((uid, names.get(uid, ""), len(values),
          (sum(values) / len(values)).quantize(Decimal("0.1"), ROUND_HALF_UP))
         for uid, values in per.items()), key=lambda item: (item[3], item[1]))
    return report


# -- revenue won -----------------------------------------------------------------------------
@dataclass
class RevenueReport:
    #: (month "YYYY-MM", currency, deals, amount)
    by_month: list[tuple[str, str, int, Decimal]] = field(default_factory=list)
    #: (user id, name, currency, deals, amount)
    by_person: list[tuple[int | None, str, str, int, Decimal]] = field(default_factory=list)

    def totals(self) -> dict[str, Decimal]:
        result: dict[str, Decimal] = defaultdict(Decimal)
        for _month, currency, _n, amount in self.by_month:
            result[currency] += amount
        return dict(sorted(result.items()))


def revenue_won(flt: ReportFilter, user: User) -> RevenueReport:
    """Amounts won in the period per month and per salesperson, each per currency."""
    report = RevenueReport()
    won = _deals(select(Deal.id).join(Stage, Stage.id == Deal.stage_id)
                 .where(Stage.kind == "won", Deal.won_at.is_not(None)), flt, user,
                 period=flt.moment_in(Deal.won_at)).whereclause
    month = month_of(Deal.won_at)
    for key, currency, count, amount in db.session.execute(
            select(month, Deal.currency, func.count(Deal.id), func.sum(Deal.amount))
            .join(Stage, Stage.id == Deal.stage_id).where(won)
            .group_by(month, Deal.currency).order_by(month, Deal.currency)):
        report.by_month.append((str(key), currency, int(count), _money(amount)))
    rows = db.session.execute(
        select(Deal.owner_id, Deal.currency, func.count(Deal.id), func.sum(Deal.amount))
        .join(Stage, Stage.id == Deal.stage_id).where(won)
        .group_by(Deal.owner_id, Deal.currency)).all()
    names = user_names({r[0] for r in rows})
    report.by_person = sorted(
        ((uid, names.get(uid, ""), currency, int(n), _money(amount))
         for uid, currency, n, amount in rows), key=lambda r: (r[2], -r[4], r[1]))
    return report


# -- activities ------------------------------------------------------------------------------
@dataclass
class ActivityRow:
    user_id: int
    name: str
    by_type: dict[str, int] = field(default_factory=dict)
    done: int = 0
    on_time: int = 0
    overdue: int = 0
    rank: int = 0

    @property
    def on_time_rate(self) -> Decimal | None:
        return _ratio(self.on_time, self.done)


def activities_done(flt: ReportFilter, user: User, now: datetime) -> list[ActivityRow]:
    """Activities done in the period per salesperson and type, how many on time, how many
    are overdue now; ranked by activities done (the seeds' employee rating)."""
    who = people_clause(Activity.assignee_id, user)
    conditions = [who]
    if flt.team_id is not None:
        conditions.append(Activity.assignee_id.in_(_team_people(flt.team_id)))
    if flt.user_id is not None:
        conditions.append(Activity.assignee_id == flt.user_id)
    period = flt.moment_in(Activity.done_at)
    done = and_(Activity.done_at.is_not(None), *(c for c in [period] if c is not None))
    rows = db.session.execute(
        select(Activity.assignee_id, ActivityType.code,
               func.sum(case((done, 1), else_=0)),
               func.sum(case((and_(done, Activity.done_at <= Activity.due_at), 1), else_=0)),
               func.sum(case((and_(Activity.done_at.is_(None), Activity.due_at < as_utc(now)),
                              1), else_=0)))
        .join(ActivityType, ActivityType.id == Activity.type_id)
        .where(*conditions).group_by(Activity.assignee_id, ActivityType.code)).all()
    names = user_names({r[0] for r in rows})
    people: dict[int, ActivityRow] = {}
    for uid, code, count, on_time, overdue in rows:
        row = people.setdefault(uid, ActivityRow(user_id=uid, name=names.get(uid, "")))
        row.by_type[code or ""] = row.by_type.get(code or "", 0) + int(count or 0)
        row.done += int(count or 0)
        row.on_time += int(on_time or 0)
        row.overdue += int(overdue or 0)
    ordered = sorted(people.values(), key=lambda r: (-r.done, -(r.on_time_rate or 0), r.name))
    previous, rank = None, 0
    for position, row in enumerate(ordered, start=1):
        if row.done != previous:
            rank, previous = position, row.done
        row.rank = rank
    return ordered


# -- forecast --------------------------------------------------------------------------------
@dataclass
class ForecastLine:
    key: str  # "YYYY-MM", "" for no expected date; or the salesperson's name
    currency: str
    deals: int
    amount: Decimal
    weighted: Decimal
    user_id: int | None = None


@dataclass
class ForecastReport:
    by_month: list[ForecastLine] = field(default_factory=list)
    by_person: list[ForecastLine] = field(default_factory=list)
    company_currency: str = "EUR"
    #: month -> weighted total in the company currency (None: a rate is missing)
    converted: dict[str, Decimal | None] = field(default_factory=dict)
    missing_rates: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """currency -> (amount, weighted) over all months."""
        result: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for line in self.by_month:
            result[line.currency][0] += line.amount
            result[line.currency][1] += line.weighted
        return {c: (a, w) for c, (a, w) in sorted(result.items())}


def forecast(flt: ReportFilter, user: User) -> ForecastReport:
    """Open deals' weighted pipeline (amount × effective probability) by expected close month
    and by salesperson, per currency. The effective probability is the deal's own when set,
    else its stage's.

    One query grouped by (month, salesperson, currency), folded into both views here: the
    table is scanned once, and the stage's probability is a CASE over the few open stages
    rather than a join.
    """
    report = ForecastReport(company_currency=company_currency())
    open_stages = dict(db.session.execute(
        select(Stage.id, Stage.probability).where(Stage.kind == "open")).all())
    if not open_stages:
        return report
    probability = func.coalesce(Deal.probability, case(open_stages, value=Deal.stage_id))
    month = month_of(Deal.expected_close)
    query = _deals(
        select(month, Deal.owner_id, Deal.currency, func.count(Deal.id), func.sum(Deal.amount),
               func.sum(Deal.amount * probability))  # / 100 in Python, exactly
        .where(Deal.stage_id.in_(list(open_stages)))
        .group_by(month, Deal.owner_id, Deal.currency), flt, user,
        period=flt.day_in(Deal.expected_close))
    months: dict[tuple[str, str], list[Any]] = {}
    people: dict[tuple[int | None, str], list[Any]] = {}
    for key, owner_id, currency, count, amount, total in db.session.execute(query):
        for bucket, group in ((months, (str(key) if key else "", currency)),
                              (people, (owner_id, currency))):
            sums = bucket.setdefault(group, [0, Decimal(0), Decimal(0)])
            sums[0] += int(count)
            sums[1] += Decimal(str(amount or 0))
            sums[2] += Decimal(str(total or 0))
    report.by_month = sorted(
        (ForecastLine(key, currency, n, _money(amount), _money(total / 100))
         for (key, currency), (n, amount, total) in months.items()),
        key=lambda line: (line.key == "", line.key, line.currency))
    names = user_names({owner_id for owner_id, _currency in people})
    report.by_person = sorted(
        (ForecastLine(names.get(uid, ""), currency, n, _money(amount), _money(total / 100),
                      user_id=uid)
         for (uid, currency), (n, amount, total) in people.items()),
        key=lambda line: (line.currency, -line.weighted, line.key))
    _convert(report)
    return report


def _convert(report: ForecastReport) -> None:
    """Weighted totals per month in the company currency at today's rates (one rate query
    per currency)."""
    target = report.company_currency
    rates: dict[str, Decimal | None] = {}
    for currency in sorted({line.currency for line in report.by_month}):
        try:
            rates[currency] = rate_on(currency) / rate_on(target)
        except RateNotFound:
            rates[currency] = None
            report.missing_rates.append(currency)
    for line in report.by_month:
        rate = rates[line.currency]
        if line.key in report.converted and report.converted[line.key] is None:
            continue
        if rate is None:
            report.converted[line.key] = None
            continue
        report.converted[line.key] = (report.converted.get(line.key) or Decimal(0)) + (
            line.weighted * rate).quantize(CENT, rounding=ROUND_HALF_UP)
