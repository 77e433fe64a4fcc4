"""In a real headless Chromium: a draft's line edited in its row (the row's inputs belong to the
form in its last cell through the `form` attribute, which only a browser applies), a refused
value shown in place, and a draft deleted through the confirmation page, all without any
script of ours. Debian's `/usr/bin/chromium`, through `core.testing.browser_page`."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from addons.documents import offers as svc
from addons.documents.models import Offer
from addons.documents.tests.test_offers import make_partner
from core.api import assign_roles, db, seed_reference_data
from core.testing import browser_page, requires_chromium

pytestmark = [pytest.mark.addons("documents"), pytest.mark.browser, requires_chromium]


def draft_of(user) -> Offer:
    seed_reference_data()
    offer = svc.create_offer(make_partner("Ozols SIA", owner_id=user.id), user=user,
                             offer_date=date(2026, 3, 2), currency="EUR")
    svc.add_line(offer, description="Ābolu sula 1 l", quantity="3", unit_price="2.50",
                 vat_rate="21")
    svc.add_line(offer, description="Piegāde", quantity="1", unit_price="10", vat_rate="21")
    db.session.commit()
    return offer


def test_a_line_is_edited_in_its_row_and_a_draft_deleted_after_confirming(app, make_user,
                                                                          chromium):
    anna = make_user("anna")
    assign_roles(anna, "salesperson")
    offer = draft_of(anna)
    offer_id, line_id = offer.id, offer.lines[0].id
    with browser_page(chromium, app, login="anna") as live:
        page = live.page
        page.goto(f"/documents/offers/{offer_id}")
        page.click(f"#line-{line_id} a.line-edit")
        row = page.locator(f"#line-{line_id}.line-editing")
        assert row.locator("input[name=quantity]").input_value() == "3"

        # A refused value: the row again, with the reason and what was typed.
        row.locator("input[name=quantity]").fill("zero")
        row.locator("input[name=description]").fill("Ābolu sula 1 l, bio")
        row.get_by_role("button", name="Save").click()
        row = page.locator(f"#line-{line_id}.line-editing")
        assert row.locator(".field-error").inner_text() == "Enter a number."
        assert row.locator("input[name=description]").input_value() == "Ābolu sula 1 l, bio"

        row.locator("input[name=quantity]").fill("4")
        row.locator("input[name=discount]").fill("10")
        row.get_by_role("button", name="Save").click()
        page.wait_for_selector("text=Line saved.")
        assert page.locator(".line-editing").count() == 0
        assert "Ābolu sula 1 l, bio" in page.locator(f"#line-{line_id}").inner_text()
        assert "€9.00" in page.locator(f"#line-{line_id}").inner_text()  # 4 × 2.50 × 0.9
        assert "€22.99" in page.locator("tr.grand-total").inner_text()  # 19.00 + 3.99 VAT

        # Delete: the button asks first, on a page of its own.
        page.get_by_role("button", name="Delete draft").click()
        page.wait_for_selector("form.offer-delete-confirm")
        assert "2 lines" in page.content()
        page.get_by_role("button", name="Delete the draft").click()
        page.wait_for_selector(f"text=Draft #{offer_id} was deleted.")
        assert page.url.endswith("/documents/offers")
    assert live.problems == []
    db.session.expire_all()
    assert db.session.get(Offer, offer_id) is None


def test_the_edited_row_keeps_the_offer_page_usable_on_a_phone(app, make_user, chromium):
    anna = make_user("anna")
    assign_roles(anna, "salesperson")
    offer = draft_of(anna)
    line_id = offer.lines[1].id
    with browser_page(chromium, app, login="anna",
                      viewport={"width": 390, "height": 844}) as live:
        page = live.page
        page.goto(f"/documents/offers/{offer.id}/lines/{line_id}/edit")
        save = page.locator(f"#line-edit-{line_id} button")
        save.scroll_into_view_if_needed()
        assert save.is_visible()
        page.locator(f"#line-{line_id} input[name=unit_price]").fill("12")
        save.click()
        page.wait_for_selector("text=Line saved.")
    assert live.problems == []
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).lines[1].unit_price == Decimal("12")
