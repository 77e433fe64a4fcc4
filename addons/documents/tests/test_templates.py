"""The template editor: versions, revert, live preview on a real record, generic documents."""
from __future__ import annotations

import re
import subprocess
from datetime import date

import pytest
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.documents.default_templates import ensure_default
from addons.documents.models import DocumentTemplate, TemplateVersion
from addons.documents.offers import add_line, create_offer
from core.api import assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("documents")


@pytest.fixture
def setup(app, make_user):
    editor = make_user("editor")
    assign_roles(editor, "administrator")
    seller = make_user("seller")
    assign_roles(seller, "salesperson")
    partner = Partner(kind="company", name="SIA Ābeļdārzs", first_name="Jānis", lang="lv",
                      country="LV", owner_id=seller.id, vat="LV40003000000", city="Rīga")
    other = Partner(kind="company", name="Someone else's", lang="en", country="LV")
    db.session.add_all([partner, other])
    db.session.flush()
    offer = create_offer(partner, user=seller, currency="EUR", lang="lv",
                         offer_date=date(2026, 11, 23))
    add_line(offer, description="Ķēdes zāģis", quantity="1", unit_price="21", vat_rate="21")
    offer_tpl = ensure_default("offer")
    letter = ensure_default("letter")
    db.session.commit()
    return editor, seller, partner, other, offer, offer_tpl, letter


def pdftotext(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=data,  # noqa: S607
                          capture_output=True, check=True).stdout.decode("utf-8")


def save(client, template, html, css, version, record=None):
    token = csrf_token(client, f"/documents/templates/{template.id}")
    data = {"csrf_token": token, "html": html, "css": css, "version": str(version)}
    if record:
        data["record"] = str(record)
    return client.post(f"/documents/templates/{template.id}", data=data)


def test_editor_shows_sources_versions_and_a_preview_of_a_real_record(client, login, setup):
    editor, _s, _p, _o, offer, offer_tpl, _l = setup
    login(client, editor)
    page = client.get(f"/documents/templates/{offer_tpl.id}?record={offer.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "table-header-group" in text  # the CSS is in the editor
    assert f"/documents/templates/{offer_tpl.id}/preview?record={offer.id}" in text
    assert 'formtarget="template-preview"' in text
    preview = client.get(f"/documents/templates/{offer_tpl.id}/preview?record={offer.id}")
    body = preview.get_data(as_text=True)
    assert "SIA Ābeļdārzs" in body and "Ķēdes zāģis" in body
    assert "Divdesmit pieci eiro, 41 cents" in body
    assert "sandbox" in preview.headers["Content-Security-Policy"]


def test_saving_makes_a_new_version_and_revert_restores_an_old_one(client, login, setup):
    editor, *_rest, offer, offer_tpl, _l = setup
    login(client, editor)
    original = offer_tpl.html
    response = save(client, offer_tpl, "<h1>V2 {{ client.name }}</h1>", "", 1, offer.id)
    assert response.status_code == 302
    response = save(client, offer_tpl, "<h1>V3 {{ client.name }}</h1>", "", 2, offer.id)
    assert response.status_code == 302
    db.session.expire_all()
    versions = db.session.scalars(select(TemplateVersion.version).where(
        TemplateVersion.template_id == offer_tpl.id).order_by(TemplateVersion.version)).all()
    assert versions == [1, 2, 3]
    preview = client.get(f"/documents/templates/{offer_tpl.id}/preview?record={offer.id}")
    assert "V3 SIA Ābeļdārzs" in preview.get_data(as_text=True)

    token = csrf_token(client, f"/documents/templates/{offer_tpl.id}")
    client.post(f"/documents/templates/{offer_tpl.id}/revert/1", data={"csrf_token": token})
    db.session.expire_all()
    template = db.session.get(DocumentTemplate, offer_tpl.id)
    assert template.version == 4
    assert template.html == original
    assert db.session.scalar(select(TemplateVersion.html).where(
        TemplateVersion.template_id == offer_tpl.id, TemplateVersion.version == 3)).startswith(
        "<h1>V3")


def test_a_stale_save_is_refused_not_merged(client, login, setup):
    editor, *_rest, offer, offer_tpl, _l = setup
    login(client, editor)
    save(client, offer_tpl, "<p>first</p>", "", 1)
    response = save(client, offer_tpl, "<p>second, from an old form</p>", "", 1)
    assert response.status_code == 200
    assert "in the meantime" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(DocumentTemplate, offer_tpl.id).html == "<p>first</p>"


def test_an_ssti_template_is_not_saved_and_says_why(client, login, setup):
    editor, *_rest, offer, offer_tpl, _l = setup
    login(client, editor)
    response = save(client, offer_tpl, "{{ cycler.__init__.__globals__ }}", "", 1)
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(DocumentTemplate, offer_tpl.id).version == 1
    payload = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    token = csrf_token(client, f"/documents/templates/{offer_tpl.id}")
    preview = client.post(f"/documents/templates/{offer_tpl.id}/preview",
                          data={"csrf_token": token, "html": payload, "css": "",
                                "record": str(offer.id)})
    assert preview.status_code == 422
    body = preview.get_data(as_text=True)
    assert "may not reach" in body
    assert "&lt;class" not in body and "<class" not in body


def test_draft_preview_as_pdf_reads_back(client, login, setup):
    editor, *_rest, offer, offer_tpl, _l = setup
    login(client, editor)
    token = csrf_token(client, f"/documents/templates/{offer_tpl.id}")
    response = client.post(f"/documents/templates/{offer_tpl.id}/preview?format=pdf",
                           data={"csrf_token": token, "html": "<p>Draft {{ client.name }}</p>",
                                 "css": "", "record": str(offer.id)})
    assert response.headers["Content-Type"] == "application/pdf"
    assert "Draft SIA Ābeļdārzs" in pdftotext(response.data)


def test_generic_letter_is_filled_from_the_person_and_printed(client, login, setup):
    editor, _s, partner, *_rest, letter = setup
    login(client, editor)
    response = client.get(f"/documents/templates/{letter.id}/print?record={partner.id}")
    assert response.headers["Content-Type"] == "application/pdf"
    text = pdftotext(response.data)
    assert "SIA Ābeļdārzs" in text and "Jānis," in text
    assert re.search(r"1 / 1", text)


def test_printing_warns_before_a_pdf_with_missing_glyphs(client, login, setup):
    editor, _s, partner, *_rest, letter = setup
    partner.name = "漢字 Trading"
    db.session.commit()
    login(client, editor)
    response = client.get(f"/documents/templates/{letter.id}/print?record={partner.id}")
    assert response.headers["Content-Type"].startswith("text/html")
    assert "漢 字" in response.get_data(as_text=True)
    confirmed = client.get(f"/documents/templates/{letter.id}/print?record={partner.id}"
                           "&confirm=1")
    assert confirmed.headers["Content-Type"] == "application/pdf"


def test_records_outside_the_users_rules_cannot_be_previewed(client, login, setup):
    _e, seller, _p, other, *_rest, letter = setup
    login(client, seller)
    assert client.get(f"/documents/templates/{letter.id}/print?record={other.id}"
                      ).status_code == 404


def test_without_the_template_permission_the_editor_is_hidden(client, login, setup):
    _e, seller, *_rest, offer_tpl, _l = setup
    login(client, seller)
    assert client.get(f"/documents/templates/{offer_tpl.id}").status_code == 404
    assert client.get("/documents/templates").status_code == 404


def test_new_contract_template_starts_at_version_one(client, login, setup):
    editor, *_rest = setup
    login(client, editor)
    token = csrf_token(client, "/documents/templates")
    response = client.post("/documents/templates/new", data={
        "csrf_token": token, "name": "Piegādes līgums", "kind": "contract",
        "subject": "partner"})
    assert response.status_code == 302
    row = db.session.scalar(select(DocumentTemplate).where(
        DocumentTemplate.name == "Piegādes līgums"))
    assert row.version == 1 and "labels.contract" in row.html


def test_offer_pdf_route_prints_the_offer_for_its_owner_only(client, login, setup, make_user):
    _e, seller, _p, _o, offer, *_rest = setup
    login(client, seller)
    response = client.get(f"/documents/offers/{offer.id}/offer.pdf")
    assert response.headers["Content-Type"] == "application/pdf"
    assert "Ķēdes zāģis" in pdftotext(response.data)
    preview = client.get(f"/documents/offers/{offer.id}/preview")
    assert "Ķēdes zāģis" in preview.get_data(as_text=True)
    stranger = make_user("stranger")
    assign_roles(stranger, "salesperson")
    other = client.application.test_client()
    login(other, stranger)
    assert other.get(f"/documents/offers/{offer.id}/offer.pdf").status_code == 404
    assert other.get(f"/documents/offers/{offer.id}/preview").status_code == 404


def test_offer_pdf_warns_first_when_glyphs_are_missing(client, login, setup):
    _e, seller, partner, _o, offer, *_rest = setup
    partner.name = "漢字 Trading"
    db.session.commit()
    login(client, seller)
    response = client.get(f"/documents/offers/{offer.id}/offer.pdf")
    assert response.headers["Content-Type"].startswith("text/html")
    assert "漢 字" in response.get_data(as_text=True)
    forced = client.get(f"/documents/offers/{offer.id}/offer.pdf?confirm=1")
    assert forced.headers["Content-Type"] == "application/pdf"


def test_contract_filled_from_a_deal_when_pipeline_is_enabled(make_app, make_user, login):
    app = make_app(["documents", "pipeline"])
    with app.app_context():
        from addons.pipeline.state import create_deal, seed_defaults

        seed_defaults()
        editor = make_user("editor")
        assign_roles(editor, "administrator")
        partner = Partner(kind="company", name="Қазақ Сауда ЖШС", lang="kk", country="KZ",
                          registration_no="123456789012")
        db.session.add(partner)
        db.session.flush()
        deal = create_deal(title="Терезелер жеткізу", partner_id=partner.id, amount="1500000",
                           currency="KZT")
        template = ensure_default("contract")
        template.subject = "deal"
        db.session.commit()
        client = app.test_client()
        login(client, editor)
        response = client.get(f"/documents/templates/{template.id}/print?record={deal.id}")
        assert response.headers["Content-Type"] == "application/pdf"
        text = re.sub(r"\s+", " ", pdftotext(response.data))
        assert "Терезелер жеткізу" in text and "Қазақ Сауда ЖШС" in text
        assert "123456789012" in text
        assert "Бір миллион бес жүз мың теңге 00 тиын" in text


def test_deal_subject_is_unavailable_without_pipeline(client, login, setup):
    editor, *_rest, letter = setup
    letter.subject = "deal"
    db.session.commit()
    login(client, editor)
    assert client.get(f"/documents/templates/{letter.id}/print?record=1").status_code == 404


@pytest.mark.parametrize(("lang", "number", "name"), [
    ("ru", None, "Черновик-№-{id}.pdf"),
    ("uz", "Taklifnoma/2026/Oʻ-1", "Taklifnoma-2026-Oʻ-1.pdf"),
])
def test_offer_pdf_filename_outside_latin_1_is_encoded(client, login, setup, lang, number,
                                                        name):
    """A draft's name in ru ("Черновик № 8") or a number with the Uzbek ʻ: the header must be
    Latin-1 (else the server drops the response) and still carry the name (RFC 5987)."""
    from urllib.parse import unquote

    _e, seller, _p, _o, offer, *_rest = setup
    offer.lang, offer.number = lang, number
    db.session.commit()
    login(client, seller)
    response = client.get(f"/documents/offers/{offer.id}/offer.pdf")
    assert response.status_code == 200
    header = response.headers["Content-Disposition"]
    header.encode("latin-1")
    assert header.startswith("attachment;")
    assert "filename*=UTF-8''" in header
    assert unquote(header.split("filename*=UTF-8''")[1]) == name.format(id=offer.id)
    inline = client.get(f"/documents/offers/{offer.id}/offer.pdf?inline=1")
    assert inline.headers["Content-Disposition"].startswith("inline;")


def test_an_unedited_default_follows_the_shipped_file_and_an_edited_one_stays(app, monkeypatch):
    from addons.documents import default_templates as defaults

    offer = ensure_default("offer")
    letter = ensure_default("letter")
    offer.html, offer.css = "<p>{{ offer.number }}</p>", "p { color: red; }"  # as shipped once
    letter.html = "<p>Our firm's own letter</p>"  # edited by the firm: never overwritten
    db.session.commit()
    monkeypatch.setattr(defaults, "SHIPPED_BEFORE", {
        "offer": {(defaults._sha(offer.html), defaults._sha(offer.css))},
        "letter": {(defaults._sha("<p>an older letter</p>"), defaults._sha(letter.css))}})
    with db.engine.begin() as conn:
        assert defaults.refresh_unedited(conn) == ["offer"]
    with db.engine.begin() as conn:
        assert defaults.refresh_unedited(conn) == []  # once only
    db.session.expire_all()
    assert (offer.html, offer.css) == defaults.source("offer") and offer.version == 2
    history = db.session.scalars(select(TemplateVersion.html).where(
        TemplateVersion.template_id == offer.id).order_by(TemplateVersion.version)).all()
    assert history[-1] == offer.html and len(history) == 2
    assert letter.html == "<p>Our firm's own letter</p>" and letter.version == 1


def test_the_offer_hash_of_the_previous_release_is_recorded():
    """The file changed in this release: the hash of what it was must be in SHIPPED_BEFORE,
    and the current file's must not (or an unedited copy would never be refreshed)."""
    from addons.documents import default_templates as defaults

    html, css = defaults.source("offer")
    assert (defaults._sha(html), defaults._sha(css)) not in defaults.SHIPPED_BEFORE["offer"]


def test_a_contract_is_printed_from_the_client_card(app, client, make_user, login):
    """The shipped contract and letter are offered on the card (seeded on first use) and the
    link gives the PDF filled from the card; an inactive template is not offered."""
    from core.api import assign_roles

    anna = make_user("anna", locale="lv")
    assign_roles(anna, "salesperson")
    partner = Partner(kind="company", name="SIA Ozols", owner_id=anna.id, country="LV")
    db.session.add(partner)
    db.session.commit()
    login(client, anna)
    card = client.get(f"/contacts/{partner.id}").get_data(as_text=True)
    links = re.findall(r'href="(/documents/templates/\d+/print\?record=\d+)">([^<]+)<', card)
    assert len(links) == 2  # the contract and the letter, titled in Latvian
    assert "Contract" not in [title for _url, title in links]
    pdf = client.get(links[0][0].replace("&amp;", "&"))
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    letter = db.session.scalar(select(DocumentTemplate).where(DocumentTemplate.code == "letter"))
    letter.active = False
    db.session.commit()
    card = client.get(f"/contacts/{partner.id}").get_data(as_text=True)
    assert len(re.findall(r"/documents/templates/\d+/print", card)) == 1
