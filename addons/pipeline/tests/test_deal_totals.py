"""The deal totals the triggers keep (`pipeline_deal_total`) always equal counting the deals, and
the board reads them only when its WHERE can be answered from them."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import delete, func, insert, select, update

from addons.pipeline import board as boardq
from addons.pipeline.board import DealFilters, board_columns
from addons.pipeline.models import Deal, DealTag, Tag
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from addons.pipeline.totals import DealTotal, refill
from core.api import Team, db
from core.testing import statements as counted_statements

pytestmark = pytest.mark.addons("pipeline")


def _kept() -> dict[tuple, tuple[int, Decimal]]:
    rows = db.session.execute(select(DealTotal)).scalars()
    return {(t.pipeline_id, bool(t.active), t.stage_id, t.currency, t.owner_key or None,
             t.team_key or None): (t.deals, Decimal(t.cents).scaleb(-2)) for t in rows}


def _counted() -> dict[tuple, tuple[int, Decimal]]:
    rows = db.session.execute(
        select(Deal.pipeline_id, Deal.active, Deal.stage_id, Deal.currency, Deal.owner_id,
               Deal.team_id, func.count(), func.sum(Deal.amount))
        .group_by(Deal.pipeline_id, Deal.active, Deal.stage_id, Deal.currency, Deal.owner_id,
                  Deal.team_id))
    return {(p, bool(a), s, c, o, t): (n, Decimal(amount).quantize(Decimal("0.01")))
            for p, a, s, c, o, t, n, amount in rows}


def test_the_totals_follow_every_kind_of_write_to_the_deals(app, north_team):
    pipeline = seed_defaults()
    db.session.commit()
    stages = {s.name: s for s in pipeline.stages}
    anna, boris = north_team["anna"], north_team["boris"]
    deals = [create_deal(title=f"D{i}", pipeline=pipeline, user=anna if i % 2 else boris,
                         amount=f"{i}0.10", currency="EUR" if i % 3 else "USD")
             for i in range(1, 9)]
    db.session.commit()
    assert _kept() == _counted() and sum(n for n, _a in _kept().values()) == 8

    move_deal(deals[0], stages["Qualified"].id, user=anna)  # stage
    deals[1].owner_id = None  # nobody: the pool
    deals[2].team_id = north_team["team"].id
    deals[3].amount = Decimal("0.30")
    deals[4].currency = "USD"
    deals[5].active = False
    deals[6].title = "Renamed"  # no total changes
    db.session.commit()
    assert _kept() == _counted()

    db.session.delete(deals[7])
    db.session.commit()
    # Core statements, as imports and jobs write, go through the same triggers.
    db.session.execute(insert(Deal).values(
        title="Bulk", pipeline_id=pipeline.id, stage_id=stages["Won"].id, amount=Decimal("7.77"),
        currency="EUR", owner_id=boris.id, active=True, stale=False, sequence=0, version=1))
    db.session.execute(update(Deal).where(Deal.owner_id == boris.id).values(owner_id=anna.id))
    db.session.execute(delete(Deal).where(Deal.title == "D2"))
    db.session.commit()
    assert _kept() == _counted()
    assert all(n > 0 for n, _a in _kept().values())  # a total down to no deal is gone

    # A foreign key's ON DELETE SET NULL is an update too: the deal leaves the team's total.
    temporary = Team(name="Temporary")
    db.session.add(temporary)
    db.session.flush()
    deals[0].team_id = temporary.id
    db.session.commit()
    db.session.execute(delete(Team).where(Team.id == temporary.id))
    db.session.commit()
    assert db.session.get(Deal, deals[0].id).team_id is None
    assert _kept() == _counted()

    # The exact cents, however many small amounts were added and taken away.
    for deal in db.session.scalars(select(Deal)):
        deal.amount = Decimal("0.10")
    db.session.commit()
    for deal in db.session.scalars(select(Deal)):
        deal.amount = Decimal("0.20")
    db.session.commit()
    assert _kept() == _counted()


def test_refill_rebuilds_the_totals_from_the_deals(app, north_team):
    pipeline = seed_defaults()
    db.session.commit()
    for i in range(3):
        create_deal(title=f"D{i}", pipeline=pipeline, user=north_team["anna"], amount="10")
    db.session.commit()
    expected = _kept()
    db.session.execute(delete(DealTotal))
    refill(db.session.connection())
    db.session.commit()
    assert _kept() == expected == _counted()


def _board_totals(pipeline, user, filters):
    return {c.stage.id: (c.count, c.totals) for c in board_columns(pipeline, user, filters,
                                                                    cards=False)}


def test_the_board_reads_the_same_totals_from_the_kept_table_as_from_the_deals(
        app, north_team, monkeypatch):
    pipeline = seed_defaults()
    db.session.commit()
    stages = {s.name: s for s in pipeline.stages}
    people = [north_team[name] for name in ("anna", "boris", "cara", "dan")]
    outsider_team = north_team["team"].id
    for i in range(40):
        deal = create_deal(title=f"D{i}", pipeline=pipeline, user=people[i % 4],
                           amount=f"{i * 7}.{i % 100:02d}", currency=("EUR", "USD", "KZT")[i % 3])
        if i % 5 == 0:
            deal.owner_id = None
            deal.team_id = outsider_team if i % 10 == 0 else None
        if i % 4 == 1:
            move_deal(deal, stages["Proposal"].id, user=people[i % 4])
    db.session.commit()
    cases = [
        (north_team["mara"], DealFilters()),  # a manager: the team's deals
        (north_team["anna"], DealFilters()),  # a salesperson: her own
        (north_team["mara"], DealFilters(owner=people[1].id)),
        (north_team["mara"], DealFilters(unassigned=True)),
        (north_team["mara"], DealFilters(team=outsider_team)),
        (north_team["mara"], DealFilters(open=True, stage=stages["Proposal"].id)),
    ]
    for user, filters in cases:
        kept = _board_totals(pipeline, user, filters)
        with monkeypatch.context() as patched:
            patched.setattr(boardq, "kept_totals_statement", lambda *args: None)
            counted = _board_totals(pipeline, user, filters)
        assert kept == counted, (user.login, filters)
    # And the kept totals really are read for those (one of the cases above, counted).
    with counted_statements() as seen:
        _board_totals(pipeline, north_team["mara"], DealFilters())
    assert any("pipeline_deal_total" in s for s in seen)


def test_filters_the_totals_do_not_keep_count_the_deals(app, north_team):
    pipeline = seed_defaults()
    db.session.commit()
    anna = north_team["anna"]
    tagged = create_deal(title="Tagged", pipeline=pipeline, user=anna, amount="100")
    create_deal(title="Plain", pipeline=pipeline, user=anna, amount="5")
    tag = Tag(name="VIP")
    db.session.add(tag)
    db.session.flush()
    db.session.add(DealTag(deal_id=tagged.id, tag_id=tag.id))
    db.session.commit()
    assert boardq.kept_totals_statement(pipeline.id, anna, DealFilters()) is not None
    for filters in (DealFilters(tag=tag.id), DealFilters(q="tagg"), DealFilters(no_next=True)):
        assert boardq.kept_totals_statement(pipeline.id, anna, filters) is None, filters
    new = board_columns(pipeline, anna, DealFilters(tag=tag.id), cards=False)[0]
    assert new.count == 1 and new.totals == {"EUR": Decimal("100.00")}
    searched = board_columns(pipeline, anna, DealFilters(q="plain"), cards=False)[0]
    assert searched.count == 1 and searched.totals == {"EUR": Decimal("5.00")}
