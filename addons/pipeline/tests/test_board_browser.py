"""End to end in headless Chromium, in Kazakh: drag a deal to the next column, drag another to
Lost and be asked for the reason, then read both moves on the deals' timelines.

Only a browser runs `static/board.js` (HTML5 drag and drop, `fetch` with the CSRF header, the
reason dialog) under the real Content-Security-Policy. Expected words come from the app's merged
`kk` catalogue, so the test holds whatever the translator writes. Debian's `/usr/bin/chromium`
(never a downloaded browser), through `core.testing.browser_page`.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from addons.pipeline.models import Deal, LostReason
from addons.pipeline.state import create_deal, seed_defaults
from core.api import assign_roles, db
from core.i18n import merge_catalogs
from core.testing import browser_page, requires_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.addons("pipeline"),
    requires_chromium,
]


def test_in_kazakh_drag_a_deal_forward_and_one_to_lost_with_a_reason(app, make_user,
                                                                      chromium, tmp_path):
    kk = merge_catalogs(app.extensions["birga.i18n"].directories, "kk")
    user = make_user("aigerim", locale="kk")
    assign_roles(user, "sales_manager")
    pipeline = seed_defaults()
    db.session.commit()
    stages = {s.name: s for s in pipeline.stages}
    forward = create_deal(title="Astana warehouse", pipeline=pipeline, user=user,
                          amount="1500", currency="KZT")
    doomed = create_deal(title="Shymkent printers", pipeline=pipeline, user=user)
    db.session.commit()
    reason = db.session.scalar(select(LostReason).where(LostReason.name == "No budget"))
    ids = {"forward": forward.id, "doomed": doomed.id}

    with browser_page(chromium, app, login=user.login, locale="kk-KZ",
                      viewport={"width": 1500, "height": 900}) as live:
        page = live.page
        page.goto(f"/pipeline/board/{pipeline.id}")
        assert page.get_attribute("html", "lang") == "kk"
        column = page.locator(f'.board-column[data-stage="{stages["Qualified"].id}"] h2')
        assert kk.gettext("Qualified") in column.inner_text()
        assert page.locator(".card-move").first.is_hidden()  # JS on: drag instead of forms

        # 1. New -> Qualified by drag and drop.
        card = page.locator(f'#deal-{ids["forward"]}')
        with page.expect_response(lambda r: r.url.endswith(f'/deals/{ids["forward"]}/move')):
            card.drag_to(page.locator(f'.board-column[data-stage="{stages["Qualified"].id}"]'))
        page.locator(f'ol.cards[data-stage="{stages["Qualified"].id}"] #deal-{ids["forward"]}'
                     ).wait_for()
        # The card moves before the answer is read: wait for the message, do not race it.
        expect(page.locator("#board-status")).to_contain_text(
            kk.gettext("Moved to %(stage)s.") % {"stage": kk.gettext("Qualified")})
        # The columns' sums follow the card (formatted by the server in Kazakh).
        sums = '.board-column[data-stage="{}"] .column-sums .total[data-currency="KZT"]'
        expect(page.locator(sums.format(stages["Qualified"].id))).to_have_text(
            re.compile(r"1\s500"))
        expect(page.locator(sums.format(stages["New"].id))).to_have_count(0)

        # 2. New -> Lost: the reason dialog opens first; nothing moves without a reason.
        lost_column = page.locator(f'.board-column[data-stage="{stages["Lost"].id}"]')
        page.locator(f'#deal-{ids["doomed"]}').drag_to(lost_column)
        dialog = page.locator("#lost-dialog")
        dialog.wait_for(state="visible")
        assert kk.gettext("Why was the deal lost?") in dialog.inner_text()
        page.screenshot(path=str(tmp_path / "lost-dialog-kk.png"))
        page.select_option("#lost-reason", str(reason.id))
        page.fill("#lost-note", "Бюджет жоқ")
        with page.expect_response(lambda r: r.url.endswith(f'/deals/{ids["doomed"]}/move')):
            dialog.locator('button[value="ok"]').click()
        page.locator(f'ol.cards[data-stage="{stages["Lost"].id}"] #deal-{ids["doomed"]}'
                     ).wait_for()

        # 3. Both moves are on the deals' timelines, in Kazakh.
        subject = kk.gettext("Stage: %(old)s → %(new)s")
        page.goto(f'/pipeline/deals/{ids["forward"]}')
        history = page.locator("#timeline").inner_text()
        assert subject % {"old": kk.gettext("New"), "new": kk.gettext("Qualified")} in history
        page.goto(f'/pipeline/deals/{ids["doomed"]}')
        history = page.locator("#timeline").inner_text()
        assert subject % {"old": kk.gettext("New"), "new": kk.gettext("Lost")} in history
        assert kk.gettext("Lost reason: %(reason)s") % {"reason": kk.gettext("No budget")} \
            in history
        assert "Бюджет жоқ" in history
    assert live.problems == []
    db.session.expire_all()
    assert db.session.get(Deal, ids["doomed"]).lost_reason_id == reason.id
    assert db.session.get(Deal, ids["forward"]).stage_id == stages["Qualified"].id


def test_dropping_a_deal_without_an_amount_on_won_asks_for_the_amount(app, make_user, chromium):
    """Cancelling the dialog leaves the card where it was; the amount given wins the deal and
    shows on the card. A deal that has an amount is won without the dialog."""
    lv = merge_catalogs(app.extensions["birga.i18n"].directories, "lv")
    user = make_user("ilze", locale="lv")
    assign_roles(user, "sales_manager")
    pipeline = seed_defaults()
    db.session.commit()
    stages = {s.name: s for s in pipeline.stages}
    empty = create_deal(title="Rīgas noliktava", pipeline=pipeline, user=user)
    priced = create_deal(title="Liepājas biroji", pipeline=pipeline, user=user, amount="500")
    db.session.commit()
    ids = {"empty": empty.id, "priced": priced.id}
    won = stages["Won"].id

    with browser_page(chromium, app, login=user.login, locale="lv-LV",
                      viewport={"width": 1500, "height": 900}) as live:
        page = live.page
        page.goto(f"/pipeline/board/{pipeline.id}")
        won_column = page.locator(f'.board-column[data-stage="{won}"]')
        dialog = page.locator("#won-dialog")

        page.locator(f'#deal-{ids["empty"]}').drag_to(won_column)
        dialog.wait_for(state="visible")
        assert lv.gettext("For how much was the deal won?") in dialog.inner_text()
        dialog.locator('button[value="cancel"]').click()
        dialog.wait_for(state="hidden")
        assert page.locator(f'ol.cards[data-stage="{won}"] #deal-{ids["empty"]}').count() == 0

        page.locator(f'#deal-{ids["empty"]}').drag_to(won_column)
        dialog.wait_for(state="visible")
        page.fill("#won-amount", "1 200,50")
        with page.expect_response(lambda r: r.url.endswith(f'/deals/{ids["empty"]}/move')):
            dialog.locator('button[value="ok"]').click()
        card = page.locator(f'ol.cards[data-stage="{won}"] #deal-{ids["empty"]}')
        card.wait_for()
        expect(card.locator(".deal-amount")).to_contain_text("200,50")

        with page.expect_response(lambda r: r.url.endswith(f'/deals/{ids["priced"]}/move')):
            page.locator(f'#deal-{ids["priced"]}').drag_to(won_column)
        page.locator(f'ol.cards[data-stage="{won}"] #deal-{ids["priced"]}').wait_for()
        assert dialog.is_hidden()
    assert live.problems == []
    db.session.expire_all()
    assert str(db.session.get(Deal, ids["empty"]).amount) == "1200.50"
    assert db.session.get(Deal, ids["priced"]).stage_id == won
