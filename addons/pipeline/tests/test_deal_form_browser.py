"""In headless Chromium: the deal form's client picker (suggestions from `/contacts/lookup.json`
through contacts' `static/picker.js` under the real Content-Security-Policy), the Lost fields
appearing when a Lost stage is chosen, and the board fitting the default funnel into 1280 px in
Romanian (the longest stage names), with the scroll hint when it does not fit."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from addons.contacts import services
from addons.contacts.models import Partner
from addons.pipeline.models import Deal
from addons.pipeline.state import seed_defaults
from core.api import assign_roles, db
from core.testing import browser_page, requires_chromium

pytestmark = [pytest.mark.browser, pytest.mark.addons("pipeline"), requires_chromium]


def test_pick_a_client_from_suggestions_and_see_lost_fields_on_demand(app, make_user,
                                                                       chromium):
    user = make_user("ilze", locale="en")
    assign_roles(user, "salesperson")
    pipeline = seed_defaults()
    for name in ("Ilze Kalna", "Ilze Kalna"):
        person = Partner(kind="person", name=name, owner_id=user.id)
        db.session.add(person)
        db.session.flush()
        services.refresh_search(person)
    db.session.commit()
    second = db.session.scalars(select(Partner).order_by(Partner.id)).all()[1]
    lost = next(s for s in pipeline.stages if s.kind == "lost")

    with browser_page(chromium, app, login=user.login) as live:
        page = live.page
        page.goto(f"/pipeline/deals/new?pipeline_id={pipeline.id}")
        assert page.locator("#lost_reason_id").is_hidden()
        page.select_option("#stage_id", str(lost.id))
        assert page.locator("#lost_reason_id").is_visible()
        page.select_option("#stage_id", str(pipeline.stages[0].id))
        assert page.locator("#lost_reason_id").is_hidden()

        page.fill("#title", "Desks")
        with page.expect_response(lambda r: "/contacts/lookup.json" in r.url):
            page.locator("#partner_name").press_sequentially("Ilze", delay=20)
        # Poll from Python: a string predicate in wait_for_function is eval'd inside the page,
        # which the Content-Security-Policy (rightly) forbids once it has to poll.
        expect(page.locator("#deal-partner-options option")).to_have_count(2)
        # Picking the second suggestion (what the datalist does) links that very contact.
        page.evaluate(
            """(id) => { const input = document.getElementById('partner_name');
                         input.value = 'Ilze Kalna';
                         const option = document.querySelector(
                           '#deal-partner-options option[data-id="' + id + '"]');
                         option.parentNode.prepend(option);
                         input.dispatchEvent(new Event('input', {bubbles: true})); }""",
            str(second.id))
        assert page.input_value("#partner_id") == str(second.id)
        with page.expect_navigation():
            page.click("button[type=submit].primary")
    db.session.expire_all()
    deal = db.session.scalar(select(Deal).order_by(Deal.id.desc()).limit(1))
    assert (deal.title, deal.partner_id) == ("Desks", second.id)
    assert live.problems == []


def test_the_default_funnel_fits_1280_px_in_romanian(app, make_user, chromium):
    user = make_user("ana", locale="ro")
    assign_roles(user, "sales_manager")
    pipeline = seed_defaults()
    db.session.commit()
    with browser_page(chromium, app, login=user.login, locale="ro-RO",
                      viewport={"width": 1280, "height": 900}) as live:
        page = live.page
        page.goto(f"/pipeline/board/{pipeline.id}")
        width = page.evaluate("(() => { const b = document.getElementById('board');"
                              " return [b.scrollWidth, b.clientWidth]; })()")
        assert width[0] <= width[1]  # every column inside the board, nothing to scroll to
        assert page.locator("#board-scroll-hint").is_hidden()
        # Too narrow for every column: the hint and the shadow say there is more.
        page.set_viewport_size({"width": 700, "height": 900})
        page.locator("#board-scroll-hint").wait_for(state="visible")
        assert "more-right" in page.get_attribute("#board-frame", "class")
    assert live.problems == []
