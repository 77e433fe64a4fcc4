"""The seller on offers comes from Settings → Company details (and `BIRGA_COMPANY_*` under it)."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import date

import pytest
from flask_babel import force_locale, gettext
from PIL import Image

from addons.contacts.models import Partner
from addons.documents.offers import add_line, create_offer
from addons.documents.sandbox import company_context
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = [pytest.mark.addons("documents"),
              pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext")]


def pdftotext(data: bytes) -> str:
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=data,  # noqa: S607
                          capture_output=True, check=True).stdout.decode("utf-8")
    return re.sub(r"\s+", " ", text)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 20), (31, 78, 121)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def offer(app, make_user):
    admin = make_user("adm")
    assign_roles(admin, "administrator")
    partner = Partner(kind="company", name="SIA Klients", lang="lv", country="LV")
    db.session.add(partner)
    db.session.flush()
    offer = create_offer(partner, user=admin, currency="EUR", lang="lv",
                         offer_date=date(2026, 11, 23))
    add_line(offer, description="Sūknis", quantity="1", unit_price="100", vat_rate="21")
    db.session.commit()
    return admin, offer


def test_the_offer_pdf_prints_the_firm_an_admin_saved(client, login, offer):
    admin, offer = offer
    login(client, admin)
    before = pdftotext(client.get(f"/documents/offers/{offer.id}/offer.pdf").data)
    assert "Birga" in before and "LV80" not in before  # no row, no config: the old default
    data = {"csrf_token": csrf_token(client, "/admin/company"), "version": "0",
            "name": "SIA Ābeļu Dārzs", "address": "Brīvības iela 1\nRīga, LV-1010",
            "country": "LV", "registration_no": "40003000000", "bank": "Swedbank",
            "iban": "LV80 BANK 0000 4351 9500 1", "bic": "HABALV22",
            "website": "https://abelu.example", "logo": (io.BytesIO(png()), "logo.png")}
    response = client.post("/admin/company", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    pdf = client.get(f"/documents/offers/{offer.id}/offer.pdf")
    assert pdf.status_code == 200
    text = pdftotext(pdf.data)
    with force_locale("lv"):  # the offer's language, labels as the sandbox has them
        iban, bic, website = gettext("IBAN"), gettext("SWIFT/BIC"), gettext("Website")
    assert "SIA Ābeļu Dārzs" in text
    assert f"{iban}: LV80 BANK 0000 4351 9500 1" in text
    assert f"{bic}: HABALV22" in text and f"{website}: https://abelu.example" in text
    assert "Brīvības iela 1 Rīga, LV-1010" in text and "40003000000" in text


def test_empty_fields_print_no_line_and_the_config_still_counts(app, offer, monkeypatch):
    from addons.documents.pdf import render_offer_html

    _admin, offer = offer
    monkeypatch.setitem(app.config, "BIRGA_COMPANY_NAME", "Config SIA")
    monkeypatch.setitem(app.config, "BIRGA_COMPANY_BIC", "HABALV22")
    assert company_context()["name"] == "Config SIA"
    html = render_offer_html(offer)
    with force_locale("lv"):
        iban, bic, website = gettext("IBAN"), gettext("SWIFT/BIC"), gettext("Website")
    assert "Config SIA" in html and f"{bic}: HABALV22" in html
    assert f"{iban}:" not in html and f"{website}:" not in html
