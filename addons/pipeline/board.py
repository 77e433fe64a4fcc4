"""Queries behind the kanban board and the deal list, built to stay fast with 50k deals.

The board never loads a whole pipeline: each column's top N cards come from a LIMIT query over
the board index (`pipeline_id, active, stage_id, sequence, id`), all columns in ONE statement
(`column_cards`), so the number of queries depends neither on the number of deals nor on the
number of stages; each column's count and sums per currency come from ONE query over the
totals the database keeps per stage, currency, owner and team (`totals`: a few hundred rows
whatever the number of deals), or, for a filter those totals cannot answer (a tag, a search),
ONE `GROUP BY stage_id, currency` over the deals. Totals never mix currencies; a converted
total in the company currency, at today's dated rates (`core.refdata.rate_on`, one lookup per
currency on the board), is shown beside them.

Every query carries `core.security.rule_clause` (`rule_clause_on` for the kept totals), so the
record rules (own / team / all) apply to the cards, the counts, the sums, the list and the
export alike.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, lru_cache
from typing import Any, NamedTuple

from babel.numbers import get_currency_precision
from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    func,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from addons.contacts.models import Partner
from core.api import (
    User,
    company_currency,
    db,
    read,
    rule_clause,
    rule_clause_on,
    shared_cache,
)

from .models import Deal, DealTag, Pipeline, Stage, Tag
from .totals import KEPT, KEPT_COLUMNS, DealTotal

__all__ = ["BoardColumn", "DealFilters", "board_columns", "card_rows", "converted_total",
           "deal_list", "kept_totals_statement"]

#: Cards loaded per column; the rest is counted ("and 1 234 more").
DEFAULT_CARDS = 50


@dataclass
class DealFilters:
    """The filters the board, the list and the export share (from the query string)."""

    owner: int | None = None
    team: int | None = None
    tag: int | None = None
    no_next: bool = False
    q: str = ""
    stage: int | None = None
    #: Only deals in an open stage (not won, not lost): the dashboard's "open deals" links.
    open: bool = False
    #: Only deals nobody owns (`owner=none`): the pool that stale-deal rotation fills when
    #: nobody in the team can take a reclaimed deal.
    unassigned: bool = False

    @classmethod
    def parse(cls, args: Mapping[str, Any]) -> DealFilters:
        def number(key: str) -> int | None:
            try:
                value = int(args.get(key) or 0)
            except (TypeError, ValueError):
                return None
            return value or None

        unassigned = str(args.get("owner") or "") == "none"
        return cls(owner=None if unassigned else number("owner"), team=number("team"),
                   tag=number("tag"),
                   no_next=str(args.get("no_next") or "") in ("1", "on", "true", "yes"),
                   q=str(args.get("q") or "").strip()[:100], stage=number("stage"),
                   open=str(args.get("open") or "") in ("1", "on", "true", "yes"),
                   unassigned=unassigned)

    def args(self) -> dict[str, Any]:
        """Non-empty filters as query-string arguments (for links that keep them)."""
        values = {"owner": "none" if self.unassigned else self.owner, "team": self.team,
                  "tag": self.tag,
                  "no_next": "1" if self.no_next else None, "q": self.q or None,
                  "stage": self.stage, "open": "1" if self.open else None}
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.args())

    def apply(self, stmt: Select) -> Select:
        conditions = self.conditions(Deal)
        return stmt.where(*conditions) if conditions else stmt

    def conditions(self, columns: Any) -> list[Any]:
        """The filters as conditions over `columns`: `Deal`, or the kept totals' columns
        (`totals.KEPT`), which lack the deal's own (id, title, next activity): AttributeError
        when a filter needs one of those."""
        found = []
        if self.owner:
            found.append(columns.owner_id == self.owner)
        if self.unassigned:
            found.append(columns.owner_id.is_(None))
        if self.team:
            found.append(columns.team_id == self.team)
        if self.tag:
            found.append(columns.id.in_(select(DealTag.deal_id).where(
                DealTag.tag_id == self.tag)))
        if self.no_next:
            found.append(columns.next_activity_at.is_(None))
        if self.q:
            found.append(func.lower(columns.title).contains(self.q.lower(), autoescape=True))
        if self.stage:
            found.append(columns.stage_id == self.stage)
        if self.open:
            found.append(columns.stage_id.in_(select(Stage.id).where(Stage.kind == "open")))
        return found


class Card:
    """What a card or a list row shows: the deal and a few joined names, as plain attributes
    (no lazy loads in the template; slots: a board builds hundreds per page)."""

    __slots__ = ("company_name", "deal", "owner_name", "partner_name", "tags")

    def __init__(self, deal: Any, partner_name: str | None, company_name: str | None,
                 owner_name: str | None, tags: list[Any] | None = None) -> None:
        self.deal = deal
        self.partner_name = partner_name
        self.company_name = company_name
        self.owner_name = owner_name
        self.tags = tags if tags is not None else []

    @property
    def client(self) -> str:
        """"Company · person", whichever the deal names."""
        return " · ".join(n for n in (self.company_name, self.partner_name) if n)

    @property
    def needs_next_step(self) -> bool:
        """Open and nothing planned: flagged on the card (seed 001: no deal is forgotten)."""
        return self.deal.next_activity_at is None and self.deal.stage.kind == "open"


@dataclass
class BoardColumn:
    stage: Any  # BoardStage (a Stage's columns)
    cards: list[Card]
    count: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)  # currency -> sum
    converted: Decimal | None = None  # in the company currency; None: a rate is missing
    missing_rates: list[str] = field(default_factory=list)

    @property
    def more(self) -> int:
        return max(self.count - len(self.cards), 0)


# Statements are built once per record rule and filters and then reused: the rule clause is
# the same object for the same user and scope (`core.security`), so the select built on it is
# looked up here instead of rebuilt, and SQLAlchemy computes the SQL cache key of a reused
# statement once, not on every request (for a manager's board or list, walking the rule's
# team subqueries cost more than running the query). Values a request varies (page, stage
# ids) are part of the key; the caches are bounded.
_STATEMENTS = 1024


def _visible_deals(user: User | None, filters: DealFilters) -> Select:
    """Active deals the user may see (record rules), filtered."""
    return _visible(rule_clause(Deal, user), astuple(filters))


@lru_cache(maxsize=_STATEMENTS)
def _visible(rule: Any, filters: tuple[Any, ...]) -> Select:
    stmt = select(Deal).where(Deal.active.is_(True))
    return DealFilters(*filters).apply(stmt if rule is None else stmt.where(rule))


@lru_cache(maxsize=_STATEMENTS)
def _in_pipeline(stmt: Select, pipeline_id: int | None) -> Select:
    return stmt.where(Deal.pipeline_id == pipeline_id) if pipeline_id else stmt


#: Built once: fresh aliases per call would cost SQLAlchemy an adaptation per column.
_PERSON = aliased(Partner, name="card_person")
_COMPANY = aliased(Partner, name="card_company")
_OWNER = aliased(User, name="card_owner")


def card_rows(stmt: Select) -> list[Card]:
    """Cards for `select(Deal)...`: partner, company and owner names in the same query."""
    person, company, owner = _PERSON, _COMPANY, _OWNER
    rows = db.session.execute(
        stmt.outerjoin(person, person.id == Deal.partner_id)
        .outerjoin(company, company.id == Deal.company_id)
        .outerjoin(owner, owner.id == Deal.owner_id)
        .add_columns(person.name, company.name, owner.name, owner.login)).all()
    return [Card(deal, partner, company_name, owner_name or login)
            for deal, partner, company_name, owner_name, login in rows]


class CardTag(NamedTuple):
    """A tag as a card and the export show it."""

    id: int
    name: str
    color: str | None


def attach_tags(cards: list[Card]) -> None:
    """Every card's tags with one query."""
    ids = [c.deal.id for c in cards]
    if not ids:
        return
    dialect = db.session.get_bind().dialect.name
    # One parameter for all ids (an array, a JSON list on SQLite): a board's 300 ids as 300
    # parameters cost the driver and SQLAlchemy more than the query itself.
    by_deal: dict[int, list[CardTag]] = {}
    for deal_id, tag_id, name, color in read(
            _tags_statement(dialect),
            {"deal_ids": ids if dialect == "postgresql" else json.dumps(ids)}).all():
        by_deal.setdefault(deal_id, []).append(CardTag(tag_id, name, color))
    for card in cards:
        card.tags = by_deal.get(card.deal.id, [])


@lru_cache(maxsize=4)
def _tags_statement(dialect: str) -> Select:
    if dialect == "postgresql":
        among = DealTag.deal_id == any_(bindparam("deal_ids", type_=ARRAY(Integer)))
    else:
        listed = func.json_each(bindparam("deal_ids", type_=String)).table_valued("value")
        among = DealTag.deal_id.in_(select(listed.c.value))
    return select(DealTag.deal_id, Tag.id, Tag.name, Tag.color) \
        .join(Tag, Tag.id == DealTag.tag_id).where(among).order_by(Tag.name)


@dataclass(slots=True, eq=False)  # identity, as the ORM deals it stands in for
class CardDeal:
    """The few deal columns a card shows, read without building ORM objects: a board shows
    hundreds of cards and identity-mapped entities cost several times more."""

    id: int
    title: str
    amount: Decimal
    currency: str
    version: int
    stale: bool
    next_activity_at: Any
    stage_id: int
    expected_close: date | None
    probability: int | None
    sequence: int
    stage: Any  # BoardStage on the board, StageInfo on the list

    @property
    def effective_probability(self) -> int:
        return self.probability if self.probability is not None else self.stage.probability


_CARD_COLUMNS = (Deal.id, Deal.title, Deal.amount, Deal.currency, Deal.version, Deal.stale,
                 Deal.next_activity_at, Deal.stage_id, Deal.expected_close, Deal.probability,
                 Deal.sequence, _PERSON.name.label("card_person_name"),
                 _COMPANY.name.label("card_company_name"), _OWNER.name.label("card_owner_name"),
                 _OWNER.login.label("card_owner_login"))


def _card_select(stmt: Select) -> Select:
    """`stmt` (a `select(Deal)`: its WHERE, ORDER BY, LIMIT) reading the card columns."""
    person, company, owner = _PERSON, _COMPANY, _OWNER
    return stmt.with_only_columns(*_CARD_COLUMNS, maintain_column_froms=True) \
        .outerjoin(person, person.id == Deal.partner_id) \
        .outerjoin(company, company.id == Deal.company_id) \
        .outerjoin(owner, owner.id == Deal.owner_id)


def _cards_of(rows: Any, stages: Mapping[int, Any]) -> list[Card]:
    return [Card(CardDeal(i, title, amount, currency, version, stale, next_at, stage_id,
                          close, probability, sequence, stages[stage_id]),
                 person, company, owner or login)
            for (i, title, amount, currency, version, stale, next_at, stage_id, close,
                 probability, sequence, person, company, owner, login) in rows]


def column_cards(base: Select, stages: Mapping[int, Any], stage_ids: list[int],
                 per_column: int) -> dict[int, list[Card]]:
    """The top `per_column` cards of each stage in ONE statement, each stage's cards read
    by an index-ordered LIMIT query (the board index: it stops after `per_column` rows), so
    a board pays one round trip and one result, not one per column.

    PostgreSQL runs that query per stage through a LATERAL join (one copy of the record
    rule, a short statement its driver caches); SQLite, which has no LATERAL, gets a
    UNION ALL of one such query per stage.
    """
    if not stage_ids:
        return {}
    stmt = _columns_statement(base, tuple(stage_ids), per_column,
                              db.session.get_bind().dialect.name)
    by_stage: dict[int, list[Card]] = {stage_id: [] for stage_id in stage_ids}
    # `.all()`: one fetchall; iterating the result steps SQLite once per row, 2-3x slower.
    for card in _cards_of(read(stmt).all(), stages):
        by_stage[card.deal.stage_id].append(card)
    for found in by_stage.values():  # neither promises an order across stages: sort again
        found.sort(key=_card_order)
    return by_stage


@lru_cache(maxsize=_STATEMENTS)
def _columns_statement(base: Select, stage_ids: tuple[int, ...], per_column: int,
                       dialect: str) -> Select:
    cards = _card_select(base)
    if dialect == "postgresql":
        wanted = select(Stage.id).where(Stage.id.in_(stage_ids)).subquery()
        top = cards.where(Deal.stage_id == wanted.c.id).order_by(Deal.sequence, Deal.id) \
            .limit(per_column).lateral()
        return select(top).select_from(wanted).join(top, true())
    parts = [cards.where(Deal.stage_id == stage_id).order_by(Deal.sequence, Deal.id)
             .limit(per_column) for stage_id in stage_ids]
    return parts[0] if len(parts) == 1 else union_all(*(select(p.subquery()) for p in parts))


def _card_order(card: Card) -> tuple[int, int]:
    return card.deal.sequence, card.deal.id


def board_columns(pipeline: Pipeline, user: User | None, filters: DealFilters, *,
                  per_column: int = DEFAULT_CARDS, on_date: date | None = None,
                  cards: bool = True) -> list[BoardColumn]:
    """The columns of `pipeline` with their top cards (none when `cards` is false: the
    totals the board refreshes after a move), counts and totals per currency."""
    stages = board_stages(pipeline.id)
    by_stage = {s.id: s for s in stages}
    base = _in_pipeline(_visible_deals(user, filters), pipeline.id)
    columns = {s.id: BoardColumn(s, []) for s in stages}
    # A folded column shows its count and totals only.
    if cards:
        found = column_cards(base, by_stage, [s.id for s in stages if not s.folded],
                             per_column)
        for stage_id, shown in found.items():
            columns[stage_id].cards = shown
        attach_tags([card for shown in found.values() for card in shown])
    for stage_id, currency, count, amount in _column_totals(base, pipeline, user, filters):
        column = columns.get(stage_id)
        if column is None:
            continue
        column.count += count
        column.totals[currency] = column.totals.get(currency, Decimal(0)) + amount
    rates = _rates({c for col in columns.values() for c in col.totals}, on_date)
    for column in columns.values():
        column.totals = dict(sorted(column.totals.items()))
        column.converted, column.missing_rates = converted_total(column.totals, rates)
    return [columns[s.id] for s in stages]


class BoardStage(NamedTuple):
    """A stage as the board shows it, read as plain columns (`Stage`'s attribute names)."""

    id: int
    pipeline_id: int
    name: str
    labels: dict | None
    sequence: int
    probability: int
    color: str | None
    folded: bool
    kind: str


@cache
def _stages_statement() -> Select:
    return select(*(getattr(Stage, name) for name in BoardStage._fields)) \
        .where(Stage.pipeline_id == bindparam("pipeline_id")).order_by(Stage.sequence, Stage.id)


@shared_cache(Stage)
def board_stages(pipeline_id: int) -> tuple[BoardStage, ...]:
    """The pipeline's stages in board order, read once per worker until a stage changes
    (`core.cache`): every board and every move's sums read them."""
    return tuple(BoardStage(*row) for row in read(_stages_statement(),
                                                  {"pipeline_id": pipeline_id}).all())


def _column_totals(base: Select, pipeline: Pipeline, user: User | None,
                   filters: DealFilters) -> list[tuple[int, str, int, Decimal]]:
    """(stage, currency, deals, amount) for the deals `base` selects (the cards' WHERE:
    record rules, filters): from the kept totals (`totals`) when the rule and the filters
    read only columns they keep, else counted and summed over the deals."""
    kept = kept_totals_statement(pipeline.id, user, filters)
    if kept is not None:
        return [(stage_id, currency, int(count), Decimal(cents).scaleb(-2))
                for stage_id, currency, count, cents in read(kept).all()]
    return [(stage_id, currency, int(count), Decimal(amount))
            for stage_id, currency, count, amount in read(_counted_totals(base)).all()]


@lru_cache(maxsize=_STATEMENTS)
def _counted_totals(base: Select) -> Select:
    return base.with_only_columns(Deal.stage_id, Deal.currency, func.count(),
                                  func.coalesce(func.sum(Deal.amount), 0)) \
        .group_by(Deal.stage_id, Deal.currency)


def kept_totals_statement(pipeline_id: int, user: User | None,
                          filters: DealFilters) -> Select | None:
    """(stage, currency, deals, cents) of the board's deals (active, in the pipeline, record
    rules, filters) from the kept totals; None when the rule or a filter reads a column they
    do not keep."""
    try:
        rule = rule_clause_on(Deal, KEPT, user)
    except LookupError:
        return None
    return _kept_totals(rule, astuple(filters), pipeline_id)


@lru_cache(maxsize=_STATEMENTS)
def _kept_totals(rule: Any, filters: tuple[Any, ...], pipeline_id: int) -> Select | None:
    try:
        wanted = DealFilters(*filters).conditions(KEPT_COLUMNS)
    except AttributeError:
        return None
    kept = DealTotal.__table__.c
    where = [kept.pipeline_id == pipeline_id, kept.active.is_(True), *wanted]
    return select(kept.stage_id, kept.currency, func.sum(kept.deals), func.sum(kept.cents)) \
        .where(*where, *([] if rule is None else [rule])) \
        .group_by(kept.stage_id, kept.currency)


def _rates(currencies: set[str], on_date: date | None) -> dict[str, Decimal | None]:
    """Company-currency units per unit of each currency: its latest rate on or before the
    date (`core.refdata.rate_on`'s rule), for every currency of the board in ONE query."""
    target = company_currency()
    day = on_date or date.today()
    wanted = sorted(c.upper() for c in currencies if c.upper() != target)
    rates: dict[str, Decimal | None] = {c: None for c in wanted}
    rates[target] = Decimal(1)
    if wanted:
        for code, rate in read(_rates_statement(tuple(wanted)), {"day": day}).all():
            rates[code] = Decimal(rate)
    return rates


@lru_cache(maxsize=256)
def _rates_statement(currencies: tuple[str, ...]) -> Select:
    from core.api import ExchangeRate

    latest = select(ExchangeRate.currency_code, func.max(ExchangeRate.on_date).label("day")) \
        .where(ExchangeRate.currency_code.in_(currencies),
               ExchangeRate.on_date <= bindparam("day", type_=Date)) \
        .group_by(ExchangeRate.currency_code).subquery()
    return select(ExchangeRate.currency_code, ExchangeRate.rate).join(
        latest, (latest.c.currency_code == ExchangeRate.currency_code)
        & (latest.c.day == ExchangeRate.on_date))


def converted_total(totals: Mapping[str, Decimal], rates: Mapping[str, Decimal | None]
                    ) -> tuple[Decimal | None, list[str]]:
    """The sum of `totals` in the company currency, rounded to its decimals, and the
    currencies without a rate (then the sum is None: a partial total would mislead)."""
    target = company_currency()
    missing = sorted(c for c in totals if rates.get(c) is None and c != target)
    if missing:
        return None, missing
    value = sum((Decimal(amount) * (Decimal(1) if code == target else rates[code])
                 for code, amount in totals.items()), Decimal(0))
    quantum = Decimal(1).scaleb(-get_currency_precision(target))
    return value.quantize(quantum, rounding=ROUND_HALF_UP), []


def deal_list(user: User | None, filters: DealFilters, *, pipeline_id: int | None = None,
              page: int = 1, per_page: int = 50) -> tuple[list[Card], bool]:
    """A page of deals (newest first) and whether another page follows; no COUNT(*)."""
    stmt = _list_statement(_in_pipeline(_visible_deals(user, filters), pipeline_id),
                           (max(page, 1) - 1) * per_page, per_page + 1)
    stages = {info.id: info for info in _stage_infos()}
    cards = _cards_of(read(stmt).all(), stages)
    return cards[:per_page], len(cards) > per_page


class StageInfo(NamedTuple):
    """What a list row shows of its stage, read as plain columns (no ORM entities)."""

    id: int
    name: str
    labels: dict | None
    probability: int
    kind: str


@shared_cache(Stage)
def _stage_infos() -> tuple[StageInfo, ...]:
    """Every stage, read once per worker until one changes (`core.cache`): each list page
    names its rows' stages."""
    return tuple(StageInfo(*row) for row in read(
        select(Stage.id, Stage.name, Stage.labels, Stage.probability, Stage.kind)).all())


@lru_cache(maxsize=_STATEMENTS)
def _list_statement(visible: Select, offset: int, limit: int) -> Select:
    return _card_select(visible.order_by(Deal.id.desc()).offset(offset).limit(limit))


def export_rows(user: User | None, filters: DealFilters, *, pipeline_id: int | None = None,
                batch: int = 1000):
    """Every matching deal as a Card, streamed in batches of `batch` (keyset on id)."""
    last = None
    stages = {s.id: s for s in db.session.scalars(select(Stage))}
    while True:
        stmt = _visible_deals(user, filters)
        if pipeline_id:
            stmt = stmt.where(Deal.pipeline_id == pipeline_id)
        if last is not None:
            stmt = stmt.where(Deal.id > last)
        cards = card_rows(stmt.order_by(Deal.id).limit(batch))
        if not cards:
            return
        attach_tags(cards)
        for card in cards:
            set_committed_value(card.deal, "stage", stages[card.deal.stage_id])
            yield card
        last = cards[-1].deal.id

