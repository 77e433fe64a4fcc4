"""The import pages: upload, the mapping screen, check, import, progress, rejected rows,
saved mappings, revert, and who may see a batch."""
from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select

from addons.contacts.importing.models import ImportBatch, ImportMapping
from addons.contacts.models import Partner
from core.api import assign_roles, db
from core.testing import csrf_token

ROWS = [["Фамилия", "Имя", "Телефон", "E-mail", "Город"],
        ["Петров", "Иван", "+7 916 123-45-67", "ivan@example.ru", "Москва"],
        ["Смирнова", "Ольга", "+7 903 555-12-34", "=HYPERLINK(\"http://x\")", "Казань"]]


def _csv(rows, delimiter=";", encoding="cp1251") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode(encoding)


@pytest.fixture
def env(make_app, make_user, login):
    app = make_app(["contacts"], BIRGA_PHONE_REGION="RU")
    with app.app_context():
        user = make_user("admin", is_admin=True)
        client = app.test_client()
        login(client, user)
        yield app, client, user


def _upload(client, data: bytes, name: str = "people.csv", **fields):
    token = csrf_token(client, "/contacts/import")
    return client.post("/contacts/import", data={
        "csrf_token": token, "kind": "person", "file": (io.BytesIO(data), name), **fields},
        content_type="multipart/form-data")


def _mapping_form(client, url: str, **changes) -> dict:
    html = client.get(url).get_data(as_text=True)
    form = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)}
    for index, select_html in re.findall(r'<select id="map-(\d+)"[^>]*>(.*?)</select>', html,
                                         re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select_html)
        form[f"map-{index}"] = chosen.group(1) if chosen else ""
    form.update({"kind": "person", "match_key": ""})
    form.update(changes)
    return form


def test_upload_map_check_import_and_revert_through_the_pages(env):
    _app, client, _user = env
    response = _upload(client, _csv(ROWS))
    assert response.status_code == 302
    url = response.headers["Location"]
    html = client.get(url).get_data(as_text=True)
    assert "cp1251" in html and "Петров" in html  # detected encoding; sample values
    form = _mapping_form(client, url)
    assert [form[f"map-{i}"] for i in range(5)] == [
        "last_name", "first_name", "phone", "email", "city"]

    response = client.post(url, data={**form, "action": "check"})
    assert response.status_code == 302
    html = client.get(url).get_data(as_text=True)
    assert 'id="count-create">1<' in html and 'id="count-error">1<' in html
    assert "is not an e-mail address" in html
    assert db.session.scalar(select(func.count(Partner.id))) == 0

    client.post(url, data={**_mapping_form(client, url), "action": "run"})
    html = client.get(url).get_data(as_text=True)
    assert "Revert this import" in html
    assert db.session.scalar(select(Partner.name)) == "Иван Петров"

    rejected = client.get(url + "/rejected.csv")
    assert rejected.status_code == 200
    text = rejected.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:3] == ["Row", "Error", "Фамилия"]
    assert rows[1][0] == "3" and "is not an e-mail address" in rows[1][1]
    assert rows[1][5] == "'=HYPERLINK(\"http://x\")"  # neutralised for spreadsheets

    token = csrf_token(client, url)
    response = client.post(url + "/revert", data={"csrf_token": token})
    assert response.status_code == 302
    assert db.session.scalar(select(func.count(Partner.id))) == 0
    db.session.expire_all()
    assert db.session.scalar(select(ImportBatch.state)) == "reverted"


def test_the_page_can_override_encoding_and_separator(env):
    _app, client, _user = env
    data = _csv([["Vārds", "Uzvārds"], ["Jānis", "Bērziņš"]], delimiter="\t",
                encoding="cp1257")
    url = _upload(client, data, encoding="cp1257", delimiter="tab").headers["Location"]
    batch = db.session.scalar(select(ImportBatch))
    assert (batch.encoding, batch.delimiter, batch.columns) == ("cp1257", "\t",
                                                                ["Vārds", "Uzvārds"])
    client.post(url, data={**_mapping_form(client, url), "action": "reread",
                           "encoding": "cp1251", "delimiter": ","})
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.encoding, batch.delimiter, len(batch.columns)) == ("cp1251", ",", 1)


def test_a_saved_mapping_is_applied_to_the_next_file(env):
    _app, client, user = env
    url = _upload(client, _csv(ROWS)).headers["Location"]
    form = _mapping_form(client, url, **{"map-4": "", "mapping_name": "Old CRM",
                                         "match_key": "email"})
    client.post(url, data={**form, "action": "save_mapping"})
    saved = db.session.scalar(select(ImportMapping))
    assert saved.name == "Old CRM" and saved.user_id == user.id
    assert saved.fields == {"Фамилия": "last_name", "Имя": "first_name", "Телефон": "phone",
                            "E-mail": "email"}
    response = _upload(client, _csv(ROWS), "again.csv", mapping_id=str(saved.id))
    batch = db.session.get(ImportBatch, int(response.headers["Location"].rsplit("/", 1)[1]))
    assert batch.mapping == {"0": "last_name", "1": "first_name", "2": "phone", "3": "email"}
    assert batch.options["match_key"] == "email"


def test_import_needs_its_permission_and_batches_stay_private(env, make_user, login):
    app, client, _user = env
    url = _upload(client, _csv(ROWS)).headers["Location"]
    seller = make_user("seller")
    assign_roles(seller, "salesperson")  # reads and writes contacts, may not import
    other = app.test_client()
    login(other, seller)
    assert other.get("/contacts/import").status_code == 404
    colleague = make_user("colleague")
    from core.security import Role

    role = Role(code="importer", name="Importer", default_scope="own")
    role.permissions = {"contacts.read", "contacts.import"}
    db.session.add(role)
    db.session.commit()
    from core.security import UserRole

    db.session.add(UserRole(user_id=colleague.id, role_id=role.id))
    db.session.commit()
    third = app.test_client()
    login(third, colleague)
    assert third.get("/contacts/import").status_code == 200
    assert third.get(url).status_code == 404  # someone else's file
