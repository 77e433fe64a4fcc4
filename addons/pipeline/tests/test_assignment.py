"""Lead assignment: round robin among the pipeline's team skipping people at capacity, and
territory/language rules; every assignee is notified (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from addons.pipeline.assignment import choose_assignee
from addons.pipeline.leads import create_lead
from addons.pipeline.models import AssignmentRule, Capacity, Deal, Pipeline
from addons.pipeline.state import create_deal, seed_defaults
from core.api import Notification, Team, db
from core.security import TeamMember

pytestmark = pytest.mark.addons("pipeline")


def team_of(name: str, *users) -> Team:
    team = Team(name=name)
    db.session.add(team)
    db.session.flush()
    for user in users:
        db.session.add(TeamMember(team_id=team.id, user_id=user.id))
    db.session.commit()
    return team


def sales_team(make_user, *logins: str) -> tuple[Pipeline, list]:
    users = [make_user(login) for login in logins]
    pipeline = seed_defaults()
    pipeline.team_id = team_of("Sales floor", *users).id
    db.session.commit()
    return pipeline, users


def new_lead(pipeline: Pipeline, name: str, **fields):
    lead = create_lead(channel="web", pipeline=pipeline, name=name, email=None, **fields)
    db.session.commit()
    return lead


def open_deals(pipeline: Pipeline, owner, count: int) -> None:
    for number in range(count):
        create_deal(title=f"Deal {number}", pipeline=pipeline, owner_id=owner.id)
    db.session.commit()


def notifications(user) -> list[Notification]:
    return db.session.scalars(select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).all()


def test_round_robin_takes_turns_in_the_team_and_notifies_each_assignee(app, make_user):
    pipeline, (anna, bruno, carl) = sales_team(make_user, "anna", "bruno", "carl")

    owners = [new_lead(pipeline, f"Client {i}").owner_id for i in range(4)]

    assert owners == [anna.id, bruno.id, carl.id, anna.id]
    assert [len(notifications(u)) for u in (anna, bruno, carl)] == [2, 1, 1]
    [first, _second] = notifications(anna)
    assert "Client 0" in first.text
    assert first.link.startswith("/pipeline/leads/")


def test_round_robin_skips_a_salesperson_at_capacity(app, make_user):
    pipeline, (anna, bruno, carl) = sales_team(make_user, "anna", "bruno", "carl")
    db.session.add(Capacity(user_id=bruno.id, live_deals=2))
    db.session.commit()
    open_deals(pipeline, bruno, 2)

    owners = [new_lead(pipeline, f"Client {i}").owner_id for i in range(3)]

    assert owners == [anna.id, carl.id, anna.id]
    assert notifications(bruno) == []


def test_closed_deals_do_not_count_against_capacity(app, make_user):
    pipeline, (anna, bruno) = sales_team(make_user, "anna", "bruno")
    db.session.add(Capacity(user_id=anna.id, live_deals=1))
    won = next(s for s in pipeline.stages if s.kind == "won")
    create_deal(title="Signed", stage=won, owner_id=anna.id, amount="900")
    db.session.commit()

    assert new_lead(pipeline, "Client").owner_id == anna.id

    open_deals(pipeline, anna, 1)
    assert new_lead(pipeline, "Next client").owner_id == bruno.id


def test_nobody_is_picked_when_the_whole_team_is_full(app, make_user):
    pipeline, (anna,) = sales_team(make_user, "anna")
    db.session.add(Capacity(user_id=anna.id, live_deals=1))
    db.session.commit()
    open_deals(pipeline, anna, 1)

    lead = new_lead(pipeline, "Client")

    assert lead.owner_id is None
    assert db.session.scalar(select(Deal.id).where(Deal.owner_id != anna.id)) is None


def test_territory_rules_route_by_country_then_language_then_the_team(app, make_user):
    pipeline, (anna, bruno) = sales_team(make_user, "anna", "bruno")
    dace = make_user("dace")
    olga, pavel = make_user("olga"), make_user("pavel")
    russian = team_of("Russian desk", olga, pavel)
    pipeline.assignment = "territory"
    db.session.add_all([
        AssignmentRule(pipeline_id=pipeline.id, sequence=10, country="LV", user_id=dace.id),
        AssignmentRule(pipeline_id=pipeline.id, sequence=20, lang="ru", team_id=russian.id),
    ])
    db.session.commit()

    latvian = new_lead(pipeline, "Jānis", country="LV", lang="lv")
    russian_1 = new_lead(pipeline, "Иван", lang="ru")
    russian_2 = new_lead(pipeline, "Пётр", lang="ru_KZ")
    other = new_lead(pipeline, "John", lang="en", country="GB")

    assert latvian.owner_id == dace.id
    assert {russian_1.owner_id, russian_2.owner_id} == {olga.id, pavel.id}
    assert other.owner_id in (anna.id, bruno.id)
    assert len(notifications(dace)) == 1


def test_a_rule_whose_user_is_at_capacity_falls_through_to_the_next(app, make_user):
    pipeline, (anna,) = sales_team(make_user, "anna")
    dace = make_user("dace")
    pipeline.assignment = "territory"
    db.session.add(AssignmentRule(pipeline_id=pipeline.id, country="LV", user_id=dace.id))
    db.session.add(Capacity(user_id=dace.id, live_deals=1))
    db.session.commit()
    open_deals(pipeline, dace, 1)

    assert choose_assignee(pipeline, country="LV", lang="lv").id == anna.id


def test_round_robin_ignores_territory_rules(app, make_user):
    pipeline, (anna, bruno) = sales_team(make_user, "anna", "bruno")
    dace = make_user("dace")
    db.session.add(AssignmentRule(pipeline_id=pipeline.id, country="LV", user_id=dace.id))
    db.session.commit()

    assert new_lead(pipeline, "Jānis", country="LV").owner_id == anna.id
