"""The file manager: client folders over attachments, upload limits and types, search by name,
inline previews only for PDFs and images, and 404 for every file of a record one may not see."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.documents import offers
from core.api import assign_roles, db
from core.storage import Attachment
from core.testing import csrf_token

pytestmark = pytest.mark.addons("documents")

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def people(app, make_user):
    alice = make_user("alice")
    bob = make_user("bob")
    assign_roles(alice, "salesperson")
    assign_roles(bob, "salesperson")
    ozols = Partner(kind="company", name="Ozols SIA", owner_id=alice.id, lang="lv",
                    email="birojs@ozols.lv", country="LV")
    other = Partner(kind="company", name="Bērzs SIA", owner_id=bob.id, lang="lv",
                    country="LV")
    db.session.add_all([ozols, other])
    db.session.commit()
    return alice, bob, ozols, other


def upload(client, partner_id: int, name: str, content: bytes, *, target: str | None = None,
           json: bool = False):
    token = csrf_token(client, f"/documents/files/client/{partner_id}")
    data = {"csrf_token": token, "file": (io.BytesIO(content), name)}
    if target:
        data["target"] = target
    headers = {"Accept": "application/json"} if json else {}
    return client.post(f"/documents/files/client/{partner_id}/upload", data=data,
                       content_type="multipart/form-data", headers=headers)


def rows() -> list[Attachment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Attachment).order_by(Attachment.id)))


def test_a_plain_form_upload_lands_in_the_clients_folder(client, login, people):
    alice, _bob, ozols, _other = people
    login(client, alice)
    response = upload(client, ozols.id, "līgums.pdf", PDF)
    assert response.status_code == 302
    [row] = rows()
    assert (row.model, row.record_id, row.filename) == ("contacts.partner", ozols.id,
                                                        "līgums.pdf")
    assert row.content_type == "application/pdf"
    page = client.get(f"/documents/files/client/{ozols.id}").get_data(as_text=True)
    assert "līgums.pdf" in page
    assert 'data-dropzone' in page and "files.js" in page  # drag and drop added by script
    assert "<script>" not in page  # no inline script (CSP)


def test_files_of_the_clients_offers_are_in_its_folder(client, login, people):
    alice, _bob, ozols, _other = people
    offer = offers.create_offer(ozols, user=alice, currency="EUR", seller_country="LV")
    db.session.commit()
    login(client, alice)
    response = upload(client, ozols.id, "specification.png", PNG,
                      target=f"documents.offer:{offer.id}", json=True)
    assert response.status_code == 200 and response.json["ok"] is True
    [row] = rows()
    assert (row.model, row.record_id) == ("documents.offer", offer.id)
    page = client.get(f"/documents/files/client/{ozols.id}").get_data(as_text=True)
    assert "specification.png" in page


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(make_app, make_user, login,
                                                               tmp_path):
    app = make_app(["documents"], BIRGA_ATTACHMENT_MAX_BYTES=1000)
    with app.app_context():
        user = make_user("alice")
        assign_roles(user, "salesperson")
        partner = Partner(kind="company", name="Liepa", owner_id=user.id)
        db.session.add(partner)
        db.session.commit()
        client = app.test_client()
        login(client, user)
        response = upload(client, partner.id, "big.pdf", PDF + b"x" * 2000, json=True)
        assert response.status_code == 422
        assert "big.pdf" in response.json["error"]
        assert rows() == []
        attachments = app.config.get("BIRGA_ATTACHMENT_DIR") or f"{app.instance_path}/attachments"
        leftovers = [p for p in Path(attachments).rglob("*") if p.is_file()]
        assert leftovers == []
        small = upload(client, partner.id, "small.pdf", PDF)
        assert small.status_code == 302 and len(rows()) == 1


@pytest.mark.parametrize(("name", "content"), [
    ("page.html", b"<html><script>alert(1)</script></html>"),
    ("photo.png", PDF),  # a PDF pretending to be an image
    ("empty.pdf", b""),
])
def test_types_outside_the_allow_list_or_lying_names_are_refused(client, login, people, name,
                                                                 content):
    alice, _bob, ozols, _other = people
    login(client, alice)
    response = upload(client, ozols.id, name, content, json=True)
    assert response.status_code == 422
    assert rows() == []
    # Without JavaScript the refusal is a flashed message on the folder page.
    page = client.get(upload(client, ozols.id, name, content).headers["Location"])
    assert name in page.get_data(as_text=True)


def test_search_by_name_finds_files_across_records_case_insensitively(client, login, people):
    alice, bob, ozols, other = people
    offer = offers.create_offer(ozols, user=alice, currency="EUR", seller_country="LV")
    db.session.commit()
    login(client, alice)
    upload(client, ozols.id, "Rēķins-2026.pdf", PDF)
    upload(client, ozols.id, "rēķins-offer.pdf", PDF, target=f"documents.offer:{offer.id}")
    upload(client, ozols.id, "logo.png", PNG)
    page = client.get("/documents/files?q=RĒĶINS").get_data(as_text=True)
    assert "Rēķins-2026.pdf" in page and "rēķins-offer.pdf" in page
    assert "logo.png" not in page.split("file-folders")[0]
    # LIKE wildcards are taken literally: "%" matches no file name here.
    wildcard = client.get("/documents/files?q=%25").get_data(as_text=True)
    assert "Rēķins-2026.pdf" not in wildcard and "logo.png" not in wildcard
    # Within one folder too.
    folder = client.get(f"/documents/files/client/{ozols.id}?q=logo").get_data(as_text=True)
    assert "logo.png" in folder and "Rēķins-2026.pdf" not in folder


def test_search_never_shows_files_of_clients_one_may_not_see(app, client, login, people):
    alice, bob, ozols, other = people
    bobs = app.test_client()
    login(bobs, bob)
    upload(bobs, other.id, "secret-price-list.pdf", PDF)
    login(client, alice)
    page = client.get("/documents/files?q=secret").get_data(as_text=True)
    assert "secret-price-list.pdf" not in page
    assert "Bērzs SIA" not in page  # nor the folder
    assert "secret-price-list.pdf" in bobs.get("/documents/files?q=secret").get_data(
        as_text=True)


def test_pdf_and_image_previews_are_inline_with_their_type(client, login, people):
    alice, _bob, ozols, _other = people
    login(client, alice)
    upload(client, ozols.id, "offer.pdf", PDF)
    upload(client, ozols.id, "logo.png", PNG)
    pdf_row, png_row = rows()
    inline = client.get(f"/documents/files/{pdf_row.id}/inline")
    assert inline.status_code == 200 and inline.mimetype == "application/pdf"
    assert inline.headers["Content-Disposition"].startswith("inline")
    assert inline.data == PDF
    image = client.get(f"/documents/files/{png_row.id}/inline")
    assert image.mimetype == "image/png" and image.data == PNG
    preview = client.get(f"/documents/files/{pdf_row.id}/preview").get_data(as_text=True)
    assert f"/documents/files/{pdf_row.id}/inline" in preview and "<iframe" in preview
    preview = client.get(f"/documents/files/{png_row.id}/preview").get_data(as_text=True)
    assert re.search(rf'<img[^>]+/documents/files/{png_row.id}/inline', preview)


def test_other_files_are_never_served_inline_only_downloaded(client, login, people):
    alice, _bob, ozols, _other = people
    login(client, alice)
    upload(client, ozols.id, "notes.txt", "Sveiki, Ozols! Paldies, ā ē.".encode())
    [row] = rows()
    assert client.get(f"/documents/files/{row.id}/inline").status_code == 404
    download = client.get(f"/documents/files/{row.id}/download")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.data == "Sveiki, Ozols! Paldies, ā ē.".encode()


def test_files_of_records_one_may_not_see_are_404_everywhere(app, client, login, people):
    alice, bob, ozols, other = people
    login(client, alice)
    upload(client, ozols.id, "offer.pdf", PDF)
    [row] = rows()
    bobs = app.test_client()
    login(bobs, bob)
    for path in (f"/documents/files/{row.id}/preview", f"/documents/files/{row.id}/inline",
                 f"/documents/files/{row.id}/download", f"/documents/files/client/{ozols.id}",
                 "/documents/files/999999/download"):
        assert bobs.get(path).status_code == 404, path
    token = csrf_token(bobs, "/documents/files")
    response = bobs.post(f"/documents/files/client/{ozols.id}/upload", data={
        "csrf_token": token, "file": (io.BytesIO(PDF), "x.pdf")},
        content_type="multipart/form-data")
    assert response.status_code == 404
    # Alice may not drop a file onto Bob's client by naming it as the target either.
    response = upload(client, ozols.id, "x.pdf", PDF, target=f"contacts.partner:{other.id}")
    assert response.status_code == 404
    assert len(rows()) == 1


def test_a_user_without_a_role_sees_no_file_manager(app, client, login, make_user, people):
    nobody = make_user("nobody")
    login(client, nobody)
    assert client.get("/documents/files").status_code == 404


def test_the_contact_card_links_to_the_clients_folder(client, login, people):
    alice, _bob, ozols, _other = people
    login(client, alice)
    upload(client, ozols.id, "a.pdf", PDF)
    upload(client, ozols.id, "b.png", PNG)
    card = client.get(f"/contacts/{ozols.id}").get_data(as_text=True)
    assert f"/documents/files/client/{ozols.id}" in card
    assert "2 files in the client" in card


# -- deleting from the file manager (the kernel's route) -----------------------------------------
def delete_form(page: str, attachment_id: int) -> re.Match | None:
    return re.search(rf'<form method="post" action="/attachments/{attachment_id}/delete"'
                     rf'[^>]*>.*?name="next" value="([^"]*)".*?</form>', page, re.S)


def test_the_uploader_deletes_a_file_from_the_folder_and_comes_back_to_it(client, login,
                                                                          people):
    alice, _bob, ozols, _other = people
    login(client, alice)
    upload(client, ozols.id, "old-price-list.pdf", PDF)
    [row] = rows()
    folder = f"/documents/files/client/{ozols.id}"
    form = delete_form(client.get(folder).get_data(as_text=True), row.id)
    assert form is not None and form.group(1) == folder
    response = client.post(f"/attachments/{row.id}/delete",
                           data={"csrf_token": csrf_token(client, folder),
                                 "next": form.group(1)})
    assert response.status_code == 302 and response.headers["Location"].endswith(folder)
    assert rows() == []
    page = client.get(folder).get_data(as_text=True)
    assert "Attachment deleted." in page and "old-price-list.pdf" not in page


def test_search_results_offer_delete_too_and_return_to_the_search(client, login, people):
    alice, _bob, ozols, _other = people
    login(client, alice)
    upload(client, ozols.id, "Offer-scan.png", PNG)
    [row] = rows()
    form = delete_form(client.get("/documents/files?q=scan").get_data(as_text=True), row.id)
    assert form is not None and form.group(1) == "/documents/files?q=scan"


def test_no_delete_button_for_a_file_someone_else_uploaded_unless_administrator(
        app, client, login, make_user, people):
    alice, _bob, ozols, _other = people
    admin = make_user("root", is_admin=True)
    boss = app.test_client()
    login(boss, admin)
    upload(boss, ozols.id, "contract-signed.pdf", PDF)
    [row] = rows()
    folder = f"/documents/files/client/{ozols.id}"
    assert delete_form(boss.get(folder).get_data(as_text=True), row.id) is not None
    login(client, alice)
    page = client.get(folder).get_data(as_text=True)
    assert "contract-signed.pdf" in page and delete_form(page, row.id) is None
    # The kernel's route agrees: she may read the file, not delete it.
    response = client.post(f"/attachments/{row.id}/delete",
                           data={"csrf_token": csrf_token(client, folder)})
    assert response.status_code == 403 and len(rows()) == 1


def test_an_offers_pdf_as_sent_is_never_offered_for_deletion(app, client, login, make_user,
                                                             people):
    from core.api import save_attachment

    alice, _bob, ozols, _other = people
    offer = offers.create_offer(ozols, user=alice, currency="EUR", seller_country="LV")
    offers.add_line(offer, description="Sula", unit_price="2", vat_rate="21")
    offers.change_state(offer, "sent", user=alice)
    sent = save_attachment("documents.offer", offer.id, io.BytesIO(PDF), "offer.pdf",
                           user=alice)
    extra = save_attachment("documents.offer", offer.id, io.BytesIO(PDF), "annex.pdf",
                            user=alice)
    db.session.flush()
    offer.sent_attachment_id = sent.id
    db.session.commit()
    folder = f"/documents/files/client/{ozols.id}"
    for user in (alice, make_user("root", is_admin=True)):
        viewer = app.test_client()
        login(viewer, user)
        page = viewer.get(folder).get_data(as_text=True)
        assert "offer.pdf" in page and delete_form(page, sent.id) is None
        assert delete_form(page, extra.id) is not None
