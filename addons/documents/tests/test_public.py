"""The client's public link: view, accept or decline without an account; signed, expiring,
revocable; CSRF on the answer; in the document's language; everything on the timeline."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from flask_babel import force_locale, gettext
from sqlalchemy import select

from addons.contacts.models import Partner
from addons.documents import offers, public
from addons.documents.models import Offer
from core.api import assign_roles, db, save_attachment, utcnow
from core.testing import csrf_token
from core.timeline import TimelineEntry

pytestmark = pytest.mark.addons("documents")

PDF = b"%PDF-1.4\n% the offer as sent\n%%EOF\n"


@pytest.fixture
def seller(app, make_user):
    user = make_user("anna")
    assign_roles(user, "salesperson")
    return user


def sent_offer(user, lang: str = "lv") -> Offer:
    partner = Partner(kind="company", name="Ozols SIA", owner_id=user.id, lang=lang,
                      country="LV")
    db.session.add(partner)
    db.session.flush()
    offer = offers.create_offer(partner, user=user, currency="EUR", seller_country="LV")
    offers.add_line(offer, description="Ābolu sula 1 l", quantity=3, unit_price="2.50",
                    vat_rate="21")
    offers.change_state(offer, "sent", user=user)
    db.session.commit()
    return offer


def link_for(app, offer: Offer) -> str:
    with app.test_request_context():
        url = public.issue_link(offer)
        db.session.commit()
    return urlsplit(url).path


def in_language(app, lang: str, message: str) -> str:
    """`message` as the app's catalogues translate it into `lang` (holds once translated)."""
    with app.test_request_context(), force_locale(lang):
        return gettext(message)


def timeline(offer: Offer) -> list[str]:
    return list(db.session.scalars(select(TimelineEntry.subject).where(
        TimelineEntry.model == "documents.offer", TimelineEntry.record_id == offer.id)
        .order_by(TimelineEntry.id)))


def answer(client, path: str, decision: str, **extra):
    token = csrf_token(client, path)
    return client.post(path + "/answer", data={"csrf_token": token, "decision": decision,
                                               **extra})


def reload(offer: Offer) -> Offer:
    db.session.expire_all()
    return db.session.get(Offer, offer.id)


def test_the_client_sees_the_offer_in_its_language_without_signing_in(app, seller):
    offer = sent_offer(seller, lang="lv")
    path = link_for(app, offer)
    page = app.test_client().get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<html lang="lv">' in html
    assert "Ozols SIA" in html and "Ābolu sula 1 l" in html
    assert offer.number in html
    assert 'name="csrf_token"' in html and 'value="accept"' in html


def test_accepting_moves_the_offer_once_and_logs_it(app, seller):
    offer = sent_offer(seller)
    path = link_for(app, offer)
    client = app.test_client()
    token = csrf_token(client, path)
    response = client.post(path + "/answer", data={
        "csrf_token": token, "decision": "accept", "comment": "Paldies, pasūtām!"})
    assert response.status_code == 302
    offer = reload(offer)
    assert offer.state == "accepted"
    subjects = timeline(offer)
    assert "Accepted by the client through the public link" in subjects
    body = db.session.scalar(select(TimelineEntry.body).where(
        TimelineEntry.subject == "Accepted by the client through the public link"))
    assert "Paldies, pasūtām!" in body
    # The link now shows the answer and cannot answer again.
    html = client.get(path).get_data(as_text=True)
    assert 'value="accept"' not in html
    again = client.post(path + "/answer", data={"csrf_token": token, "decision": "decline"})
    assert again.status_code == 302
    assert reload(offer).state == "accepted"


def test_an_offer_past_its_valid_until_day_cannot_be_accepted(app, seller):
    from datetime import timedelta

    offer = sent_offer(seller, lang="en")
    with app.test_request_context():
        today = offers.local_today()
    offer.offer_date, offer.valid_until = today - timedelta(days=40), today - timedelta(days=1)
    db.session.commit()
    path = link_for(app, offer)
    client = app.test_client()
    html = client.get(path).get_data(as_text=True)
    assert 'value="accept"' not in html and "This offer was valid until" in html
    token = csrf_token(client, "/login")  # a page kept open from before the day passed
    refused = client.post(path + "/answer", data={"csrf_token": token, "decision": "accept"},
                          follow_redirects=True)
    assert "ask us for a new one" in refused.get_data(as_text=True)
    assert reload(offer).state == "sent"


def test_declining_moves_the_offer_to_declined(app, seller):
    offer = sent_offer(seller)
    path = link_for(app, offer)
    answer(app.test_client(), path, "decline")
    offer = reload(offer)
    assert offer.state == "declined"
    assert "Declined by the client through the public link" in timeline(offer)


def test_an_answer_without_the_pages_csrf_token_is_refused(app, seller):
    offer = sent_offer(seller)
    path = link_for(app, offer)
    client = app.test_client()
    client.get(path)
    response = client.post(path + "/answer", data={"decision": "accept"})
    assert response.status_code == 400
    assert reload(offer).state == "sent"


def test_a_tampered_token_opens_nothing(app, seller):
    offer = sent_offer(seller)
    path = link_for(app, offer)
    token = path.rsplit("/", 1)[1]
    # Not the last character: its low bits are base64 padding, so changing it may decode to
    # the same signature (this test then failed about one run in ten).
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    client = app.test_client()
    for bad in (flipped, "eyJvIjoxLCJuIjoieCJ9.forged", "x"):
        response = client.get(f"/documents/p/{bad}")
        assert response.status_code == 404
        assert in_language(app, "en", "This link is not valid") in response.get_data(
            as_text=True)
        assert "Ozols SIA" not in response.get_data(as_text=True)
    # Someone else's valid signature for another offer id does not help either.
    response = client.post(f"/documents/p/{flipped}/answer", data={"decision": "accept"})
    assert reload(offer).state == "sent"


def test_an_expired_link_answers_a_clear_page_in_the_offers_language(app, seller):
    offer = sent_offer(seller, lang="ru")
    path = link_for(app, offer)
    offer.public_expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert '<html lang="ru">' in html
    assert in_language(app, "ru", "This link has expired") in html
    assert "Ābolu sula" not in html
    assert client.get(path + "/pdf").status_code == 410


def test_revoking_kills_every_earlier_link_and_a_new_one_works(app, seller, login):
    offer = sent_offer(seller)
    first = link_for(app, offer)
    second = link_for(app, offer)  # a new link replaces the first
    visitor = app.test_client()
    assert visitor.get(first).status_code == 410
    assert visitor.get(second).status_code == 200
    visitor_token = csrf_token(visitor, second)  # the page was open before the revocation
    client = app.test_client()
    login(client, seller)
    token = csrf_token(client, f"/documents/offers/{offer.id}/send")
    response = client.post(f"/documents/offers/{offer.id}/public-link/revoke",
                           data={"csrf_token": token})
    assert response.status_code == 302
    gone = visitor.get(second)
    assert gone.status_code == 410
    assert in_language(app, "lv", "This link was withdrawn") in gone.get_data(as_text=True)
    late = visitor.post(second + "/answer", data={"csrf_token": visitor_token,
                                                  "decision": "accept"})
    assert late.status_code == 410
    assert reload(offer).state == "sent"
    subjects = timeline(offer)
    assert "Public link revoked" in subjects
    assert sum(s.startswith("Public link issued") for s in subjects if s) == 2
    # A fresh link from the offer page works again.
    token = csrf_token(client, f"/documents/offers/{offer.id}/send")
    client.post(f"/documents/offers/{offer.id}/public-link", data={"csrf_token": token})
    page = client.get(f"/documents/offers/{offer.id}/send").get_data(as_text=True)
    fresh = re.search(r'href="(?:http://localhost)?(/documents/p/[^"]+)"', page).group(1)
    assert visitor.get(fresh).status_code == 200


def test_the_first_view_of_each_link_goes_on_the_timeline_once(app, seller):
    offer = sent_offer(seller)
    path = link_for(app, offer)
    visitor = app.test_client()
    visitor.get(path)
    visitor.get(path)
    views = [s for s in timeline(offer) if s and s.startswith("The client opened")]
    assert len(views) == 1


def test_the_public_pdf_is_the_stored_sent_file(app, seller):
    offer = sent_offer(seller)
    stored = save_attachment("documents.offer", offer.id, io.BytesIO(PDF), "offer.pdf")
    db.session.flush()
    offer.sent_attachment_id = stored.id
    db.session.commit()
    path = link_for(app, offer)
    response = app.test_client().get(path + "/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data == PDF


def test_only_the_offers_owner_can_issue_or_revoke_links(app, seller, make_user, login):
    offer = sent_offer(seller)
    other = make_user("ivars")
    assign_roles(other, "salesperson")
    client = app.test_client()
    login(client, other)
    token = csrf_token(client, "/documents/files")
    for action in ("public-link", "public-link/revoke"):
        response = client.post(f"/documents/offers/{offer.id}/{action}",
                               data={"csrf_token": token})
        assert response.status_code == 404
    assert reload(offer).public_nonce is None


def test_a_draft_gets_no_public_link(app, seller, login):
    partner = Partner(kind="company", name="Liepa", owner_id=seller.id)
    db.session.add(partner)
    db.session.flush()
    draft = offers.create_offer(partner, user=seller, currency="EUR", seller_country="LV")
    db.session.commit()
    client = app.test_client()
    login(client, seller)
    token = csrf_token(client, "/documents/files")
    client.post(f"/documents/offers/{draft.id}/public-link", data={"csrf_token": token})
    assert reload(draft).public_nonce is None


def test_offer_history_reads_in_the_readers_language_whoever_wrote_it(app, seller, make_user):
    """Anna works in Russian; a Latvian colleague reads the offer's history in Latvian, with
    the link's expiry date in her own format."""
    from core.testing import TEST_PASSWORD, acting_as

    seller.locale = "ru"
    liga = make_user("liga", locale="lv", is_admin=True)
    with acting_as(app, seller), force_locale("ru"):
        offer = sent_offer(seller)
        public.issue_link(offer, user=seller)
        db.session.commit()
    entry = db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.subject.startswith("Public link issued"))).one()
    assert "$day" in entry.message["subject"]["params"]["date"]
    client = app.test_client()
    client.post("/login", data={"login": liga.login, "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(client)})
    html = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    html = html[html.index('id="timeline"'):]
    assert "Piedāvājums izveidots" in html and "Statuss: Melnraksts → Nosūtīts" in html
    assert re.search(r"Izsniegta publiskā saite, derīga līdz \d{4}\. gada \d+\. ", html)
    assert "Предложение" not in html and "Статус" not in html


# -- how long a new link stays valid -----------------------------------------------------------
def issue(client, offer: Offer, days: str | None = None):
    token = csrf_token(client, f"/documents/offers/{offer.id}")
    data = {"csrf_token": token, "next": f"/documents/offers/{offer.id}"}
    if days is not None:
        data["days"] = days
    return client.post(f"/documents/offers/{offer.id}/public-link", data=data,
                       follow_redirects=True)


def valid_for(offer: Offer) -> timedelta:
    expires = public._aware(reload(offer).public_expires_at)
    return expires - utcnow()


def test_the_salesperson_picks_how_many_days_a_new_link_is_valid(app, seller, login):
    offer = sent_offer(seller)
    client = app.test_client()
    login(client, seller)
    for path in (f"/documents/offers/{offer.id}", f"/documents/offers/{offer.id}/send"):
        page = client.get(path).get_data(as_text=True)
        field = re.search(r'<input type="number" name="days"[^>]*>', page).group(0)
        assert 'value="30"' in field and 'min="1"' in field and 'max="365"' in field
    response = issue(client, offer, "7")
    assert "A new public link was created" in response.get_data(as_text=True)
    assert timedelta(days=7) - timedelta(minutes=5) < valid_for(offer) <= timedelta(days=7)
    issued = [s for s in timeline(offer) if s and s.startswith("Public link issued")]
    assert len(issued) == 1
    assert visitor_opens(app, offer)
    issue(client, offer, "")  # left empty: the default, as before
    assert timedelta(days=29, hours=23) < valid_for(offer) <= timedelta(days=30)
    issue(client, offer, "365")
    assert timedelta(days=364, hours=23) < valid_for(offer) <= timedelta(days=365)


def visitor_opens(app, offer: Offer) -> bool:
    with app.test_request_context():
        path = urlsplit(public.public_url(reload(offer))).path
    return app.test_client().get(path).status_code == 200


@pytest.mark.parametrize("days", ["0", "366", "-5", "2.5", "a week", "²", "9" * 30])
def test_a_validity_out_of_bounds_is_refused_in_the_users_language_and_the_link_stays(
        app, seller, login, days):
    seller.locale = "lv"
    db.session.commit()
    offer = sent_offer(seller)
    path = link_for(app, offer)
    before = (reload(offer).public_nonce, reload(offer).public_expires_at)
    client = app.test_client()
    login(client, seller)
    page = issue(client, offer, days).get_data(as_text=True)
    with app.test_request_context(), force_locale("lv"):
        reason = gettext("A link is valid for 1 to %(max)d days; enter a whole number of days "
                         "in that range.", max=365)
    assert "365" in reason and not reason.startswith("A link")  # translated
    assert reason in page
    assert (reload(offer).public_nonce, reload(offer).public_expires_at) == before
    assert app.test_client().get(path).status_code == 200  # the link in use still works


def test_a_configured_default_longer_than_a_year_can_still_be_picked(make_app, make_user, login):
    app = make_app(["documents"], BIRGA_DOCUMENTS_PUBLIC_DAYS=400)
    with app.app_context():
        user = make_user("anna")
        assign_roles(user, "salesperson")
        offer = sent_offer(user)
        client = app.test_client()
        login(client, user)
        page = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
        assert 'value="400"' in page and 'max="400"' in page
        issue(client, offer, "400")
        assert timedelta(days=399, hours=23) < valid_for(offer) <= timedelta(days=400)
