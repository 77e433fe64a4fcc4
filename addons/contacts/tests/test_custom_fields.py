"""Custom fields end to end: an admin defines them, the form stores typed values, the card and
the list show them, and the list filters and searches by them."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from addons.contacts.models import CustomField, CustomValue, Partner
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("contacts")


def _define(client, **fields) -> CustomField:
    data = {"csrf_token": csrf_token(client, "/contacts/settings/fields/new"),
            "applies_to": "both", "sequence": "10", "active": "y", **fields}
    response = client.post("/contacts/settings/fields/new", data=data)
    assert response.status_code == 302, re.findall(r'field-error">([^<]*)',
                                                   response.get_data(as_text=True))
    return db.session.scalar(select(CustomField).order_by(CustomField.id.desc()))


@pytest.fixture
def fields(app, client, make_user, login):
    admin = make_user("root", is_admin=True)
    login(client, admin)
    return {
        "fleet": _define(client, kind="number", label_en="Fleet size", label_lv="Autoparks",
                         show_in_list="y"),
        "industry": _define(client, kind="choice", label_en="Industry",
                            choices_en="Retail\nLogistics", choices_lv="Mazumtirdzniecība\n"
                            "Loģistika", show_in_list="y"),
        "code": _define(client, kind="text", label_en="Legacy code", code="legacy_code"),
        "news": _define(client, kind="bool", label_en="Newsletter"),
        "signed": _define(client, kind="date", label_en="Contract signed"),
    }


def test_admin_pages_need_the_manage_permission(app, client, make_user, login):
    seller = make_user("sam")
    assign_roles(seller, "salesperson")
    login(client, seller)
    assert client.get("/contacts/settings/fields").status_code == 404
    assert client.get("/contacts/settings/fields/new").status_code == 404
    menu = client.get("/contacts/").get_data(as_text=True)
    assert 'data-menu="contacts.people"' in menu
    assert 'data-menu="settings.contacts_fields"' not in menu
    manager = make_user("boss")
    assign_roles(manager, "sales_manager")
    other = app.test_client()
    login(other, manager)
    assert 'data-menu="settings.contacts_fields"' in other.get("/contacts/").get_data(
        as_text=True)
    assert other.get("/contacts/settings/fields").status_code == 200


def test_definitions_keep_labels_per_language_and_options(fields):
    industry = fields["industry"]
    assert fields["code"].code == "legacy_code"
    assert fields["fleet"].labels == {"en": "Fleet size", "lv": "Autoparks"}
    assert [c["value"] for c in industry.choices] == ["retail", "logistics"]
    assert industry.choices[1]["labels"] == {"en": "Logistics", "lv": "Loģistika"}


def _company(client, fields, name: str, **values) -> Partner:
    data = {"csrf_token": csrf_token(client, "/contacts/new/company"), "kind": "company",
            "name": name, "status": "client", "create_anyway": "y"}
    for key, value in values.items():
        data[f"cf{fields[key].id}"] = value
    response = client.post("/contacts/new/company", data=data)
    assert response.status_code == 302, re.findall(r'field-error">([^<]*)',
                                                   response.get_data(as_text=True))
    return db.session.scalar(select(Partner).where(Partner.name == name))


@pytest.fixture
def companies(fields, client):
    return {
        "big": _company(client, fields, "Big Trucks SIA", fleet="120", industry="logistics",
                        code="X-77 alpha", news="1", signed="2025-03-01"),
        "small": _company(client, fields, "Corner Shop SRL", fleet="3", industry="retail",
                          news="0"),
        "blank": _company(client, fields, "Unknown LLP"),
    }


def test_values_are_stored_typed_and_shown_on_the_card(fields, companies, client):
    big = companies["big"]
    stored = {row.field_id: row for row in db.session.scalars(
        select(CustomValue).where(CustomValue.partner_id == big.id))}
    assert stored[fields["fleet"].id].value_number == 120
    assert stored[fields["signed"].id].value_date.isoformat() == "2025-03-01"
    assert stored[fields["news"].id].value_bool is True
    card = client.get(f"/contacts/{big.id}").get_data(as_text=True)
    for text in ("Fleet size", "120", "Logistics", "X-77 alpha", "Newsletter", "Yes"):
        assert text in card


def test_list_shows_flagged_fields_as_columns(fields, companies, client):
    html = client.get("/contacts/").get_data(as_text=True)
    header = html[html.index("<thead>"):html.index("</thead>")]
    assert "Fleet size" in header and "Industry" in header and "Legacy code" not in header
    row = re.search(rf'<tr id="partner-{companies["big"].id}">(.*?)</tr>', html, re.S).group(1)
    assert "120" in row and "Logistics" in row


def _names(client, query: str) -> set[str]:
    html = client.get("/contacts/?" + query).get_data(as_text=True)
    return set(re.findall(r'<tr id="partner-\d+">\s*<td>.*?</td>\s*<td><a href="[^"]+">'
                          r'([^<]+)</a>', html, re.S))


def test_list_filters_by_each_kind_of_field(fields, companies, client):
    fleet, industry = fields["fleet"].id, fields["industry"].id
    news, signed, code = fields["news"].id, fields["signed"].id, fields["code"].id
    assert _names(client, f"cf{fleet}_min=10") == {"Big Trucks SIA"}
    assert _names(client, f"cf{fleet}_max=10") == {"Corner Shop SRL"}
    assert _names(client, f"cf{industry}=retail") == {"Corner Shop SRL"}
    assert _names(client, f"cf{news}=1") == {"Big Trucks SIA"}
    assert _names(client, f"cf{news}=0") == {"Corner Shop SRL", "Unknown LLP"}
    assert _names(client, f"cf{signed}_min=2025-01-01&cf{signed}_max=2025-12-31") == {
        "Big Trucks SIA"}
    assert _names(client, f"cf{code}=x-77") == {"Big Trucks SIA"}


def test_text_filter_ignores_case_diacritics_and_script(fields, companies, client):
    from addons.contacts.custom_fields import save_values

    code = fields["code"].id
    save_values(companies["small"], {code: "Būve ПРОЕКТ"}, [fields["code"]])
    db.session.commit()
    for typed in ("buve", "BŪVE", "проект", "Proekt", "ve pro"):
        assert _names(client, f"cf{code}={typed}") == {"Corner Shop SRL"}, typed
    assert _names(client, f"cf{code}=x-77") == {"Big Trucks SIA"}
    assert _names(client, f"cf{code}=%25") == set()  # a wildcard is a character


def test_search_box_finds_text_values_and_choice_labels(fields, companies, client):
    assert _names(client, "q=alpha") == {"Big Trucks SIA"}
    assert _names(client, "q=logistika") == {"Big Trucks SIA"}  # the Latvian label, folded


def test_clearing_a_value_removes_it_and_its_search_words(fields, companies, client):
    big = companies["big"]
    html = client.get(f"/contacts/{big.id}/edit").get_data(as_text=True)
    data = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    data.update({"kind": "company", "name": "Big Trucks SIA", "status": "client",
                 f"cf{fields['code'].id}": "", f"cf{fields['fleet'].id}": "121"})
    assert client.post(f"/contacts/{big.id}/edit", data=data).status_code == 302
    assert _names(client, "q=alpha") == set()
    assert _names(client, f"cf{fields['fleet'].id}_min=121") == {"Big Trucks SIA"}


def test_editing_options_keeps_the_codes_stored_values_use(fields, client):
    industry = fields["industry"]
    url = f"/contacts/settings/fields/{industry.id}"
    response = client.post(url, data={
        "csrf_token": csrf_token(client, url), "applies_to": "both", "sequence": "10",
        "active": "y", "label_en": "Industry", "show_in_list": "y",
        "choices_en": "Wholesale\nRetail\nLogistics", "choices_lv": "Vairumtirdzniecība\n"
        "Mazumtirdzniecība\nLoģistika"})
    assert response.status_code == 302
    db.session.expire_all()
    choices = db.session.get(CustomField, industry.id).choices
    assert [c["value"] for c in choices] == ["wholesale", "retail", "logistics"]
    assert db.session.get(CustomField, industry.id).kind == "choice"  # kind cannot change
