"""The workload board: per-salesperson figures, a constant number of queries, managers only."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from addons.pipeline.models import Capacity
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from addons.pipeline.workload import people_for, workload
from core.activities import ActivityType, mark_done, schedule_activity, seed_activity_types
from core.api import db
from core.testing import statements

pytestmark = pytest.mark.addons("pipeline")
NOW = datetime.now(UTC)


def _deal(pipeline, owner, title, **fields):
    deal = create_deal(title=title, pipeline=pipeline, owner_id=owner.id)
    for key, value in fields.items():
        setattr(deal, key, value)
    return deal


def test_workload_figures_per_salesperson(north_team):
    anna, boris = north_team["anna"], north_team["boris"]
    pipeline = seed_defaults()
    stages = {s.name: s for s in pipeline.stages}
    _deal(pipeline, anna, "A1", next_activity_at=NOW + timedelta(days=1))
    _deal(pipeline, anna, "A2", last_activity_at=NOW - timedelta(days=5, hours=1))
    _deal(pipeline, anna, "A3")
    won = _deal(pipeline, anna, "A4")
    move_deal(won, stages["Won"], amount="300")
    _deal(pipeline, boris, "B1", stale=True)
    db.session.add(Capacity(user_id=anna.id, live_deals=3))
    seed_activity_types()
    types = {t.code: t for t in db.session.scalars(select(ActivityType))}

    def activity(user, code, due):
        return schedule_activity(type_id=types[code].id, summary=code, due_at=due,
                                 assignee=user, creator=user)

    activity(anna, "task", NOW - timedelta(days=1))  # overdue
    activity(anna, "call", NOW - timedelta(days=7))  # overdue
    activity(anna, "task", NOW + timedelta(days=1))  # not yet due
    call = activity(anna, "call", NOW - timedelta(days=4))
    mark_done(call, by=anna)
    call.done_at = NOW - timedelta(days=4, hours=2)  # the last contact: 4 days ago
    done_task = activity(anna, "task", NOW - timedelta(days=1))
    mark_done(done_task, by=anna)  # a task is no contact with a client
    db.session.commit()

    rows = {row.user.login: row for row in workload([anna, boris], NOW)}
    a, b = rows["anna"], rows["boris"]
    assert (a.open_deals, a.overdue_activities, a.without_next_step, a.stale_deals) == (
        3, 2, 2, 0)
    assert (a.days_since_contact, a.capacity, a.at_capacity) == (4, 3, True)
    assert a.capacity_used == 1.0
    assert (b.open_deals, b.overdue_activities, b.without_next_step, b.stale_deals) == (
        1, 0, 1, 1)
    assert (b.days_since_contact, b.capacity, b.at_capacity) == (None, 150, False)


def test_workload_takes_the_same_number_of_queries_for_any_team_size(north_team, app):
    pipeline = seed_defaults()
    for person in ("anna", "boris", "cara", "dan"):
        for number in range(3):
            _deal(pipeline, north_team[person], f"{person}{number}")
    db.session.commit()
    counts = []
    everyone = [north_team[login] for login in ("anna", "boris", "cara", "dan")]
    for people in ([north_team["anna"]], everyone):
        for person in people:
            db.session.refresh(person)  # loaded: only the board's own queries count
        with statements() as seen:
            rows = workload(people, NOW)
        assert [r.open_deals for r in rows] == [3] * len(people)
        counts.append(len(seen))
    assert counts[0] == counts[1] == 3


def test_board_people_follow_the_managers_scope(north_team):
    mara, anna = north_team["mara"], north_team["anna"]
    assert [p.login for p in people_for(mara)] == ["anna", "boris", "cara", "dan", "mara"]
    assert [p.login for p in people_for(anna)] == ["anna"]


def test_the_board_is_for_managers(north_team, client, login):
    pipeline = seed_defaults()
    _deal(pipeline, north_team["anna"], "A1")
    db.session.commit()
    login(client, north_team["mara"])
    page = client.get("/pipeline/workload")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'data-user="{north_team["anna"].id}"' in html and "1 of 150" in html
    client.post("/logout", data={})
    other = client.application.test_client()
    login(other, north_team["boris"])
    assert other.get("/pipeline/workload").status_code == 404


def test_a_team_lead_without_manage_rights_reaches_the_board_from_the_reports(
        north_team, app, client, login, make_user):
    from core.api import assign_roles
    from core.security import Team

    lead, plain = make_user("tina"), make_user("paul")
    for user in (lead, plain):
        assign_roles(user, "salesperson")  # no pipeline.manage: no Workload menu entry
    db.session.add(Team(name="South", manager_id=lead.id))
    db.session.commit()
    login(client, lead)
    html = client.get("/pipeline/reports/").get_data(as_text=True)
    assert 'href="/pipeline/workload"' in html
    assert client.get("/pipeline/workload").status_code == 200
    other = app.test_client()
    login(other, plain)
    assert 'href="/pipeline/workload"' not in other.get("/pipeline/reports/").get_data(
        as_text=True)


def test_a_manager_sets_a_salespersons_capacity_on_the_board(north_team, app, client, login):
    from addons.pipeline.assignment import capacities
    from core.testing import csrf_token

    mara, anna = north_team["mara"], north_team["anna"]
    login(client, mara)
    page = client.get("/pipeline/workload").get_data(as_text=True)
    assert f'id="capacity-{anna.id}"' in page
    token = csrf_token(client, "/pipeline/workload")
    for bad in ("0", "many", "10001"):
        refused = client.post("/pipeline/workload/capacity", data={
            "csrf_token": token, "user": str(anna.id), "capacity": bad}, follow_redirects=True)
        assert "Give the capacity as a whole number from 1 to 10000." in refused.get_data(
            as_text=True)
    done = client.post("/pipeline/workload/capacity", data={
        "csrf_token": token, "user": str(anna.id), "capacity": "40"}, follow_redirects=True)
    assert "may now hold 40 live deals." in done.get_data(as_text=True)
    assert capacities([anna.id]) == {anna.id: 40}
    assert 'name="capacity" min="1" max="10000" value="40"' in done.get_data(as_text=True)


def test_capacity_is_set_only_by_managers_and_for_people_they_see(north_team, app, client,
                                                                   login, make_user):
    from core.api import assign_roles
    from core.testing import csrf_token

    stranger = make_user("zed")
    assign_roles(stranger, "salesperson")  # in no team of Mara's
    login(client, north_team["mara"])
    token = csrf_token(client, "/pipeline/workload")
    assert client.post("/pipeline/workload/capacity", data={
        "csrf_token": token, "user": str(stranger.id), "capacity": "5"}).status_code == 404
    other = app.test_client()
    login(other, north_team["anna"])  # a salesperson: no pipeline.manage
    assert other.post("/pipeline/workload/capacity", data={
        "csrf_token": csrf_token(other, "/pipeline/deals"), "user": str(north_team["anna"].id),
        "capacity": "999"}).status_code == 404
    assert db.session.get(Capacity, north_team["anna"].id) is None
