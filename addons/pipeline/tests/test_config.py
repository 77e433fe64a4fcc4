"""Settings: pipelines, ordered stages and lost reasons are the firm's to shape (pipeline.manage),
and what they configure is what the board and the state machine use."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from addons.pipeline.models import LostReason, Pipeline, Stage
from addons.pipeline.state import TransitionError, create_deal, move_deal, seed_defaults
from core.api import Team, assign_roles, db
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
    for path in ("/pipeline/settings/pipelines", "/pipeline/settings/lost-reasons",
                 "/pipeline/settings/tags"):
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


def test_saving_a_pipeline_changes_its_name_currency_team_order_and_activity(
        manager, client, login):
    pipeline = seed_defaults()
    team = Team(name="Baltics")
    db.session.add(team)
    db.session.commit()
    login(client, manager)
    url = f"/pipeline/settings/pipelines/{pipeline.id}"
    token = csrf_token(client, url)
    response = client.post(url, data={
        "csrf_token": token, "name": "  Retail  ", "currency": "usd", "sequence": "30",
        "team_id": str(team.id)})  # "active" unticked
    assert response.status_code == 302 and response.headers["Location"].endswith(url)
    db.session.expire_all()
    saved = db.session.get(Pipeline, pipeline.id)
    assert (saved.name, saved.currency, saved.sequence, saved.team_id, saved.active) == (
        "Retail", "USD", 30, team.id, False)
    assert "Pipeline saved." in client.get(url).get_data(as_text=True)


def test_stale_deal_rules_and_the_inbound_address_are_set_on_the_pipeline_page(
        manager, client, login):
    """Rotation and the e-mail channel read these fields; without them on the page a firm
    could never switch either on."""
    from addons.pipeline.inbound import pipeline_for_address

    pipeline = seed_defaults()
    other = Pipeline(name="Wholesale", currency="EUR", inbound_address="opt@firm.lv",
                     form_origins=[])
    db.session.add(other)
    db.session.commit()
    login(client, manager)
    url = f"/pipeline/settings/pipelines/{pipeline.id}"
    assert 'name="stale_no_activity_days"' in client.get(url).get_data(as_text=True)
    base = {"csrf_token": csrf_token(client, url), "name": pipeline.name, "currency": "EUR",
            "sequence": "10", "active": "y", "stale_no_activity_days": "14",
            "stale_no_next_step_days": "3"}
    refused = client.post(url, data={**base, "inbound_address": "OPT@firm.lv"})
    assert refused.status_code == 200
    assert "Another pipeline receives mail at this address." in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Pipeline, pipeline.id).stale_no_activity_days is None
    assert client.post(url, data={**base, "inbound_address": " Sales@Firm.lv "}
                       ).status_code == 302
    db.session.expire_all()
    saved = db.session.get(Pipeline, pipeline.id)
    assert (saved.stale_no_activity_days, saved.stale_no_next_step_days,
            saved.inbound_address) == (14, 3, "sales@firm.lv")
    assert pipeline_for_address("sales@firm.lv").id == pipeline.id
    workload = client.get("/pipeline/workload").get_data(as_text=True)
    assert "No pipeline has stale-deal rules" not in workload
    # Emptied: both switched off again.
    client.post(url, data={**base, "stale_no_activity_days": "", "stale_no_next_step_days": "",
                           "inbound_address": ""})
    db.session.expire_all()
    saved = db.session.get(Pipeline, pipeline.id)
    assert (saved.stale_no_activity_days, saved.stale_no_next_step_days,
            saved.inbound_address) == (None, None, None)


def test_an_invalid_pipeline_is_shown_again_with_the_error_and_nothing_saved(
        manager, client, login):
    pipeline = seed_defaults()
    db.session.commit()
    name = pipeline.name
    login(client, manager)
    url = f"/pipeline/settings/pipelines/{pipeline.id}"
    response = client.post(url, data={"csrf_token": csrf_token(client, url), "name": "Other",
                                      "currency": "EURO", "sequence": "10", "active": "y"})
    assert response.status_code == 200
    assert "Three letters, e.g. EUR." in response.get_data(as_text=True)
    db.session.expire_all()
    saved = db.session.get(Pipeline, pipeline.id)
    assert (saved.name, saved.currency) == (name, "EUR")


def test_a_new_lost_reason_with_a_name_already_on_the_list_is_refused(manager, client, login):
    seed_defaults()
    db.session.add(LostReason(name="Went bankrupt", labels={}, sequence=60, active=False))
    db.session.commit()
    count = db.session.scalar(select(func.count()).select_from(LostReason))
    login(client, manager)
    url = "/pipeline/settings/lost-reasons"
    response = client.post(url, data={"csrf_token": csrf_token(client, url),
                                      "name": " Went   bankrupt ", "sequence": "70",
                                      "active": "y"})  # the same name once spaces collapse
    assert response.status_code == 200
    assert "This reason is already on the list." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(LostReason)) == count


def test_renaming_a_lost_reason_to_another_ones_name_is_refused(manager, client, login):
    seed_defaults()
    db.session.commit()
    first, second = db.session.scalars(select(LostReason).order_by(LostReason.id)).all()[:2]
    login(client, manager)
    url = f"/pipeline/settings/lost-reasons/{second.id}"
    token = csrf_token(client, url)
    response = client.post(url, data={"csrf_token": token, "name": first.name,
                                      "sequence": "99", "active": "y"})
    assert response.status_code == 200
    assert "This reason is already on the list." in response.get_data(as_text=True)
    db.session.expire_all()
    kept = db.session.get(LostReason, second.id)
    assert kept.name != first.name and kept.sequence != 99
    # Keeping its own name is no clash.
    response = client.post(url, data={"csrf_token": token, "name": kept.name,
                                      "sequence": "99", "active": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(LostReason, second.id).sequence == 99


def test_the_edit_pages_show_the_saved_values_and_which_stages_deals_use(
        manager, client, login):
    pipeline = seed_defaults()
    db.session.commit()
    stages = {s.name: s for s in pipeline.stages}
    create_deal(title="Occupant", pipeline=pipeline, stage=stages["New"], user=manager)
    stages["Qualified"].labels = {"ru": "Квалифицирована"}
    reason = db.session.scalars(select(LostReason).order_by(LostReason.id)).first()
    reason.labels = {"lv": "Par dārgu"}
    db.session.commit()
    login(client, manager)

    page = client.get(f"/pipeline/settings/pipelines/{pipeline.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'value="{pipeline.name}"' in html and 'value="EUR"' in html
    assert all(f'data-stage="{s.id}"' in html for s in pipeline.stages)
    # A stage with deals cannot be deleted, so it offers no delete button; an empty one does.
    assert f'/pipeline/settings/stages/{stages["New"].id}/delete' not in html
    assert f'/pipeline/settings/stages/{stages["Qualified"].id}/delete' in html

    page = client.get(f"/pipeline/settings/stages/{stages['Qualified'].id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="Qualified"' in html and 'value="Квалифицирована"' in html
    assert f'value="{stages["Qualified"].probability}"' in html

    page = client.get(f"/pipeline/settings/lost-reasons/{reason.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'value="{reason.name}"' in html and 'value="Par dārgu"' in html


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/pipeline/settings/pipelines/{missing}"),
    ("POST", "/pipeline/settings/pipelines/{missing}"),
    ("POST", "/pipeline/settings/pipelines/{missing}/stages"),
    ("GET", "/pipeline/settings/stages/{missing}"),
    ("POST", "/pipeline/settings/stages/{missing}"),
    ("POST", "/pipeline/settings/stages/{missing}/delete"),
    ("GET", "/pipeline/settings/lost-reasons/{missing}"),
    ("POST", "/pipeline/settings/lost-reasons/{missing}"),
])
def test_settings_of_an_unknown_id_are_a_404_for_a_manager(manager, client, login, method,
                                                             path):
    seed_defaults()
    db.session.commit()
    login(client, manager)
    url = path.format(missing=999999)
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data={
            "csrf_token": csrf_token(client, "/pipeline/settings/pipelines"), "name": "X",
            "currency": "EUR", "sequence": "10", "probability": "10", "kind": "open"})
    assert response.status_code == 404


def test_deal_tags_are_added_renamed_and_deleted_when_unused(manager, client, login):
    from addons.pipeline.models import DealTag, Tag

    pipeline = seed_defaults()
    db.session.commit()
    login(client, manager)
    token = csrf_token(client, "/pipeline/settings/tags")
    assert client.post("/pipeline/settings/tags", data={
        "csrf_token": token, "name": "  Export  ", "color": "#4caf7a"}).status_code == 302
    client.post("/pipeline/settings/tags", data={"csrf_token": token, "name": "Tender"})
    clash = client.post("/pipeline/settings/tags", data={"csrf_token": token, "name": "export"},
                        follow_redirects=True)
    assert "This tag is already on the list." in clash.get_data(as_text=True)
    bad = client.post("/pipeline/settings/tags", data={"csrf_token": token, "name": "X",
                                                        "color": "green"})
    assert "A colour like #4caf7a" in bad.get_data(as_text=True)
    tags = {t.name: t for t in db.session.scalars(select(Tag))}
    assert set(tags) == {"Export", "Tender"} and tags["Export"].color == "#4caf7a"

    client.post(f"/pipeline/settings/tags/{tags['Tender'].id}",
                data={"csrf_token": token, "name": "Public tender", "color": ""})
    deal = create_deal(title="Desks", pipeline=pipeline, user=manager)
    db.session.add(DealTag(deal_id=deal.id, tag_id=tags["Export"].id))
    db.session.commit()
    kept = client.post(f"/pipeline/settings/tags/{tags['Export'].id}/delete",
                       data={"csrf_token": token}, follow_redirects=True)
    assert "Deals carry this tag" in kept.get_data(as_text=True)
    client.post(f"/pipeline/settings/tags/{tags['Tender'].id}/delete",
                data={"csrf_token": token})
    db.session.expire_all()
    assert [t.name for t in db.session.scalars(select(Tag))] == ["Export"]
    # The deal form offers the tags the settings made.
    form = client.get(f"/pipeline/deals/new?pipeline_id={pipeline.id}").get_data(as_text=True)
    assert ">Export<" in form


def test_lead_routing_rules_are_set_on_the_pipeline_page_and_route_leads(
        manager, client, login, make_user):
    from addons.pipeline.leads import create_lead
    from addons.pipeline.models import AssignmentRule
    from core.api import seed_reference_data

    seed_reference_data()  # the countries a rule may name
    liga, team_lead = make_user("liga", name="Līga"), make_user("teo")
    for user in (liga, team_lead):
        assign_roles(user, "salesperson")
    pipeline = seed_defaults()
    db.session.commit()
    login(client, manager)
    url = f"/pipeline/settings/pipelines/{pipeline.id}"
    page = client.get(url).get_data(as_text=True)
    assert 'name="assignment"' in page and 'id="rule-new"' in page
    token = csrf_token(client, url)
    rules = f"{url}/rules"
    for bad, message in (
            ({"user_id": str(liga.id)}, "Give a country, a language or both"),
            ({"country": "LV", "user_id": str(liga.id), "team_id": "1"},
             "Send the leads either to a salesperson or to a team."),
            ({"country": "XX", "user_id": str(liga.id)}, "There is no country with the code XX."),
            ({"country": "Latvia", "user_id": str(liga.id)}, "Two letters, e.g. LV.")):
        refused = client.post(rules, data={"csrf_token": token, "sequence": "10", "lang": "",
                                           **bad}, follow_redirects=True)
        assert message in refused.get_data(as_text=True), bad
    assert db.session.scalar(select(func.count(AssignmentRule.id))) == 0
    added = client.post(rules, data={"csrf_token": token, "sequence": "10", "country": "lv",
                                     "lang": "lv", "user_id": str(liga.id)},
                        follow_redirects=True).get_data(as_text=True)
    assert "Rules apply once" in added  # the pipeline still hands leads out round robin
    assert "Līga" in added and "Latvia" in added
    client.post(url, data={"csrf_token": token, "name": pipeline.name, "currency": "EUR",
                           "sequence": "10", "active": "y", "assignment": "territory"})
    db.session.expire_all()
    assert db.session.get(Pipeline, pipeline.id).assignment == "territory"
    riga = create_lead(channel="web", pipeline=pipeline, name="Jānis", country="LV", lang="lv")
    tallinn = create_lead(channel="web", pipeline=pipeline, name="Mari", country="EE",
                          lang="et")
    db.session.commit()
    assert riga.owner_id == liga.id and tallinn.owner_id != liga.id
    rule = db.session.scalar(select(AssignmentRule))
    assert client.post(f"/pipeline/settings/rules/{rule.id}/delete",
                       data={"csrf_token": token}).status_code == 302
    assert db.session.scalar(select(func.count(AssignmentRule.id))) == 0


def test_a_salesperson_cannot_add_or_delete_routing_rules(app, client, login, make_user):
    from addons.pipeline.models import AssignmentRule

    sam = make_user("sam")
    assign_roles(sam, "salesperson")
    pipeline = seed_defaults()
    rule = AssignmentRule(pipeline_id=pipeline.id, country="LV", user_id=sam.id)
    db.session.add(rule)
    db.session.commit()
    login(client, sam)
    token = csrf_token(client, "/pipeline/deals")
    assert client.post(f"/pipeline/settings/pipelines/{pipeline.id}/rules", data={
        "csrf_token": token, "country": "EE", "user_id": str(sam.id)}).status_code == 404
    assert client.post(f"/pipeline/settings/rules/{rule.id}/delete",
                       data={"csrf_token": token}).status_code == 404
    assert db.session.scalar(select(func.count(AssignmentRule.id))) == 1
