"""The firm's details: the row wins over `BIRGA_COMPANY_*`, the checks, and the admin page."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from core.api import company_details, db
from core.audit import AuditLog
from core.company import (
    LOGO_MAX_BYTES,
    CompanyDetails,
    InvalidCompanyValue,
    company_row,
    logo_data_url,
    normalize_bic,
    normalize_email,
    normalize_iban,
    save_details,
)
from core.security import assign_roles
from core.testing import csrf_token, statements

IBAN = "LV80BANK0000435195001"  # the check digits are right
CONFIG = {"BIRGA_COMPANY_NAME": "Config SIA", "BIRGA_COMPANY_BANK": "Config Bank",
          "BIRGA_COMPANY_COUNTRY": "ee", "BIRGA_COMPANY_IBAN": "LV97HABA0012345678910"}


def image(kind: str = "PNG", size: tuple[int, int] = (40, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (31, 78, 121)).save(out, kind)
    return out.getvalue()


# -- company_details() ---------------------------------------------------------------------
def test_without_a_row_the_configured_values_print(make_app):
    app = make_app([], **CONFIG)
    with app.app_context():
        details = company_details()
    assert details["name"] == "Config SIA"
    assert details["bank"] == "Config Bank"
    assert details["country"] == "EE"
    assert details["iban"] == "LV97 HABA 0012 3456 7891 0"
    assert details["vat"] == "" and details["logo"] == "" and details["website"] == ""
    assert set(details) == {"name", "address", "vat", "registration_no", "bank", "phone",
                            "email", "country", "logo", "iban", "bic", "website"}


def test_without_row_or_config_the_old_defaults_print(make_app):
    app = make_app([])
    with app.app_context():
        details = company_details()
    assert details["name"] == "Birga" and details["country"] == "LV"


def test_the_row_wins_and_its_empty_fields_fall_back_to_the_config(make_app):
    app = make_app([], **CONFIG)
    with app.app_context():
        save_details({"name": "Row SIA", "iban": IBAN, "bank": "", "website": "firm.example",
                      "address": "Brīvības iela 1\nRīga"})
        db.session.commit()
        details = company_details()
    assert details["name"] == "Row SIA"
    assert details["iban"] == "LV80 BANK 0000 4351 9500 1"
    assert details["bank"] == "Config Bank"  # empty in the row
    assert details["website"] == "firm.example"
    assert details["address"] == "Brīvības iela 1\nRīga"
    assert details["country"] == "EE"


def test_company_details_costs_one_query(make_app):
    app = make_app([])
    with app.app_context():
        save_details({"name": "Row SIA"})
        db.session.commit()
        with statements() as seen:
            company_details()
    assert len([s for s in seen if "core_company" in s]) == 1
    assert len(seen) == 1


# -- checks --------------------------------------------------------------------------------
def test_iban_is_checked_and_stored_compact():
    assert normalize_iban(" lv80 bank 0000 4351 9500 1 ") == IBAN
    assert normalize_iban("") is None
    for bad in ("LV81BANK0000435195001", "LV80BANK000043519500", "not an iban"):
        with pytest.raises(InvalidCompanyValue, match="not a valid IBAN"):
            normalize_iban(bad)


def test_bic_and_email_are_checked():
    assert normalize_bic("habalv22") == "HABALV22"
    assert normalize_bic("HABALV22XXX") == "HABALV22XXX"
    assert normalize_bic(" ") is None
    with pytest.raises(InvalidCompanyValue, match="SWIFT/BIC"):
        normalize_bic("HABA")
    assert normalize_email(" info@firm.example ") == "info@firm.example"
    with pytest.raises(InvalidCompanyValue):
        normalize_email("info at firm")


def test_logo_accepts_png_and_jpeg_as_data_urls():
    assert logo_data_url(image("PNG")).startswith("data:image/png;base64,iVBOR")
    assert logo_data_url(image("JPEG")).startswith("data:image/jpeg;base64,/9j/")


@pytest.mark.parametrize("data", [
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",  # SVG can carry scripts and fetches
    image("GIF"),
    b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,  # a PNG signature but no image
    image("PNG", (4001, 10)),  # small file, huge when decoded
    b"\x89PNG\r\n\x1a\n" + b"\0" * LOGO_MAX_BYTES,
])
def test_logo_refuses_other_types_broken_and_oversize_images(data):
    with pytest.raises(InvalidCompanyValue):
        logo_data_url(data)


# -- the admin page ------------------------------------------------------------------------
@pytest.fixture
def page(make_app, make_user, login):
    """An app with an administrator and a salesperson signed in, each in their own client."""
    app = make_app([], **CONFIG)
    with app.app_context():
        admin = make_user("adm")
        assign_roles(admin, "administrator")
        seller = make_user("sam")
        assign_roles(seller, "salesperson")
        db.session.commit()
        clients = {}
        for user in (admin, seller):
            clients[user.login] = app.test_client()
            login(clients[user.login], user)
        yield app, clients


def form(client, **values):
    data = {"csrf_token": csrf_token(client, "/admin/company"), "version": "0", "name": "",
            "address": "", "country": "", "vat": "", "registration_no": "", "bank": "",
            "iban": "", "bic": "", "phone": "", "email": "", "website": ""}
    data.update(values)
    return data


def test_admin_saves_the_details_with_a_logo(page):
    app, clients = page
    client = clients["adm"]
    html = client.get("/admin/company").get_data(as_text=True)
    assert "Company details" in html and 'placeholder="Config SIA"' in html
    assert 'href="/admin/company"' in client.get("/").get_data(as_text=True)  # the menu
    data = form(client, name="Firma SIA", address="Brīvības iela 1\r\nRīga", country="LV",
                iban="lv80 bank 0000 4351 9500 1", bic="habalv22", email="info@firma.example",
                website="https://firma.example")
    data["logo"] = (io.BytesIO(image()), "logo.png")
    response = client.post("/admin/company", data=data, content_type="multipart/form-data")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/company")
    html = client.get("/admin/company").get_data(as_text=True)
    assert "Company details saved." in html
    assert 'value="LV80 BANK 0000 4351 9500 1"' in html and 'src="data:image/png' in html
    db.session.expire_all()
    row = company_row()
    assert (row.name, row.iban, row.bic, row.country) == ("Firma SIA", IBAN, "HABALV22", "LV")
    assert row.address == "Brīvības iela 1\nRīga" and row.logo.startswith("data:image/png")
    assert row.version == 1
    logged = db.session.scalar(select(AuditLog).where(AuditLog.model == "core.company"))
    assert logged.action == "create" and logged.user_login == "adm"
    assert logged.changes["logo"] is True and logged.changes["iban"] == IBAN
    # A second save changes what it changes, removes the logo, keeps the rest.
    data = form(client, version="1", name="Firma SIA", country="LV", iban=IBAN,
                remove_logo="y")
    assert client.post("/admin/company", data=data).status_code == 302
    db.session.expire_all()
    row = company_row()
    assert row.logo is None and row.bic is None and row.version == 2
    assert company_details()["bic"] == ""
    changes = db.session.scalars(select(AuditLog.changes).where(
        AuditLog.model == "core.company", AuditLog.action == "update")).one()
    assert changes["logo"] == [True, False] and "name" not in changes


def test_a_stale_form_is_refused_and_overwrites_nothing(page):
    _app, clients = page
    client = clients["adm"]
    save_details({"name": "Saved meanwhile"})
    db.session.commit()
    response = client.post("/admin/company", data=form(client, version="0", name="Mine"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Someone else saved this record" in html
    assert "Saved meanwhile" in html  # what the conflict names
    db.session.expire_all()
    assert company_row().name == "Saved meanwhile"
    garbled = client.post("/admin/company", data=form(client, version="x", name="Mine"))
    assert garbled.status_code == 200 and "Someone else saved" in garbled.get_data(as_text=True)


@pytest.mark.parametrize(("values", "upload", "message"), [
    ({"iban": "LV81BANK0000435195001"}, None, "This is not a valid IBAN"),
    ({"bic": "HABA"}, None, "This is not a valid SWIFT/BIC code"),
    ({"email": "info at firm"}, None, "Enter a valid e-mail address."),
    ({"country": "XX"}, None, "Not a valid choice"),
    ({"name": "x" * 301}, None, "300"),
    ({}, (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg"), "must be a PNG or JPEG"),
    ({}, (b"\x89PNG\r\n\x1a\n" + b"\0" * (LOGO_MAX_BYTES + 10), "big.png"), "at most 1 MB"),
])
def test_bad_input_shows_the_form_again_and_saves_nothing(page, values, upload, message):
    _app, clients = page
    client = clients["adm"]
    data = form(client, **{"name": "Firma SIA", **values})
    if upload:
        data["logo"] = (io.BytesIO(upload[0]), upload[1])
    response = client.post("/admin/company", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(CompanyDetails)) is None


def test_the_page_is_hidden_from_non_admins_and_needs_the_csrf_token(page):
    _app, clients = page
    seller, admin = clients["sam"], clients["adm"]
    assert seller.get("/admin/company").status_code == 404
    assert 'href="/admin/company"' not in seller.get("/").get_data(as_text=True)
    data = form(admin, name="Hacked")  # a valid token, but the seller's session
    data["csrf_token"] = csrf_token(seller, "/")
    assert seller.post("/admin/company", data=data).status_code == 404
    without = form(admin, name="Hacked")
    del without["csrf_token"]
    assert admin.post("/admin/company", data=without).status_code == 400
    assert db.session.scalar(select(CompanyDetails)) is None
