"""Sending an offer by e-mail through a real SMTP server on loopback (aiosmtpd): the letter in
the client's language, the PDF attached (read back with `pdftotext`), the state moved to sent,
the PDF stored byte for byte, the mail on the timeline; a refused mail changes nothing."""
from __future__ import annotations

import re
import shutil
import subprocess
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.documents import offers
from addons.documents.models import Offer
from core.api import assign_roles, db
from core.storage import Attachment
from core.testing import TEST_SENDER, csrf_token, free_port
from core.timeline import TimelineEntry

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="needs poppler-utils' pdftotext")


@pytest.fixture
def mail_app(make_app, smtp_inbox):
    app = make_app(["documents"], **smtp_inbox.config())
    with app.app_context():
        yield app


def make_offer(user, *, lang: str = "lv", name: str = "Ozols SIA",
               email: str | None = "birojs@ozols.lv") -> Offer:
    partner = Partner(kind="company", name=name, owner_id=user.id, lang=lang, email=email,
                      country="LV")
    db.session.add(partner)
    db.session.flush()
    offer = offers.create_offer(partner, user=user, currency="EUR", seller_country="LV")
    offers.add_line(offer, description="Ābolu sula 1 l", quantity=3, unit_price="2.50",
                    vat_rate="21")
    db.session.commit()
    return offer


@pytest.fixture
def seller(mail_app, make_user):
    user = make_user("anna", name="Anna Bērziņa")
    assign_roles(user, "salesperson")
    return user


def send(client, offer_id: int, to: str = "birojs@ozols.lv", message: str | None = None):
    token = csrf_token(client, f"/documents/offers/{offer_id}/send")
    data = {"csrf_token": token, "to": to}
    if message is not None:
        data["message"] = message
    return client.post(f"/documents/offers/{offer_id}/send", data=data)


def pdf_of(message: EmailMessage) -> tuple[str, bytes]:
    [part] = [p for p in message.iter_attachments()]
    assert part.get_content_type() == "application/pdf"
    return part.get_filename(), part.get_content()


def pdf_text(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True,
                          check=True).stdout.decode()


@needs_pdftotext
def test_sending_mails_the_pdf_in_latvian_and_marks_the_offer_sent(mail_app, seller, smtp_inbox,
                                                                   login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    response = send(client, offer.id)
    assert response.status_code == 302
    [message] = smtp_inbox.wait_for(1)
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    assert offer.state == "sent" and re.fullmatch(r"OFFER/\d{4}/0001", offer.number)
    assert message["To"] == "birojs@ozols.lv"
    assert message["Subject"] == f"Komercpiedāvājums {offer.number}"
    assert message["Content-Language"] == "lv"
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Labdien, Ozols SIA!" in html and "Anna Bērziņa" in html
    filename, pdf = pdf_of(message)
    assert filename.endswith(".pdf")
    text = pdf_text(pdf)
    assert offer.number in text and "Ozols SIA" in text and "Ābolu sula" in text


def test_the_stored_pdf_is_the_mailed_pdf_byte_for_byte(mail_app, seller, smtp_inbox, login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id)
    [message] = smtp_inbox.wait_for(1)
    _name, mailed = pdf_of(message)
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    stored = db.session.get(Attachment, offer.sent_attachment_id)
    assert (stored.model, stored.record_id) == ("documents.offer", offer.id)
    assert stored.path.read_bytes() == mailed
    shown = client.get(f"/documents/offers/{offer.id}/sent.pdf")
    assert shown.status_code == 200 and shown.mimetype == "application/pdf"
    assert shown.data == mailed


def test_the_pdf_as_sent_cannot_be_deleted_even_by_its_uploader(mail_app, seller, smtp_inbox,
                                                                 login):
    from core.testing import csrf_token

    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id)
    smtp_inbox.wait_for(1)
    db.session.expire_all()
    sent_id = db.session.get(Offer, offer.id).sent_attachment_id
    assert db.session.get(Attachment, sent_id).uploaded_by_id == seller.id
    response = client.post(f"/attachments/{sent_id}/delete", data={
        "csrf_token": csrf_token(client, f"/documents/offers/{offer.id}")},
        follow_redirects=True)
    assert "This PDF is the offer as it was sent to the client, so it is kept." in \
        response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Attachment, sent_id) is not None
    assert client.get(f"/documents/offers/{offer.id}/sent.pdf").status_code == 200


def test_the_sent_mail_is_on_the_offers_timeline(mail_app, seller, smtp_inbox, login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id, to="valde@ozols.lv")
    [message] = smtp_inbox.wait_for(1)
    entries = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == "documents.offer", TimelineEntry.record_id == offer.id,
        TimelineEntry.kind == "email")).all()
    assert [e.subject for e in entries] == [message["Subject"]]
    assert "valde@ozols.lv" in entries[0].body and "Labdien" in entries[0].body


@pytest.mark.parametrize(("lang", "subject", "greeting"), [
    ("ru", "Коммерческое предложение", "Здравствуйте, Ozols SIA!"),
    ("uz", "Tijorat taklifi", "Assalomu alaykum, Ozols SIA!"),
    ("kk", "Коммерциялық ұсыныс", "Сәлеметсіз бе, Ozols SIA!"),
    ("ro", "Ofertă comercială", "Bună ziua, Ozols SIA,"),
    ("en", "Commercial offer", "Dear Ozols SIA,"),
])
def test_the_letter_is_written_in_the_documents_language(mail_app, seller, smtp_inbox, login, lang,
                                                         subject, greeting):
    offer = make_offer(seller, lang=lang)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id)
    [message] = smtp_inbox.wait_for(1)
    assert message["Subject"].startswith(subject + " OFFER/")
    assert message["Content-Language"] == lang
    assert greeting in message.get_body(preferencelist=("html",)).get_content()


def test_the_mail_carries_a_working_public_link(mail_app, seller, smtp_inbox, login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id)
    [message] = smtp_inbox.wait_for(1)
    text = message.get_body(preferencelist=("plain",)).get_content()
    url = re.search(r"https?://\S+/documents/p/\S+", text).group(0)
    visitor = mail_app.test_client()
    page = visitor.get(url.split("localhost", 1)[-1])
    assert page.status_code == 200
    assert "Ābolu sula" in page.get_data(as_text=True)


def test_a_refused_mail_leaves_the_offer_a_draft_without_number_or_file(make_app, make_user,
                                                                         login):
    closed = free_port()  # nothing listens there
    app = make_app(["documents"], BIRGA_MAIL_SERVER="127.0.0.1", BIRGA_MAIL_PORT=closed,
                   BIRGA_MAIL_FROM=TEST_SENDER, BIRGA_MAIL_TIMEOUT=5)
    with app.app_context():
        user = make_user("anna")
        assign_roles(user, "salesperson")
        offer = make_offer(user)
        client = app.test_client()
        login(client, user)
        response = send(client, offer.id)
        assert response.status_code == 200  # the form again, with the reason
        assert "not sent" in response.get_data(as_text=True)
        db.session.expire_all()
        offer = db.session.get(Offer, offer.id)
        assert (offer.state, offer.number, offer.sent_attachment_id) == ("draft", None, None)
        assert db.session.scalars(select(Attachment)).all() == []


def test_an_offer_without_lines_or_address_is_not_sent(mail_app, seller, smtp_inbox, login):
    offer = make_offer(seller, email=None)
    client = mail_app.test_client()
    login(client, seller)
    response = send(client, offer.id, to="")
    assert "no e-mail address" in response.get_data(as_text=True)
    empty = offers.create_offer(db.session.get(Partner, offer.partner_id), user=seller,
                                currency="EUR", seller_country="LV")
    db.session.commit()
    response = send(client, empty.id, to="x@ozols.lv")
    assert "at least one line" in response.get_data(as_text=True)
    assert smtp_inbox.messages == []


def test_another_salespersons_offer_cannot_be_sent(mail_app, seller, smtp_inbox, login, make_user):
    offer = make_offer(seller)
    other = make_user("ivars")
    assign_roles(other, "salesperson")
    client = mail_app.test_client()
    login(client, other)
    assert client.get(f"/documents/offers/{offer.id}/send").status_code == 404
    token = csrf_token(client, "/documents/files")
    response = client.post(f"/documents/offers/{offer.id}/send",
                           data={"csrf_token": token, "to": "x@ozols.lv"})
    assert response.status_code == 404
    assert client.get(f"/documents/offers/{offer.id}/sent.pdf").status_code == 404
    assert smtp_inbox.messages == []


def test_sending_again_mails_the_same_pdf_the_client_already_has(mail_app, seller, smtp_inbox,
                                                                 login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id)
    send(client, offer.id, to="valde@ozols.lv")
    first, second = smtp_inbox.wait_for(2)
    assert pdf_of(first)[1] == pdf_of(second)[1]
    db.session.expire_all()
    assert len(db.session.scalars(select(Attachment)).all()) == 1
    assert db.session.get(Offer, offer.id).state == "sent"


@pytest.mark.parametrize("html, reason", [
    ('<img src="http://127.0.0.1:6379/x">', "127.0.0.1:6379"),  # an outside resource
    ("{{ ''.__class__ }}", ""),  # a sandbox escape
])
def test_an_offer_whose_template_cannot_render_is_not_sent_and_the_page_says_why(
        mail_app, seller, smtp_inbox, login, html, reason):
    from addons.documents.models import DocumentTemplate

    template = DocumentTemplate(code="broken", name="Broken", kind="offer", subject="offer",
                                html=html, css="")
    db.session.add(template)
    offer = make_offer(seller)
    db.session.flush()
    offer.template_id = template.id
    db.session.commit()
    client = mail_app.test_client()
    login(client, seller)
    response = send(client, offer.id)
    page = response.get_data(as_text=True)
    assert response.status_code == 200  # the send page again, not an error page
    assert "PDF cannot be rendered" in page and reason in page
    db.session.expire_all()
    offer = db.session.get(Offer, offer.id)
    assert (offer.state, offer.number, offer.sent_attachment_id) == ("draft", None, None)
    assert smtp_inbox.messages == []


# -- the salesperson's own message --------------------------------------------------------------
MESSAGE = ("As agreed on the phone:\r\ndelivery <b>next week</b> & installation.\r\n\r\n"
           "  \r\nAnna")


def test_the_salespersons_message_is_in_the_letter_escaped_and_on_the_timeline(
        mail_app, seller, smtp_inbox, login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    page = client.get(f"/documents/offers/{offer.id}/send").get_data(as_text=True)
    assert '<textarea name="message"' in page
    assert send(client, offer.id, message=MESSAGE).status_code == 302
    [message] = smtp_inbox.wait_for(1)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert ("<p>As agreed on the phone:<br>delivery &lt;b&gt;next week&lt;/b&gt; &amp; "
            "installation.</p>") in html
    assert "<p>Anna</p>" in html and "<b>" not in html
    # After the greeting, before the letter's own text.
    assert html.index("Labdien, Ozols SIA!") < html.index("As agreed") \
        < html.index("Paldies par jūsu interesi")
    text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert "As agreed on the phone:\ndelivery <b>next week</b> & installation.\n\nAnna\n" in text
    [entry] = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == "documents.offer", TimelineEntry.record_id == offer.id,
        TimelineEntry.kind == "email")).all()
    assert "delivery &lt;b&gt;next week&lt;/b&gt; &amp; installation." in entry.body
    assert "<b>" not in entry.body
    shown = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert "delivery &lt;b&gt;next week&lt;/b&gt;" in shown  # on the offer's timeline


def test_without_a_message_the_letter_has_no_empty_paragraph(mail_app, seller, smtp_inbox,
                                                              login):
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id, message="  \r\n ")
    [message] = smtp_inbox.wait_for(1)
    html = message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    assert "<p></p>" not in html
    assert "<p>Labdien, Ozols SIA!</p>\n<p>Paldies par jūsu interesi." in html


def test_a_too_long_message_is_refused_and_kept_in_the_form(mail_app, make_user, smtp_inbox,
                                                            login):
    from flask_babel import force_locale, gettext

    from addons.documents.sending import MESSAGE_MAX

    user = make_user("inese", name="Inese", locale="lv")
    assign_roles(user, "salesperson")
    offer = make_offer(user)
    client = mail_app.test_client()
    login(client, user)
    typed = "Sveiki! " + "x" * MESSAGE_MAX
    response = send(client, offer.id, message=typed)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    with mail_app.test_request_context(), force_locale("lv"):
        reason = gettext("The message is too long: at most %(max)d characters.",
                         max=MESSAGE_MAX)
    assert "5000" in reason and not reason.startswith("The message")
    assert reason in page
    assert f">{typed}</textarea>" in page  # nothing typed is lost
    assert smtp_inbox.messages == []
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).state == "draft"


def test_an_overridden_letter_that_does_not_place_the_message_still_carries_it(
        mail_app, seller, smtp_inbox, login):
    from pathlib import Path

    folder = Path(mail_app.instance_path) / "templates" / "documents" / "mail" / "lv"
    folder.mkdir(parents=True)
    (folder / "offer_mail.html").write_text(
        "<p>Sveiki, {{ client_name }}!</p><p>Mūsu piedāvājums {{ number }}.</p>",
        encoding="utf-8")
    offer = make_offer(seller)
    client = mail_app.test_client()
    login(client, seller)
    send(client, offer.id, message="Kā runājām.")
    [message] = smtp_inbox.wait_for(1)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert html.index("Sveiki, Ozols SIA!") < html.index("<p>Kā runājām.</p>") \
        < html.index("Mūsu piedāvājums")
