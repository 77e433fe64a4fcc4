"""Settings: pipelines, ordered stages and lost reasons are the firm's to shape (pipeline.manage),
and what they configure is what the board and the state machine use."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from addons.pipeline.models import LostReason, Pipeline, Stage
from addons.pipeline.state import TransitionError, create_deal, move_deal, seed_defaults
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def manager(app, make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    return user


def test_settings_pages_are_404_for_a_salesperson(app, client, login, make_user):
    sam = make_user("sam")
    assign_roles(sam, "salesperson")
    login(client, sam)
    for path in ("/pipeline/settings/pipelines", "/pipeline/settings/lost-reasons"):
        assert client.get(path).status_code == 404
    html = client.get("/pipeline/deals").get_data(as_text=True)
    assert 'data-menu="sales.board"' in html and 'data-menu="settings.pipelines"' not in html


def test_a_new_pipeline_gets_ordered_stages_that_can_be_edited_and_extended(
        manager, client, login):
    login(client, manager)
    token = csrf_token(client, "/pipeline/settings/pipelines")
    response = client.post("/pipeline/settings/pipelines/new", data={
        "csrf_token": token, "name": "Wholesale", "currency": "usd", "sequence": "20",
        "active": "y"})
    assert response.status_code == 302
    pipeline = db.session.scalar(select(Pipeline).where(Pipeline.name == "Wholesale"))
    assert pipeline.currency == "USD"
    assert [s.kind for s in pipeline.stages] == ["open"] * 4 + ["won", "lost"]
    response = client.post(f"/pipeline/settings/pipelines/{pipeline.id}/stages", data={
        "csrf_token": token, "name": "Samples sent", "sequence": "25", "probability": "40",
        "color": "#123456", "kind": "open", "label_ru": "Образцы отправлены"})
    assert response.status_code == 302
    db.session.expire_all()
    names = [s.name for s in db.session.get(Pipeline, pipeline.id).stages]
    assert names.index("Samples sent") == 2  # between Qualified (20) and Proposal (30)
    stage = db.session.scalar(select(Stage).where(Stage.name == "Samples sent"))
    assert stage.labels == {"ru": "Образцы отправлены"} and stage.probability == 40
    response = client.post(f"/pipeline/settings/stages/{stage.id}", data={
        "csrf_token": token, "name": "Samples sent", "sequence": "25", "probability": "120",
        "kind": "open"})
    assert response.status_code == 200  # refused: the probability is a percentage
    db.session.expire_all()
    assert db.session.get(Stage, stage.id).probability == 40
    response = client.post(f"/pipeline/settings/stages/{stage.id}", data={
        "csrf_token": token, "name": "Samples sent", "sequence": "25", "probability": "45",
        "kind": "open", "folded": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Stage, stage.id).folded is True


def test_a_stage_with_deals_cannot_be_deleted(manager, client, login):
    pipeline = seed_defaults()
    db.session.commit()
    stages = {s.name: s.id for s in pipeline.stages}
    create_deal(title="Occupant", pipeline=pipeline, user=manager)
    db.session.commit()
    login(client, manager)
    token = csrf_token(client, f"/pipeline/settings/pipelines/{pipeline.id}")
    client.post(f"/pipeline/settings/stages/{stages['New']}/delete",
                data={"csrf_token": token})
    client.post(f"/pipeline/settings/stages/{stages['Negotiation']}/delete",
                data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Stage, stages["New"]) is not None
    assert db.session.get(Stage, stages["Negotiation"]) is None


def test_lost_reasons_are_an_editable_list_the_state_machine_follows(manager, client, login):
    pipeline = seed_defaults()
    db.session.commit()
    lost = next(s for s in pipeline.stages if s.kind == "lost")
    login(client, manager)
    token = csrf_token(client, "/pipeline/settings/lost-reasons")
    response = client.post("/pipeline/settings/lost-reasons", data={
        "csrf_token": token, "name": "Went bankrupt", "sequence": "60", "active": "y"})
    assert response.status_code == 302
    reason = db.session.scalar(select(LostReason).where(LostReason.name == "Went bankrupt"))
    board = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert f'<option value="{reason.id}">Went bankrupt</option>' in board
    response = client.post(f"/pipeline/settings/lost-reasons/{reason.id}", data={
        "csrf_token": token, "name": "Went bankrupt", "sequence": "60"})  # unticked: inactive
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(LostReason, reason.id).active is False
    board = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert "Went bankrupt" not in board
    deal = create_deal(title="Gone", pipeline=pipeline, user=manager)
    db.session.commit()
    with pytest.raises(TransitionError):
        move_deal(deal, lost, user=manager, lost_reason=reason.id)
    db.session.rollback()
