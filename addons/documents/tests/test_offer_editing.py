"""Deleting a draft (confirmed, with what belongs only to it; never an offer the client got) and
editing a draft's line in place (checked as a new line is, totals recomputed, nothing lost on a
bad value, a stale form refused) through the pages, as a salesperson."""
from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal

import pytest
from flask_babel import force_locale, gettext
from sqlalchemy import func, select

from addons.documents import offers as svc
from addons.documents.models import Offer, OfferLine
from addons.documents.tests.test_offers import make_partner, make_product
from core.api import (
    AuditLog,
    TimelineEntry,
    add_note,
    assign_roles,
    db,
    save_attachment,
    seed_reference_data,
)
from core.storage import Attachment
from core.testing import csrf_token

pytestmark = pytest.mark.addons("documents")

D = Decimal
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def salesperson(make_user, login_name: str = "anna", **fields):
    user = make_user(login_name, **fields)
    assign_roles(user, "salesperson")
    return user


def own_draft(user, *, lines: int = 2) -> Offer:
    seed_reference_data()
    partner = make_partner(owner_id=user.id)
    offer = svc.create_offer(partner, user=user, offer_date=date(2026, 3, 2))
    for i in range(lines):
        svc.add_line(offer, description=f"Item {i}", quantity="2", unit_price="10",
                     vat_rate="21")
    db.session.commit()
    return offer


def reload(offer_id: int) -> Offer | None:
    db.session.expire_all()
    return db.session.get(Offer, offer_id)


def line_now(line_id: int) -> OfferLine:
    db.session.expire_all()
    return db.session.get(OfferLine, line_id)


def editing_row(page: str) -> str:
    return re.search(r'<tr id="line-\d+" class="line-editing">.*?</tr>', page, re.S).group(0)


def in_language(app, lang: str, message: str, **values) -> str:
    with app.test_request_context(), force_locale(lang):
        return gettext(message, **values)


def post_delete(client, offer: Offer, *, confirmed: bool, version: int | None = None,
                follow: bool = False):
    token = csrf_token(client, f"/documents/offers/{offer.id}")
    data = {"csrf_token": token, "version": offer.version if version is None else version}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post(f"/documents/offers/{offer.id}/delete", data=data,
                       follow_redirects=follow)


# -- deleting a draft --------------------------------------------------------------------------
def test_a_draft_is_deleted_after_a_confirmation_page_with_its_lines_files_and_history(
        app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_draft(anna)
    offer_id, line_ids = offer.id, [line.id for line in offer.lines]
    add_note(svc.MODEL, offer.id, "Call them on Monday", author=anna)
    save_attachment(svc.MODEL, offer.id, io.BytesIO(PDF), "specification.pdf", user=anna)
    db.session.commit()
    login(client, anna)
    page = client.get(f"/documents/offers/{offer_id}").get_data(as_text=True)
    assert f'action="/documents/offers/{offer_id}/delete"' in page and "Delete draft" in page

    # The offer page's button (no JavaScript needed) answers a confirmation page first.
    asked = post_delete(client, offer, confirmed=False)
    text = asked.get_data(as_text=True)
    assert asked.status_code == 200
    assert "Delete the draft" in text and 'name="confirmed" value="yes"' in text
    assert "2 lines" in text and "1 file attached to the draft" in text
    assert reload(offer_id) is not None

    done = post_delete(client, reload(offer_id), confirmed=True)
    assert done.status_code == 302 and done.headers["Location"].endswith("/documents/offers")
    assert reload(offer_id) is None
    assert db.session.scalar(select(func.count(OfferLine.id))
                             .where(OfferLine.id.in_(line_ids))) == 0
    assert db.session.scalars(select(TimelineEntry).where(
        TimelineEntry.model == svc.MODEL, TimelineEntry.record_id == offer_id)).all() == []
    assert db.session.scalars(select(Attachment).where(
        Attachment.model == svc.MODEL, Attachment.record_id == offer_id)).all() == []
    # The audit log keeps what was deleted, and by whom.
    [audit] = db.session.scalars(select(AuditLog).where(
        AuditLog.model == svc.MODEL, AuditLog.record_id == offer_id,
        AuditLog.action == "delete")).all()
    assert audit.user_id == anna.id
    listing = client.get("/documents/offers").get_data(as_text=True)
    assert f"Draft #{offer_id} was deleted." in listing
    assert f'/documents/offers/{offer_id}"' not in listing


def test_deleting_a_draft_leaves_the_number_sequence_alone(app, client, make_user, login):
    anna = salesperson(make_user)
    doomed, kept = own_draft(anna), own_draft(anna)
    login(client, anna)
    post_delete(client, doomed, confirmed=True)
    assert reload(doomed.id) is None
    svc.change_state(reload(kept.id), "sent", user=anna)
    db.session.commit()
    assert reload(kept.id).number == "OFFER/2026/0001"  # no number was burnt or given back


@pytest.mark.parametrize("state", ["sent", "accepted", "declined"])
def test_an_offer_that_left_draft_is_never_deleted_and_the_page_says_why(
        app, client, make_user, login, state):
    anna = salesperson(make_user, locale="lv")
    offer = own_draft(anna)
    svc.change_state(offer, "sent", user=anna)
    if state != "sent":
        svc.change_state(offer, state, user=anna)
    db.session.commit()
    login(client, anna)
    page = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert f"/documents/offers/{offer.id}/delete" not in page
    response = post_delete(client, offer, confirmed=True, follow=True)
    refusal = in_language(app, "lv", "Only a draft can be deleted: this offer was sent and "
                          "is kept as the record of what the client received.")
    assert refusal.startswith("Dzēst")  # translated, not English
    assert refusal in response.get_data(as_text=True)
    assert reload(offer.id).state == state
    assert [line.description for line in reload(offer.id).lines] == ["Item 0", "Item 1"]


def test_only_a_writer_who_sees_the_draft_may_delete_it(app, client, make_user, login):
    anna, boris = salesperson(make_user), salesperson(make_user, "boris")
    reader = make_user("rita")
    assign_roles(reader, "auditor")  # reads every offer, writes none
    offer = own_draft(anna)
    for user in (boris, reader):
        other = app.test_client()
        login(other, user)
        token = csrf_token(other, "/documents/offers")
        response = other.post(f"/documents/offers/{offer.id}/delete",
                              data={"csrf_token": token, "version": offer.version,
                                    "confirmed": "yes"})
        assert response.status_code == 404
    assert reload(offer.id) is not None
    # The reader sees the draft but no delete button.
    login(client, reader)
    page = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert "Delete draft" not in page


def test_a_stale_confirmation_deletes_nothing(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_draft(anna)
    seen = offer.version
    login(client, anna)
    post_delete(client, offer, confirmed=False)
    svc.add_line(offer, description="Added meanwhile", unit_price="5", vat_rate="21")
    db.session.commit()
    response = post_delete(client, offer, confirmed=True, version=seen, follow=True)
    assert "Someone else changed this offer meanwhile" in response.get_data(as_text=True)
    assert [line.description for line in reload(offer.id).lines][-1] == "Added meanwhile"


def test_deleting_a_draft_revision_makes_the_re_issued_revision_current_again(
        app, client, make_user, login):
    anna = salesperson(make_user)
    first = own_draft(anna)
    svc.change_state(first, "sent", user=anna)
    second = svc.revise(first, user=anna)
    db.session.commit()
    first_id, second_id = first.id, second.id
    login(client, anna)
    asked = post_delete(client, second, confirmed=False).get_data(as_text=True)
    assert "Revision 1 becomes the current one again." in asked
    response = post_delete(client, reload(second_id), confirmed=True)
    assert response.headers["Location"].endswith(f"/documents/offers/{first_id}")
    assert reload(second_id) is None
    first = reload(first_id)
    assert first.is_current and first.state == "sent" and first.number == "OFFER/2026/0001"
    assert any("revision 2 was deleted" in (s or "") for s in db.session.scalars(
        select(TimelineEntry.subject).where(TimelineEntry.model == svc.MODEL,
                                            TimelineEntry.record_id == first_id)))
    # It can be re-issued again, under the same number.
    assert svc.revise(first, user=anna).number == "OFFER/2026/0001"


def test_a_deleted_draft_leaves_its_deal_as_it_was(make_app, make_user, login):
    app = make_app(["contacts", "pipeline", "documents"])
    with app.app_context():
        from addons.pipeline.models import Deal
        from addons.pipeline.state import create_deal, seed_defaults

        anna = salesperson(make_user)
        pipeline = seed_defaults()
        offer = own_draft(anna)
        deal = create_deal(title="Ozols fit-out", pipeline=pipeline, user=anna,
                           owner_id=anna.id, partner_id=offer.partner_id, amount="1000")
        db.session.flush()
        offer.deal_id = deal.id
        db.session.commit()
        client = app.test_client()
        login(client, anna)
        assert svc.display_number(offer) in client.get(
            f"/pipeline/deals/{deal.id}").get_data(as_text=True)
        before = (deal.version, deal.stage_id, deal.amount)
        offer_id, deal_id = offer.id, deal.id
        post_delete(client, offer, confirmed=True)
        assert reload(offer_id) is None
        deal = db.session.get(Deal, deal_id)
        assert (deal.version, deal.stage_id, deal.amount) == before
        page = client.get(f"/pipeline/deals/{deal_id}").get_data(as_text=True)
        assert f"/documents/offers/{offer_id}\"" not in page


# -- editing a line in place -------------------------------------------------------------------
def edit_line(client, offer: Offer, line: OfferLine, *, version: int | None = None,
              follow: bool = False, **values):
    token = csrf_token(client, f"/documents/offers/{offer.id}")
    data = {"csrf_token": token, "version": offer.version if version is None else version,
            "description": line.description, "quantity": str(line.quantity),
            "unit": line.unit, "unit_price": str(line.unit_price),
            "discount": str(line.discount), "vat_rate": str(line.vat_rate), **values}
    return client.post(f"/documents/offers/{offer.id}/lines/{line.id}/edit", data=data,
                       follow_redirects=follow)


def test_the_edit_button_turns_the_row_into_a_form_with_its_values(app, client, make_user,
                                                                   login):
    anna = salesperson(make_user)
    offer = own_draft(anna, lines=1)
    line = offer.lines[0]
    login(client, anna)
    page = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    edit_url = f"/documents/offers/{offer.id}/lines/{line.id}/edit"
    assert f'href="{edit_url}#line-{line.id}"' in page
    row = client.get(edit_url).get_data(as_text=True)
    form_id = f"line-edit-{line.id}"
    assert f'<form method="post" id="{form_id}" action="{edit_url}"' in row
    for name, value in (("description", "Item 0"), ("quantity", "2"), ("unit_price", "10"),
                        ("discount", "0"), ("vat_rate", "21")):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*form="{form_id}"[^>]*>|'
                        rf'<input[^>]*form="{form_id}"[^>]*name="{name}"[^>]*>', row)
        assert tag is not None, name
        assert f'value="{value}"' in tag.group(0), (name, tag.group(0))
    # The add-line form below keeps its own ids: the edited row's inputs have others.
    assert row.count('id="description"') == 1


def test_a_changed_line_recomputes_the_totals_and_vat_groups(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_draft(anna)  # two lines of 2 × 10 at 21 %
    line = offer.lines[1]
    login(client, anna)
    response = edit_line(client, offer, line, description="Books, 2nd edition",
                         quantity="3", unit="box", unit_price="12,50", discount="10",
                         vat_rate="12")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/documents/offers/{offer.id}#line-{line.id}")
    offer = reload(offer.id)
    changed = offer.lines[1]
    assert (changed.description, changed.quantity, changed.unit, changed.unit_price,
            changed.discount, changed.vat_rate) == ("Books, 2nd edition", D("3"), "box",
                                                    D("12.5"), D("10"), D("12"))
    assert changed.amount_untaxed == D("33.75")  # 3 × 12.50 × 0.9
    assert (offer.amount_untaxed, offer.amount_tax, offer.amount_total) == (
        D("53.75"), D("8.25"), D("62.00"))  # 20 at 21 % (4.20) + 33.75 at 12 % (4.05)
    page = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert "Line saved." in page and "Net at VAT 12 %" in page and "€62.00" in page


@pytest.mark.parametrize(("field", "typed", "error"), [
    ("quantity", "a lot", "Enter a number."),
    ("quantity", "0", "The quantity must be greater than zero."),
    ("quantity", "", "Enter the quantity."),
    ("discount", "150", "A discount is a percentage from 0 to 100."),
    ("unit_price", "-3", "A price cannot be negative."),
    ("unit_price", "", "Enter the line's price."),
    ("vat_rate", "121", "A VAT rate is a percentage between 0 and 100."),
    ("description", "", "A line without a product needs a description."),
])
def test_a_refused_value_is_shown_under_its_field_and_nothing_typed_is_lost(
        app, client, make_user, login, field, typed, error):
    anna = salesperson(make_user)
    offer = own_draft(anna, lines=1)
    line = offer.lines[0]
    before = (offer.version, offer.amount_total)
    login(client, anna)
    typed_values = {"description": "Renamed item", "quantity": "7", "unit_price": "11",
                    "discount": "5", "vat_rate": "21", field: typed}
    response = edit_line(client, offer, line, **typed_values)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The line was not saved" in page
    shown = error.replace("'", "&#39;")
    row = editing_row(page)
    cell = re.search(rf'name="{field}"[^>]*>\s*<p class="field-error">([^<]*)</p>', row)
    assert cell is not None and cell.group(1) == shown, row
    for name, value in typed_values.items():  # what the user typed, as typed
        assert re.search(rf'<input[^>]*name="{name}"[^>]*value="{re.escape(value)}"', row), name
    # ... in the edited row only: the add-line form below is empty as ever.
    assert re.search(r'<input[^>]*id="quantity"[^>]*value="1"', page)
    assert re.search(r'<input[^>]*id="description"[^>]*value=""', page)
    offer = reload(offer.id)
    assert (offer.version, offer.amount_total) == before
    assert offer.lines[0].description == "Item 0"


def test_refused_values_read_in_the_users_language(app, client, make_user, login):
    anna = salesperson(make_user, locale="lv")
    offer = own_draft(anna, lines=1)
    login(client, anna)
    page = edit_line(client, offer, offer.lines[0], discount="150").get_data(as_text=True)
    wanted = in_language(app, "lv", "A discount is a percentage from 0 to 100.")
    assert wanted != "A discount is a percentage from 0 to 100."
    assert wanted in page
    assert in_language(app, "lv", "The line was not saved: correct the values shown in its "
                       "row.") in page


def test_a_stale_line_form_is_refused_keeps_what_was_typed_and_applies_when_saved_again(
        app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_draft(anna)
    line = offer.lines[0]
    seen = offer.version
    login(client, anna)
    # A colleague changes the other line's description only: the totals stay the same, the
    # version still moves on.
    svc.update_line(offer, offer.lines[1], description="Renamed by a colleague",
                    quantity="2", unit_price="10", vat_rate="21")
    db.session.commit()
    assert reload(offer.id).version > seen
    response = edit_line(client, offer, line, version=seen, quantity="5")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Someone else changed this offer meanwhile" in page
    assert re.search(r'<input[^>]*name="quantity"[^>]*value="5"', editing_row(page))
    assert "Renamed by a colleague" in page  # the offer as it is now
    offer = reload(offer.id)
    assert offer.lines[0].quantity == D("2")
    fresh = re.search(rf'id="line-edit-{line.id}".*?name="version" value="(\d+)"', page,
                      re.S).group(1)
    assert int(fresh) == offer.version
    again = edit_line(client, offer, offer.lines[0], version=int(fresh), quantity="5")
    assert again.status_code == 302
    assert reload(offer.id).lines[0].quantity == D("5")


def test_a_product_line_keeps_its_price_list_date_unless_the_price_is_typed_anew(
        app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_draft(anna, lines=0)
    product = make_product("SKU-7", prices={date(2020, 1, 1): "19.99"})
    line = svc.add_line(offer, product=product, quantity="1")
    db.session.commit()
    login(client, anna)
    # The quantity changes, the price stays the price list's.
    edit_line(client, offer, line, quantity="4")
    line = line_now(line.id)
    assert (line.quantity, line.unit_price, line.price_date) == (D("4"), D("19.99"),
                                                                 date(2020, 1, 1))
    # A price typed anew is the user's own: no price-list date.
    edit_line(client, reload(offer.id), line, unit_price="18")
    line = line_now(line.id)
    assert (line.unit_price, line.price_date) == (D("18"), None)
    # Emptied price and VAT take the price list's price and the product's rate again.
    edit_line(client, reload(offer.id), line, unit_price="", vat_rate="", description="")
    line = line_now(line.id)
    assert (line.unit_price, line.price_date, line.vat_rate) == (D("19.99"), date(2020, 1, 1),
                                                                 D("21"))
    assert line.description == "Product SKU-7"
    assert reload(offer.id).amount_untaxed == D("79.96")


def test_only_a_drafts_lines_can_be_edited(app, client, make_user, login):
    anna = salesperson(make_user)
    offer = own_draft(anna, lines=1)
    svc.change_state(offer, "sent", user=anna)
    db.session.commit()
    line = offer.lines[0]
    login(client, anna)
    page = client.get(f"/documents/offers/{offer.id}").get_data(as_text=True)
    assert "/edit#line-" not in page
    shown = client.get(f"/documents/offers/{offer.id}/lines/{line.id}/edit",
                       follow_redirects=True).get_data(as_text=True)
    assert "Only a draft can be changed" in shown
    edit_line(client, offer, line, quantity="9")
    assert reload(offer.id).lines[0].quantity == D("2")


def test_another_salespersons_line_is_a_404_and_a_removed_line_is_explained(
        app, client, make_user, login):
    anna, boris = salesperson(make_user), salesperson(make_user, "boris")
    offer = own_draft(anna, lines=2)
    line, gone = offer.lines
    login(client, boris)
    url = f"/documents/offers/{offer.id}/lines/{line.id}/edit"
    assert client.get(url).status_code == 404
    assert edit_line(client, offer, line, quantity="9").status_code == 404
    assert reload(offer.id).lines[0].quantity == D("2")
    mine = app.test_client()
    login(mine, anna)
    svc.remove_line(offer, gone)
    db.session.commit()
    shown = mine.get(f"/documents/offers/{offer.id}/lines/{gone.id}/edit",
                     follow_redirects=True).get_data(as_text=True)
    assert "That line is no longer on this offer" in shown
