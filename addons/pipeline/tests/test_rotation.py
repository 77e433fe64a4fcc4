"""Stale-deal rotation: only stale deals move, round robin skips people at capacity and the
previous owner, every move is on the timeline with its reason, owners are notified, and the
periodic job runs once a day."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from addons.pipeline import rotation
from addons.pipeline.models import Capacity, Deal
from addons.pipeline.rotation_models import OwnerMove
from addons.pipeline.state import create_deal, move_deal, seed_defaults
from core.api import Notification, TimelineEntry, db

pytestmark = pytest.mark.addons("pipeline")
NOW = datetime.now(UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def floor(north_team):
    """Team North (`north_team`: Mara manages Anna, Boris, Cara, Dan); Cara is at capacity.

    Anna's deals: S1 no activity for 35 days (has a next step) and S2 no next step for 8 days
    are stale; F1 (activity 2 days ago), F2 (activity 20 days ago, next step planned) and W1
    (won long ago) are not.
    """
    people = north_team
    pipeline = seed_defaults()
    pipeline.team_id = people["team"].id
    pipeline.stale_no_activity_days = 30
    pipeline.stale_no_next_step_days = 7
    db.session.add(Capacity(user_id=people["cara"].id, live_deals=1))
    stages = {s.name: s for s in pipeline.stages}

    def deal(title, owner, created_days, **fields):
        d = create_deal(title=title, pipeline=pipeline, owner_id=owner.id)
        d.created_at = d.stage_changed_at = ago(created_days)
        for key, value in fields.items():
            setattr(d, key, value)
        return d

    deals = {
        "S1": deal("S1", people["anna"], 40, last_activity_at=ago(35),
                   next_activity_at=NOW + timedelta(days=3)),
        "S2": deal("S2", people["anna"], 10, last_activity_at=ago(8)),
        "F1": deal("F1", people["anna"], 40, last_activity_at=ago(2)),
        "F2": deal("F2", people["anna"], 40, last_activity_at=ago(20),
                   next_activity_at=NOW + timedelta(days=3)),
        "W1": deal("W1", people["anna"], 90),
        "C1": deal("C1", people["cara"], 1, next_activity_at=NOW + timedelta(days=1)),
    }
    move_deal(deals["W1"], stages["Won"], amount="450")
    deals["W1"].stage_changed_at = ago(80)
    db.session.commit()
    return {**people, "pipeline": pipeline, "deals": deals}


def _timeline(deal_id: int) -> list[TimelineEntry]:
    return list(db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == "pipeline.deal", TimelineEntry.record_id == deal_id,
        TimelineEntry.kind == "system").order_by(TimelineEntry.id)))


def _notes(user) -> list[str]:
    return list(db.session.scalars(select(Notification.text).where(
        Notification.user_id == user.id).order_by(Notification.id)))


def test_rules_mark_only_stale_deals(floor):
    assert rotation.mark_stale([floor["pipeline"]]) == 2
    db.session.commit()
    flagged = set(db.session.scalars(select(Deal.title).where(Deal.stale.is_(True))))
    assert flagged == {"S1", "S2"}
    reasons = dict(rotation.stale_deals(floor["pipeline"]))
    assert reasons == {floor["deals"]["S1"].id: "no_activity",
                       floor["deals"]["S2"].id: "no_next_step"}


def test_rotation_moves_only_stale_deals_round_robin_skipping_full_and_previous_owner(floor):
    deals, mara = floor["deals"], floor["mara"]
    untouched = {k: (deals[k].owner_id, deals[k].version) for k in ("F1", "F2", "W1", "C1")}
    result = rotation.rotate(floor["pipeline"], by=mara)
    s1, s2 = deals["S1"].id, deals["S2"].id
    assert result.reclaimed == [s1, s2]
    # Anna let them go stale, Cara is full: Boris, then Dan (the turn moves on).
    assert result.assigned == {s1: floor["boris"].id, s2: floor["dan"].id}
    assert result.left_in_pool == 0
    db.session.expire_all()
    for key, (owner, version) in untouched.items():
        assert (deals[key].owner_id, deals[key].version) == (owner, version), key
    assert not deals["S1"].stale and not deals["S2"].stale
    assert floor["pipeline"].last_assigned_user_id == floor["dan"].id

    s1_entries = _timeline(s1)
    assert [e.subject for e in s1_entries[-2:]] == ["Reclaimed: no activity for 30 days",
                                                    "Reassigned by rotation"]
    assert "Anna" in s1_entries[-2].body and "Boris" in s1_entries[-1].body
    assert _timeline(s2)[-2].subject == "Reclaimed: no next step for 7 days"
    assert _notes(floor["anna"]) == ["S1 went back to the pool: no activity for 30 days.",
                                     "S2 went back to the pool: no next step for 7 days."]
    assert _notes(floor["boris"]) == ["S1 is yours now (stale-deal rotation)."]
    moves = db.session.execute(select(OwnerMove.deal_id, OwnerMove.from_user_id,
                                      OwnerMove.to_user_id, OwnerMove.reason)
                               .order_by(OwnerMove.id)).all()
    anna = floor["anna"].id
    assert moves == [(s1, anna, None, "no_activity"), (s2, anna, None, "no_next_step"),
                     (s1, None, floor["boris"].id, "no_activity"),
                     (s2, None, floor["dan"].id, "no_next_step")]

    again = rotation.rotate(floor["pipeline"], by=mara)  # a fresh period with the new owner
    assert (again.reclaimed, again.assigned) == ([], {})


def test_deals_stay_in_the_pool_when_everyone_is_at_capacity(floor):
    for login in ("boris", "dan"):
        db.session.add(Capacity(user_id=floor[login].id, live_deals=0))
    db.session.commit()
    result = rotation.rotate(floor["pipeline"])
    assert len(result.reclaimed) == 2 and result.assigned == {}
    assert result.left_in_pool == 2
    pool = db.session.scalars(select(Deal.title).where(Deal.owner_id.is_(None),
                                                      Deal.stale.is_(True))).all()
    assert sorted(pool) == ["S1", "S2"]
    # Room appears: the next run hands the pool out.
    db.session.execute(Capacity.__table__.delete().where(Capacity.user_id == floor["dan"].id))
    db.session.commit()
    later = rotation.rotate(floor["pipeline"])
    assert later.reclaimed == [] and set(later.assigned.values()) == {floor["dan"].id}


def test_one_salespersons_stale_deals_only(floor):
    result = rotation.rotate(floor["pipeline"], owner_id=floor["boris"].id)
    assert result.reclaimed == []
    assert db.session.scalar(select(func.count(OwnerMove.id))) == 0


def test_the_periodic_job_rotates_once_a_day(floor):
    first = rotation.rotate_stale_deals()
    assert first == {"pipelines": 1, "reclaimed": 2, "assigned": 2}
    floor["deals"]["F2"].last_activity_at = ago(45)  # stale now, but today's run is done
    db.session.commit()
    assert rotation.rotate_stale_deals() == {"pipelines": 0, "reclaimed": 0, "assigned": 0}


def test_a_manager_rotates_from_the_workload_board(floor, client, login):
    from core.testing import csrf_token

    login(client, floor["mara"])
    html = client.get("/pipeline/workload").get_data(as_text=True)
    assert "Stale deals now: 2" in html
    token = csrf_token(client, "/pipeline/workload")
    response = client.post("/pipeline/workload/rotate", data={
        "csrf_token": token, "pipeline": floor["pipeline"].id, "owner": ""})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 stale deals reclaimed, 2 reassigned, 0 left in the pool." in page
    db.session.expire_all()
    assert floor["deals"]["S1"].owner_id == floor["boris"].id
