"""The inbound gateway end to end: a mail Birga really sent (through a loopback SMTP server) is
answered, the answer is piped into `birga mail ingest` and found on the record's timeline;
charsets, addon handlers, refusals with the sysexits MTAs understand, duplicate deliveries
(SQLite and PostgreSQL)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from core import PROJECT_ROOT, create_app
from core.api import mail_received, register_mail_handler, send_mail
from core.cli import main
from core.extensions import db
from core.mail_inbound import (
    EX_DATAERR,
    EX_NOUSER,
    EX_TEMPFAIL,
    MalformedMail,
    ReceivedMail,
    parse_mail,
    reply_record,
)
from core.storage import attachments_for
from core.testing import free_port
from core.timeline import TimelineEntry

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
ADDON_PATHS = [str(PROJECT_ROOT / "addons"), str(FIXTURES / "addons")]
TICKET = "mail_probe.ticket"
PDF = b"%PDF-1.4\n% signed contract\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture
def make_gateway(make_app, smtp_inbox):
    """An app with the probe addon (handlers for support@, leads@*, picky@) mailing to
    `smtp_inbox`."""

    def factory(**config):
        return make_app(["mail_probe"], BIRGA_ADDONS_PATHS=ADDON_PATHS, **smtp_inbox.config(),
                        **config)

    return factory


@pytest.fixture
def gateway(make_gateway):
    app = make_gateway()
    with app.app_context():
        yield app


def ingest(app, raw: bytes, *args: str):
    """`birga mail ingest` in this process, the message on standard input."""
    return CliRunner().invoke(main, ["mail", "ingest", *args], input=raw,
                              obj=ScriptInfo(create_app=lambda: app))


def ingest_in_subprocess(app, raw: bytes) -> subprocess.CompletedProcess:
    """`birga mail ingest` as an MTA runs it: a new process configured by environment only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BIRGA_", "FLASK_")) and k != "DATABASE_URL"}
    env.update({
        "BIRGA_INSTANCE_PATH": app.instance_path,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "BIRGA_SQLALCHEMY_ENGINE_OPTIONS": json.dumps(app.config["SQLALCHEMY_ENGINE_OPTIONS"]),
        "BIRGA_ADDONS_PATHS": json.dumps(ADDON_PATHS),
        "BIRGA_SECRET_KEY": app.config["SECRET_KEY"],
    })
    birga = Path(sys.executable).with_name("birga")
    return subprocess.run([str(birga), "mail", "ingest"], input=raw, env=env,
                          capture_output=True, timeout=180, check=False)


def new_ticket(title: str = "Contract for Anna"):
    from addons.mail_probe.models import Ticket

    ticket = Ticket(title=title)
    db.session.add(ticket)
    db.session.commit()
    return ticket


def tickets():
    from addons.mail_probe.models import Ticket

    db.session.expire_all()
    return db.session.scalars(select(Ticket).order_by(Ticket.id)).all()


def emails_on(record_id: int) -> list[TimelineEntry]:
    db.session.expire_all()
    return db.session.scalars(
        select(TimelineEntry).where(TimelineEntry.model == TICKET,
                                    TimelineEntry.record_id == record_id,
                                    TimelineEntry.kind == "email")
        .order_by(TimelineEntry.id)).unique().all()


def received_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(ReceivedMail))


def send_offer(ticket, inbox) -> EmailMessage:
    """Birga sends a mail for the ticket; returns it as it arrived at the SMTP server."""
    send_mail("Anna Bērziņa <anna@example.lv>", {"en": "Your contract"},
              {"en": "<p>Please sign the attached contract.</p>"}, {}, language="en",
              record=(TICKET, ticket.id))
    [arrived] = inbox.wait_for(1)
    return arrived


def reply_to(original: EmailMessage, text: str, *, to: str | None = None,
             threaded: bool = True, html: str | None = None) -> bytes:
    """What Anna's mail client sends back."""
    reply = EmailMessage()
    reply["From"] = "Anna Bērziņa <anna@example.lv>"
    reply["To"] = to or str(original["Reply-To"] or original["From"])
    reply["Subject"] = "Re: " + str(original["Subject"])
    reply["Message-ID"] = make_msgid(domain="example.lv")
    if threaded:
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = str(original["Message-ID"])
    reply.set_content(text)
    if html is not None:
        reply.add_alternative(html, subtype="html")
    return reply.as_bytes(policy=policy.SMTP)


# -- replies -----------------------------------------------------------------------------
def test_a_reply_to_a_sent_mail_lands_on_its_records_timeline(gateway, smtp_inbox):
    ticket = new_ticket()
    original = send_offer(ticket, smtp_inbox)
    reply = EmailMessage()
    reply.set_content("Signed, see attached.\n\n> Please sign the attached contract.")
    reply.add_attachment(PDF, maintype="application", subtype="pdf",
                         filename="līgums parakstīts.pdf")
    reply["From"] = "Anna Bērziņa <anna@example.lv>"
    reply["To"] = str(original["From"])
    reply["Subject"] = "Re: Your contract"
    reply["Message-ID"] = make_msgid(domain="example.lv")
    reply["In-Reply-To"] = str(original["Message-ID"])
    reply["References"] = str(original["Message-ID"])

    done = ingest_in_subprocess(gateway, reply.as_bytes(policy=policy.SMTP))

    assert done.returncode == 0, done.stderr.decode()
    sent, received = emails_on(ticket.id)
    assert sent.subject == "Your contract"
    assert received.subject == "Re: Your contract"
    assert "From: Anna Bērziņa &lt;anna@example.lv&gt;" in received.body
    assert "Signed, see attached." in received.body
    [stored] = attachments_for(TICKET, ticket.id)
    assert (stored.filename, stored.content_type) == ("līgums parakstīts.pdf", "application/pdf")
    assert stored.path.read_bytes() == PDF


def test_a_reply_address_finds_the_record_when_the_client_drops_threading_headers(
        make_gateway, smtp_inbox):
    app = make_gateway(BIRGA_MAIL_INBOUND_ADDRESS="crm@birga.test")
    with app.app_context():
        ticket = new_ticket()
        original = send_offer(ticket, smtp_inbox)
        address = str(original["Reply-To"])
        assert address.startswith("crm+") and address.endswith("@birga.test")
        assert reply_record(address) == (TICKET, ticket.id)

        result = ingest(app, reply_to(original, "Agreed.", threaded=False))

        assert result.exit_code == 0, result.output
        assert "Agreed." in emails_on(ticket.id)[-1].body


def test_a_forged_reply_address_is_refused(make_gateway, smtp_inbox):
    app = make_gateway(BIRGA_MAIL_INBOUND_ADDRESS="crm@birga.test")
    with app.app_context():
        mine, other = new_ticket("mine"), new_ticket("someone else's")
        original = send_offer(mine, smtp_inbox)
        forged = str(original["Reply-To"]).replace(f"-{mine.id}-", f"-{other.id}-")
        assert reply_record(forged) is None

        result = ingest(app, reply_to(original, "Put this on the other deal.", to=forged,
                                      threaded=False))

        assert result.exit_code == EX_NOUSER, result.output
        assert emails_on(other.id) == []


def test_an_html_only_reply_is_sanitised_before_it_reaches_the_timeline(gateway, smtp_inbox):
    ticket = new_ticket()
    original = send_offer(ticket, smtp_inbox)
    raw = reply_to(original, "", html="<p>Fine by me.</p><script>alert('x')</script>"
                                      "<img src=x onerror=alert(1)>")
    message = message_from_bytes(raw, policy=policy.default)
    message.get_body(preferencelist=("plain",)).set_content("  ")  # no text to prefer

    result = ingest(gateway, message.as_bytes(policy=policy.SMTP))

    assert result.exit_code == 0, result.output
    body = emails_on(ticket.id)[-1].body
    assert "Fine by me." in body
    assert "script" not in body and "alert" not in body and "onerror" not in body


def test_a_reply_about_a_deleted_record_is_refused(gateway, smtp_inbox):
    ticket = new_ticket()
    original = send_offer(ticket, smtp_inbox)
    db.session.delete(ticket)
    db.session.commit()

    result = ingest(gateway, reply_to(original, "Still interested?"))

    assert result.exit_code == EX_NOUSER
    assert received_count() == 0


# -- charsets ----------------------------------------------------------------------------
def test_a_windows_1251_message_is_decoded(gateway):
    announced = []

    def listener(app, **kw):
        announced.append((kw["record"], kw["addon"], kw["message"].subject))

    with mail_received.connected_to(listener):
        result = ingest(gateway, (FIXTURES / "windows-1251.eml").read_bytes())

    assert result.exit_code == 0, result.output
    [ticket] = tickets()
    assert announced == [((TICKET, ticket.id), "mail_probe", "Заявка на поставку: счёт №7")]
    assert ticket.title == "Заявка на поставку: счёт №7"
    assert ticket.sender == "ivan@example.ru"
    assert ticket.text.startswith("Здравствуйте!\nПрошу выставить счёт на 10 шт.")
    assert [name for name, *_rest in ticket.attachments] == ["Счёт №7.pdf"]
    [entry] = emails_on(ticket.id)
    assert "From: Иван Петров &lt;ivan@example.ru&gt;" in entry.body
    [stored] = attachments_for(TICKET, ticket.id)
    assert stored.filename == "Счёт №7.pdf"


def test_a_koi8_r_message_is_decoded_from_quoted_printable_and_base64(gateway):
    result = ingest(gateway, (FIXTURES / "koi8-r.eml").read_bytes())

    assert result.exit_code == 0, result.output
    [ticket] = tickets()
    assert ticket.title == "Вопрос о тарифе Бизнес"
    assert ticket.recipient == "leads@firm.example"
    assert 'Интересует ваш тариф "Бизнес" для 25 сотрудников.' in ticket.text
    assert "<b>\"Бизнес\"</b>" in ticket.html  # the HTML alternative, decoded from base64
    assert "Ольга Ёлкина" in emails_on(ticket.id)[0].body


def test_unlabelled_8bit_headers_and_bodies_are_decoded_by_fallback():
    raw = ("From: Пётр <petr@example.ru>\r\nTo: leads@firm.example\r\nSubject: Счёт\r\n"
           "Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "Оплатим завтра.\r\n").encode("cp1251")

    mail = parse_mail(raw)

    assert (mail.sender_name, mail.sender, mail.subject) == ("Пётр", "petr@example.ru", "Счёт")
    assert mail.text == "Оплатим завтра.\n"


# -- addon handlers ----------------------------------------------------------------------
def test_an_exact_address_beats_a_pattern_and_the_handler_gets_plain_data(gateway):
    got = []
    register_mail_handler(gateway, "leads@firm.example", got.append, addon="test")

    result = ingest(gateway, (FIXTURES / "koi8-r.eml").read_bytes())

    assert result.exit_code == 0, result.output
    [mail] = got
    assert (mail.sender, mail.recipient, mail.subject) == (
        "olga@example.ru", "leads@firm.example", "Вопрос о тарифе Бизнес")
    assert tickets() == []  # the probe's "leads@*" pattern was not asked
    [row] = db.session.scalars(select(ReceivedMail)).all()
    assert (row.route, row.addon, row.model) == ("handler", "test", None)


def test_a_handler_that_declines_leaves_the_mail_refused(gateway):
    mail = EmailMessage()
    mail["From"] = "spam@example.com"
    mail["To"] = "picky@birga.test"
    mail["Subject"] = "Cheap watches"
    mail.set_content("...")

    refused = ingest(gateway, mail.as_bytes())
    mail.replace_header("Subject", "[ok] A real question")
    taken = ingest(gateway, mail.as_bytes())

    assert refused.exit_code == EX_NOUSER
    assert taken.exit_code == 0, taken.output
    assert [t.title for t in tickets()] == ["[ok] A real question"]


def test_the_envelope_recipient_from_the_mta_routes_a_blind_copy(gateway):
    mail = EmailMessage()
    mail["From"] = "client@example.com"
    mail["To"] = "someone@example.com"
    mail["Subject"] = "Bcc to support"
    mail.set_content("Please help.")

    result = ingest(gateway, mail.as_bytes(), "--recipient", "Support@Birga.test")

    assert result.exit_code == 0, result.output
    [ticket] = tickets()
    assert ticket.recipient == "support@birga.test"


# -- refusals and repeats ----------------------------------------------------------------
def test_a_failing_handler_is_a_temporary_failure_and_leaves_nothing_behind(gateway):
    def broken(mail):
        from addons.mail_probe.models import Ticket

        db.session.add(Ticket(title="half done"))
        db.session.flush()
        raise RuntimeError("the CRM has a bug")

    register_mail_handler(gateway, "leads@firm.example", broken, addon="test")

    result = ingest(gateway, (FIXTURES / "koi8-r.eml").read_bytes())

    assert result.exit_code == EX_TEMPFAIL  # the MTA keeps the lead until the bug is fixed
    assert "the CRM has a bug" in result.stderr and "retry" in result.stderr
    assert tickets() == [] and received_count() == 0


def test_mail_for_an_unknown_address_is_refused_with_ex_nouser(gateway):
    mail = EmailMessage()
    mail["From"] = "client@example.com"
    mail["To"] = "nobody@birga.test"
    mail["Subject"] = "Hello?"
    mail.set_content("Anyone there?")

    result = ingest(gateway, mail.as_bytes())

    assert result.exit_code == EX_NOUSER
    assert "nobody@birga.test" in result.stderr
    assert received_count() == 0


def test_a_duplicate_delivery_is_handled_once(gateway, smtp_inbox):
    ticket = new_ticket()
    raw_reply = reply_to(send_offer(ticket, smtp_inbox), "Yes.")
    raw_lead = (FIXTURES / "koi8-r.eml").read_bytes()

    results = [ingest(gateway, raw) for raw in (raw_reply, raw_lead, raw_reply, raw_lead)]

    assert [r.exit_code for r in results] == [0, 0, 0, 0], [r.output for r in results]
    assert "Already handled" in results[2].output and "Already handled" in results[3].output
    assert len(emails_on(ticket.id)) == 2  # the sent mail and one reply
    assert len(tickets()) == 2  # the first ticket and one lead
    assert received_count() == 2


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (b"\x00\x01\xfe\xff binary junk\x00 without any headers\n\nmore junk\xff", "no headers"),
    (b"Subject: a note\r\nTo: support@birga.test\r\n\r\nwho sent this?\r\n", "sender"),
    (b"From: someone@example.com\r\nSubject: to nobody\r\n\r\nhi\r\n", "recipient"),
])
def test_garbage_is_refused_with_ex_dataerr_and_a_clear_reason(gateway, raw, reason):
    result = ingest(gateway, raw)

    assert result.exit_code == EX_DATAERR
    assert result.stderr.startswith("birga mail ingest: ")
    assert reason in result.stderr
    with pytest.raises(MalformedMail, match=reason):
        parse_mail(raw)
    assert received_count() == 0


def test_a_database_that_is_down_is_a_temporary_failure(tmp_path):
    mail = EmailMessage()
    mail["From"] = "client@example.com"
    mail["To"] = "support@birga.test"
    mail["Subject"] = "Retry me"
    mail.set_content("The MTA must keep this.")
    down = f"postgresql+psycopg://birga@127.0.0.1:{free_port()}/birga"

    def app_on_a_stopped_database():
        return create_app({"TESTING": True, "SECRET_KEY": "test", "INSTANCE_PATH": str(tmp_path),
                           "SQLALCHEMY_DATABASE_URI": down,
                           "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"connect_timeout": 5}},
                           "BIRGA_ADDONS_PATHS": ADDON_PATHS})

    result = CliRunner().invoke(main, ["mail", "ingest"], input=mail.as_bytes(),
                                obj=ScriptInfo(create_app=app_on_a_stopped_database))

    assert result.exit_code == EX_TEMPFAIL, result.output
    assert "database is not reachable" in result.stderr
    assert "retry" in result.stderr
