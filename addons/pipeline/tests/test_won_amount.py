"""Winning a deal needs its amount: a deal closed as Won for nothing would be missing from the
forecast, the reports and the contacts' revenue signal. Every path (the state machine, the
board's drag and drop, the board without JavaScript, the deal page, the deal form, the API)
asks for the amount when the deal has none; a deal that has one wins as before."""
from __future__ import annotations

from decimal import Decimal

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from addons.pipeline.models import Deal, StageChange
from addons.pipeline.state import TransitionError, create_deal, move_deal
from core.api import db
from core.testing import csrf_token

from .test_state import sales_setup

pytestmark = pytest.mark.addons("pipeline")


def _fresh(deal_id: int) -> Deal:
    db.session.expire_all()
    return db.session.get(Deal, deal_id)


def _moves(deal_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(StageChange)
                             .where(StageChange.deal_id == deal_id))


def test_won_without_an_amount_is_refused_by_the_state_machine(app, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Nothing yet", pipeline=pipeline, user=user)
    db.session.commit()
    for amount in (None, "", "0"):
        with pytest.raises(TransitionError) as refused:
            move_deal(deal, stages["Won"], user=user, amount=amount)
        assert refused.value.code == "amount" and refused.value.status == 422
        db.session.rollback()
    with force_locale("ru"), pytest.raises(TransitionError) as refused:
        move_deal(_fresh(deal.id), stages["Won"], user=user)
    assert str(refused.value) != "Give the amount the deal was won for."
    db.session.rollback()
    deal = _fresh(deal.id)
    assert deal.stage.name == "New" and deal.won_at is None and _moves(deal.id) == 1

    move_deal(deal, stages["Won"], user=user, amount="1 250,50")
    db.session.commit()
    deal = _fresh(deal.id)
    assert deal.stage.name == "Won" and deal.amount == Decimal("1250.50") and deal.won_at


def test_a_deal_that_has_an_amount_wins_without_giving_it_again(app, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Priced", pipeline=pipeline, user=user, amount="400")
    db.session.commit()
    move_deal(deal, stages["Won"], user=user)
    db.session.commit()
    deal = _fresh(deal.id)
    assert deal.stage.name == "Won" and deal.amount == Decimal("400.00")


def test_a_deal_created_as_won_needs_its_amount(app, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    with pytest.raises(TransitionError) as refused:
        create_deal(title="Signed", pipeline=pipeline, user=user, stage=stages["Won"])
    assert refused.value.code == "amount"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Deal)) == 0
    deal = create_deal(title="Signed", pipeline=pipeline, user=user, stage=stages["Won"],
                       amount="75")
    db.session.commit()
    assert _fresh(deal.id).stage.name == "Won"


@pytest.mark.parametrize("url", ["/pipeline/deals/{id}/move", "/pipeline/api/deals/{id}/move"])
def test_a_json_move_to_won_without_an_amount_is_422_with_the_message(app, client, login,
                                                                       make_user, url):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Dragged", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    token = csrf_token(client, "/pipeline/deals")
    response = client.post(url.format(id=deal.id),
                           json={"stage_id": stages["Won"].id, "version": deal.version},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 422
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "amount"
    assert body["error"] == "Give the amount the deal was won for."
    assert _fresh(deal.id).stage.name == "New"

    response = client.post(url.format(id=deal.id),
                           json={"stage_id": stages["Won"].id, "version": deal.version,
                                 "amount": "980"},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["amount"] == "980.00" and "980" in body["amount_text"]
    deal = _fresh(deal.id)
    assert deal.stage.name == "Won" and deal.amount == Decimal("980.00")


def test_the_board_marks_the_cards_that_will_ask_for_an_amount(app, client, login, make_user):
    user, pipeline, _stages, _reason = sales_setup(make_user)
    empty = create_deal(title="Empty", pipeline=pipeline, user=user)
    priced = create_deal(title="Priced", pipeline=pipeline, user=user, amount="10")
    db.session.commit()
    login(client, user)
    html = client.get(f"/pipeline/board/{pipeline.id}").get_data(as_text=True)
    assert f'data-deal="{empty.id}" data-version="{empty.version}" data-no-amount' in html
    assert f'data-deal="{priced.id}" data-version="{priced.version}" draggable' in html
    assert 'id="won-dialog"' in html and 'id="won-amount" name="amount"' in html


def test_the_board_without_javascript_continues_on_the_deal_page_for_the_amount(
        app, client, login, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="No script", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    token = csrf_token(client, f"/pipeline/board/{pipeline.id}")
    won = stages["Won"]
    response = client.post(f"/pipeline/board/{pipeline.id}/move", data={
        "csrf_token": token, "move": f"{deal.id}:{deal.version}", f"stage_{deal.id}": won.id,
        "next": f"/pipeline/board/{pipeline.id}"})
    assert response.status_code == 302
    assert f"/pipeline/deals/{deal.id}?move_to={won.id}#move" in response.location
    assert _fresh(deal.id).stage.name == "New"
    page = client.get(f"/pipeline/deals/{deal.id}?move_to={won.id}").get_data(as_text=True)
    assert "Give the amount the deal was won for." in page  # the flashed reason
    assert "give the amount it was won for" in page
    assert 'name="amount" required' in page

    response = client.post(f"/pipeline/deals/{deal.id}/move", data={
        "csrf_token": token, "stage_id": won.id, "version": deal.version, "amount": "1500"})
    assert response.status_code == 302
    deal = _fresh(deal.id)
    assert deal.stage.name == "Won" and deal.amount == Decimal("1500.00")


def test_the_deal_form_asks_for_the_amount_when_set_to_won(app, client, login, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Form", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    token = csrf_token(client, f"/pipeline/deals/{deal.id}")
    data = {"csrf_token": token, "title": "Form", "stage_id": stages["Won"].id,
            "currency": "EUR", "amount": "", "version": deal.version, "owner_id": user.id}
    response = client.post(f"/pipeline/deals/{deal.id}", data=data)
    assert response.status_code == 422
    assert '<p class="field-error">Give the amount the deal was won for.</p>' in \
        response.get_data(as_text=True)
    assert _fresh(deal.id).stage.name == "New"

    response = client.post(f"/pipeline/deals/{deal.id}", data={**data, "amount": "2000"})
    assert response.status_code == 302
    deal = _fresh(deal.id)
    assert deal.stage.name == "Won" and deal.amount == Decimal("2000.00")


def test_a_new_deal_in_won_needs_its_amount(app, client, login, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    login(client, user)
    token = csrf_token(client, f"/pipeline/deals/new?pipeline_id={pipeline.id}")
    data = {"csrf_token": token, "title": "Signed at once", "stage_id": stages["Won"].id,
            "currency": "EUR", "amount": "", "owner_id": user.id, "pipeline_id": pipeline.id}
    response = client.post(f"/pipeline/deals/new?pipeline_id={pipeline.id}", data=data)
    assert response.status_code == 200
    assert '<p class="field-error">Give the amount the deal was won for.</p>' in \
        response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Deal)) == 0
    response = client.post(f"/pipeline/deals/new?pipeline_id={pipeline.id}",
                           data={**data, "amount": "300"})
    assert response.status_code == 302
    created = db.session.scalar(select(Deal))
    assert created.stage.name == "Won" and created.amount == Decimal("300.00")
