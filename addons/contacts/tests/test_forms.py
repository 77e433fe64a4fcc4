"""The create/edit form: names, phones and e-mails validated and normalised, tax numbers per
country, a company picked by name, duplicates warned about, and optimistic locking."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from addons.contacts import services
from addons.contacts.models import Partner
from core.api import assign_roles, db
from core.testing import csrf_token


@pytest.fixture
def env(make_app, make_user, login):
    app = make_app(["contacts"], BIRGA_PHONE_REGION="LV")
    with app.app_context():
        user = make_user("sam")
        assign_roles(user, "salesperson")
        client = app.test_client()
        login(client, user)
        yield app, client, user


def _post(client, url: str, **fields):
    data = {"csrf_token": csrf_token(client, url), "status": "lead", **fields}
    return client.post(url, data=data)


def _count() -> int:
    return db.session.scalar(select(func.count(Partner.id)))


def test_person_is_created_with_normalised_phones_and_emails(env):
    _app, client, user = env
    response = _post(client, "/contacts/new/person", kind="person", first_name="Jānis",
                     last_name="Bērziņš", **{"phones-0-number": "2000 0001",
                                             "phones-0-kind": "mobile",
                                             "phones-1-number": "+7 (916) 123-45-67",
                                             "phones-1-kind": "work",
                                             "emails-0-email": "Janis@Example.LV",
                                             "emails-0-kind": "work"})
    assert response.status_code == 302
    partner = db.session.scalar(select(Partner))
    assert partner.name == "Jānis Bērziņš"
    assert [p.number for p in partner.phones] == ["+37120000001", "+79161234567"]
    assert partner.phone == "+37120000001" and partner.email == "Janis@example.lv"
    assert partner.owner_id == user.id  # the creator, when nobody was chosen
    card = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "20 000 001" in card          # the firm's own numbers in national format
    assert "+7 916 123-45-67" in card    # foreign ones in international format
    html = client.get("/contacts/?q=berzins").get_data(as_text=True)
    assert "Jānis Bērziņš" in html


def test_names_follow_the_firms_convention(make_app, make_user, login):
    app = make_app(["contacts"], BIRGA_NAME_LOCALE="ru")
    with app.app_context():
        user = make_user("root", is_admin=True)
        client = app.test_client()
        login(client, user)
        _post(client, "/contacts/new/person", kind="person", first_name="Иван",
              middle_name="Сергеевич", last_name="Петров")
        assert db.session.scalar(select(Partner.name)) == "Петров Иван Сергеевич"


@pytest.mark.parametrize(("fields", "message"), [
    ({"emails-0-email": "not an address"}, "This is not an e-mail address."),
    ({"phones-0-number": "12"}, "too few or too many digits"),
    ({"phones-0-number": "call me"}, "This is not a phone number."),
    ({"country": "LV", "vat": "LV40003245753"}, "control digit"),
    ({"last_name": "", "first_name": ""}, "A person needs a first or a last name."),
])
def test_invalid_values_are_refused_field_by_field(env, fields, message):
    _app, client, _user = env
    data = {"kind": "person", "last_name": "Ozols", **fields}
    response = _post(client, "/contacts/new/person", **data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert _count() == 0


def test_tax_number_is_stored_normalised(env):
    _app, client, _user = env
    response = _post(client, "/contacts/new/company", kind="company", name="Piens SIA",
                     country="LV", vat="LV 4000 3245 752")
    assert response.status_code == 302
    assert db.session.scalar(select(Partner.vat)) == "40003245752"


def test_person_joins_an_existing_company_by_name(env):
    _app, client, user = env
    company = Partner(kind="company", name="Rīgas Piens", owner_id=user.id)
    services.refresh_search(company)
    db.session.commit()
    response = _post(client, "/contacts/new/person", kind="person", last_name="Ozols",
                     company="rigas piens")
    assert response.status_code == 302
    person = db.session.scalar(select(Partner).where(Partner.kind == "person"))
    assert person.company_id == company.id and person.company_name == "Rīgas Piens"
    card = client.get(f"/contacts/{company.id}").get_data(as_text=True)
    assert "Ozols" in card
    missing = _post(client, "/contacts/new/person", kind="person", last_name="Kalns",
                    company="Nowhere Ltd")
    assert "No company is called that" in missing.get_data(as_text=True)


def test_duplicate_warning_then_create_anyway(env):
    _app, client, user = env
    existing = Partner(kind="person", first_name="Anna", last_name="Liepa", owner_id=user.id)
    services.set_phones(existing, ["+371 2000 0009"])
    services.refresh_search(existing)
    db.session.commit()
    data = {"kind": "person", "first_name": "Ann", "last_name": "Liepiņa",
            "phones-0-number": "20000009"}
    warned = _post(client, "/contacts/new/person", **data)
    html = warned.get_data(as_text=True)
    assert warned.status_code == 200 and _count() == 1
    assert f'href="/contacts/{existing.id}"' in html and "same phone" in html
    # the checkbox must sit inside the form, or the browser never submits it
    form = html[html.index('<form method="post" class="partner-form"'):]
    assert 'name="create_anyway"' in form[:form.index("</form>")]
    created = _post(client, "/contacts/new/person", create_anyway="y", **data)
    assert created.status_code == 302 and _count() == 2


def _edit_data(client, partner_id: int) -> dict:
    """The edit form's fields as rendered (the version among them)."""
    import re

    html = client.get(f"/contacts/{partner_id}/edit").get_data(as_text=True)
    return dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))


def test_conflicting_save_is_refused_and_shows_what_changed(env):
    _app, client, user = env
    partner = Partner(kind="company", name="Ozols SIA", owner_id=user.id, status="lead")
    services.refresh_search(partner)
    db.session.commit()
    form = _edit_data(client, partner.id)
    assert form["version"] == str(partner.version)

    partner.status = "client"  # someone else saves meanwhile
    db.session.commit()

    mine = {**form, "kind": "company", "name": "Ozols Group SIA", "status": "prospect"}
    response = client.post(f"/contacts/{partner.id}/edit", data=mine)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    start = html.index('class="flash flash-error conflict"')
    conflict = html[start:html.index('class="partner-form"')]
    assert "Someone else saved this record" in conflict
    assert "Status: now client" in conflict
    db.session.expire_all()
    current = db.session.get(Partner, partner.id)
    assert (current.name, current.status) == ("Ozols SIA", "client")

    # Saving again from the refreshed form is a deliberate choice, and goes through.
    import re
    version = re.search(r'name="version"[^>]*value="(\d+)"', html) or re.search(
        r'value="(\d+)"[^>]*name="version"', html)
    again = client.post(f"/contacts/{partner.id}/edit", data={**mine,
                                                              "version": version.group(1)})
    assert again.status_code == 302
    db.session.expire_all()
    current = db.session.get(Partner, partner.id)
    assert (current.name, current.status) == ("Ozols Group SIA", "prospect")


def test_edit_replaces_phones_and_keeps_search_in_step(env):
    _app, client, user = env
    partner = Partner(kind="person", first_name="Ilze", last_name="Kalna", owner_id=user.id)
    services.set_phones(partner, ["+371 2000 0002"])
    services.refresh_search(partner)
    db.session.commit()
    form = _edit_data(client, partner.id)
    data = {**form, "kind": "person", "last_name": "Kalniņa", "phones-0-number": "+37126000003",
            "phones-0-kind": "work"}
    assert client.post(f"/contacts/{partner.id}/edit", data=data).status_code == 302
    db.session.expire_all()
    partner = db.session.get(Partner, partner.id)
    assert partner.name == "Ilze Kalniņa"
    assert [p.number for p in partner.phones] == ["+37126000003"]
    assert "Ilze Kalniņa" in client.get("/contacts/?q=kalnina").get_data(as_text=True)
    assert "Ilze Kalniņa" not in client.get("/contacts/?q=20000002").get_data(as_text=True)


def test_renaming_a_company_renames_it_on_its_people_and_in_search(env):
    _app, client, user = env
    company = Partner(kind="company", name="Rīgas Piens", owner_id=user.id)
    services.refresh_search(company)
    db.session.flush()
    person = Partner(kind="person", first_name="Jānis", last_name="Ozols", owner_id=user.id,
                     company=company)
    services.refresh_search(person)
    db.session.commit()
    data = {**_edit_data(client, company.id), "kind": "company", "name": "Latvijas Piens"}
    assert client.post(f"/contacts/{company.id}/edit", data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, person.id).company_name == "Latvijas Piens"
    listed = client.get("/contacts/?q=latvijas").get_data(as_text=True)
    assert "Jānis Ozols" in listed  # found by the company's new name
    assert "Jānis Ozols" not in client.get("/contacts/?q=rigas").get_data(as_text=True)


def _form_fields(html: str) -> list[tuple[str, str]]:
    """What a browser would submit: inputs with a value and the selected options."""
    import re

    form = html[html.index('class="partner-form"'):]
    form = form[:form.index("</form>")]
    data = [(n, v) for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                          form)]
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form,
                                 re.S):
        data += [(name, v) for v in re.findall(r'<option selected value="([^"]*)"', body)]
    return data


def test_saving_the_edit_form_unchanged_keeps_everything(env):
    from addons.contacts.models import Tag

    _app, client, user = env
    other = type(user)(login="sara", name="Sara")
    db.session.add(other)
    db.session.flush()
    company = Partner(kind="company", name="Hidden Company SIA", owner_id=other.id)
    services.refresh_search(company)
    vip = Tag(name="VIP")
    person = Partner(kind="person", first_name="Anna", last_name="Liepa", owner_id=user.id,
                     company=company, country="LV", lang="lv", status="client")
    person.tags = [vip]
    services.set_phones(person, ["+371 2000 0005", "+40 721 234 567"])
    services.set_emails(person, ["anna@liepa.lv"])
    services.refresh_search(person)
    db.session.commit()
    html = client.get(f"/contacts/{person.id}/edit").get_data(as_text=True)
    assert 'value="20 000 005"' in html            # shown in national format
    assert 'value="Hidden Company SIA"' in html    # the company, though Sam cannot open it
    response = client.post(f"/contacts/{person.id}/edit", data=MultiDict(_form_fields(html)))
    assert response.status_code == 302
    db.session.expire_all()
    person = db.session.get(Partner, person.id)
    assert person.company_id == company.id
    assert [p.number for p in person.phones] == ["+37120000005", "+40721234567"]
    assert [t.name for t in person.tags] == ["VIP"]
    assert (person.country, person.lang, person.status, person.email) == (
        "LV", "lv", "client", "anna@liepa.lv")


def test_new_tags_typed_on_edit_are_created_and_saved_without_a_conflict(env):
    _app, client, user = env
    partner = Partner(kind="company", name="Tagged SIA", owner_id=user.id)
    services.set_phones(partner, ["+371 6700 0000"])
    services.refresh_search(partner)
    db.session.commit()
    html = client.get(f"/contacts/{partner.id}/edit").get_data(as_text=True)
    data = MultiDict(_form_fields(html))
    data["phones-0-number"] = "+371 6700 0001"
    data["new_tags"] = "Wholesale, Export"
    response = client.post(f"/contacts/{partner.id}/edit", data=data)
    assert response.status_code == 302  # not refused as a conflict with itself
    db.session.expire_all()
    partner = db.session.get(Partner, partner.id)
    assert sorted(t.name for t in partner.tags) == ["Export", "Wholesale"]
    assert partner.phone == "+37167000001"
