"""Outgoing e-mail against a real SMTP server on loopback (aiosmtpd): what arrives is read back
and checked: languages, formatting, attachments, the sandbox, header injection, the job."""
from __future__ import annotations

import os
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from babel.numbers import format_currency

from core.api import Attachment, mail_sent, queue_mail, send_mail
from core.extensions import db
from core.jobs import get_jobs, running_consumer
from core.mail import (
    HeaderInjectionError,
    MailConfigError,
    MailContextError,
    MailTemplateError,
    deliver_queued,
)
from core.models import User


@pytest.fixture
def mail_app(make_app, smtp_inbox):
    app = make_app(**smtp_inbox.config())
    with app.app_context():
        yield app


def write_template(app, language: str, name: str, text: str) -> None:
    path = Path(app.instance_path) / "templates" / "mail" / language / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def html_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def text_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture
def offer_templates(mail_app):
    """The same mail in three languages, as files in the instance's template folder."""
    for lang, subject, body in [
        ("en", "Your offer, {{ name }}", "<p>Hello {{ name }}, total {{ total|money('EUR') }}</p>"),
        ("ru", "Ваше предложение, {{ name }}",
         "<p>Здравствуйте, {{ name }}! Сумма: {{ total|money('EUR') }}</p>"),
        ("lv", "Jūsu piedāvājums, {{ name }}",
         "<p>Labdien, {{ name }}! Summa: {{ total|money('EUR') }}</p>"),
    ]:
        write_template(mail_app, lang, "offer.subject.txt", subject + "\n")
        write_template(mail_app, lang, "offer.html", body)
    return mail_app


def test_a_russian_mail_arrives_in_russian_with_russian_number_formatting(offer_templates,
                                                                          smtp_inbox):
    send_mail("anna@example.ru", "offer.subject.txt", "offer.html",
              {"name": "Анна & Co", "total": 1234.5}, language="ru")
    [delivery] = smtp_inbox.deliveries
    assert delivery.mail_from == "crm@birga.test" and delivery.rcpt_tos == ["anna@example.ru"]
    message = delivery.message
    assert message["Subject"] == "Ваше предложение, Анна & Co"
    assert message["Content-Language"] == "ru"
    html = html_part(message)
    assert "Здравствуйте, Анна &amp; Co!" in html  # escaped in HTML, not in the subject
    assert format_currency(1234.5, "EUR", locale="ru") in html
    assert format_currency(1234.5, "EUR", locale="ru") != format_currency(1234.5, "EUR",
                                                                          locale="en")
    assert "Здравствуйте, Анна & Co!" in text_part(message)  # the plain-text alternative


def test_a_latvian_recipient_gets_the_latvian_template(offer_templates, smtp_inbox):
    send_mail(["Jānis <janis@example.lv>"], "offer.subject.txt", "offer.html",
              {"name": "Jānis", "total": 99}, language="lv")
    [message] = smtp_inbox.wait_for(1)
    assert message["Subject"] == "Jūsu piedāvājums, Jānis"
    assert str(message["To"]) == "Jānis <janis@example.lv>"
    assert f"Summa: {format_currency(99, 'EUR', locale='lv')}" in html_part(message)


def test_a_language_without_its_own_template_falls_back_to_english(offer_templates, smtp_inbox):
    send_mail("ali@example.uz", "offer.subject.txt", "offer.html", {"name": "Ali", "total": 5},
              language="uz_Cyrl")
    [message] = smtp_inbox.wait_for(1)
    assert message["Subject"] == "Your offer, Ali"


def test_templates_kept_in_the_database_are_chosen_by_language(mail_app, smtp_inbox):
    subject = {"en": "Reminder", "ru": "Напоминание: {{ what }}", "lv": "Atgādinājums: {{ what }}"}
    body = {"en": "Call {{ who }}", "ru": "Позвоните {{ who }}", "lv": "Piezvaniet {{ who }}"}
    send_mail("a@example.lv", subject, body, {"what": "zvans", "who": "Ilze"}, language="lv",
              html=False)
    send_mail("b@example.ru", subject, body, {"what": "звонок", "who": "Ольге"}, language="ru",
              html=False)
    lv, ru = smtp_inbox.wait_for(2)
    assert (lv["Subject"], lv.get_content().strip()) == ("Atgādinājums: zvans", "Piezvaniet Ilze")
    assert (ru["Subject"], ru.get_content().strip()) == ("Напоминание: звонок", "Позвоните Ольге")
    assert not lv.is_multipart()


def test_an_attachment_arrives_intact(mail_app, smtp_inbox):
    payload = os.urandom(20_000)
    send_mail("c@example.lv", {"en": "Offer"}, {"en": "<p>Attached.</p>"}, {}, language="en",
              attachments=[Attachment("piedāvājums 2026.pdf", payload),
                           ("notes.txt", "Заметки".encode(), "text/plain")])
    [message] = smtp_inbox.wait_for(1)
    parts = {p.get_filename(): p for p in message.iter_attachments()}
    assert set(parts) == {"piedāvājums 2026.pdf", "notes.txt"}
    assert parts["piedāvājums 2026.pdf"].get_content_type() == "application/pdf"
    assert parts["piedāvājums 2026.pdf"].get_content() == payload
    assert parts["notes.txt"].get_content_type() == "text/plain"
    assert parts["notes.txt"].get_payload(decode=True) == "Заметки".encode()


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ items.append(1) }}",
])
def test_a_template_reaching_for_python_internals_is_refused(mail_app, smtp_inbox, source):
    with pytest.raises(MailTemplateError, match="not allowed"):
        send_mail("d@example.lv", {"en": "Hi"}, {"en": source}, {"items": [1]}, language="en")
    assert smtp_inbox.messages == []


def test_an_undefined_name_is_an_error_not_an_empty_string(mail_app, smtp_inbox):
    with pytest.raises(MailTemplateError, match="nmae"):
        send_mail("d@example.lv", {"en": "Dear {{ nmae }}"}, {"en": "x"}, {"name": "Ilze"},
                  language="en")
    assert smtp_inbox.messages == []


def test_database_objects_are_refused_in_the_context(mail_app, smtp_inbox):
    user = User(login="ilze", name="Ilze")
    db.session.add(user)
    db.session.commit()
    with pytest.raises(MailContextError, match=r"context\['people'\]\[0\] is a User"):
        send_mail("e@example.lv", {"en": "Hi"}, {"en": "{{ people }}"}, {"people": [user]},
                  language="en")
    assert smtp_inbox.messages == []


@pytest.mark.parametrize("to, context", [
    ("f@example.lv", {"name": "Ilze\r\nBcc: victim@example.com"}),
    ("f@example.lv\nBcc: victim@example.com", {"name": "Ilze"}),
    (["ok@example.lv", "g@example.lv\r\nCc: victim@example.com"], {"name": "Ilze"}),
])
def test_header_injection_is_refused(mail_app, smtp_inbox, to, context):
    with pytest.raises(HeaderInjectionError):
        send_mail(to, {"en": "Hello {{ name }}"}, {"en": "Body"}, context, language="en")
    assert smtp_inbox.messages == []


def test_an_attachment_name_with_a_line_break_is_refused(mail_app, smtp_inbox):
    with pytest.raises(HeaderInjectionError):
        send_mail("h@example.lv", {"en": "Hi"}, {"en": "Body"}, {}, language="en",
                  attachments=[("a.txt\nBcc: victim@example.com", b"x")])
    assert smtp_inbox.messages == []


def test_every_sent_mail_is_announced_with_its_record_for_the_timeline(mail_app, smtp_inbox):
    heard = []

    def listener(sender, **kwargs):
        heard.append((sender, kwargs))

    with mail_sent.connected_to(listener):
        message = send_mail("i@example.lv", {"en": "Hi"}, {"en": "Body"}, {}, language="en",
                            record=("contacts.partner", 7))
    [(sender, kwargs)] = heard
    assert sender is mail_app
    assert kwargs["record"] == ("contacts.partner", 7)
    assert kwargs["recipients"] == ["i@example.lv"]
    [arrived] = smtp_inbox.wait_for(1)
    assert kwargs["message"]["Message-ID"] == message["Message-ID"] == arrived["Message-ID"]


def test_smtp_login_uses_the_configured_credentials(make_app, smtp_inbox):
    app = make_app(**smtp_inbox.config(), BIRGA_MAIL_USERNAME="crm",
                   BIRGA_MAIL_PASSWORD="s3cret")
    with app.app_context():
        send_mail("j@example.lv", {"en": "Hi"}, {"en": "Body"}, {}, language="en")
    assert smtp_inbox.logins == [("crm", "s3cret")]
    assert len(smtp_inbox.wait_for(1)) == 1


def test_without_a_sender_address_nothing_is_sent(make_app, smtp_inbox):
    app = make_app(**smtp_inbox.config(sender=None))
    with app.app_context(), pytest.raises(MailConfigError, match="BIRGA_MAIL_FROM"):
        send_mail("k@example.lv", {"en": "Hi"}, {"en": "Body"}, {}, language="en")
    assert smtp_inbox.messages == []


def test_a_queued_mail_is_delivered_by_a_job_and_never_twice(mail_app, smtp_inbox):
    heard = []

    def listener(sender, **kwargs):  # runs in the worker's thread
        heard.append(kwargs["record"])

    with mail_sent.connected_to(listener):
        queued = queue_mail("l@example.ru", {"ru": "Счёт {{ n }}"}, {"ru": "<p>Оплатите</p>"},
                            {"n": "2026/0001"}, language="ru", record=("pipeline.offer", 3))
        assert get_jobs(mail_app).huey.pending_count() == 1
        assert smtp_inbox.messages == []  # the page that queued it did not wait for SMTP
        # The same message queued again (a double click, a retried request).
        duplicate = deliver_queued.delay(queued.message.as_bytes(policy=policy.SMTP),
                                         ("pipeline.offer", 3))
        with running_consumer(mail_app, workers=2):
            results = sorted([queued.result.get(blocking=True, timeout=30),
                              duplicate.get(blocking=True, timeout=30)])
    assert results == [False, True]  # one delivered, one found it already done
    [message] = smtp_inbox.wait_for(1)
    assert message["Subject"] == "Счёт 2026/0001"
    assert message["Message-ID"] == queued.message["Message-ID"]
    assert heard == [("pipeline.offer", 3)]


def test_dates_are_shown_in_the_recipients_time_zone_and_language(mail_app, smtp_inbox):
    from datetime import UTC, datetime

    from babel.dates import format_datetime, get_timezone

    due = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    send_mail("m@example.uz", {"ru": "Срок: {{ due|datetime('short') }}"}, {"ru": "-"},
              {"due": due}, language="ru", timezone="Asia/Tashkent", html=False)
    [message] = smtp_inbox.wait_for(1)
    expected = format_datetime(due, "short", tzinfo=get_timezone("Asia/Tashkent"), locale="ru")
    assert message["Subject"] == f"Срок: {expected}"
    assert "17:00" in expected  # UTC+5, not the server's or the sender's zone
