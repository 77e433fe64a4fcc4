"""Mail to a pipeline's inbound address, piped through the real `birga mail ingest`, becomes a
lead; a reply to a deal's mail or a subject quoting `[DEAL-n]` lands on that deal's timeline
(SQLite and PostgreSQL)."""
from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.contacts.services import refresh_search, set_emails
from addons.pipeline.models import Lead
from addons.pipeline.state import create_deal, seed_defaults
from core.api import Notification, Team, TimelineEntry, db, send_mail
from core.cli import main
from core.mail_inbound import EX_NOUSER
from core.security import TeamMember

ADDRESS = "sales@firm.example"


@pytest.fixture
def app(make_app, smtp_inbox):
    application = make_app(["pipeline"], **smtp_inbox.config("Firm <crm@firm.example>"))
    with application.app_context():
        yield application


@pytest.fixture
def pipeline(app, make_user):
    anna = make_user("anna")
    team = Team(name="Sales floor")
    db.session.add(team)
    db.session.flush()
    db.session.add(TeamMember(team_id=team.id, user_id=anna.id))
    funnel = seed_defaults()
    funnel.inbound_address = ADDRESS
    funnel.team_id = team.id
    db.session.commit()
    return funnel


def ingest(app, raw: bytes, *args: str):
    """`birga mail ingest` as the MTA runs it, the message on standard input."""
    return CliRunner().invoke(main, ["mail", "ingest", *args], input=raw,
                              obj=ScriptInfo(create_app=lambda: app))


def message(subject: str, text: str, *, sender: str = "Anna Bērziņa <anna@example.lv>",
            to: str = ADDRESS, **headers: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="example.lv")
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(text)
    return mail.as_bytes(policy=policy.SMTP)


def all_leads() -> list[Lead]:
    db.session.expire_all()
    return db.session.scalars(select(Lead).order_by(Lead.id)).all()


def emails_on(model: str, record_id: int) -> list[TimelineEntry]:
    db.session.expire_all()
    return db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == model, TimelineEntry.record_id == record_id,
        TimelineEntry.kind == "email").order_by(TimelineEntry.id)).unique().all()


def test_mail_to_the_inbound_address_becomes_an_assigned_lead_with_the_mail_on_it(
        app, pipeline):
    result = ingest(app, message("Price for 40 chairs", "Hello,\n\nwhat would 40 chairs cost?"))

    assert result.exit_code == 0, result.output
    [lead] = all_leads()
    assert (lead.channel, lead.status, lead.pipeline_id) == ("email", "new", pipeline.id)
    assert (lead.name, lead.email) == ("Anna Bērziņa", "anna@example.lv")
    assert lead.subject == "Price for 40 chairs"
    assert "what would 40 chairs cost?" in lead.message
    [entry] = emails_on("pipeline.lead", lead.id)
    assert "what would 40 chairs cost?" in entry.body
    anna = db.session.scalar(select(Notification.user_id).where(
        Notification.link == f"/pipeline/leads/{lead.id}"))
    assert lead.owner_id == anna is not None


def test_a_second_mail_about_the_same_subject_joins_the_open_lead(app, pipeline):
    ingest(app, message("Price for 40 chairs", "What would 40 chairs cost?"))
    result = ingest(app, message("Re: Price for 40 chairs", "And with delivery to Jelgava?"))

    assert result.exit_code == 0, result.output
    [lead] = all_leads()
    assert len(emails_on("pipeline.lead", lead.id)) == 2


def test_a_known_sender_is_linked_and_the_lead_takes_their_language(app, pipeline):
    partner = Partner(kind="person", name="Иван Петров", lang="ru", country="KZ")
    db.session.add(partner)
    set_emails(partner, ["ivan@example.kz"])
    db.session.flush()
    refresh_search(partner)
    db.session.commit()

    ingest(app, message("Запрос", "Добрый день", sender="Ivan <Ivan@Example.kz>"))

    [lead] = all_leads()
    assert (lead.partner_id, lead.lang) == (partner.id, "ru")


def test_a_subject_quoting_a_deal_reference_lands_on_that_deal(app, pipeline):
    deal = create_deal(title="Chairs for the office", pipeline=pipeline)
    db.session.commit()

    result = ingest(app, message(f"Re: offer [DEAL-{deal.id}]", "We accept the offer."))

    assert result.exit_code == 0, result.output
    assert all_leads() == []
    [entry] = emails_on("pipeline.deal", deal.id)
    assert "We accept the offer." in entry.body


def test_a_reference_to_a_missing_deal_makes_a_lead(app, pipeline):
    ingest(app, message("Question [DEAL-999999]", "Is this still valid?"))

    assert len(all_leads()) == 1


def test_a_reply_to_mail_sent_for_a_deal_lands_on_the_deals_timeline(app, pipeline, smtp_inbox):
    deal = create_deal(title="Chairs for the office", pipeline=pipeline)
    db.session.commit()
    send_mail("Anna <anna@example.lv>", {"en": "Your offer"}, {"en": "<p>See the offer.</p>"},
              {}, language="en", record=("pipeline.deal", deal.id))
    [sent] = smtp_inbox.wait_for(1)

    reply = message("Re: Your offer", "Thanks, we agree.", to=ADDRESS,
                    In_Reply_To=str(sent["Message-ID"]), References=str(sent["Message-ID"]))
    result = ingest(app, reply)

    assert result.exit_code == 0, result.output
    assert all_leads() == []
    texts = [e.body for e in emails_on("pipeline.deal", deal.id)]
    assert any("Thanks, we agree." in body for body in texts)


def test_mail_to_an_address_no_pipeline_uses_is_refused(app, pipeline):
    result = ingest(app, message("Hello", "Anyone?", to="nobody@firm.example"))

    assert result.exit_code == EX_NOUSER
    assert all_leads() == []


def test_an_inactive_pipeline_takes_no_mail(app, pipeline):
    pipeline.active = False
    db.session.commit()

    result = ingest(app, message("Hello", "Anyone?"))

    assert result.exit_code == EX_NOUSER
    assert all_leads() == []


def test_the_deal_page_shows_the_reference_and_mails_written_from_it_quote_it(
        app, pipeline, client, login, make_user):
    """The reference the handler reads is on the deal page, and the page's mail link puts it
    in the subject (copying the inbound address): the client's reply to all lands on the deal."""
    from urllib.parse import parse_qs, urlsplit

    from core.api import assign_roles

    mara = make_user("mara")
    assign_roles(mara, "sales_manager")
    person = Partner(kind="person", name="Anna Bērziņa", owner_id=mara.id)
    db.session.add(person)
    db.session.flush()
    set_emails(person, ["anna@example.lv"])
    refresh_search(person)
    deal = create_deal(title="Desks & chairs", pipeline=pipeline, partner_id=person.id,
                       owner_id=mara.id)
    db.session.commit()
    login(client, mara)

    page = client.get(f"/pipeline/deals/{deal.id}").get_data(as_text=True)

    assert f'<code id="deal-reference">[DEAL-{deal.id}]</code>' in page
    assert ADDRESS in page  # where to send mail quoting it
    href = next(part.split('"')[0] for part in page.split('href="mailto:anna@example.lv')[1:])
    query = parse_qs(urlsplit(href.replace("&amp;", "&")).query)
    assert query["subject"] == [f"[DEAL-{deal.id}] Desks & chairs"]
    assert query["cc"] == [ADDRESS]

    result = ingest(app, message("Re: " + query["subject"][0], "Agreed, send the invoice."))
    assert result.exit_code == 0, result.output
    assert all_leads() == []
    [entry] = emails_on("pipeline.deal", deal.id)
    assert "Agreed, send the invoice." in entry.body
