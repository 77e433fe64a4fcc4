"""Leads nobody could be given are not left unseen: the pipeline's managers are told, the leads
list shows how many wait unassigned, and whoever may work leads in that pipeline can take one
(the owner is checked when it is written, so two people never both get it). SQLite and
PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from addons.pipeline.leads import LeadError, create_lead, take_lead
from addons.pipeline.models import Capacity, Lead
from addons.pipeline.state import seed_defaults
from core.api import AuditLog, Notification, Team, TimelineEntry, assign_roles, db
from core.security import TeamMember
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def floor(app, make_user):
    """Pipeline "Sales" of team North (manager Mara, salespeople Anna and Boris, both full),
    Olga: a salesperson of another team, Max: a sales manager outside the team."""
    mara = make_user("mara", locale="ru")
    assign_roles(mara, "sales_manager")
    anna, boris, olga = make_user("anna"), make_user("boris"), make_user("olga")
    for person in (anna, boris, olga):
        assign_roles(person, "salesperson")
    max_ = make_user("max")
    assign_roles(max_, "sales_manager")
    north, south = Team(name="North", manager_id=mara.id), Team(name="South")
    db.session.add_all([north, south])
    db.session.flush()
    db.session.add_all([TeamMember(team_id=north.id, user_id=anna.id),
                        TeamMember(team_id=north.id, user_id=boris.id),
                        TeamMember(team_id=south.id, user_id=olga.id)])
    for person in (anna, boris):
        db.session.add(Capacity(user_id=person.id, live_deals=0))  # nobody has room
    pipeline = seed_defaults()
    pipeline.team_id = north.id
    db.session.commit()
    return {"pipeline": pipeline, "mara": mara, "anna": anna, "boris": boris, "olga": olga,
            "max": max_}


def notes(user) -> list[Notification]:
    return db.session.scalars(select(Notification).where(Notification.user_id == user.id)
                              .order_by(Notification.id)).all()


def waiting(floor, name: str = "Laura Ozola") -> Lead:
    lead = create_lead(channel="web", pipeline=floor["pipeline"], name=name)
    db.session.commit()
    return lead


def test_the_teams_managers_are_told_when_nobody_could_be_given_a_lead(floor):
    lead = waiting(floor)
    assert lead.owner_id is None
    [told] = notes(floor["mara"])
    assert told.link == f"/pipeline/leads/{lead.id}"
    assert "Laura Ozola" in told.text
    assert told.text != "Nobody could be given the new lead Laura Ozola: take it or assign it."
    # Salespeople (no pipeline.manage) and managers outside the pipeline's team hear nothing.
    assert [notes(floor[x]) for x in ("anna", "boris", "olga", "max")] == [[], [], [], []]


def test_a_pipeline_without_a_team_tells_everyone_who_may_manage_pipelines(floor):
    floor["pipeline"].team_id = None
    db.session.commit()
    waiting(floor)
    assert len(notes(floor["mara"])) == 1 and len(notes(floor["max"])) == 1
    assert notes(floor["anna"]) == []


def test_an_assigned_lead_tells_only_its_owner(floor):
    db.session.execute(update(Capacity).where(Capacity.user_id == floor["anna"].id)
                       .values(live_deals=5))
    db.session.commit()
    lead = waiting(floor)
    assert lead.owner_id == floor["anna"].id
    assert len(notes(floor["anna"])) == 1 and notes(floor["mara"]) == []


def test_the_list_counts_the_unassigned_leads_and_offers_take(floor, client, login):
    lead = waiting(floor)
    login(client, floor["anna"])
    html = client.get("/pipeline/leads").get_data(as_text=True)
    assert "1 unassigned lead" in html
    assert 'href="/pipeline/leads?status=new&amp;owner=none"' in html
    assert "Laura Ozola" in html
    assert f'action="/pipeline/leads/{lead.id}/take"' in html
    only = client.get("/pipeline/leads?status=new&owner=none").get_data(as_text=True)
    assert "Laura Ozola" in only
    page = client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)
    assert "Take this lead" in page
    assert "Convert to deal" not in page  # taken first, then converted


def test_whoever_may_take_a_pool_lead_reads_its_history_first(floor, client, login):
    lead = waiting(floor)
    login(client, floor["anna"])
    page = client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)
    assert "Lead received" in page and "Received through: Web form" in page
    assert client.get(f"/records/pipeline.lead/{lead.id}/timeline").status_code == 200


def test_a_salesperson_of_another_team_does_not_see_the_pool(floor, client, login):
    lead = waiting(floor)
    login(client, floor["olga"])
    assert "Laura Ozola" not in client.get("/pipeline/leads").get_data(as_text=True)
    assert client.get(f"/pipeline/leads/{lead.id}").status_code == 404
    assert client.get(f"/records/pipeline.lead/{lead.id}/timeline").status_code == 404
    token = csrf_token(client, "/pipeline/leads")
    response = client.post(f"/pipeline/leads/{lead.id}/take", data={"csrf_token": token})
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).owner_id is None


def test_taking_a_lead_makes_it_yours_with_a_timeline_line_and_an_audit_row(floor, client,
                                                                            login):
    lead = waiting(floor)
    anna = floor["anna"]
    login(client, anna)
    token = csrf_token(client, "/pipeline/leads")
    assert client.post(f"/pipeline/leads/{lead.id}/take").status_code == 400  # no CSRF token
    response = client.post(f"/pipeline/leads/{lead.id}/take",
                           data={"csrf_token": token, "next": "/pipeline/leads?owner=none"})
    assert response.status_code == 302 and response.location.endswith(
        "/pipeline/leads?owner=none")
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).owner_id == anna.id
    line = db.session.scalar(select(TimelineEntry).where(
        TimelineEntry.model == "pipeline.lead", TimelineEntry.record_id == lead.id)
        .order_by(TimelineEntry.id.desc()))
    assert line.subject == "Lead taken by Anna" and line.author_id == anna.id
    row = db.session.scalar(select(AuditLog).where(
        AuditLog.model == "pipeline.lead", AuditLog.record_id == lead.id,
        AuditLog.action == "update"))
    assert row.user_id == anna.id and row.changes == {"owner_id": [None, anna.id]}
    page = client.get(f"/pipeline/leads/{lead.id}").get_data(as_text=True)
    assert "The lead is yours now." in page and "Convert to deal" in page
    assert "Take this lead" not in page


def test_a_lead_someone_took_meanwhile_is_refused_whatever_the_page_showed(floor, client,
                                                                           login):
    lead = waiting(floor)
    login(client, floor["anna"])
    token = csrf_token(client, f"/pipeline/leads/{lead.id}")  # the page offered "Take"
    # Boris takes it meanwhile.
    take_lead(db.session.get(Lead, lead.id), floor["boris"])
    db.session.commit()
    response = client.post(f"/pipeline/leads/{lead.id}/take", data={"csrf_token": token},
                           follow_redirects=True)
    assert response.status_code == 404  # it is Boris's now: out of Anna's rules
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).owner_id == floor["boris"].id


def test_take_checks_the_owner_in_the_write_itself(floor):
    lead = waiting(floor)
    stale = db.session.get(Lead, lead.id)
    # Boris's commit; the object in hand still says "nobody" (as a page read earlier would).
    db.session.execute(update(Lead).where(Lead.id == lead.id)
                       .values(owner_id=floor["boris"].id)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    set_committed_value(stale, "owner_id", None)
    assert stale.owner_id is None
    with pytest.raises(LeadError, match="Someone else has taken this lead meanwhile."):
        take_lead(stale, floor["anna"])
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).owner_id == floor["boris"].id


def test_a_manager_taking_a_lead_someone_else_took_gets_a_translated_message(floor, client,
                                                                              login):
    """Mara (team scope) still sees the lead once Boris has it: she is told, in Russian."""
    lead = waiting(floor)
    login(client, floor["mara"])
    token = csrf_token(client, f"/pipeline/leads/{lead.id}")
    take_lead(db.session.get(Lead, lead.id), floor["boris"])
    db.session.commit()
    response = client.post(f"/pipeline/leads/{lead.id}/take", data={"csrf_token": token},
                           follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<div class="flash flash-error" role="status">Этот лид уже взял кто-то другой.</div>' \
        in html
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).owner_id == floor["boris"].id
