"""The deal state machine: one set of rules whichever way a move arrives.

The same transitions go through the board's JSON POST, the card's form, the deal form, the JSON
API (from a browser and with a personal API token), the import and a direct `move_deal()`
call, and must leave identical deals, stage histories and timeline lines. Lost needs a reason
from the editable list; Won records the date and amount.
"""
from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from addons.pipeline.models import Deal, LostReason, Pipeline, Stage, StageChange
from addons.pipeline.state import (
    StaleDealError,
    TransitionError,
    create_deal,
    move_deal,
    seed_defaults,
    stage_label,
)
from core.api import TimelineEntry, assign_roles, db
from core.api_tokens import issue_api_token
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


def stages_by_name(pipeline: Pipeline) -> dict[str, Stage]:
    return {s.name: s for s in pipeline.stages}


def sales_setup(make_user, *, role: str = "sales_manager", login: str = "mara"):
    """The seeded funnel, one user with `role`, the first lost reason."""
    user = make_user(login)
    assign_roles(user, role)
    pipeline = seed_defaults()
    db.session.commit()
    reason = db.session.scalars(select(LostReason).order_by(LostReason.sequence)).first()
    return user, pipeline, stages_by_name(pipeline), reason


def outcome(deal_id: int) -> dict:
    """What a path left behind, without ids and moments that differ between deals."""
    db.session.expire_all()
    deal = db.session.get(Deal, deal_id)
    history = db.session.execute(
        select(StageChange.from_stage_id, StageChange.to_stage_id, StageChange.user_id)
        .where(StageChange.deal_id == deal_id).order_by(StageChange.id)).all()
    lines = db.session.scalars(
        select(TimelineEntry.subject).where(TimelineEntry.model == "pipeline.deal",
                                            TimelineEntry.record_id == deal_id,
                                            TimelineEntry.kind == "system")
        .order_by(TimelineEntry.id)).all()
    return {"stage": deal.stage.name, "amount": deal.amount, "won": deal.won_at is not None,
            "lost": deal.lost_at is not None, "reason": deal.lost_reason_id,
            "note": deal.lost_note, "probability": deal.effective_probability,
            "history": [tuple(row) for row in history], "timeline": list(lines),
            "version": deal.version}


def test_seeding_twice_gives_one_pipeline_six_stages_and_the_reasons(app):
    first = seed_defaults()
    db.session.commit()
    again = seed_defaults()
    db.session.commit()
    assert first.id == again.id
    assert db.session.scalar(select(func.count(Pipeline.id))) == 1
    assert [s.name for s in first.stages] == ["New", "Qualified", "Proposal", "Negotiation",
                                              "Won", "Lost"]
    assert [s.kind for s in first.stages][-2:] == ["won", "lost"]
    assert db.session.scalar(select(func.count(LostReason.id))) == 5


def test_seeded_stage_names_show_translated_and_user_labels_win(app):
    from core.i18n import merge_catalogs

    pipeline = seed_defaults()
    db.session.commit()
    new = stages_by_name(pipeline)["Negotiation"]
    catalogue = merge_catalogs(app.extensions["birga.i18n"].directories, "ru")
    with app.test_request_context("/"), force_locale("ru"):
        assert stage_label(new) == catalogue.gettext("Negotiation")
        new.labels = {"ru": "Торг"}
        assert stage_label(new) == "Торг"
        custom = Stage(pipeline_id=pipeline.id, name="Demo booked", labels={}, sequence=15)
        assert stage_label(custom) == "Demo booked"


def test_lost_requires_a_reason_from_the_list(app, make_user):
    user, pipeline, stages, reason = sales_setup(make_user)
    deal = create_deal(title="Fleet renewal", pipeline=pipeline, user=user)
    db.session.commit()
    with pytest.raises(TransitionError) as refused:
        move_deal(deal, stages["Lost"], user=user)
    assert refused.value.status == 422 and refused.value.code == "lost_reason"
    db.session.rollback()
    reason.active = False
    db.session.commit()
    with pytest.raises(TransitionError):
        move_deal(deal, stages["Lost"], user=user, lost_reason=reason.id)
    db.session.rollback()
    assert db.session.get(Deal, deal.id).stage.name == "New"


def test_won_records_the_date_amount_and_full_probability(app, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Warehouse racks", pipeline=pipeline, user=user, amount="1000",
                       currency="EUR", probability=40)
    db.session.commit()
    assert deal.effective_probability == 40
    before = datetime.now(UTC)
    move_deal(deal, stages["Won"], user=user, amount="1250.50")
    db.session.commit()
    deal = db.session.get(Deal, deal.id)
    won_at = deal.won_at if deal.won_at.tzinfo else deal.won_at.replace(tzinfo=UTC)
    assert won_at >= before.replace(microsecond=0)
    assert deal.amount == Decimal("1250.50")
    assert deal.effective_probability == 100
    # Reopening clears the outcome; the probability follows the stage again.
    move_deal(deal, stages["Proposal"], user=user)
    db.session.commit()
    assert deal.won_at is None and deal.effective_probability == stages["Proposal"].probability


def test_every_move_leaves_history_and_a_timeline_line(app, make_user):
    user, pipeline, stages, reason = sales_setup(make_user)
    deal = create_deal(title="Office move", pipeline=pipeline, user=user)
    db.session.commit()
    move_deal(deal, stages["Qualified"], user=user)
    move_deal(deal, stages["Qualified"], user=user)  # same stage: nothing happens
    move_deal(deal, stages["Lost"], user=user, lost_reason=reason, lost_note="Budget cut")
    db.session.commit()
    result = outcome(deal.id)
    assert [(h[0], h[1]) for h in result["history"]] == [
        (None, stages["New"].id), (stages["New"].id, stages["Qualified"].id),
        (stages["Qualified"].id, stages["Lost"].id)]
    assert result["timeline"] == ["Stage: New → Qualified", "Stage: Qualified → Lost"]
    assert result["reason"] == reason.id and result["note"] == "Budget cut"


def test_a_stale_version_is_refused_with_409(app, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Printers", pipeline=pipeline, user=user)
    db.session.commit()
    seen = deal.version
    move_deal(deal, stages["Qualified"], user=user, version=seen)
    db.session.commit()
    with pytest.raises(StaleDealError) as refused:
        move_deal(deal, stages["Proposal"], user=user, version=seen)
    assert refused.value.status == 409
    db.session.rollback()
    assert db.session.get(Deal, deal.id).stage.name == "Qualified"


def test_a_stage_of_another_pipeline_is_refused(app, make_user):
    user, pipeline, _stages, _reason = sales_setup(make_user)
    other = Pipeline(name="Partners", form_origins=[])
    other.stages.append(Stage(name="Intro", labels={}, sequence=10, kind="open"))
    db.session.add(other)
    deal = create_deal(title="Mixed", pipeline=pipeline, user=user)
    db.session.commit()
    with pytest.raises(TransitionError):
        move_deal(deal, other.stages[0], user=user)
    db.session.rollback()


def _paths(client, login, user, stages, reason):
    """Each path moves its own deal New -> Qualified -> Lost (with reason) -> Won."""
    login(client, user)
    token = csrf_token(client, "/pipeline/deals")

    def board_json(deal_id, stage, **extra):
        version = db.session.get(Deal, deal_id).version
        response = client.post(f"/pipeline/deals/{deal_id}/move",
                               json={"stage_id": stage.id, "version": version, **extra},
                               headers={"X-CSRFToken": token})
        db.session.expire_all()
        assert response.status_code == 200, response.get_data(as_text=True)

    def page_move_form(deal_id, stage, **extra):
        version = db.session.get(Deal, deal_id).version
        response = client.post(f"/pipeline/deals/{deal_id}/move", data={
            "csrf_token": token, "stage_id": stage.id, "version": version, **extra})
        db.session.expire_all()
        assert response.status_code == 302

    def card_form(deal_id, stage, **extra):
        """The board without JavaScript: the card's list and button in the board's form; a
        move to Lost continues on the deal page, which has the reason list."""
        deal = db.session.get(Deal, deal_id)
        if extra and stage.kind != "lost":  # an amount: the card has no field for it
            return page_move_form(deal_id, stage, **extra)
        response = client.post(f"/pipeline/board/{deal.pipeline_id}/move", data={
            "csrf_token": token, "move": f"{deal_id}:{deal.version}",
            f"stage_{deal_id}": stage.id, "next": f"/pipeline/board/{deal.pipeline_id}"})
        db.session.expire_all()
        assert response.status_code == 302
        if stage.kind == "lost":
            assert f"/pipeline/deals/{deal_id}?move_to={stage.id}" in response.location
            page_move_form(deal_id, stage, **extra)

    def deal_form(deal_id, stage, lost_reason_id=None, lost_note=None, amount=None):
        deal = db.session.get(Deal, deal_id)
        data = {"csrf_token": token, "title": deal.title, "stage_id": stage.id,
                "currency": deal.currency, "amount": amount or str(deal.amount),
                "version": deal.version, "owner_id": deal.owner_id or "",
                "lost_reason_id": lost_reason_id or "", "lost_note": lost_note or ""}
        response = client.post(f"/pipeline/deals/{deal_id}", data=data)
        db.session.expire_all()
        assert response.status_code == 302, response.get_data(as_text=True)

    def api(deal_id, stage, **extra):
        response = client.post(f"/pipeline/api/deals/{deal_id}/move",
                               json={"stage_id": stage.id, **extra},
                               headers={"X-CSRFToken": token})
        db.session.expire_all()
        assert response.status_code == 200, response.get_data(as_text=True)

    program = client.application.test_client()  # no cookie: a script with a personal token
    _row, secret = issue_api_token(user, "ERP")
    db.session.commit()

    def api_token(deal_id, stage, **extra):
        response = program.post(f"/pipeline/api/deals/{deal_id}/move",
                                json={"stage_id": stage.id, **extra},
                                headers={"Authorization": f"Bearer {secret}"})
        db.session.expire_all()
        assert response.status_code == 200, response.get_data(as_text=True)
        assert "Set-Cookie" not in response.headers

    def direct(deal_id, stage, lost_reason_id=None, **extra):
        move_deal(db.session.get(Deal, deal_id), stage, user=user, via="api",
                  lost_reason=lost_reason_id, **extra)
        db.session.commit()

    def spreadsheet(deal_id, stage, lost_reason_id=None, lost_note=None, amount=None):
        """The deal import, with the export's columns (number, stage, amount, reason)."""
        reason_name = db.session.get(LostReason, lost_reason_id).name if lost_reason_id else ""
        body = ("Number;Stage;Amount;Lost reason;Comment on the loss\n"
                f"{deal_id};{stage.name};{amount or ''};{reason_name};{lost_note or ''}\n")
        response = client.post("/pipeline/import", data={
            "csrf_token": token, "action": "import",
            "file": (io.BytesIO(body.encode()), "deals.csv")},
            content_type="multipart/form-data")
        db.session.expire_all()
        assert "Imported. New deals: 0, updated: 1." in response.get_data(as_text=True)

    return {"board": board_json, "card": card_form, "page": page_move_form, "form": deal_form,
            "api": api, "token": api_token, "import": spreadsheet, "direct": direct}


def test_the_same_moves_give_the_same_result_through_every_path(app, client, login,
                                                                make_user):
    user, pipeline, stages, reason = sales_setup(make_user)
    paths = _paths(client, login, user, stages, reason)
    results = {}
    expected_vias = {"board": {"board"}, "card": {"board", "form"}, "page": {"form"},
                     "form": {"form"}, "api": {"api"}, "token": {"api"}, "import": {"import"},
                     "direct": {"api"}}
    for name, move in paths.items():
        deal = create_deal(title=f"Deal via {name}", pipeline=pipeline, user=user,
                           amount="100", currency="EUR")
        db.session.commit()
        move(deal.id, stages["Qualified"])
        move(deal.id, stages["Lost"], lost_reason_id=reason.id, lost_note="Chose others")
        move(deal.id, stages["Won"], amount="900")
        results[name] = outcome(deal.id)
        history_vias = db.session.scalars(select(StageChange.via).where(
            StageChange.deal_id == deal.id).order_by(StageChange.id)).all()
        assert set(history_vias[1:]) == expected_vias[name], name
    reference = results.pop("direct")
    assert reference["stage"] == "Won" and reference["amount"] == Decimal("900.00")
    assert reference["won"] and not reference["lost"] and reference["reason"] is None
    for name, result in results.items():
        assert result == reference, name


def test_lost_without_reason_is_422_on_json_and_sends_the_form_to_the_reason_list(
        app, client, login, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="No reason", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    token = csrf_token(client, "/pipeline/deals")
    response = client.post(f"/pipeline/deals/{deal.id}/move",
                           json={"stage_id": stages["Lost"].id, "version": deal.version},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 422
    assert response.get_json()["code"] == "lost_reason"
    response = client.post(f"/pipeline/board/{pipeline.id}/move", data={
        "csrf_token": token, "move": f"{deal.id}:{deal.version}",
        f"stage_{deal.id}": stages["Lost"].id})
    assert response.status_code == 302
    assert f"/pipeline/deals/{deal.id}?move_to={stages['Lost'].id}" in response.location
    db.session.expire_all()
    assert db.session.get(Deal, deal.id).stage.name == "New"


def test_a_json_move_without_the_csrf_token_is_refused(app, client, login, make_user):
    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Forged", pipeline=pipeline, user=user)
    db.session.commit()
    login(client, user)
    response = client.post(f"/pipeline/deals/{deal.id}/move",
                           json={"stage_id": stages["Qualified"].id})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Deal, deal.id).stage.name == "New"


def test_a_copy_changed_behind_its_back_fails_the_move_and_leaves_no_history(app, make_user):
    from sqlalchemy import update
    from sqlalchemy.orm.exc import StaleDataError

    user, pipeline, stages, _reason = sales_setup(make_user)
    deal = create_deal(title="Raced", pipeline=pipeline, user=user)
    db.session.commit()
    deal_id = deal.id
    histories = (db.session.scalar(select(func.count(StageChange.id))),
                 db.session.scalar(select(func.count(TimelineEntry.id))))
    # Another request saved the deal after ours read it: same row, newer version.
    db.session.execute(update(Deal).where(Deal.id == deal_id).values(version=Deal.version + 1)
                       .execution_options(synchronize_session=False))
    with pytest.raises(StaleDataError):
        move_deal(deal, stages["Proposal"], user=user, via="board")
    db.session.rollback()
    assert db.session.get(Deal, deal_id).stage.name == "New"
    assert (db.session.scalar(select(func.count(StageChange.id))),
            db.session.scalar(select(func.count(TimelineEntry.id)))) == histories


def _timeline_html(app, user, deal_id: int) -> str:
    """The deal's page as `user` sees it (her locale is her profile's)."""
    from core.testing import TEST_PASSWORD

    client = app.test_client()
    client.post("/login", data={"login": user.login, "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(client)})
    page = client.get(f"/pipeline/deals/{deal_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return html[html.index('id="timeline"'):]


def test_a_move_by_a_russian_salesperson_reads_in_each_managers_language(app, make_user):
    from core.testing import acting_as

    boris, pipeline, stages, _reason = sales_setup(make_user, login="boris")
    boris.locale = "ru"
    liga = make_user("liga", locale="lv", is_admin=True)  # the head of sales sees every deal
    stages["Won"].labels = {"ro": "Câștigat!"}  # a firm's own label for one language
    db.session.commit()
    with acting_as(app, boris), force_locale("ru"):
        deal = create_deal(title="<script>alert(1)</script> racks", pipeline=pipeline,
                           user=boris, amount="1000", currency="EUR")
        move_deal(deal, stages["Proposal"], user=boris)
        move_deal(deal, stages["Won"], user=boris, amount="1234.50")
        db.session.commit()
        deal_id = deal.id
    # The stored text is in the installation's language (English here), not Boris's.
    assert outcome(deal_id)["timeline"] == ["Stage: New → Proposal", "Stage: Proposal → Won"]
    won = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.record_id == deal_id, TimelineEntry.model == "pipeline.deal",
        TimelineEntry.kind == "system").order_by(TimelineEntry.id.desc())).first()
    assert "Won: €1,234.50" in won.body
    assert won.message["body"] == [{"msgid": "Won: %(amount)s",
                                    "params": {"amount": {"$money": ["1234.50", "EUR"]}}}]

    latvian = _timeline_html(app, liga, deal_id)
    assert "Posms: Piedāvājums → Iegūts" in latvian
    assert "Iegūts: 1&nbsp;234,50&nbsp;€" in latvian
    assert "Выиграно" not in latvian and "Этап" not in latvian
    russian = _timeline_html(app, boris, deal_id)
    assert "Этап: Коммерческое предложение → Выиграно" in russian
    assert "Выиграно: 1&nbsp;234,50&nbsp;€" in russian
    liga.locale = "ro"
    db.session.commit()
    romanian = _timeline_html(app, liga, deal_id)
    assert "Câștigat!" in romanian and "1.234,50&nbsp;EUR" in romanian


def test_a_lost_move_keeps_the_users_note_escaped_after_the_reason(app, make_user):
    from core.testing import acting_as

    boris, pipeline, stages, reason = sales_setup(make_user, login="boris")
    boris.locale = "ru"
    liga = make_user("liga", locale="lv", is_admin=True)  # the head of sales sees every deal
    db.session.commit()
    with acting_as(app, boris), force_locale("ru"):
        deal = create_deal(title="Office move", pipeline=pipeline, user=boris)
        move_deal(deal, stages["Lost"], user=boris, lost_reason=reason,
                  lost_note="Они выбрали <script>alert(1)</script> других")
        db.session.commit()
        deal_id = deal.id
    latvian = _timeline_html(app, liga, deal_id)
    assert "Zaudējuma iemesls: Pārāk dārgi" in latvian
    assert "Они выбрали" in latvian and "<script>alert(1)" not in latvian
    assert "Причина" not in latvian
