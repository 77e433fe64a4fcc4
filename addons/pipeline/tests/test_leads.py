"""The leads inbox and converting a lead to a deal without silent duplicates: the user sees the
contacts and companies the lead may be and picks one or asks for a new one (SQLite and
PostgreSQL)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from addons.contacts.models import Partner
from addons.contacts.services import refresh_search, set_emails, set_phones
from addons.pipeline.leads import (
    NEW,
    ConversionChoiceNeeded,
    LeadError,
    convert_lead,
    create_lead,
    lead_matches,
)
from addons.pipeline.models import Deal, Lead
from addons.pipeline.state import seed_defaults
from core.api import TimelineEntry, assign_roles, db
from core.testing import csrf_token

pytestmark = pytest.mark.addons("pipeline")


@pytest.fixture
def seller(app, make_user):
    user = make_user("sam")
    assign_roles(user, "salesperson")
    seed_defaults()
    db.session.commit()
    return user


def partner(name: str, *, kind: str = "person", phones=(), emails=(), company=None) -> Partner:
    record = Partner(kind=kind, name=name, company_id=company.id if company else None)
    db.session.add(record)
    set_phones(record, list(phones))
    set_emails(record, list(emails))
    db.session.flush()
    refresh_search(record)
    db.session.commit()
    return record


def lead_of(owner, **fields) -> Lead:
    fields.setdefault("channel", "web")
    lead = create_lead(pipeline=seed_defaults(), owner=owner, **fields)
    db.session.commit()
    return lead


def partner_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Partner))


# -- the inbox ----------------------------------------------------------------------------
def test_the_inbox_lists_own_leads_with_channel_and_filters(client, seller, make_user, login):
    other = make_user("olga")
    assign_roles(other, "salesperson")
    lead_of(seller, name="Web Visitor", email="web@example.com")
    lead_of(seller, channel="email", name="Mail Sender", email="mail@example.com")
    lead_of(other, name="Olga's Lead", email="o@example.com")
    login(client, seller)

    html = client.get("/pipeline/leads").get_data(as_text=True)
    only_mail = client.get("/pipeline/leads?channel=email").get_data(as_text=True)

    assert "Web Visitor" in html and "Mail Sender" in html
    assert "Olga&#39;s Lead" not in html and "Olga's Lead" not in html
    assert "channel-web" in html and "channel-email" in html
    assert "Mail Sender" in only_mail and "Web Visitor" not in only_mail


def test_a_lead_outside_the_users_rules_is_not_found(client, seller, make_user, login):
    other = make_user("olga")
    theirs = lead_of(other, name="Theirs", email="t@example.com")
    login(client, seller)

    assert client.get(f"/pipeline/leads/{theirs.id}").status_code == 404
    assert client.get(f"/pipeline/leads/{theirs.id}/convert").status_code == 404


def test_a_manual_lead_belongs_to_its_author(client, seller, login):
    login(client, seller)
    token = csrf_token(client, "/pipeline/leads/new")
    pipeline_id = seed_defaults().id

    response = client.post("/pipeline/leads/new", data={
        "csrf_token": token, "name": "Walk-in", "phone": "+371 2611 1111", "email": "",
        "pipeline": pipeline_id, "channel": "manual", "lang": "lv"})

    assert response.status_code == 302
    lead = db.session.scalar(select(Lead))
    assert (lead.channel, lead.owner_id, lead.phone, lead.lang) == (
        "manual", seller.id, "+37126111111", "lv")
    assert client.get(response.location).status_code == 200


def test_a_manual_lead_needs_some_way_to_reach_someone(client, seller, login):
    login(client, seller)
    token = csrf_token(client, "/pipeline/leads/new")

    response = client.post("/pipeline/leads/new", data={
        "csrf_token": token, "subject": "Nothing else", "pipeline": seed_defaults().id,
        "channel": "manual"})
    typo = client.post("/pipeline/leads/new", data={
        "csrf_token": token, "name": "Typo", "email": "not-an-address",
        "pipeline": seed_defaults().id, "channel": "manual"})

    assert response.status_code == 200
    assert "Give at least a name, a company, an e-mail or a phone." in response.get_data(
        as_text=True)
    assert typo.status_code == 200
    assert "This is not an e-mail address." in typo.get_data(as_text=True)
    assert db.session.scalar(select(Lead)) is None


# -- conversion ---------------------------------------------------------------------------
def test_an_existing_contact_is_offered_and_nothing_is_created_until_someone_chooses(
        client, seller, login):
    known = partner("Jānis Bērziņš", phones=["+371 2000 0001"])
    lead = lead_of(seller, name="Janis B", phone="0037120000001", subject="Chairs")
    login(client, seller)
    url = f"/pipeline/leads/{lead.id}/convert"

    page = client.get(url).get_data(as_text=True)
    assert re.search(rf'name="person" value="{known.id}"', page)
    assert "same phone" in page

    refused = client.post(url, data={"csrf_token": csrf_token(client, url), "title": "Chairs"})
    assert refused.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Deal)) == 0
    assert partner_count() == 1

    done = client.post(url, data={"csrf_token": csrf_token(client, url), "title": "Chairs",
                                  "person": str(known.id), "amount": "1200"})
    assert done.status_code == 302
    db.session.expire_all()
    deal = db.session.scalar(select(Deal))
    assert (deal.partner_id, deal.title, deal.source, deal.owner_id) == (
        known.id, "Chairs", "web", seller.id)
    assert str(deal.amount) == "1200.00"
    assert partner_count() == 1
    converted = db.session.get(Lead, lead.id)
    assert (converted.status, converted.deal_id, converted.partner_id) == (
        "converted", deal.id, known.id)
    assert done.location.endswith(f"/pipeline/deals/{deal.id}")


def test_new_person_and_company_are_created_only_when_asked(app, seller):
    lead = lead_of(seller, name="Ivan Petrov", email="ivan@petrov.example",
                   phone="+7 701 123 45 67", company_name="Romashka LLP",
                   message="Need 40 chairs.")

    deal = convert_lead(lead, user=seller, person=NEW, company=NEW)
    db.session.commit()

    person = db.session.get(Partner, deal.partner_id)
    company = db.session.get(Partner, deal.company_id)
    assert (person.kind, person.name, person.company_id) == ("person", "Ivan Petrov",
                                                              company.id)
    assert [p.number for p in person.phones] == ["+77011234567"]
    assert person.email == "ivan@petrov.example"
    assert (company.kind, company.name) == ("company", "Romashka LLP")
    notes = db.session.scalars(select(TimelineEntry.body).where(
        TimelineEntry.model == "pipeline.deal", TimelineEntry.record_id == deal.id,
        TimelineEntry.kind == "note")).all()
    assert any("Need 40 chairs." in body for body in notes)


def test_an_existing_company_with_the_same_name_is_offered(app, seller):
    company = partner("Romashka LLP", kind="company")
    lead = lead_of(seller, name="Ivan Petrov", email="ivan@petrov.example",
                   company_name="ROMASHKA llp")

    matches = lead_matches(lead)
    assert [c.id for c in matches.companies] == [company.id]
    with pytest.raises(ConversionChoiceNeeded):
        convert_lead(lead, user=seller, person=NEW)

    deal = convert_lead(lead, user=seller, person=NEW, company=str(company.id))
    db.session.commit()
    assert deal.company_id == company.id
    assert db.session.get(Partner, deal.partner_id).company_id == company.id
    assert partner_count() == 2


def test_a_colleague_with_the_same_email_in_the_company_is_matched(app, seller):
    company = partner("Romashka LLP", kind="company")
    known = partner("Petrov Ivan", emails=["Ivan@Petrov.example"], company=company)
    lead = lead_of(seller, name="Ivan Petrov", email="ivan@petrov.example",
                   company_name="Romashka LLP")

    matches = lead_matches(lead)

    [match] = matches.people
    assert match.partner_id == known.id
    assert "email" in match.reasons


def test_a_lead_without_matches_converts_without_contacts(app, seller):
    lead = lead_of(seller, phone="+37126000000", subject="Call me")

    deal = convert_lead(lead, user=seller)

    assert (deal.partner_id, deal.company_id, deal.title) == (None, None, "Call me")


def test_a_handled_lead_cannot_be_converted_again(app, seller):
    lead = lead_of(seller, name="Once", email="once@example.com")
    convert_lead(lead, user=seller, person=NEW)
    db.session.commit()

    with pytest.raises(LeadError):
        convert_lead(lead, user=seller, person=NEW)
    assert db.session.scalar(select(func.count()).select_from(Deal)) == 1


def test_dismissing_a_lead_takes_it_out_of_the_inbox(client, seller, login):
    lead = lead_of(seller, name="Spammy", email="s@example.com")
    login(client, seller)
    page = f"/pipeline/leads/{lead.id}"

    response = client.post(f"{page}/dismiss", data={"csrf_token": csrf_token(client, page),
                                                    "note": "Not a real request"})

    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).status == "dismissed"
    assert "Spammy" not in client.get("/pipeline/leads").get_data(as_text=True)
    assert "Spammy" in client.get("/pipeline/leads?status=dismissed").get_data(as_text=True)
