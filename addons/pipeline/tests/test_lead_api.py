"""The leads API: a program posts JSON with a personal API token and gets a lead of the "API"
channel, checked by the manual form's rules and assigned by the pipeline's rules (SQLite and
PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from addons.pipeline.models import Lead, Pipeline
from addons.pipeline.state import seed_defaults
from core.api import Team, TimelineEntry, assign_roles, db
from core.api_tokens import issue_api_token
from core.security import TeamMember
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def floor(app, make_user):
    """The main pipeline worked by Anna and Bruno (round robin); `shop` is the web shop's
    integration user, a salesperson outside the team, with a token."""
    team = Team(name="Sales floor")
    db.session.add(team)
    db.session.flush()
    people = {}
    for login in ("anna", "bruno"):
        people[login] = make_user(login)
        assign_roles(people[login], "salesperson")
        db.session.add(TeamMember(team_id=team.id, user_id=people[login].id))
    pipeline = seed_defaults()
    pipeline.team_id = team.id
    shop = make_user("shop", locale="ru")
    assign_roles(shop, "salesperson")
    _row, secret = issue_api_token(shop, "Web shop")
    db.session.commit()
    return {"pipeline": pipeline, "shop": shop, "secret": secret, **people}


def post(app, secret, body):
    return app.test_client().post("/pipeline/api/leads", json=body,
                                  headers={"Authorization": f"Bearer {secret}"})


def test_a_posted_lead_is_an_api_lead_assigned_by_the_pipelines_rules(app, floor):
    first = post(app, floor["secret"], {"name": "Ilze Kalniņa", "company": "Kalniņi SIA",
                                        "email": "ilze@kalnini.lv", "phone": "29 123 456",
                                        "subject": "Price list", "lang": "lv",
                                        "message": "Please send prices."})
    second = post(app, floor["secret"], {"email": "buyer@example.com"})

    assert first.status_code == 201, first.get_data(as_text=True)
    body = first.get_json()
    assert body["ok"] is True and body["channel"] == "api" and body["status"] == "new"
    assert first.headers["Location"].endswith(f"/pipeline/api/leads/{body['id']}")
    lead = db.session.get(Lead, body["id"])
    assert (lead.name, lead.company_name, lead.email, lead.phone, lead.lang) == (
        "Ilze Kalniņa", "Kalniņi SIA", "ilze@kalnini.lv", "+37129123456", "lv")
    assert lead.pipeline_id == floor["pipeline"].id
    assert lead.payload == {"api_token": "Web shop"}
    owners = [lead.owner_id, db.session.get(Lead, second.get_json()["id"]).owner_id]
    assert owners == [floor["anna"].id, floor["bruno"].id]
    received = db.session.scalar(select(TimelineEntry).where(
        TimelineEntry.model == "pipeline.lead", TimelineEntry.record_id == lead.id))
    assert received is not None and received.author_id == floor["shop"].id


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"subject": "Nothing to reach"}, "name",
     "Укажите хотя бы имя, компанию, эл. почту или телефон."),
    ({"name": "X", "email": "not-an-address"}, "email", "Это не адрес эл. почты."),
    ({"name": "X", "pipeline_id": 9999}, "pipeline_id", None),
    ({"name": "X", "lang": "tlh"}, "lang", None),
    ({"name": ["X"]}, "name", None),
])
def test_a_refused_lead_gets_422_with_each_fields_error_in_the_callers_language(
        app, floor, body, field, message):
    response = post(app, floor["secret"], body)
    assert response.status_code == 422, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["ok"] is False and answer["code"] == "invalid"
    assert field in answer["errors"]
    if message:
        assert answer["errors"][field] == [message]
    assert db.session.scalar(select(Lead).limit(1)) is None


def test_a_body_that_is_not_a_json_object_is_400(app, floor):
    response = app.test_client().post(
        "/pipeline/api/leads", data="name=X", content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {floor['secret']}"})
    assert response.status_code == 400 and response.get_json()["ok"] is False


def test_a_lead_is_read_back_only_by_who_may_see_it(app, floor):
    created = post(app, floor["secret"], {"name": "Ilze"}).get_json()
    assert created["owner_id"] == floor["anna"].id
    _row, anna_secret = issue_api_token(floor["anna"], "phone app")
    db.session.commit()
    program = app.test_client()
    mine = program.get(f"/pipeline/api/leads/{created['id']}",
                       headers={"Authorization": f"Bearer {anna_secret}"})
    assert mine.status_code == 200 and mine.get_json()["name"] == "Ilze"
    theirs = program.get(f"/pipeline/api/leads/{created['id']}",
                         headers={"Authorization": f"Bearer {floor['secret']}"})
    assert theirs.status_code == 404 and theirs.get_json()["ok"] is False


def test_without_the_write_permission_the_api_answers_404(app, floor, make_user):
    reader = make_user("reader")
    _row, secret = issue_api_token(reader, "reports")
    db.session.commit()
    response = post(app, secret, {"name": "X"})
    assert response.status_code == 404
    assert db.session.scalar(select(Lead).limit(1)) is None


def test_a_signed_in_browser_posts_with_its_csrf_token(app, floor, client, login):
    login(client, floor["anna"])
    refused = client.post("/pipeline/api/leads", json={"name": "X"})
    assert refused.status_code == 400 and refused.get_json()["code"] == "csrf"
    token = csrf_token(client, "/pipeline/leads")
    made = client.post("/pipeline/api/leads", json={"name": "From the browser"},
                       headers={"X-CSRFToken": token})
    assert made.status_code == 201
    assert db.session.get(Lead, made.get_json()["id"]).payload == {}
    assert db.session.get(Pipeline, made.get_json()["pipeline_id"]) is not None
