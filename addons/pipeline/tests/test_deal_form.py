"""The deal form as a salesperson uses it: the client picked by name (with or without
JavaScript, never a contact outside the record rules), Lost fields only where they apply,
a deal without an amount shown as "—", templates that follow each request's language, and
the forecast's months in the nominative."""
from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from addons.contacts import services
from addons.contacts.models import Partner
from addons.pipeline.models import Deal
from addons.pipeline.state import create_deal, seed_defaults
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def crm(app, make_user):
    """Anna and Boris (salespeople, "own" rules) with contacts of their own; the default funnel."""
    anna, boris = make_user("anna", name="Anna"), make_user("boris", name="Boris")
    for user in (anna, boris):
        assign_roles(user, "salesperson")
    pipeline = seed_defaults()

    def partner(kind: str, name: str, owner) -> Partner:
        record = Partner(kind=kind, name=name, owner_id=owner.id)
        db.session.add(record)
        db.session.flush()
        services.refresh_search(record)
        return record

    people = {
        "acme": partner("company", "Acme Baltic SIA", anna),
        "ivan": partner("person", "Ivan Petrov", anna),
        "ivana": partner("person", "Ivana Petrova", anna),
        "ilze1": partner("person", "Ilze Kalna", anna),
        "ilze2": partner("person", "Ilze Kalna", anna),
        "secret": partner("company", "Hidden Holding", boris),
    }
    db.session.commit()
    return {"anna": anna, "boris": boris, "pipeline": pipeline, **people}


def _new(client, pipeline, **fields):
    token = csrf_token(client, f"/pipeline/deals/new?pipeline_id={pipeline.id}")
    data = {"csrf_token": token, "title": "Desks", "currency": "EUR",
            "stage_id": pipeline.stages[0].id, "pipeline_id": pipeline.id}
    data.update(fields)
    return client.post(f"/pipeline/deals/new?pipeline_id={pipeline.id}", data=data)


def _last_deal() -> Deal | None:
    db.session.expire_all()
    return db.session.scalar(select(Deal).order_by(Deal.id.desc()).limit(1))


def test_the_form_has_name_fields_with_suggestions_not_record_numbers(crm, client, login):
    login(client, crm["anna"])
    page = client.get(f"/pipeline/deals/new?pipeline_id={crm['pipeline'].id}"
                      f"&company_id={crm['acme'].id}").get_data(as_text=True)
    assert "(number)" not in page
    assert 'name="company_name"' in page and 'list="deal-company-options"' in page
    assert 'value="Acme Baltic SIA"' in page and "picker.js" in page
    # A link from a card to a contact the user may not see prefills nothing (no leak).
    hidden = client.get(f"/pipeline/deals/new?pipeline_id={crm['pipeline'].id}"
                        f"&company_id={crm['secret'].id}").get_data(as_text=True)
    assert "Hidden Holding" not in hidden
    assert re.search(r'<input id="company_id" name="company_id" type="hidden" value="">', hidden)


def test_suggestions_follow_the_record_rules(crm, client, login):
    login(client, crm["anna"])
    found = client.get("/contacts/lookup.json?kind=person&q=petr").json
    assert [row["name"] for row in found] == ["Ivan Petrov", "Ivana Petrova"]
    assert client.get("/contacts/lookup.json?kind=company&q=hidden").json == []
    assert client.get("/contacts/lookup.json?kind=company&q=acme").json[0]["id"] == \
        crm["acme"].id


def test_a_typed_name_links_the_contact_without_javascript(crm, client, login):
    login(client, crm["anna"])
    response = _new(client, crm["pipeline"], partner_name="ivan petrov",
                    partner_id="", company_name="Acme", company_id="")
    assert response.status_code == 302
    deal = _last_deal()
    assert (deal.partner_id, deal.company_id) == (crm["ivan"].id, crm["acme"].id)


def test_a_picked_suggestion_links_by_id(crm, client, login):
    login(client, crm["anna"])
    assert _new(client, crm["pipeline"], partner_name="Ilze Kalna",
                partner_id=str(crm["ilze2"].id)).status_code == 302
    assert _last_deal().partner_id == crm["ilze2"].id


def test_an_ambiguous_name_offers_the_candidates(crm, client, login):
    login(client, crm["anna"])
    response = _new(client, crm["pipeline"], partner_name="Ilze Kalna", partner_id="")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and _last_deal() is None
    assert "Several contacts match “Ilze Kalna”: choose one." in page
    assert re.search(rf'<select name="partner_id"[^>]*>\s*<option value="{crm["ilze1"].id}"', page)
    # Choosing one of them from that select creates the deal.
    assert _new(client, crm["pipeline"], partner_name="Ilze Kalna",
                partner_id=str(crm["ilze1"].id)).status_code == 302
    assert _last_deal().partner_id == crm["ilze1"].id


def test_an_unknown_name_is_a_clear_error(crm, client, login):
    login(client, crm["anna"])
    page = _new(client, crm["pipeline"], company_name="Nobody Ltd").get_data(as_text=True)
    assert "No contact named “Nobody Ltd” was found." in page
    assert _last_deal() is None


def test_a_contact_outside_the_rules_is_not_found_by_name_or_id(crm, client, login):
    login(client, crm["anna"])
    by_name = _new(client, crm["pipeline"], company_name="Hidden Holding").get_data(as_text=True)
    assert "No contact named “Hidden Holding” was found." in by_name
    by_id = _new(client, crm["pipeline"], company_name="Hidden Holding",
                 company_id=str(crm["secret"].id)).get_data(as_text=True)
    assert "No such contact." in by_id and "Hidden Holding" not in by_id.split("</form>")[0] \
        .split('name="company_name"')[0]
    # An id-only post (no name field, as an old client sends it) is refused the same way.
    id_only = _new(client, crm["pipeline"], company_id=str(crm["secret"].id))
    assert "No such contact." in id_only.get_data(as_text=True)
    assert _last_deal() is None


def test_saving_keeps_a_link_the_user_may_not_see(crm, client, login):
    deal = create_deal(title="Shared", pipeline=crm["pipeline"], user=crm["anna"],
                       company_id=crm["secret"].id, owner_id=crm["anna"].id)
    db.session.commit()
    login(client, crm["anna"])
    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert "Hidden Holding" not in page
    token = csrf_token(client, f"/pipeline/deals/{deal.id}")
    response = client.post(f"/pipeline/deals/{deal.id}", data={
        "csrf_token": token, "title": "Shared 2", "stage_id": deal.stage_id, "currency": "EUR",
        "version": deal.version, "owner_id": crm["anna"].id, "company_name": "",
        "company_id": str(crm["secret"].id), "partner_name": "", "partner_id": ""})
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(Deal, deal.id)
    assert (saved.title, saved.company_id) == ("Shared 2", crm["secret"].id)


def test_lost_fields_only_for_a_lost_stage(crm, client, login):
    login(client, crm["anna"])
    page = client.get(f"/pipeline/deals/new?pipeline_id={crm['pipeline'].id}") \
        .get_data(as_text=True)
    assert re.search(r'<div class="field lost-only" hidden>\s*<label for="lost_reason_id"', page)
    assert re.search(r'<div class="field lost-only" hidden>\s*<label for="lost_note"', page)
    lost = next(s for s in crm["pipeline"].stages if s.kind == "lost")
    assert f'data-lost-stages="{lost.id}"' in page
    # Choosing Lost without a reason brings the fields back, visible, with the error.
    refused = _new(client, crm["pipeline"], stage_id=lost.id).get_data(as_text=True)
    assert re.search(r'<div class="field lost-only">\s*<label for="lost_reason_id"', refused)


def test_probability_input_gets_the_full_cell(crm, client):
    css = client.get("/pipeline/static/pipeline.css").get_data(as_text=True)
    assert ".deal-form input[type=number]" in css and "width: 100%" in css


def test_a_deal_without_an_amount_shows_a_dash(crm, client, login):
    deal = create_deal(title="Vajag galdus", pipeline=crm["pipeline"], user=crm["anna"],
                       owner_id=crm["anna"].id)
    db.session.commit()
    login(client, crm["anna"])
    board = client.get(f"/pipeline/board/{crm['pipeline'].id}").get_data(as_text=True)
    assert '<span class="deal-amount">—</span>' in board
    assert '<span class="deal-amount">€0.00' not in board
    listing = client.get("/pipeline/deals").get_data(as_text=True)
    assert '<td class="nowrap">—</td>' in listing
    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert '<small class="muted">—</small>' in page


def test_the_deal_page_shows_the_reference_to_quote_in_mail_subjects(crm, client, login):
    """Without an inbound address the reference is still shown (and the hint names none)."""
    deal = create_deal(title="Skapji", pipeline=crm["pipeline"], user=crm["anna"],
                       owner_id=crm["anna"].id)
    db.session.commit()
    login(client, crm["anna"])
    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)
    assert f'<code id="deal-reference">[DEAL-{deal.id}]</code>' in page
    assert "Quote it in the subject of e-mails about this deal." in page


def test_board_columns_shrink_and_the_overflow_is_shown(crm, client, login):
    login(client, crm["anna"])
    page = client.get(f"/pipeline/board/{crm['pipeline'].id}").get_data(as_text=True)
    assert 'id="board-scroll-hint" hidden' in page and 'id="board-frame"' in page
    css = client.get("/pipeline/static/pipeline.css").get_data(as_text=True)
    column = re.search(r"\.board-column \{([^}]*)\}", css).group(1)
    assert "flex: 1 1 0" in column and "min-width: 9rem" in column
    assert ".board-frame.more-right::after" in css


def _switch(client, code: str, path: str) -> None:
    client.post("/locale", data={"locale": code, "csrf_token": csrf_token(client, path)})


def test_templates_follow_each_requests_language(crm, client, login):
    """Imported macros run with the page's context, so the first request's language does not
    stick (the settings pages import `field`)."""
    login(client, crm["anna"])
    path = f"/pipeline/deals/new?pipeline_id={crm['pipeline'].id}"
    _switch(client, "ru", path)
    assert "Новая сделка" in client.get(path).get_data(as_text=True)
    _switch(client, "en", path)
    page = client.get(path).get_data(as_text=True)
    assert "New deal" in page and "Новая" not in page
    from pathlib import Path
    folder = Path(__file__).parents[1] / "templates" / "pipeline"
    for template in folder.glob("*.html"):
        for line in template.read_text().splitlines():
            if "{% from" in line and " import " in line:
                assert "with context" in line, (template.name, line)


@pytest.mark.parametrize(("code", "expected"), [
    ("ru", "ноябрь 2026"), ("kk", "Қараша 2026"), ("lv", "novembris 2026"),
    ("ro", "noiembrie 2026"), ("uz", "Noyabr 2026"), ("en", "November 2026")])
def test_forecast_months_are_standalone(crm, client, login, code, expected):
    create_deal(title="Later", pipeline=crm["pipeline"], user=crm["anna"], amount="100",
                owner_id=crm["anna"].id, expected_close=date(2026, 11, 20))
    db.session.commit()
    login(client, crm["anna"])
    _switch(client, code, "/pipeline/reports/forecast")
    page = client.get("/pipeline/reports/forecast").get_data(as_text=True)
    assert expected in page
    if code == "ru":
        assert "ноября 2026" not in page
